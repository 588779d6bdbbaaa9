// Posix-specific durability and permission guarantees.

#include "storage/posix.h"

#include <gtest/gtest.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>

#include "common/error.h"
#include "io/file.h"
#include "support/test_util.h"

namespace gravl::storage {
namespace {

namespace fs = std::filesystem;

TEST(PosixStorage, CrashInTheMiddleOfAWriteLeavesNoVisibleObject) {
  test::TempDir dir;
  std::string root = dir / "repo";
  int pipefd[2];
  ASSERT_EQ(::pipe(pipefd), 0);
  pid_t child = ::fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    // Child: start a large write, report progress, then wait to be killed mid-stream.
    auto storage = MakePosixStorage(root);
    auto w = storage->Put("backups/x/file");
    Bytes chunk = test::PseudoRandom(1 << 20, 3);
    for (int i = 0; i < 8; ++i) w->Write(chunk);
    char c = 'w';
    if (::write(pipefd[1], &c, 1) != 1) _exit(2);
    for (;;) ::pause();
  }
  ::close(pipefd[1]);
  char c = 0;
  ASSERT_EQ(::read(pipefd[0], &c, 1), 1);
  ::close(pipefd[0]);
  ::kill(child, SIGKILL);
  int status = 0;
  ::waitpid(child, &status, 0);
  ASSERT_TRUE(WIFSIGNALED(status));

  auto storage = MakePosixStorage(root);
  EXPECT_FALSE(storage->Stat("backups/x/file"));
  EXPECT_TRUE(ListAll(*storage, "").empty());
  EXPECT_THROW(storage->Get("backups/x/file"), NotFoundError);
  // The temporary file is there on disk, but hidden; a new write of the key succeeds.
  bool temp_on_disk = false;
  for (const auto& e : fs::directory_iterator(root + "/backups/x")) {
    temp_on_disk |= e.path().filename().string().find(io::kTempMarker) != std::string::npos;
  }
  EXPECT_TRUE(temp_on_disk);
  PutBytes(*storage, "backups/x/file", AsBytes("complete"), PutOptions{.if_absent = true});
  EXPECT_EQ(ListAll(*storage, "").size(), 1u);
}

TEST(PosixStorage, FilesAre0600AndDirectories0700) {
  test::TempDir dir;
  ::umask(022);
  auto storage = MakePosixStorage(dir / "repo");
  PutBytes(*storage, "a/b/c", AsBytes("x"));
  struct stat st {};
  ASSERT_EQ(::stat((dir / "repo/a/b/c").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0600u);
  for (const char* d : {"repo", "repo/a", "repo/a/b"}) {
    ASSERT_EQ(::stat((dir / d).c_str(), &st), 0);
    EXPECT_EQ(st.st_mode & 07777, 0700u) << d;
  }
}

TEST(PosixStorage, FailedFinishLeavesNoObjectAndNoTempFile) {
  test::TempDir dir;
  auto storage = MakePosixStorage(dir / "repo");
  PutBytes(*storage, "k", AsBytes("first"));
  auto w = storage->Put("k", PutOptions{.if_absent = true});
  w->Write(AsBytes("second"));
  EXPECT_THROW(w->Finish(), ConflictError);
  std::size_t entries = 0;
  for (const auto& e : fs::directory_iterator(dir / "repo")) {
    (void)e;
    ++entries;
  }
  EXPECT_EQ(entries, 1u);  // only "k": the temporary file was removed
}

TEST(PosixStorage, UnwritableRootGivesAClearError) {
  test::TempDir dir;
  test::WriteFile(dir / "file", "not a directory");
  auto storage = MakePosixStorage(dir / "file/repo");
  try {
    PutBytes(*storage, "x", AsBytes("y"));
    FAIL();
  } catch (const StorageError& e) {
    EXPECT_NE(std::string(e.what()).find("not a directory"), std::string::npos) << e.what();
  }
  EXPECT_THROW(MakePosixStorage("relative/path"), ConfigError);
}

}  // namespace
}  // namespace gravl::storage
