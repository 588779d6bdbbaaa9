// Posix-specific durability and permission guarantees.

#include "storage/posix.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/mman.h>
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

// How many of the pages of `path` are in the page cache.
std::size_t ResidentPages(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  EXPECT_GE(fd, 0) << path;
  struct stat st {};
  ::fstat(fd, &st);
  auto size = static_cast<std::size_t>(st.st_size);
  void* addr = ::mmap(nullptr, size, PROT_READ, MAP_SHARED, fd, 0);
  ::close(fd);
  EXPECT_NE(addr, MAP_FAILED);
  std::size_t page = static_cast<std::size_t>(::sysconf(_SC_PAGESIZE));
  std::vector<unsigned char> vec((size + page - 1) / page);
  EXPECT_EQ(::mincore(addr, size, vec.data()), 0);
  ::munmap(addr, size);
  std::size_t resident = 0;
  for (unsigned char v : vec) resident += v & 1;
  return resident;
}

TEST(AtomicFileSink, DirectIoWritesAreByteExactAtEverySize) {
  std::vector<std::string> dirs;
  test::TempDir disk;
  dirs.push_back(disk.path());
  if (fs::is_directory("/dev/shm")) dirs.push_back("/dev/shm");  // tmpfs: may refuse O_DIRECT
  constexpr std::size_t kMiB = 1024 * 1024;
  for (const auto& dir : dirs) {
    for (std::size_t size :
         {0UL, 1UL, 4095UL, 4096UL, kMiB - 1, kMiB, kMiB + 1, 3 * kMiB + kMiB / 2 + 17}) {
      for (std::size_t piece : {1000UL, 300000UL, 2 * kMiB}) {
        std::string path = dir + "/gravl-direct-" + std::to_string(::getpid()) + "-" +
                           std::to_string(size) + "-" + std::to_string(piece);
        Bytes data = test::PseudoRandom(size, size + piece);
        io::AtomicFileSink out(path, io::AtomicFileOptions{.direct_io = true});
        for (std::size_t pos = 0; pos < size; pos += piece) {
          out.Write(ByteView(data).subspan(pos, std::min(piece, size - pos)));
        }
        out.Finish();
        EXPECT_EQ(io::ReadFileBytes(path), data) << path;
        fs::remove(path);
      }
    }
  }
}

TEST(AtomicFileSink, DirectIoBypassesThePageCache) {
  test::TempDir dir;
  int probe = ::open((dir / "probe").c_str(), O_WRONLY | O_CREAT | O_DIRECT | O_CLOEXEC, 0600);
  if (probe < 0) GTEST_SKIP() << "no O_DIRECT on the file system of " << dir.path();
  ::close(probe);
  Bytes data = test::PseudoRandom(4 * 1024 * 1024, 9);
  for (bool direct : {false, true}) {
    std::string path = dir / (direct ? "direct" : "buffered");
    io::AtomicFileSink out(path, io::AtomicFileOptions{.direct_io = direct});
    out.Write(data);
    out.Finish();
    std::size_t resident = ResidentPages(path);
    if (direct) {
      EXPECT_EQ(resident, 0u);
    } else {
      EXPECT_GT(resident, 512u);  // buffered writes leave the data in the cache
    }
    EXPECT_EQ(io::ReadFileBytes(path), data);
  }
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
