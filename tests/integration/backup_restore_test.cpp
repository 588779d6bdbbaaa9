// Backups over the replication protocol and point-in-time restores, on real clusters.

#include <gtest/gtest.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <thread>

#include "pg/instance.h"
#include "support/archiving_fixture.h"
#include "support/cli.h"
#include "support/pg_fixture.h"
#include "support/restoring_fixture.h"
#include "support/test_util.h"

namespace gravl {
namespace {

namespace fs = std::filesystem;

class BackupRestore : public test::RestoringFixture {
 protected:
  // A tablespace `name` in dir_/<dir> holding `table` with the numbers 1..rows.
  std::string CreateTablespace(const std::string& name, const std::string& dir,
                               const std::string& table, int rows) {
    std::string location = dir_ / dir;
    fs::create_directories(location);
    pg::GiveToServerUser(location);
    Query(*cluster_, "CREATE TABLESPACE " + name + " LOCATION '" + location + "'");
    Query(*cluster_, "CREATE TABLE " + table + " TABLESPACE " + name +
                         " AS SELECT g FROM generate_series(1, " + std::to_string(rows) + ") g");
    return location;
  }
  RunResult VerifyBackup(const std::string& pgdata) {
    return gravl::Run(pg::AsServerUser({cluster_->Bin("pg_verifybackup"), "-n", pgdata}));
  }
};

TEST_F(BackupRestore, PointInTimeRecoveryToTimeLsnXidAndName) {
  Query(*cluster_, "CREATE TABLE accounts(id int primary key, balance int)");
  Query(*cluster_, "INSERT INTO accounts SELECT g, 100 FROM generate_series(1, 1000) g");
  Query(*cluster_, "CREATE TABLE big AS SELECT g, md5(g::text) FROM generate_series(1, 200000) g");

  RunResult b = Cli({"backup", "--type", "full", "--output", "json"});
  ASSERT_EQ(b.exit_code, 0) << b.err;
  auto backup = nlohmann::json::parse(b.out);
  EXPECT_GT(backup["size"].get<std::uint64_t>(), 10u << 20);

  // Committed after the backup: must be in every restore below.
  Query(*cluster_, "INSERT INTO accounts SELECT g, 200 FROM generate_series(1001, 1100) g");
  std::string xid = Query(*cluster_, "SELECT txid_current()");
  Query(*cluster_, "SELECT pg_create_restore_point('before-accident')");
  std::string lsn = Query(*cluster_, "SELECT pg_current_wal_lsn()");
  std::this_thread::sleep_for(std::chrono::milliseconds(1100));
  std::string time = Query(*cluster_, "SELECT now()");
  std::this_thread::sleep_for(std::chrono::milliseconds(1100));
  // The accident.
  Query(*cluster_, "DELETE FROM accounts WHERE id <= 500");
  Query(*cluster_, "DROP TABLE big");
  SwitchAndWait();

  const std::string expected = "1100|120000";
  const std::string query = "SELECT count(*), sum(balance) FROM accounts";
  {
    auto r = RestoreAndStart("pitr-time", {"--target-time", time});
    ASSERT_TRUE(r);
    EXPECT_EQ(Query(*r, query), expected);
    EXPECT_EQ(Query(*r, "SELECT count(*) FROM big"), "200000");
  }
  {
    auto r = RestoreAndStart("pitr-lsn", {"--target-lsn", lsn});
    ASSERT_TRUE(r);
    EXPECT_EQ(Query(*r, query), expected);
  }
  {
    auto r = RestoreAndStart("pitr-name", {"--target-name", "before-accident"});
    ASSERT_TRUE(r);
    EXPECT_EQ(Query(*r, query), expected);
  }
  {
    // xid target (inclusive): the INSERT of 1001..1100 was transaction `xid`+? -- target the
    // txid_current() call's own transaction, which committed after that INSERT.
    auto r = RestoreAndStart("pitr-xid", {"--target-xid", xid});
    ASSERT_TRUE(r);
    EXPECT_EQ(Query(*r, query), expected);
  }
  {
    auto r = RestoreAndStart("latest", {});
    ASSERT_TRUE(r);
    EXPECT_EQ(Query(*r, query), "600|70000");  // everything archived, accident included
    EXPECT_EQ(Query(*r, "SELECT to_regclass('big') IS NULL"), "t");
  }
}

TEST_F(BackupRestore, RestoredBackupPassesPgVerifybackupAndImmediateTarget) {
  Query(*cluster_, "CREATE TABLE t AS SELECT g FROM generate_series(1, 50000) g");
  // A file whose name is not UTF-8 (JSON cannot hold it as a string): one small, one large.
  const std::string odd = "odd-\xff-name";
  std::string large(200 * 1024, 'x');
  test::WriteFile(cluster_->data_dir() + "/" + odd, "small");
  test::WriteFile(cluster_->data_dir() + "/" + odd + "-large", large);
  pg::GiveToServerUser(cluster_->data_dir() + "/" + odd);
  pg::GiveToServerUser(cluster_->data_dir() + "/" + odd + "-large");
  RunResult backup = Cli({"backup"});
  ASSERT_EQ(backup.exit_code, 0) << backup.err;
  std::string pgdata = dir_ / "verify";
  RunResult r = Cli({"restore", "--pgdata", pgdata, "--target", "immediate"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  struct stat st {};
  ASSERT_EQ(::stat(pgdata.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0700u);
  RunResult v = VerifyBackup(pgdata);
  EXPECT_EQ(v.exit_code, 0) << v.out << v.err;
  EXPECT_EQ(test::ReadFile(pgdata + "/" + odd), "small");
  EXPECT_EQ(test::ReadFile(pgdata + "/" + odd + "-large"), large);
  EXPECT_EQ(Cli({"verify"}).exit_code, 0);

  // The server computed no checksums (MANIFEST_CHECKSUMS 'NONE'): every file's entry carries
  // the CRC-32C gravl-dr computed, and pg_verifybackup checks them (it passed above; and it
  // finds the damage below).
  auto manifest = nlohmann::json::parse(test::ReadFile(pgdata + "/backup_manifest"));
  ASSERT_GT(manifest["Files"].size(), 100u);
  for (const auto& f : manifest["Files"]) {
    EXPECT_EQ(f.value("Checksum-Algorithm", ""), "CRC32C") << f.dump();
    EXPECT_EQ(f.value("Checksum", "").size(), 8u) << f.dump();
  }
  std::string table_file = pgdata + "/" + Query(*cluster_, "SELECT pg_relation_filepath('t')");
  {
    std::fstream f(table_file, std::ios::in | std::ios::out | std::ios::binary);
    ASSERT_TRUE(f.is_open()) << table_file;
    f.seekp(100);
    f.put('\x55');
  }
  v = VerifyBackup(pgdata);
  EXPECT_NE(v.exit_code, 0) << v.out << v.err;
  EXPECT_NE(v.err.find("checksum mismatch"), std::string::npos) << v.err;
}

TEST_F(BackupRestore, TablespacesAreBackedUpRestoredAndVerified) {
  std::string ts = CreateTablespace("ts", "ts", "tt", 20000);
  // parallel 4: large files compressed by two more threads (parallel 2, the other tests,
  // compresses everything on the store worker).
  RunResult b = Cli({"backup", "--parallel", "4"});
  ASSERT_EQ(b.exit_code, 0) << b.err;
  cluster_->Stop();
  fs::rename(ts, dir_ / "ts-original");  // as on a new machine: the location is empty

  std::string pgdata = dir_ / "ts-restore";
  RunResult r = Cli({"restore", "--pgdata", pgdata, "--target", "immediate"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  auto manifest = nlohmann::json::parse(test::ReadFile(pgdata + "/backup_manifest"));
  int tablespace_files = 0;
  for (const auto& f : manifest["Files"]) {
    if (f.value("Path", "").rfind("pg_tblspc/", 0) != 0) continue;
    ++tablespace_files;
    EXPECT_EQ(f.value("Checksum-Algorithm", ""), "CRC32C") << f.dump();
  }
  EXPECT_GT(tablespace_files, 0) << manifest.dump();
  RunResult v = VerifyBackup(pgdata);
  EXPECT_EQ(v.exit_code, 0) << v.out << v.err;

  auto restored = StartRestored(pgdata, "ts-restore-run");
  EXPECT_EQ(Query(*restored, "SELECT count(*), sum(g) FROM tt"), "20000|200010000");
  EXPECT_EQ(Query(*restored,
                  "SELECT spcname FROM pg_tablespace t JOIN pg_class c ON "
                  "c.reltablespace = t.oid WHERE c.relname = 'tt'"),
            "ts");
}

// On the database's own host the tablespace's location is in use: a restore must say so
// before writing anything, and put the tablespace elsewhere when told to; a drill does that
// by itself.
TEST_F(BackupRestore, TablespacesGoElsewhereWithAMapWhileTheOriginalRuns) {
  CreateTablespace("moved", "ts", "tm", 5000);
  ASSERT_EQ(Cli({"backup"}).exit_code, 0);
  SwitchAndWait();

  std::string pgdata = dir_ / "mapped";
  RunResult r = Cli({"restore", "--pgdata", pgdata, "--target", "immediate"});
  EXPECT_EQ(r.exit_code, 5) << r.err;
  EXPECT_NE(r.err.find("--tablespace-map moved=DIR"), std::string::npos) << r.err;
  EXPECT_FALSE(fs::exists(pgdata)) << "a refused restore wrote " << pgdata;
  r = Cli({"restore", "--pgdata", pgdata, "--tablespace-map", "nosuch=/tmp/x"});
  EXPECT_EQ(r.exit_code, 2) << r.err;
  EXPECT_NE(r.err.find("'moved'"), std::string::npos) << r.err;  // lists what there is
  r = Cli({"restore", "--pgdata", pgdata, "--tablespace-map", "moved=relative"});
  EXPECT_EQ(r.exit_code, 2) << r.err;
  EXPECT_FALSE(fs::exists(pgdata));

  std::string elsewhere = dir_ / "ts-elsewhere";
  r = Cli({"restore", "--pgdata", pgdata, "--target", "immediate", "--tablespace-map",
           "moved=" + elsewhere});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  std::string oid = Query(*cluster_, "SELECT oid FROM pg_tablespace WHERE spcname = 'moved'");
  EXPECT_EQ(fs::read_symlink(pgdata + "/pg_tblspc/" + oid).string(), elsewhere);
  EXPECT_EQ(VerifyBackup(pgdata).exit_code, 0);
  {
    auto restored = StartRestored(pgdata, "mapped-run");
    EXPECT_EQ(Query(*restored, "SELECT count(*), sum(g) FROM tm"), "5000|12502500");
    EXPECT_EQ(Query(*restored,
                    "SELECT pg_tablespace_location(oid) FROM pg_tablespace WHERE "
                    "spcname = 'moved'"),
              elsewhere);
  }
  // The original is untouched and still serves.
  EXPECT_EQ(Query(*cluster_, "SELECT count(*) FROM tm"), "5000");

  // --delta never touches a tablespace location that is not the data directory's own: here
  // the original's, in use.
  auto listing = [](const std::string& dir) {
    std::string out;
    for (const auto& e : fs::recursive_directory_iterator(dir)) {
      out += e.path().string() + " " +
             (e.is_regular_file() ? std::to_string(e.file_size()) : std::string("-")) + "\n";
    }
    return out;
  };
  std::string original = listing(dir_ / "ts");
  r = Cli({"restore", "--pgdata", pgdata, "--target", "immediate", "--delta"});
  EXPECT_EQ(r.exit_code, 5) << r.err;
  EXPECT_NE(r.err.find("is not the tablespace of " + pgdata), std::string::npos) << r.err;
  EXPECT_EQ(listing(dir_ / "ts"), original);
  std::string fresh = dir_ / "fresh";
  r = Cli({"restore", "--pgdata", fresh, "--tablespace-map", "moved=" + fresh + "/inside"});
  EXPECT_EQ(r.exit_code, 2) << r.err;
  EXPECT_NE(r.err.find("overlaps the data directory"), std::string::npos) << r.err;

  // --delta over the stopped restored cluster, tablespace included: nothing to rewrite, and
  // a stray file in the tablespace's version directory goes; other directories there stay.
  std::string version_dir;
  for (const auto& e : fs::directory_iterator(elsewhere)) version_dir = e.path();
  ASSERT_NE(version_dir.find("/PG_15_"), std::string::npos) << version_dir;
  test::WriteFile(version_dir + "/stray", "x");
  fs::create_directories(elsewhere + "/PG_99_other_cluster");
  r = Cli({"restore", "--pgdata", pgdata, "--target", "immediate", "--delta", "--output", "json",
           "--tablespace-map", "moved=" + elsewhere});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_FALSE(fs::exists(version_dir + "/stray"));
  EXPECT_TRUE(fs::exists(elsewhere + "/PG_99_other_cluster"));
  EXPECT_GT(nlohmann::json::parse(r.out)["files_unchanged"].get<int>(), 0);

  std::string all = dir_ / "all-ts";
  r = Cli({"restore", "--pgdata", dir_ / "mapped-all", "--target", "immediate",
           "--tablespace-map-all", all});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(fs::read_symlink(dir_ / ("mapped-all/pg_tblspc/" + oid)).string(), all + "/moved");

  RunResult drill = Cli({"test-restore", "--output", "json"});
  EXPECT_EQ(drill.exit_code, 0) << drill.out << drill.err;
}

TEST_F(BackupRestore, RefusesNonEmptyDirectoryAndTargetsOutsideTheWindow) {
  ASSERT_EQ(Cli({"backup"}).exit_code, 0);
  std::string pgdata = dir_ / "busy";
  fs::create_directories(pgdata);
  test::WriteFile(pgdata + "/precious", "do not overwrite");
  RunResult r = Cli({"restore", "--pgdata", pgdata});
  EXPECT_EQ(r.exit_code, 5) << r.err;
  EXPECT_EQ(test::ReadFile(pgdata + "/precious"), "do not overwrite");

  r = Cli({"restore", "--pgdata", dir_ / "early", "--target-time", "2001-01-01 00:00:00+00"});
  EXPECT_EQ(r.exit_code, 4) << r.err;
  EXPECT_NE(r.err.find("window"), std::string::npos) << r.err;
  r = Cli({"restore", "--pgdata", dir_ / "late", "--target-time", "2100-01-01 00:00:00+00"});
  EXPECT_EQ(r.exit_code, 4) << r.err;
  EXPECT_NE(r.err.find("window"), std::string::npos) << r.err;
  EXPECT_FALSE(fs::exists(dir_ / "early"));
  EXPECT_FALSE(fs::exists(dir_ / "late"));

  // A WAL archive that cannot be listed (a symbolic link loop: ELOOP even for root) is a
  // storage failure to retry (exit 8), never "no backup can reach the target" (exit 4).
  fs::path wal = dir_ / "repo/main/wal";
  fs::rename(wal, dir_ / "wal-aside");
  fs::create_directory_symlink(wal, wal);
  r = Cli({"restore", "--pgdata", dir_ / "unlisted"});
  EXPECT_EQ(r.exit_code, 8) << r.err;
  EXPECT_NE(r.err.find("retry"), std::string::npos) << r.err;
  EXPECT_FALSE(fs::exists(dir_ / "unlisted"));
  fs::remove(wal);
  fs::rename(dir_ / "wal-aside", wal);
  EXPECT_EQ(Cli({"restore", "--pgdata", dir_ / "unlisted"}).exit_code, 0);
}

TEST_F(BackupRestore, KilledBackupsAreNeverListedAndTheNextOneSucceeds) {
  Query(*cluster_,
        "CREATE TABLE filler AS SELECT g, repeat(md5(g::text), 10) FROM generate_series(1, 300000) "
        "g");
  fs::path backups = dir_ / "repo/main/backups";
  // Each backup is killed once it has stored some objects (1, 3 and 6 of them), and the test
  // proves the kill landed mid-write: the process died of SIGKILL and wrote no manifest.
  for (int objects_before_kill : {1, 3, 6}) {
    std::vector<std::string> argv = {test::GravlBinary(), "--config", config_, "backup"};
    pid_t pid = ::fork();
    if (pid == 0) {
      std::vector<char*> args;
      for (auto& a : argv) args.push_back(a.data());
      args.push_back(nullptr);
      ::execv(args[0], args.data());
      ::_exit(127);
    }
    std::string label;
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
    while (std::chrono::steady_clock::now() < deadline) {
      std::error_code ec;
      int stored = 0;
      for (auto it = fs::recursive_directory_iterator(backups, ec);
           !ec && it != fs::recursive_directory_iterator(); it.increment(ec)) {
        std::string name = it->path().filename();
        std::string folder = it->path().parent_path().filename();
        if (it->is_regular_file(ec) && name[0] != '.' &&
            (folder == "files" || folder == "bundles") &&
            !fs::exists(it->path().parent_path().parent_path() / "manifest.json", ec)) {
          ++stored;
          label = it->path().parent_path().parent_path().filename();
        }
      }
      if (stored >= objects_before_kill) break;
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    ::kill(pid, SIGKILL);
    int status = 0;
    ::waitpid(pid, &status, 0);
    ASSERT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL)
        << "the backup ended before the kill (" << objects_before_kill << " objects)";
    ASSERT_FALSE(label.empty());
    EXPECT_FALSE(fs::exists(backups / label / "manifest.json"));
    auto info = nlohmann::json::parse(Cli({"info", "--output", "json"}).out);
    auto& stanza = info["repos"][0]["stanzas"][0];
    EXPECT_TRUE(stanza["backups"].empty()) << "killed after " << objects_before_kill;
    EXPECT_NE(stanza["incomplete_backups"].dump().find(label), std::string::npos) << stanza.dump();
    std::this_thread::sleep_for(std::chrono::milliseconds(1100));  // distinct labels
  }
  RunResult r = Cli({"backup", "--output", "json"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  auto info = nlohmann::json::parse(Cli({"info", "--output", "json"}).out);
  EXPECT_EQ(info["repos"][0]["stanzas"][0]["backups"].size(), 1u);
  EXPECT_TRUE(info["repos"][0]["stanzas"][0]["incomplete_backups"].empty());
}

}  // namespace
}  // namespace gravl

namespace gravl {
namespace {

TEST_F(BackupRestore, StandbyRestoreAndABackupTakenFromTheStandby) {
  Query(*cluster_, "CREATE TABLE s AS SELECT g FROM generate_series(1, 1000) g");
  ASSERT_EQ(Cli({"backup"}).exit_code, 0);
  std::string standby_dir = dir_ / "standby";
  RunResult r = Cli({"restore", "--pgdata", standby_dir, "--standby", "--primary-conninfo",
                     cluster_->conninfo()});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_TRUE(fs::exists(standby_dir + "/standby.signal"));
  pg::InstanceOptions o;
  o.base_dir = dir_ / "standby-run";
  auto standby = pg::Instance::Adopt(o, standby_dir);
  Query(*cluster_, "INSERT INTO s SELECT generate_series(1001, 1500)");
  std::string count;
  for (int i = 0; i < 300 && count != "1500"; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    count = Query(*standby, "SELECT count(*) FROM s");
  }
  ASSERT_EQ(count, "1500");
  EXPECT_EQ(Query(*standby, "SELECT pg_is_in_recovery()"), "t");

  // A backup of the standby carries its WAL and restores on its own.
  r = Cli({"--pg-conninfo", standby->conninfo(), "backup", "--output", "json"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  auto b = nlohmann::json::parse(r.out);
  EXPECT_TRUE(b["wal_included"].get<bool>());
  auto restored = RestoreAndStart("from-standby", {"--set", b["label"], "--target", "immediate"});
  ASSERT_TRUE(restored);
  EXPECT_EQ(Query(*restored, "SELECT count(*) FROM s"), "1500");
}

TEST_F(BackupRestore, LogicalBackupRestoresADatabaseAndSingleTables) {
  cluster_->Psql("CREATE DATABASE shop");
  cluster_->Psql(
      "CREATE TABLE orders(id int primary key, item text); "
      "INSERT INTO orders SELECT g, 'item ' || g FROM generate_series(1, 3000) g; "
      "CREATE TABLE customers AS SELECT g AS id FROM generate_series(1, 70) g",
      "shop");
  RunResult r = Cli({"backup", "--type", "logical", "--output", "json"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  auto b = nlohmann::json::parse(r.out);
  std::string label = b["label"];
  bool has_shop = false;
  for (const auto& d : b["databases"]) has_shop |= d["name"] == "shop";
  EXPECT_TRUE(has_shop) << b.dump();
  auto info = nlohmann::json::parse(Cli({"info", "--output", "json"}).out);
  EXPECT_EQ(info["repos"][0]["stanzas"][0]["backups"][0]["type"], "logical");

  // Whole database into a new one.
  cluster_->Psql("CREATE DATABASE shop_copy");
  r = Cli({"restore", "--logical", "--set", label, "--db", "shop", "--target-db",
           cluster_->conninfo("shop_copy")});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(Query(*cluster_, "SELECT 1"), "1");
  EXPECT_EQ(cluster_->Psql("SELECT count(*), sum(id) FROM orders", "shop_copy"), "3000|4501500\n");
  EXPECT_EQ(cluster_->Psql("SELECT count(*) FROM customers", "shop_copy"), "70\n");

  // One table only.
  cluster_->Psql("CREATE DATABASE shop_one");
  r = Cli({"restore", "--logical", "--set", label, "--db", "shop", "--table", "customers",
           "--target-db", cluster_->conninfo("shop_one")});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(cluster_->Psql("SELECT count(*) FROM customers", "shop_one"), "70\n");
  EXPECT_EQ(cluster_->Psql("SELECT to_regclass('orders') IS NULL", "shop_one"), "t\n");

  // Errors are clear: unknown database in the backup, a failing pg_restore.
  r = Cli({"restore", "--logical", "--set", label, "--db", "nope", "--target-db",
           cluster_->conninfo("shop_one")});
  EXPECT_EQ(r.exit_code, 4) << r.err;
  r = Cli({"restore", "--logical", "--set", label, "--db", "shop", "--target-db",
           cluster_->conninfo("shop_copy")});  // tables exist already
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.err.find("pg_restore"), std::string::npos) << r.err;
}

}  // namespace
}  // namespace gravl

namespace gravl {
namespace {

TEST_F(BackupRestore, DeltaRestoreRewritesOnlyWhatDiffers) {
  Query(*cluster_, "CREATE TABLE keep AS SELECT g FROM generate_series(1, 100000) g");
  RunResult b = Cli({"backup", "--output", "json"});
  ASSERT_EQ(b.exit_code, 0) << b.err;
  std::string label = nlohmann::json::parse(b.out)["label"];
  {
    auto r = RestoreAndStart("delta", {"--set", label, "--target", "immediate"});
    ASSERT_TRUE(r);
    Query(*r, "CREATE TABLE added_later AS SELECT g FROM generate_series(1, 1000) g");
    Query(*r, "DELETE FROM keep WHERE g > 10");
    r->Stop();
  }
  std::string pgdata = dir_ / "delta";
  RunResult plain = Cli({"restore", "--pgdata", pgdata, "--set", label});
  EXPECT_EQ(plain.exit_code, 5) << plain.err;  // not empty, no --delta
  EXPECT_NE(plain.err.find("--delta"), std::string::npos);

  RunResult r = Cli({"restore", "--pgdata", pgdata, "--set", label, "--target", "immediate",
                     "--delta", "--output", "json"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  auto j = nlohmann::json::parse(r.out);
  EXPECT_GT(j["files_unchanged"].get<std::uint64_t>(), 10u) << j.dump();
  RunResult v = VerifyBackup(pgdata);
  EXPECT_EQ(v.exit_code, 0) << v.out << v.err;
  auto again = StartRestored(pgdata, "delta-run2");
  EXPECT_EQ(Query(*again, "SELECT count(*) FROM keep"), "100000");
  EXPECT_EQ(Query(*again, "SELECT to_regclass('added_later') IS NULL"), "t");
}

}  // namespace
}  // namespace gravl
