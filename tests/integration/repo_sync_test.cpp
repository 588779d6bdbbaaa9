// repo-sync between two repositories standing for two regions, with a real cluster archiving
// into the first one only: the second lacks the backup and the WAL (verify-only says so, exit
// 12), a sync copies and verifies them, a second sync copies nothing, and a point-in-time
// restore to the latest archived moment from the second region alone gives exactly the
// primary's data (pg_dumpall compared). Refusals: another cluster's stanza, a different backup
// under the same label.

#include <gtest/gtest.h>
#include <signal.h>

#include <filesystem>
#include <nlohmann/json.hpp>
#include <random>
#include <thread>

#include "common/subprocess.h"
#include "repo/manifest.h"
#include "storage/posix.h"
#include "support/cli.h"
#include "support/manifest_util.h"
#include "support/pg_fixture.h"
#include "support/restoring_fixture.h"
#include "support/test_util.h"

namespace gravl {
namespace {

namespace fs = std::filesystem;

class RepoSync : public test::RestoringFixture {
 protected:
  std::string ConfigBody() const override {
    return "repos:\n  - {name: eu-north-1, type: posix, path: " + (dir_ / "eu") +
           "}\n  - {name: us-east-1, type: posix, path: " + (dir_ / "us") +
           "}\narchive: {async: false}\nparallel: 2\n";
  }
  void SetUp() override {
    ArchivingFixture::SetUp();
    // The primary region's archive only: the second region lacks WAL too.
    cluster_->Psql("ALTER SYSTEM SET archive_command = '" + std::string(test::GravlBinary()) +
                   " --config " + config_ + " --repo eu-north-1 archive-push %p'");
    cluster_->Psql("SELECT pg_reload_conf()");
  }
  nlohmann::json Sync(std::vector<std::string> extra, int expect) {
    std::vector<std::string> args = {"repo-sync", "--from",   "eu-north-1", "--to",
                                     "us-east-1", "--output", "json"};
    args.insert(args.end(), extra.begin(), extra.end());
    RunResult r = Cli(args);
    EXPECT_EQ(r.exit_code, expect) << r.out << r.err;
    return nlohmann::json::parse(r.out.empty() ? "{}" : r.out);
  }
};

TEST_F(RepoSync, SecondRegionRestoresThePrimarysDataAlone) {
  Query(
      "CREATE TABLE orders(id int primary key, note text); "
      "INSERT INTO orders SELECT g, md5(g::text) FROM generate_series(1, 20000) g");
  ASSERT_EQ(Cli({"--repo", "eu-north-1", "backup"}).exit_code, 0);
  Query(
      "INSERT INTO orders SELECT g, 'after' FROM generate_series(20001, 25000) g; "
      "UPDATE orders SET note = 'changed' WHERE id % 7 = 0");
  SwitchAndWait();

  // What the second region lacks, without copying anything.
  nlohmann::json check = Sync({"--verify-only"}, 12);
  ASSERT_EQ(check["backups"].size(), 1u) << check.dump();
  EXPECT_EQ(check["backups"][0]["status"], "missing");
  EXPECT_GT(check["wal_missing"].get<int>(), 0);
  EXPECT_GT(check["missing_objects"].get<int>(), 3);
  EXPECT_FALSE(check["newest_missing_backup"].is_null());
  EXPECT_FALSE(fs::exists(dir_ / "us/main/backups"));
  EXPECT_EQ(Sync({"--dry-run"}, 0)["backups"][0]["status"], "missing");
  EXPECT_FALSE(fs::exists(dir_ / "us/main/backups"));

  // The exporter's sync lag says the same.
  auto lag = [&](const std::string& metric) {
    std::string path = dir_ / "m.prom";
    EXPECT_EQ(Cli({"exporter", "--textfile", path}).exit_code, 0);
    std::string text = test::ReadFile(path);
    std::string series = metric + "{repo=\"eu-north-1\",stanza=\"main\",target=\"us-east-1\"} ";
    auto at = text.find(series);
    EXPECT_NE(at, std::string::npos) << text;
    return at == std::string::npos ? -1.0 : std::stod(text.substr(at + series.size()));
  };
  EXPECT_EQ(lag("gravl_sync_missing_backups"), 1);
  auto info_lag = [&] {
    RunResult info = Cli({"info", "--output", "json"});
    EXPECT_EQ(info.exit_code, 0) << info.err;
    return nlohmann::json::parse(info.out)["sync"][0];
  };
  EXPECT_EQ(info_lag()["missing_backups"], 1);
  EXPECT_EQ(info_lag()["to"], "us-east-1");
  EXPECT_GT(lag("gravl_sync_missing_wal_segments"), 0);
  EXPECT_GT(lag("gravl_sync_wal_lag_seconds"), 0);
  EXPECT_GT(lag("gravl_sync_missing_bytes"), 0);

  // The sync, then nothing left to copy.
  nlohmann::json done = Sync({}, 0);
  EXPECT_EQ(lag("gravl_sync_missing_backups"), 0);
  EXPECT_EQ(lag("gravl_sync_missing_wal_segments"), 0);
  EXPECT_EQ(lag("gravl_sync_wal_lag_seconds"), 0);
  EXPECT_EQ(lag("gravl_sync_backup_lag_seconds"), 0);
  EXPECT_EQ(info_lag()["missing_backups"], 0);
  EXPECT_EQ(info_lag()["missing_wal_segments"], 0);
  EXPECT_EQ(done["backups"][0]["status"], "copied") << done.dump();
  EXPECT_GT(done["objects_copied"].get<int>(), 3);
  EXPECT_EQ(done["wal_copied"], check["wal_missing"]);
  nlohmann::json again = Sync({}, 0);
  EXPECT_EQ(again["backups"][0]["status"], "present");
  EXPECT_EQ(again["objects_copied"], 0);
  EXPECT_EQ(Sync({"--verify-only"}, 0)["missing_objects"], 0);
  RunResult v = Cli({"--repo", "us-east-1", "verify"});
  EXPECT_EQ(v.exit_code, 0) << v.out << v.err;

  // Without --repo, restore takes the newest backup of either region: here one taken into the
  // second region only (archiving now goes to both, as a backup needs its WAL in its own
  // repository).
  EnableArchiving();
  std::this_thread::sleep_for(std::chrono::milliseconds(1100));
  ASSERT_EQ(Cli({"--repo", "us-east-1", "backup"}).exit_code, 0);
  RunResult plan = Cli({"restore", "--pgdata", dir_ / "plan", "--dry-run", "--output", "json"});
  ASSERT_EQ(plan.exit_code, 0) << plan.err;
  EXPECT_EQ(nlohmann::json::parse(plan.out)["repo"], "us-east-1") << plan.out;
  SwitchAndWait();

  // The primary region is gone: restore from the second alone, to the latest archived moment.
  std::string primary = test::DumpAll(*cluster_);
  fs::rename(dir_ / "eu", dir_ / "eu.lost");
  auto restored = RestoreAndStart("from-us", {"--repo", "us-east-1"});
  ASSERT_TRUE(restored);
  std::string restored_dump = test::DumpAll(*restored);
  EXPECT_GT(primary.size(), 500000u);
  EXPECT_TRUE(restored_dump == primary)
      << "pg_dumpall differs: " << restored_dump.size() << " bytes restored, " << primary.size()
      << " on the primary";
}

TEST_F(RepoSync, BackupCopiesItselfToTheSecondRegion) {
  Query("CREATE TABLE t AS SELECT g FROM generate_series(1, 1000) g");
  RunResult r =
      Cli({"--repo", "eu-north-1", "backup", "--copy-to", "us-east-1", "--output", "json"});
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  auto j = nlohmann::json::parse(r.out);
  ASSERT_EQ(j["copies"].size(), 1u) << r.out;
  EXPECT_EQ(j["copies"][0]["to"], "us-east-1");
  EXPECT_EQ(j["copies"][0]["backups"][0]["status"], "copied");
  EXPECT_TRUE(
      fs::exists(dir_ / ("us/main/backups/" + j["label"].get<std::string>() + "/manifest.json")));
  // The sync is reported in the repository it copied into, though --repo named the other.
  EXPECT_TRUE(fs::exists(dir_ / "us/main/reports/syncs"));
  EXPECT_FALSE(fs::is_empty(dir_ / "us/main/reports/syncs"));
  RunResult v = Cli({"--repo", "us-east-1", "verify"});
  EXPECT_EQ(v.exit_code, 0) << v.out << v.err;
  // A copy that fails leaves the backup complete, says so, and exits with the failure's code.
  fs::rename(dir_ / "us", dir_ / "us.away");
  std::this_thread::sleep_for(std::chrono::milliseconds(1100));  // labels are to the second
  RunResult failed = Cli({"--repo", "eu-north-1", "backup", "--copy-to", "us-east-1"});
  EXPECT_NE(failed.exit_code, 0);
  EXPECT_NE(failed.err.find("is complete in eu-north-1, but copying it to us-east-1 failed"),
            std::string::npos)
      << failed.err;
  // Unknown names are a configuration error.
  RunResult unknown = Cli({"backup", "--copy-to", "ap-south-1"});
  EXPECT_EQ(unknown.exit_code, 3);
  EXPECT_NE(unknown.err.find("not a configured repository"), std::string::npos) << unknown.err;
}

// kill -9 at 20 random moments of a sync: the target never lists a backup that fails verify,
// and the next sync completes it.
TEST_F(RepoSync, KilledSyncNeverLeavesAListedBackupThatFailsVerify) {
  Query("CREATE TABLE t AS SELECT g, md5(g::text) FROM generate_series(1, 50000) g");
  ASSERT_EQ(Cli({"--repo", "eu-north-1", "backup"}).exit_code, 0);
  Query("INSERT INTO t SELECT g, 'x' FROM generate_series(1, 20000) g");
  std::this_thread::sleep_for(std::chrono::milliseconds(1100));
  ASSERT_EQ(Cli({"--repo", "eu-north-1", "backup"}).exit_code, 0);
  SwitchAndWait();
  auto sync = [&] {
    return Child::Spawn({test::GravlBinary(), "--config", config_, "repo-sync", "--from",
                         "eu-north-1", "--to", "us-east-1"},
                        {});
  };
  auto listed = [&] {
    std::size_t n = 0;
    if (fs::exists(dir_ / "us/main/backups")) {
      for (const auto& e : fs::directory_iterator(dir_ / "us/main/backups")) {
        n += fs::exists(e.path() / "manifest.json");
      }
    }
    return n;
  };
  auto t0 = std::chrono::steady_clock::now();
  ASSERT_EQ(sync()->Wait(), 0);
  auto full = std::chrono::steady_clock::now() - t0;
  std::mt19937 rng(std::random_device{}());
  std::uniform_int_distribution<long> at(
      0, std::chrono::duration_cast<std::chrono::microseconds>(full).count());
  int midway = 0;
  for (int k = 0; k < 20; ++k) {
    fs::remove_all(dir_ / "us/main/backups");
    fs::remove_all(dir_ / "us/main/wal");
    auto child = sync();
    std::this_thread::sleep_for(std::chrono::microseconds(at(rng)));
    ::kill(child->pid(), SIGKILL);
    int code = child->Wait();
    std::size_t n = listed();
    if (code == 128 + SIGKILL && n < 2) ++midway;
    if (n > 0) {
      RunResult v = Cli({"--repo", "us-east-1", "verify"});
      EXPECT_EQ(v.exit_code, 0) << "kill " << k << " (exit " << code << ", " << n << " listed):\n"
                                << v.out << v.err;
    }
    RunResult again = Cli({"repo-sync", "--from", "eu-north-1", "--to", "us-east-1"});
    EXPECT_EQ(again.exit_code, 0) << again.err;
    EXPECT_EQ(listed(), 2u) << "kill " << k;
  }
  EXPECT_GE(midway, 1);
  RunResult v = Cli({"--repo", "us-east-1", "verify"});
  EXPECT_EQ(v.exit_code, 0) << v.out << v.err;
}

TEST_F(RepoSync, RefusesAnotherClusterAndADifferentBackupUnderTheSameLabel) {
  ASSERT_EQ(Cli({"--repo", "eu-north-1", "backup"}).exit_code, 0);
  SwitchAndWait();
  ASSERT_EQ(Sync({}, 0)["backups"][0]["status"], "copied");
  // The same label in the target, but another backup: its manifest differs (sealed with a
  // valid checksum). Refused, naming the object; nothing overwritten.
  std::string label;
  for (const auto& e : fs::directory_iterator(dir_ / "us/main/backups")) {
    label = e.path().filename();
  }
  {
    auto open = [&](const std::string& name, const std::string& path) {
      auto r = std::make_unique<repo::Repository>(RepoConfig{name, "posix", path, {}},
                                                  storage::MakePosixStorage(path), "main");
      r->Stanza();
      r->Unlock(std::nullopt);
      return r;
    };
    auto eu = open("eu-north-1", dir_ / "eu");
    auto us = open("us-east-1", dir_ / "us");
    nlohmann::json doc = repo::ReadManifestDocument(*eu, label);
    doc["created_by"] = "someone else";
    test::WriteManifestDocument(*us, label, doc);
  }
  std::string before = test::ReadFile(dir_ / "us/main/backups/" + label + "/manifest.json");
  RunResult conflict = Cli({"repo-sync", "--from", "eu-north-1", "--to", "us-east-1"});
  EXPECT_EQ(conflict.exit_code, 5) << conflict.err;
  EXPECT_NE(conflict.err.find(label + "/manifest.json"), std::string::npos) << conflict.err;
  EXPECT_EQ(test::ReadFile(dir_ / "us/main/backups/" + label + "/manifest.json"), before);

  // A stanza of another cluster in the target.
  fs::remove_all(dir_ / "us");
  auto other = test::StartCluster({});
  RunResult created = test::Cli({"--config", config_, "--repo", "us-east-1", "--pg-conninfo",
                                 other->conninfo(), "stanza-create"});
  ASSERT_EQ(created.exit_code, 0) << created.err;
  RunResult r = Cli({"repo-sync", "--from", "eu-north-1", "--to", "us-east-1"});
  EXPECT_EQ(r.exit_code, 5) << r.err;
  EXPECT_NE(r.err.find("another cluster"), std::string::npos) << r.err;
  EXPECT_FALSE(fs::exists(dir_ / "us/main/backups"));
}

}  // namespace
}  // namespace gravl
