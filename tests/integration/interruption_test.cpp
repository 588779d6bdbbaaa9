// Commands end within their budgets whatever moment a fault begins, and leave nothing
// visible: WAL archiving that fails under a backup, a full disk under a backup, an
// archive-push and a restore, S3 answering 5xx or resetting connections mid-backup,
// mid-restore and mid-archive-push, and SIGTERM (issue 13, item 7).

#include <gtest/gtest.h>
#include <signal.h>
#include <sys/mount.h>
#include <sys/statvfs.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <functional>
#include <nlohmann/json.hpp>
#include <thread>

#include "pg/instance.h"
#include "storage/s3/s3_storage.h"
#include "support/archiving_fixture.h"
#include "support/cli.h"
#include "support/s3_gateway.h"
#include "support/test_util.h"

namespace gravl {
namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

// A gravl-dr process in the background.
class Spawned {
 public:
  explicit Spawned(std::vector<std::string> argv) {
    argv.insert(argv.begin(), test::GravlBinary());
    pid_ = ::fork();
    if (pid_ == 0) {
      std::vector<char*> args;
      for (auto& a : argv) args.push_back(a.data());
      args.push_back(nullptr);
      int null = ::open("/dev/null", O_WRONLY);
      ::dup2(null, 1);
      ::execv(args[0], args.data());
      ::_exit(127);
    }
  }
  ~Spawned() {
    if (pid_ > 0) {
      ::kill(pid_, SIGKILL);
      ::waitpid(pid_, nullptr, 0);
    }
  }
  pid_t pid() const { return pid_; }
  // The exit code, or -signal; fails the test (and kills it) after `limit`.
  int Wait(std::chrono::seconds limit) {
    auto deadline = Clock::now() + limit;
    int status = 0;
    while (::waitpid(pid_, &status, WNOHANG) == 0) {
      if (Clock::now() > deadline) {
        ADD_FAILURE() << "still running after " << limit.count() << " s";
        ::kill(pid_, SIGKILL);
        ::waitpid(pid_, &status, 0);
        pid_ = -1;
        return -SIGKILL;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    pid_ = -1;
    return WIFEXITED(status) ? WEXITSTATUS(status) : -WTERMSIG(status);
  }

 private:
  pid_t pid_ = -1;
};

bool WaitFor(const std::function<bool()>& condition, std::chrono::seconds limit) {
  auto deadline = Clock::now() + limit;
  while (Clock::now() < deadline) {
    if (condition()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  return false;
}

// Objects of backups without a manifest, under a posix repository's backups/ folder.
int StoredObjects(const fs::path& backups) {
  int n = 0;
  std::error_code ec;
  for (auto it = fs::recursive_directory_iterator(backups, ec);
       !ec && it != fs::recursive_directory_iterator(); it.increment(ec)) {
    std::string folder = it->path().parent_path().filename();
    if ((folder == "files" || folder == "bundles") && it->path().filename().string()[0] != '.') {
      ++n;
    }
  }
  return n;
}

int TempFiles(const fs::path& root) {
  int n = 0;
  std::error_code ec;
  for (auto it = fs::recursive_directory_iterator(root, ec);
       !ec && it != fs::recursive_directory_iterator(); it.increment(ec)) {
    if (it->path().filename().string().find(".gravl-tmp-") != std::string::npos) ++n;
  }
  return n;
}

class Interruptions : public test::ArchivingFixture {
 protected:
  std::string ConfigBody() const override { return OneRepositoryConfig(); }
  void SetUp() override {
    ArchivingFixture::SetUp();
    EnableArchiving();
  }
  nlohmann::json Stanza() {
    return nlohmann::json::parse(Cli({"info", "--output", "json"}).out)["repos"][0]["stanzas"][0];
  }
  void FillDatabase(int megabytes) {
    Query(
        "CREATE TABLE filler AS SELECT g, decode(md5(random()::text) || md5(random()::text), "
        "'hex') AS r FROM generate_series(1, " +
        std::to_string(megabytes * 1024 * 1024 / 70) + ") g");
  }
};

// With archiving failing (archive_command names a missing stanza), the backup gives up after
// archive.timeout: the server itself does not wait for the archiver (BASE_BACKUP WAIT false).
TEST_F(Interruptions, ABackupEndsWithinArchiveTimeoutWhenArchivingFails) {
  Query("ALTER SYSTEM SET archive_command = '" + std::string(test::GravlBinary()) + " --config " +
        config_ + " --stanza missing archive-push %p'");
  Query("SELECT pg_reload_conf()");
  auto start = Clock::now();
  Spawned backup({"--config", config_, "backup", "--archive-timeout", "5"});
  EXPECT_EQ(backup.Wait(std::chrono::seconds(60)), 8);  // storage: the WAL did not arrive
  EXPECT_LT(Clock::now() - start, std::chrono::seconds(40));
  EXPECT_TRUE(Stanza()["backups"].empty());
  EXPECT_FALSE(fs::exists(dir_ / "repo/main/locks/backup.lock"));
}

// SIGTERM mid-backup: exit 11, no manifest, the lock's lease released (another host could
// take the next backup at once).
TEST_F(Interruptions, SigtermMidBackupExitsElevenAndLeavesNothing) {
  FillDatabase(60);
  SwitchAndWait();
  Spawned backup({"--config", config_, "backup"});
  fs::path backups = dir_ / "repo/main/backups";
  ASSERT_TRUE(WaitFor([&] { return StoredObjects(backups) >= 2; }, std::chrono::seconds(60)));
  EXPECT_TRUE(fs::exists(dir_ / "repo/main/locks/backup.lock"));
  ::kill(backup.pid(), SIGTERM);
  EXPECT_EQ(backup.Wait(std::chrono::seconds(30)), 11);
  EXPECT_TRUE(Stanza()["backups"].empty());
  EXPECT_FALSE(fs::exists(dir_ / "repo/main/locks/backup.lock"));
  RunResult next = Cli({"backup"});
  EXPECT_EQ(next.exit_code, 0) << next.err;
}

// archive-push killed mid-write leaves hidden temporary files; verify reports them and the
// next backup removes them (issue 14, item 7).
TEST_F(Interruptions, TemporaryFilesOfKilledPushesAreReportedAndRemoved) {
  std::string seg = Query("SELECT pg_walfile_name(pg_current_wal_lsn())");
  std::string bytes = test::ReadFile(cluster_->data_dir() + "/pg_wal/" + seg);
  std::uint64_t x = 88172645463325252ull;
  for (std::size_t i = 8192; i < bytes.size(); ++i) {  // incompressible after the header
    x ^= x << 13, x ^= x >> 7, x ^= x << 17;
    bytes[i] = static_cast<char>(x);
  }
  fs::create_directories(dir_ / "pushes");
  auto temporaries = [&] { return TempFiles(dir_ / "repo/main/wal"); };
  for (int i = 0; i < 40 && temporaries() < 3; ++i) {
    char name[25];
    std::snprintf(name, sizeof name, "00000001000000FF%08X", 0x10 + i);  // never a multiple of 16
    if ((0x10 + i) % 16 == 0) continue;
    std::string path = dir_ / ("pushes/" + std::string(name));
    test::WriteFile(path, bytes);
    Spawned push({"--config", config_, "archive-push", path});
    // Kill it once its temporary file is there, while it writes.
    int before = temporaries();
    WaitFor([&] { return temporaries() > before; }, std::chrono::seconds(2));
    std::this_thread::sleep_for(std::chrono::milliseconds(5 * (i % 4)));
    ::kill(push.pid(), SIGKILL);
    push.Wait(std::chrono::seconds(10));
  }
  int left = temporaries();
  ASSERT_GE(left, 1) << "no push was killed mid-write";
  auto report = nlohmann::json::parse(Cli({"verify", "--output", "json"}).out);
  EXPECT_EQ(report["repos"][0]["stale_temporaries"]["files"].get<int>(), left) << report.dump();
  RunResult b = Cli({"backup"});
  ASSERT_EQ(b.exit_code, 0) << b.err << cluster_->LogTail();
  EXPECT_EQ(temporaries(), 0);
}

// A full disk under the repository: the backup fails (exit 8) in bounded time, archive-push
// too, and neither leaves a visible object or a temporary file; a restore onto a full disk
// fails leaving a directory PostgreSQL refuses to start.
class FullDisk : public Interruptions {
 protected:
  void SetUp() override {
    for (const char* d : {"small-repo", "small-pgdata"}) fs::create_directories(dir_ / d);
    if (::mount("tmpfs", (dir_ / "small-repo").c_str(), "tmpfs", 0, "size=40m,mode=0777") != 0 ||
        ::mount("tmpfs", (dir_ / "small-pgdata").c_str(), "tmpfs", 0, "size=12m,mode=0777") != 0) {
      GTEST_SKIP() << "mounting a small tmpfs needs root with CAP_SYS_ADMIN: " << strerror(errno);
    }
    mounted_ = true;
    // No archiving: backups carry their WAL, so only their own objects fill the disk.
    ArchivingFixture::SetUp();
  }
  void TearDown() override {
    cluster_.reset();
    if (mounted_) {
      ::umount2((dir_ / "small-repo").c_str(), MNT_DETACH);
      ::umount2((dir_ / "small-pgdata").c_str(), MNT_DETACH);
    }
  }
  std::string ConfigBody() const override {
    return "repos:\n  - {name: local, type: posix, path: " + (dir_ / "small-repo/repo") +
           "}\nparallel: 2\n";
  }
  bool mounted_ = false;
};

TEST_F(FullDisk, BackupArchivePushAndRestoreFailCleanly) {
  Query("CREATE TABLE t AS SELECT g FROM generate_series(1, 1000) g");
  RunResult first = Cli({"backup"});  // small: fits, and gives the restore below a backup
  ASSERT_EQ(first.exit_code, 0) << first.err;
  FillDatabase(100);  // half random: the backup's objects overflow the 40 MB
  auto start = Clock::now();
  RunResult b = Cli({"backup"});
  EXPECT_EQ(b.exit_code, 8) << b.err;
  EXPECT_NE(b.err.find("No space left"), std::string::npos) << b.err;
  EXPECT_LT(Clock::now() - start, std::chrono::seconds(120));
  EXPECT_EQ(Stanza()["backups"].size(), 1u);
  EXPECT_EQ(TempFiles(dir_ / "small-repo"), 0);

  // The failed object's temporary file is gone, so that space is free again: fill the disk
  // up to 256 KiB with ballast. Then archive-push of a segment (random after its first
  // page, so that it does not compress away): exit 8, no object for it.
  {
    struct statvfs vfs {};
    ASSERT_EQ(::statvfs((dir_ / "small-repo").c_str(), &vfs), 0);
    auto free_bytes = static_cast<off_t>(vfs.f_bavail * vfs.f_frsize);
    int fd = ::open((dir_ / "small-repo/ballast").c_str(), O_WRONLY | O_CREAT, 0600);
    ASSERT_GE(fd, 0);
    EXPECT_EQ(::posix_fallocate(fd, 0, free_bytes - 256 * 1024), 0);
    ::close(fd);
  }
  std::string seg = Query("SELECT pg_walfile_name(pg_current_wal_lsn())");
  fs::create_directories(dir_ / "wal-copy");
  std::string copy = dir_ / ("wal-copy/" + seg);
  std::string bytes = test::ReadFile(cluster_->data_dir() + "/pg_wal/" + seg);
  std::uint64_t x = 88172645463325252ull;
  for (std::size_t i = 8192; i < bytes.size(); ++i) {
    x ^= x << 13, x ^= x >> 7, x ^= x << 17;
    bytes[i] = static_cast<char>(x);
  }
  test::WriteFile(copy, bytes);
  pg::GiveToServerUser(copy);
  RunResult push = Cli({"archive-push", copy});
  EXPECT_EQ(push.exit_code, 8) << push.err;
  EXPECT_NE(push.err.find("No space left"), std::string::npos) << push.err;
  for (const auto& e : fs::recursive_directory_iterator(dir_ / "small-repo/repo/main/wal")) {
    EXPECT_EQ(e.path().filename().string().find(seg), std::string::npos) << e.path();
  }
  EXPECT_EQ(TempFiles(dir_ / "small-repo"), 0);

  // A restore onto a 12 MB file system.
  std::string pgdata = dir_ / "small-pgdata/data";
  RunResult r = Cli(
      {"restore", "--pgdata", pgdata, "--set", Stanza()["backups"][0]["label"].get<std::string>()});
  EXPECT_EQ(r.exit_code, 8) << r.err;
  EXPECT_FALSE(fs::exists(pgdata + "/global/pg_control"));  // PostgreSQL refuses to start it
  // With room again, --delta completes over what the failed restore left behind.
  ASSERT_EQ(
      ::mount("tmpfs", (dir_ / "small-pgdata").c_str(), "tmpfs", MS_REMOUNT, "size=200m,mode=0777"),
      0)
      << strerror(errno);
  r = Cli({"restore", "--pgdata", pgdata, "--delta", "--set",
           Stanza()["backups"][0]["label"].get<std::string>()});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_TRUE(fs::exists(pgdata + "/global/pg_control"));
}

// S3 faults that begin while a command runs: 5xx answers and connection resets make
// backup, restore and archive-push fail within retry_timeout, with nothing visible.
class S3Faults : public Interruptions {
 protected:
  void SetUp() override {
    gw_ = std::make_unique<test::S3Gateway>();
    Interruptions::SetUp();
  }
  std::string ConfigBody() const override {
    return "repos:\n  - name: s3\n" + gw_->RepoYaml("db1", dir_ / "s3-secret") +
           "    retry_timeout: 4\n    part_size_mib: 5\nparallel: 2\n";
  }
  int Requests(const std::string& method) {
    auto st = nlohmann::json::parse(gw_->Stats());
    return st["by_method"].value(method, 0);
  }
  std::unique_ptr<test::S3Gateway> gw_;
};

TEST_F(S3Faults, FaultsBeginningMidBackupMidRestoreAndMidArchivePush) {
  FillDatabase(40);
  SwitchAndWait();
  for (const char* fault : {R"({"error_rate":1.0})", R"({"drop_rate":1.0})"}) {
    gw_->ResetStats();
    Spawned backup({"--config", config_, "backup"});
    ASSERT_TRUE(WaitFor([&] { return Requests("PUT") >= 3; }, std::chrono::seconds(60)));
    gw_->SetFaults(fault);
    auto start = Clock::now();
    EXPECT_EQ(backup.Wait(std::chrono::seconds(60)), 8) << fault;
    EXPECT_LT(Clock::now() - start, std::chrono::seconds(30)) << fault;
    gw_->SetFaults("{}");
    EXPECT_TRUE(Stanza()["backups"].empty()) << fault;
  }
  RunResult ok = Cli({"backup"});
  ASSERT_EQ(ok.exit_code, 0) << ok.err;

  // Mid-restore.
  std::string pgdata = dir_ / "restored";
  gw_->ResetStats();
  Spawned restore({"--config", config_, "restore", "--pgdata", pgdata});
  ASSERT_TRUE(WaitFor([&] { return Requests("GET") >= 3; }, std::chrono::seconds(60)));
  gw_->SetFaults(R"({"error_rate":0.5,"drop_rate":0.5})");
  EXPECT_EQ(restore.Wait(std::chrono::seconds(60)), 8);
  gw_->SetFaults("{}");
  EXPECT_FALSE(fs::exists(pgdata + "/global/pg_control"));

  // Mid-archive-push: the multipart upload starts, then every part fails. WAL is written
  // first: right after the backup's switch the position is on a segment boundary, which
  // pg_walfile_name names as the segment before, already archived.
  Query("CREATE TABLE push_probe AS SELECT 1 AS x");
  std::string seg = Query("SELECT pg_walfile_name(pg_current_wal_lsn())");
  fs::create_directories(dir_ / "wal-copy");
  std::string copy = dir_ / ("wal-copy/" + seg);
  fs::copy_file(cluster_->data_dir() + "/pg_wal/" + seg, copy);
  gw_->SetFaults(R"({"error_rate":1.0,"methods":["PUT"]})");
  auto start = Clock::now();
  RunResult push = Cli({"archive-push", copy});
  EXPECT_EQ(push.exit_code, 8) << push.err;
  EXPECT_LT(Clock::now() - start, std::chrono::seconds(30));
  gw_->SetFaults("{}");
  auto s3 = storage::s3::MakeS3Storage("check", gw_->Repo("db1"));
  for (const auto& o : storage::ListAll(*s3, "")) {
    EXPECT_EQ(o.key.find(seg), std::string::npos) << o.key;
  }
  EXPECT_EQ(gw_->UnfinishedUploads(), 0u);
}

}  // namespace
}  // namespace gravl
