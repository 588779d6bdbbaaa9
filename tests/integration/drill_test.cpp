// verify and test-restore (the restore drill) on real clusters.

#include <gtest/gtest.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include <filesystem>
#include <nlohmann/json.hpp>
#include <set>
#include <thread>

#include "common/lsn.h"
#include "pg/instance.h"
#include "repo/manifest.h"
#include "repo/repository.h"
#include "storage/factory.h"
#include "support/archiving_fixture.h"
#include "support/cli.h"
#include "support/pg_fixture.h"
#include "support/test_util.h"

namespace gravl {
namespace {

namespace fs = std::filesystem;

class Drill : public test::ArchivingFixture {
 protected:
  std::string ConfigBody() const override {
    return OneRepositoryConfig() +
           "drill:\n  checks:\n"
           "    - {name: accounts present, database: postgres, sql: "
           "\"SELECT count(*) > 0 FROM accounts\"}\n";
  }
  void SetUp() override {
    ArchivingFixture::SetUp();
    EnableArchiving();
    cluster_->Psql(
        "CREATE TABLE accounts(id int primary key, name text); "
        "INSERT INTO accounts SELECT g, 'acct ' || g FROM generate_series(1, 2000) g; "
        "CREATE TABLE payments(id serial primary key, account int references accounts(id), "
        "amount int); INSERT INTO payments(account, amount) SELECT g % 2000 + 1, g FROM "
        "generate_series(1, 5000) g; CREATE INDEX payments_amount ON payments(amount)");
  }
  nlohmann::json FailedCheck(const nlohmann::json& report, const std::string& name) {
    for (const auto& c : report["checks"]) {
      if (c["check"] == name) return c;
    }
    return nullptr;
  }
};

TEST_F(Drill, HealthyBackupPassesAndStoresItsReport) {
  ASSERT_EQ(Cli({"backup"}).exit_code, 0);
  SwitchAndWait();
  std::set<std::string> before;
  for (const auto& e : fs::directory_iterator("/tmp")) before.insert(e.path());
  RunResult r = Cli({"test-restore", "--output", "json"});
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  auto report = nlohmann::json::parse(r.out);
  EXPECT_TRUE(report["ok"].get<bool>());
  for (const char* name : {"restore", "recovery", "table counts", "referential integrity",
                           "index and heap validity", "wal position", "custom checks"}) {
    auto c = FailedCheck(report, name);
    ASSERT_FALSE(c.is_null()) << name;
    EXPECT_TRUE(c["ok"].get<bool>()) << c.dump();
  }
  EXPECT_GT(report["rto_s"].get<double>(), 0.0);
  EXPECT_TRUE(report["timings"].contains("validation_s"));
  // Stored in the repository, shown by info, and nothing left behind.
  EXPECT_FALSE(fs::is_empty(dir_ / "repo/main/reports/restore-tests"));
  auto info = nlohmann::json::parse(Cli({"info", "--output", "json"}).out);
  EXPECT_EQ(info["repos"][0]["stanzas"][0]["last_restore_test"]["ok"], true);
  for (const auto& e : fs::directory_iterator("/tmp")) {
    if (before.count(e.path())) continue;
    EXPECT_EQ(e.path().filename().string().find("gravl-drill-"), std::string::npos) << e.path();
  }
}

// Rows are compared like with like: at the backup's consistency point with what the backup
// counted. Tables dropped, emptied or shrunk after the backup (a queue drained, a cleanup job)
// are reported as information and do not fail the drill.
TEST_F(Drill, ChangesAfterTheBackupAreInformationNotFailures) {
  cluster_->Psql(
      "CREATE TABLE t_drop AS SELECT g AS id FROM generate_series(1, 10) g; "
      "CREATE TABLE t_trunc AS SELECT g AS id FROM generate_series(1, 10) g; "
      "CREATE TABLE t_shrink AS SELECT g AS id FROM generate_series(1, 1000) g; "
      "CREATE TABLE t_same AS SELECT g AS id FROM generate_series(1, 100) g");
  ASSERT_EQ(Cli({"backup"}).exit_code, 0);
  cluster_->Psql("DROP TABLE t_drop; TRUNCATE t_trunc; DELETE FROM t_shrink WHERE id > 100");
  SwitchAndWait();
  RunResult r = Cli({"test-restore", "--output", "json"});
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  auto report = nlohmann::json::parse(r.out);
  auto counts = FailedCheck(report, "table counts");
  ASSERT_FALSE(counts.is_null()) << r.out;
  EXPECT_TRUE(counts["ok"].get<bool>()) << counts.dump();
  EXPECT_NE(counts["detail"].get<std::string>().find("consistency point"), std::string::npos);
  auto changes = FailedCheck(report, "changes after the backup");
  ASSERT_FALSE(changes.is_null()) << r.out;
  EXPECT_TRUE(changes["ok"].get<bool>());
  std::string notes = changes["notes"].dump();
  EXPECT_NE(notes.find("public.t_drop was dropped"), std::string::npos) << notes;
  EXPECT_NE(notes.find("public.t_trunc: 10 -> 0 rows"), std::string::npos) << notes;
  EXPECT_NE(notes.find("public.t_shrink: 1000 -> 100 rows"), std::string::npos) << notes;
  EXPECT_EQ(notes.find("t_same"), std::string::npos) << notes;
}

// At the consistency point a recorded table that is missing, or holds other counts than the
// backup recorded, fails the drill naming it. (The manifest is edited here to record what the
// restored data no longer has, as if the backup had lost it.)
TEST_F(Drill, TableCountsAtTheConsistencyPointNameMissingAndDifferentTables) {
  cluster_->Psql("CREATE TABLE t_same AS SELECT g AS id FROM generate_series(1, 100) g");
  RunResult b = Cli({"backup", "--output", "json"});
  ASSERT_EQ(b.exit_code, 0) << b.err;
  std::string label = nlohmann::json::parse(b.out)["label"];
  {
    RepoConfig rc{"local", "posix", dir_ / "repo", {}};
    repo::Repository repo(rc, storage::OpenStorage(rc), "main");
    repo.Stanza();
    repo::BackupManifest m = repo::ReadManifest(repo, label);
    for (auto& t : *m.tables) {
      if (t.table == "t_same") t.rows = 5000;
    }
    m.tables->push_back({"postgres", "public", "ghost", 10, true});
    repo.storage().DeleteMany({repo::ManifestKey("main", label)});
    repo::WriteManifest(repo, m);
  }
  Chown(dir_ / "repo");
  SwitchAndWait();
  RunResult r = Cli({"test-restore", "--output", "json"});
  EXPECT_EQ(r.exit_code, 12) << r.out << r.err;
  auto c = FailedCheck(nlohmann::json::parse(r.out), "table counts");
  ASSERT_FALSE(c.is_null()) << r.out;
  EXPECT_FALSE(c["ok"].get<bool>());
  std::string failures = c["failures"].dump();
  EXPECT_NE(failures.find("public.ghost is missing (it had 10 rows"), std::string::npos)
      << failures;
  EXPECT_NE(failures.find("public.t_same has 100 rows, 5000 at backup time"), std::string::npos)
      << failures;
  EXPECT_EQ(c["failures"].size(), 2u) << failures;
}

TEST_F(Drill, FlippedByteInAStoredObjectFailsNamingTheFile) {
  RunResult b = Cli({"backup", "--output", "json"});
  ASSERT_EQ(b.exit_code, 0) << b.err;
  std::string label = nlohmann::json::parse(b.out)["label"];
  std::string victim;
  std::uintmax_t biggest = 0;
  for (const auto& e :
       fs::recursive_directory_iterator(dir_ / ("repo/main/backups/" + label + "/files"))) {
    if (e.is_regular_file() && e.file_size() > biggest) {
      biggest = e.file_size();
      victim = e.path();
    }
  }
  ASSERT_FALSE(victim.empty());
  std::string bytes = test::ReadFile(victim);
  bytes[bytes.size() / 2] ^= 0x10;
  test::WriteFile(victim, bytes);
  RunResult r = Cli({"test-restore", "--output", "json"});
  EXPECT_NE(r.exit_code, 0);
  auto report = nlohmann::json::parse(r.out);
  EXPECT_FALSE(report["ok"].get<bool>());
  auto c = FailedCheck(report, "restore");
  EXPECT_FALSE(c["ok"].get<bool>());
  std::string object = victim.substr(victim.find("/backups/"));
  EXPECT_NE(c["detail"].get<std::string>().find(object), std::string::npos) << c.dump();
  EXPECT_NE(r.out.find(object), std::string::npos);
  // verify finds it too, naming the object, with the integrity exit code: by the SHA-256 of
  // the stored bytes, and with --full also when decoding them.
  for (std::vector<std::string> args : {std::vector<std::string>{"verify"}, {"verify", "--full"}}) {
    RunResult v = Cli(args);
    EXPECT_EQ(v.exit_code, 6) << v.out;
    EXPECT_NE(v.out.find(object), std::string::npos) << v.out;
  }
}

// The file list is an object of its own (manifest format 2): damage to it stops a restore
// before anything is written, and verify reports it.
TEST_F(Drill, DamagedFileListStopsRestoreBeforeAnythingIsWrittenAndVerifyReportsIt) {
  RunResult b = Cli({"backup", "--output", "json"});
  ASSERT_EQ(b.exit_code, 0) << b.err;
  std::string label = nlohmann::json::parse(b.out)["label"];
  std::string list = dir_ / ("repo/main/backups/" + label + "/file_list");
  ASSERT_TRUE(fs::exists(list));
  std::string pgdata = dir_ / "restored";
  ASSERT_EQ(Cli({"restore", "--pgdata", pgdata, "--target", "immediate", "--dry-run"}).exit_code,
            0);

  std::string bytes = test::ReadFile(list);
  bytes[bytes.size() / 2] ^= 0x01;
  test::WriteFile(list, bytes);
  RunResult r = Cli({"restore", "--pgdata", pgdata, "--target", "immediate"});
  EXPECT_EQ(r.exit_code, 6) << r.err;
  EXPECT_NE(r.err.find("file_list"), std::string::npos) << r.err;
  EXPECT_FALSE(fs::exists(pgdata)) << "a restore with a damaged file list wrote " << pgdata;
  RunResult v = Cli({"verify"});
  EXPECT_EQ(v.exit_code, 6) << v.out;
  EXPECT_NE(v.out.find("file_list"), std::string::npos) << v.out;

  fs::remove(list);
  r = Cli({"restore", "--pgdata", pgdata, "--target", "immediate"});
  EXPECT_EQ(r.exit_code, 4) << r.err;
  EXPECT_FALSE(fs::exists(pgdata));
}

TEST_F(Drill, VerifyReportsAWalGapAndTheShortenedWindow) {
  ASSERT_EQ(Cli({"backup"}).exit_code, 0);
  for (int i = 0; i < 4; ++i) {
    cluster_->Psql("INSERT INTO accounts SELECT g, 'x' FROM generate_series(" +
                   std::to_string(10000 + i * 1000) + ", " + std::to_string(10999 + i * 1000) +
                   ") g");
    SwitchAndWait();
  }
  RunResult ok = Cli({"verify", "--output", "json"});
  ASSERT_EQ(ok.exit_code, 0) << ok.out;
  auto before = nlohmann::json::parse(ok.out)["repos"][0]["backups"][0]["window"];
  EXPECT_TRUE(before["gap"].is_null());

  // Remove a segment in the middle of the archive.
  std::vector<std::string> segs;
  for (const auto& e : fs::directory_iterator(dir_ / "repo/main/wal/00000001"))
    segs.push_back(e.path());
  std::sort(segs.begin(), segs.end());
  ASSERT_GE(segs.size(), 4u);
  std::string removed = segs[segs.size() - 2];
  fs::remove(removed);
  RunResult r = Cli({"verify", "--output", "json"});
  EXPECT_EQ(r.exit_code, 4) << r.out;
  auto window = nlohmann::json::parse(r.out)["repos"][0]["backups"][0]["window"];
  std::string gap = window["gap"];
  EXPECT_EQ(fs::path(removed).filename().string().substr(0, 24), gap);
  // The window now ends where the gap begins, short of where it ended before.
  EXPECT_LT(Lsn::Parse(window["latest_lsn"].get<std::string>()),
            Lsn::Parse(before["latest_lsn"].get<std::string>()));
  EXPECT_EQ(Lsn::Parse(window["latest_lsn"].get<std::string>()),
            WalSegment::ParseName(gap)->StartLsn());
  RunResult text = Cli({"verify"});
  EXPECT_NE(text.out.find("cut short by missing WAL " + gap), std::string::npos) << text.out;
}

TEST_F(Drill, OrphanedForeignKeyRowFailsReferentialIntegrity) {
  cluster_->Psql(
      "ALTER TABLE payments DISABLE TRIGGER ALL; "
      "INSERT INTO payments(account, amount) VALUES (999999, 1); "
      "ALTER TABLE payments ENABLE TRIGGER ALL");
  ASSERT_EQ(Cli({"backup"}).exit_code, 0);
  SwitchAndWait();
  RunResult r = Cli({"test-restore", "--output", "json"});
  EXPECT_EQ(r.exit_code, 12) << r.out;
  auto c = FailedCheck(nlohmann::json::parse(r.out), "referential integrity");
  EXPECT_FALSE(c["ok"].get<bool>());
  EXPECT_NE(c["failures"].dump().find("payments"), std::string::npos) << c.dump();
  EXPECT_NE(r.out.find("\"ok\": false"), std::string::npos);
}

TEST_F(Drill, CorruptedIndexPageFailsIndexValidity) {
  std::string rel = cluster_->Psql("SELECT pg_relation_filepath('payments_amount')");
  rel.resize(rel.find('\n'));
  cluster_->Psql("CHECKPOINT");
  cluster_->Stop();
  std::string path = cluster_->data_dir() + "/" + rel;
  std::string bytes = test::ReadFile(path);
  ASSERT_GT(bytes.size(), 3 * 8192u);
  // Scramble the tuples of the first leaf page (page 1): the index no longer matches the heap.
  for (std::size_t i = 8192 + 2000; i < 8192 + 6000; i += 7)
    bytes[i] = static_cast<char>(bytes[i] ^ 0x5a);
  test::WriteFile(path, bytes);
  pg::GiveToServerUser(path);
  cluster_->Start();
  WriteConfig();
  ASSERT_EQ(Cli({"backup"}).exit_code, 0);
  SwitchAndWait();
  RunResult r = Cli({"test-restore", "--output", "json"});
  EXPECT_EQ(r.exit_code, 12) << r.out;
  auto c = FailedCheck(nlohmann::json::parse(r.out), "index and heap validity");
  EXPECT_FALSE(c["ok"].get<bool>()) << c.dump();
  EXPECT_NE(c["failures"].dump().find("payments_amount"), std::string::npos) << c.dump();
}

}  // namespace
}  // namespace gravl

namespace gravl {
namespace {

TEST_F(Drill, SigtermStopsTheServerAndRemovesTheDirectory) {
  ASSERT_EQ(Cli({"backup"}).exit_code, 0);
  SwitchAndWait();
  std::set<std::string> before;
  for (const auto& e : fs::directory_iterator("/tmp")) before.insert(e.path());
  std::vector<std::string> argv = {test::GravlBinary(), "--config", config_, "test-restore"};
  pid_t pid = ::fork();
  if (pid == 0) {
    std::vector<char*> args;
    for (auto& a : argv) args.push_back(a.data());
    args.push_back(nullptr);
    ::execv(args[0], args.data());
    ::_exit(127);
  }
  // Wait until the drill's server runs (its postmaster.pid exists), then stop the drill.
  std::string drill_dir;
  for (int i = 0; i < 300 && drill_dir.empty(); ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    for (const auto& e : fs::directory_iterator("/tmp")) {
      std::string p = e.path();
      if (!before.count(p) && p.find("gravl-drill-") != std::string::npos &&
          fs::exists(p + "/data/postmaster.pid")) {
        drill_dir = p;
      }
    }
  }
  ASSERT_FALSE(drill_dir.empty()) << "the drill never started its server";
  std::string pid_line = test::ReadFile(drill_dir + "/data/postmaster.pid");
  long server_pid = std::stol(pid_line.substr(0, pid_line.find('\n')));
  ::kill(pid, SIGTERM);
  int status = 0;
  ::waitpid(pid, &status, 0);
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 11);  // interrupted
  EXPECT_FALSE(fs::exists(drill_dir)) << drill_dir;
  bool gone = false;
  for (int i = 0; i < 100 && !gone; ++i) {
    gone = ::kill(static_cast<pid_t>(server_pid), 0) != 0;
    if (!gone) std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  EXPECT_TRUE(gone) << "the drill's server (pid " << server_pid << ") still runs";
}

}  // namespace
}  // namespace gravl
