// One host, several users (issue 14, items 1 and 2): root (backups from cron), postgres
// (archive_command, backups) and strangers. Host locks exclude root and postgres from each
// other and name the holder; a stranger cannot block anyone; a repository written by root
// stays writable by postgres; check names a folder the server's user cannot write.

#include <gtest/gtest.h>
#include <pwd.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <filesystem>
#include <thread>

#include "io/hash.h"
#include "pg/instance.h"
#include "repo/layout.h"
#include "support/archiving_fixture.h"
#include "support/cli.h"
#include "support/test_util.h"

namespace gravl {
namespace {

namespace fs = std::filesystem;

class MultiUser : public test::ArchivingFixture {
 protected:
  std::string ConfigBody() const override { return OneRepositoryConfig(); }
  void SetUp() override {
    if (::geteuid() != 0) GTEST_SKIP() << "needs root (the test runs commands as postgres)";
    ArchivingFixture::SetUp();
    EnableArchiving();
  }
  // gravl-dr as the server's user.
  std::vector<std::string> AsPostgres(std::vector<std::string> args) {
    args.insert(args.begin(),
                {"runuser", "-u", "postgres", "--", test::GravlBinary(), "--config", config_});
    return args;
  }
  RunResult CliAsPostgres(const std::vector<std::string>& args) {
    return gravl::Run(AsPostgres(args));
  }
  std::string HostLockName(const std::string& kind) {
    std::string describe = "posix:" + (dir_ / "repo");
    return "gravl-dr/" +
           io::Sha256Hex(AsBytes(describe + "\n" + repo::LockKey("main", kind))).substr(0, 24);
  }
};

TEST_F(MultiUser, RootAndPostgresShareOneHostLockAndTheRepository) {
  Query(
      "CREATE TABLE filler AS SELECT g, repeat(md5(g::text), 20) FROM generate_series(1, "
      "400000) g");
  SwitchAndWait();
  // postgres backs up; root tries meanwhile and is told who holds the lock.
  std::vector<std::string> argv = AsPostgres({"backup"});
  pid_t pid = ::fork();
  if (pid == 0) {
    std::vector<char*> args;
    for (auto& a : argv) args.push_back(a.data());
    args.push_back(nullptr);
    ::execvp(args[0], args.data());
    ::_exit(127);
  }
  fs::path lease = dir_ / "repo/main/locks/backup.lock";
  for (int i = 0; i < 3000 && !fs::exists(lease); ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  RunResult blocked = Cli({"backup"});
  int status = 0;
  ::waitpid(pid, &status, 0);
  ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << status;
  EXPECT_EQ(blocked.exit_code, 10) << blocked.err;
  EXPECT_NE(blocked.err.find("(user postgres"), std::string::npos) << blocked.err;

  // root backs up: what it creates goes to the repository's owner (postgres)...
  std::this_thread::sleep_for(std::chrono::milliseconds(1100));  // distinct labels
  RunResult by_root = Cli({"backup", "--output", "json"});
  ASSERT_EQ(by_root.exit_code, 0) << by_root.err;
  struct passwd* pw = ::getpwnam("postgres");
  ASSERT_NE(pw, nullptr);
  for (const auto& e : fs::recursive_directory_iterator(dir_ / "repo")) {
    struct stat st {};
    ASSERT_EQ(::lstat(e.path().c_str(), &st), 0);
    EXPECT_EQ(st.st_uid, pw->pw_uid) << e.path();
  }
  // ... so postgres goes on backing up and archiving.
  std::this_thread::sleep_for(std::chrono::milliseconds(1100));
  RunResult by_postgres = CliAsPostgres({"backup"});
  EXPECT_EQ(by_postgres.exit_code, 0) << by_postgres.err;
  SwitchAndWait();
  RunResult check = Cli({"check"});
  EXPECT_EQ(check.exit_code, 0) << check.out << check.err;
  EXPECT_NE(check.out.find("writable by postgres"), std::string::npos) << check.out;

  // A folder the server's user cannot write is named by check.
  fs::path backups = dir_ / "repo/main/backups";
  ASSERT_EQ(::chown(backups.c_str(), 0, 0), 0);
  check = Cli({"check", "--dry-run"});
  EXPECT_EQ(check.exit_code, 8) << check.out << check.err;
  EXPECT_NE(check.out.find("cannot write " + backups.string()), std::string::npos) << check.out;
  ASSERT_EQ(::chown(backups.c_str(), pw->pw_uid, pw->pw_gid), 0);
}

TEST_F(MultiUser, AStrangerHoldingTheHostLockNameBlocksNobody) {
  std::string name = HostLockName("backup");
  int ready[2];
  ASSERT_EQ(::pipe(ready), 0);
  pid_t squatter = ::fork();
  if (squatter == 0) {
    struct passwd* nobody = ::getpwnam("nobody");
    if (nobody == nullptr || ::setgid(nobody->pw_gid) != 0 || ::setuid(nobody->pw_uid) != 0) {
      ::_exit(1);
    }
    int fd = ::socket(AF_UNIX, SOCK_STREAM, 0);
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    std::memcpy(addr.sun_path + 1, name.data(), name.size());
    auto len = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + 1 + name.size());
    if (::bind(fd, reinterpret_cast<sockaddr*>(&addr), len) != 0 || ::listen(fd, 8) != 0) {
      ::_exit(2);
    }
    char c = 1;
    (void)!::write(ready[1], &c, 1);
    ::pause();
    ::_exit(0);
  }
  char c = 0;
  ASSERT_EQ(::read(ready[0], &c, 1), 1);
  RunResult r = Cli({"backup"});
  ::kill(squatter, SIGKILL);
  ::waitpid(squatter, nullptr, 0);
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.err.find("(user nobody"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("repository lease alone"), std::string::npos) << r.err;
  // The lock directory of earlier versions, created by a stranger, is no longer consulted.
  bool made = ::mkdir("/tmp/gravl-dr-locks", 0755) == 0;
  if (struct passwd* nobody = ::getpwnam("nobody"); made && nobody != nullptr) {
    (void)!::chown("/tmp/gravl-dr-locks", nobody->pw_uid, nobody->pw_gid);
  }
  std::this_thread::sleep_for(std::chrono::milliseconds(1100));
  EXPECT_EQ(Cli({"backup"}).exit_code, 0);
  std::this_thread::sleep_for(std::chrono::milliseconds(1100));
  RunResult by_postgres = CliAsPostgres({"backup"});
  EXPECT_EQ(by_postgres.exit_code, 0) << by_postgres.err;
  if (made) fs::remove("/tmp/gravl-dr-locks");
}

}  // namespace
}  // namespace gravl
