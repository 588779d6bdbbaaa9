// Temporary files of writers that are gone are found (and removed); those of live writers
// and recent ones of other hosts are left alone.

#include "io/file.h"

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>

#include "support/test_util.h"

namespace gravl::io {
namespace {

namespace fs = std::filesystem;

std::vector<std::string> Temporaries(const std::string& dir) {
  std::vector<std::string> out;
  for (const auto& e : fs::recursive_directory_iterator(dir)) {
    if (IsTempFileName(e.path().filename().string())) out.push_back(e.path().string());
  }
  std::sort(out.begin(), out.end());
  return out;
}

TEST(StaleTemporaries, OnlyThoseOfGoneWritersAreRemoved) {
  test::TempDir dir;
  std::string wal = dir / "wal/00000001";
  MakeDirs(wal);
  // A writer killed mid-write: its temporary file stays, naming its (now dead) pid.
  pid_t child = ::fork();
  if (child == 0) {
    auto* sink = new AtomicFileSink(wal + "/000000010000000000000007");
    sink->Write(AsBytes(std::string(4096, 'x')));
    ::_exit(0);  // no destructor: as after kill -9
  }
  int status = 0;
  ::waitpid(child, &status, 0);
  // A live writer (this process).
  AtomicFileSink live(wal + "/000000010000000000000008");
  live.Write(AsBytes(std::string(100, 'y')));
  // Files of an older version (no writer id): one idle for two hours, one recent.
  test::WriteFile(wal + "/.000000010000000000000005.gravl-tmp-0a1b2c3d4e5f", "old");
  test::WriteFile(wal + "/.000000010000000000000006.gravl-tmp-0a1b2c3d4e60", "recent");
  struct timeval two_hours_ago[2];
  ::gettimeofday(&two_hours_ago[0], nullptr);
  two_hours_ago[0].tv_sec -= 7200;
  two_hours_ago[1] = two_hours_ago[0];
  ASSERT_EQ(
      ::utimes((wal + "/.000000010000000000000005.gravl-tmp-0a1b2c3d4e5f").c_str(), two_hours_ago),
      0);
  ASSERT_EQ(Temporaries(dir.path()).size(), 4u);

  StaleTemporaries found = FindStaleTemporaries(dir.path(), false);
  ASSERT_EQ(found.paths.size(), 2u);
  EXPECT_EQ(found.bytes, 4096u + 3u);
  EXPECT_EQ(Temporaries(dir.path()).size(), 4u);  // only reported
  std::sort(found.paths.begin(), found.paths.end());
  EXPECT_NE(found.paths[0].find("000000010000000000000005"), std::string::npos);
  EXPECT_NE(found.paths[1].find("000000010000000000000007"), std::string::npos);

  FindStaleTemporaries(dir.path(), true);
  auto left = Temporaries(dir.path());
  ASSERT_EQ(left.size(), 2u);
  EXPECT_NE(left[0].find("000000010000000000000006"), std::string::npos);
  EXPECT_NE(left[1].find("000000010000000000000008"), std::string::npos);
  live.Finish();
}

}  // namespace
}  // namespace gravl::io
