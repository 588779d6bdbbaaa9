// WAL archiving end to end: a real cluster whose archive_command is gravl-dr archive-push,
// two repositories, pgbench load, and archive-get back.

#include <gtest/gtest.h>
#include <sys/stat.h>

#include <filesystem>
#include <nlohmann/json.hpp>
#include <thread>

#include "common/lsn.h"
#include "pg/instance.h"
#include "support/archiving_fixture.h"
#include "support/cli.h"
#include "support/pg_fixture.h"
#include "support/test_util.h"

namespace gravl {
namespace {

namespace fs = std::filesystem;

class ArchiveIntegration : public test::ArchivingFixture {
 protected:
  std::string ConfigBody() const override {
    return "repos:\n  - {name: eu, type: posix, path: " + (dir_ / "eu") +
           "}\n  - {name: us, type: posix, path: " + (dir_ / "us") +
           "}\narchive: {async: true, spool_path: " + (dir_ / "spool") +
           ", batch: 16, prefetch: 8}\nparallel: 2\n";
  }
  std::vector<std::string> ClusterSettings() const override {
    return {"wal_keep_size = '4GB'", "archive_timeout = 0"};
  }

  nlohmann::json InfoWal(const std::string& repo) {
    RunResult r = Cli({"--repo", repo, "info", "--output", "json"});
    EXPECT_EQ(r.exit_code, 0) << r.err;
    return nlohmann::json::parse(r.out)["repos"][0]["stanzas"][0]["wal"];
  }
};

TEST_F(ArchiveIntegration, PgbenchWorkloadIsArchivedCompletelyAndRestoresByteIdentical) {
  EnableArchiving();
  RunChecked({cluster_->Bin("pgbench"), "-i", "-s", "10", "-q", "-d", cluster_->conninfo()});
  RunChecked(
      {cluster_->Bin("pgbench"), "-c", "4", "-j", "2", "-T", "10", "-d", cluster_->conninfo()});
  std::string last = SwitchAndWait();

  EXPECT_EQ(Query("SELECT failed_count FROM pg_stat_archiver"), "0") << cluster_->LogTail();
  auto first_archived = WalSegment::ParseName("000000010000000000000001");
  auto last_archived = WalSegment::ParseName(last);
  ASSERT_TRUE(first_archived && last_archived);
  std::uint64_t expected = last_archived->segno - first_archived->segno + 1;
  EXPECT_GT(expected, 8u);
  for (const char* repo : {"eu", "us"}) {
    auto wal = InfoWal(repo);
    ASSERT_EQ(wal.size(), 1u) << wal.dump();
    EXPECT_EQ(wal[0]["first"], "000000010000000000000001");
    EXPECT_GE(wal[0]["last"].get<std::string>(), last);
    EXPECT_EQ(wal[0]["missing"], 0);
    EXPECT_GE(wal[0]["segments"].get<std::uint64_t>(), expected);
  }

  // Every archived segment still in pg_wal comes back byte-identical, from each repository.
  std::string out_dir = dir_ / "restored";
  fs::create_directories(out_dir);
  int compared = 0;
  for (std::uint64_t s = first_archived->segno; s <= last_archived->segno; ++s) {
    std::string name = WalSegment{1, s}.Name();
    std::string original = cluster_->data_dir() + "/pg_wal/" + name;
    if (!fs::exists(original)) continue;
    for (const char* repo : {"eu", "us"}) {
      std::string target = out_dir + "/" + repo + "-" + name;
      RunResult r = Cli({"--repo", repo, "archive-get", name, target});
      ASSERT_EQ(r.exit_code, 0) << r.err;
      ASSERT_EQ(test::ReadFile(target), test::ReadFile(original)) << name << " from " << repo;
    }
    ++compared;
  }
  EXPECT_GT(compared, 8);
}

TEST_F(ArchiveIntegration, IdempotentPushConflictsAndForeignSegments) {
  EnableArchiving();
  std::string seg = SwitchAndWait();
  std::string path = cluster_->data_dir() + "/pg_wal/" + seg;

  // Same file again: success.
  RunResult r = Cli({"archive-push", path, "--output", "json"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  auto j = nlohmann::json::parse(r.out);
  EXPECT_EQ(j["repos"][0]["status"], "already-archived");
  std::string archived_sha = j["sha256"];

  // Different content under the archived name: refused, the archived copy is untouched.
  std::string fake_dir = dir_ / "fake/pg_wal";
  fs::create_directories(fake_dir);
  std::string content = test::ReadFile(path);
  content[content.size() - 100] ^= 0x55;  // same header, other bytes
  test::WriteFile(fake_dir + "/" + seg, content);
  r = Cli({"archive-push", fake_dir + "/" + seg});
  EXPECT_EQ(r.exit_code, 5) << r.err;
  EXPECT_NE(r.err.find(archived_sha), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("refusing to overwrite"), std::string::npos) << r.err;
  std::string back = dir_ / "back";
  ASSERT_EQ(Cli({"archive-get", seg, back}).exit_code, 0);
  EXPECT_EQ(test::ReadFile(back), test::ReadFile(path));

  // A segment of another cluster is refused before anything is stored.
  auto other = test::StartCluster();
  std::string other_seg = other->Psql("SELECT pg_walfile_name(pg_current_wal_lsn())");
  other_seg.resize(24);
  other->Psql("CHECKPOINT");
  std::string foreign = fake_dir + "/000000010000000000000070";
  fs::copy_file(other->data_dir() + "/pg_wal/" + other_seg, foreign);
  r = Cli({"archive-push", foreign});
  EXPECT_EQ(r.exit_code, 5) << r.err;
  EXPECT_NE(r.err.find("belongs to the cluster"), std::string::npos) << r.err;
  for (const char* repo : {"eu", "us"}) {
    EXPECT_LT(InfoWal(repo)[0]["last"].get<std::string>(), "000000010000000000000070");
  }

  // Not a WAL file name at all.
  EXPECT_EQ(Cli({"archive-push", fake_dir + "/RECOVERYXLOG"}).exit_code, 2);
}

TEST_F(ArchiveIntegration, AFailingRepositoryStopsArchivingUntilItIsBackWithNoGap) {
  EnableArchiving();
  SwitchAndWait();
  // The second region goes away: its directory is replaced by a file.
  fs::rename(dir_ / "us", dir_ / "us.away");
  test::WriteFile(dir_ / "us", "gone");
  std::string before_fail = Query("SELECT failed_count FROM pg_stat_archiver");
  for (int i = 0; i < 3; ++i) {
    Query("CREATE TABLE IF NOT EXISTS t(x int); INSERT INTO t SELECT generate_series(1, 1000)");
    Query("SELECT pg_switch_wal()");
  }
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
  while (Query("SELECT failed_count FROM pg_stat_archiver") == before_fail &&
         std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
  }
  EXPECT_NE(Query("SELECT failed_count FROM pg_stat_archiver"), before_fail);
  // PostgreSQL keeps the segments: they are still waiting.
  int ready = 0;
  for (const auto& e : fs::directory_iterator(cluster_->data_dir() + "/pg_wal/archive_status")) {
    ready += e.path().extension() == ".ready";
  }
  EXPECT_GE(ready, 3);

  // Back: archiving catches up, and both repositories hold every segment.
  fs::remove(dir_ / "us");
  fs::rename(dir_ / "us.away", dir_ / "us");
  std::string last = SwitchAndWait();
  for (const char* repo : {"eu", "us"}) {
    auto wal = InfoWal(repo);
    EXPECT_EQ(wal[0]["missing"], 0) << repo << ": " << wal.dump();
    EXPECT_GE(wal[0]["last"].get<std::string>(), last) << repo;
  }
}

TEST_F(ArchiveIntegration, ArchiveGetExitCodesTellNotFoundFromErrors) {
  EnableArchiving();
  std::string seg = SwitchAndWait();
  std::string target = dir_ / "out";
  EXPECT_EQ(Cli({"archive-get", "0000000100000000000000FE", target}).exit_code, 4);
  EXPECT_EQ(Cli({"archive-get", "00000002.history", target}).exit_code, 4);
  EXPECT_FALSE(fs::exists(target));

  // Damage the first region's copy: the second region's copy is used.
  std::string stored;
  for (const auto& e : fs::recursive_directory_iterator(dir_ / "eu/main/wal")) {
    if (e.path().filename().string().rfind(seg, 0) == 0) stored = e.path();
  }
  ASSERT_FALSE(stored.empty());
  std::string bytes = test::ReadFile(stored);
  bytes[bytes.size() / 2] ^= 0x01;
  test::WriteFile(stored, bytes);
  RunResult r = Cli({"archive-get", seg, target, "--output", "json"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(nlohmann::json::parse(r.out)["repo"], "us");
  EXPECT_EQ(test::ReadFile(target), test::ReadFile(cluster_->data_dir() + "/pg_wal/" + seg));

  // Damaged everywhere: recovery must stop (126), not end early; --standby keeps the code.
  fs::remove(target);
  r = Cli({"--repo", "eu", "archive-get", seg, target});
  EXPECT_EQ(r.exit_code, 126) << r.err;
  EXPECT_NE(r.err.find(seg), std::string::npos) << r.err;
  EXPECT_FALSE(fs::exists(target));
  r = Cli({"--repo", "eu", "archive-get", "--standby", seg, target});
  EXPECT_EQ(r.exit_code, 6) << r.err;
}

TEST_F(ArchiveIntegration, CheckPassesWhenArchivingWorksAndNamesWhatIsWrong) {
  RunResult r = Cli({"check", "--output", "json"});
  EXPECT_EQ(r.exit_code, 3) << r.out;  // archive_command is empty
  auto j = nlohmann::json::parse(r.out);
  bool named = false;
  for (const auto& c : j["checks"]) named |= c["check"] == "archive_command" && !c["ok"];
  EXPECT_TRUE(named) << j.dump();

  EnableArchiving();
  r = Cli({"check"});
  EXPECT_EQ(r.exit_code, 0) << r.out << r.err;
  EXPECT_NE(r.out.find("reached every repository"), std::string::npos) << r.out;
}

}  // namespace
}  // namespace gravl

namespace gravl {
namespace {

TEST_F(ArchiveIntegration, PushedAheadRecordsAreRecheckedAgainstTheRepositories) {
  // Archiving stays off: the segments wait in pg_wal; copy three into a fake pg_wal.
  std::vector<std::string> segs;
  for (int i = 0; i < 3; ++i) {
    Query("CREATE TABLE IF NOT EXISTS t(x int); INSERT INTO t SELECT generate_series(1, 100)");
    std::string s = Query("SELECT pg_walfile_name(pg_switch_wal())");
    segs.push_back(s);
  }
  Query("CHECKPOINT");
  std::string fake = dir_ / "fake/pg_wal";
  fs::create_directories(fake + "/archive_status");
  for (const auto& s : segs) {
    fs::copy_file(cluster_->data_dir() + "/pg_wal/" + s, fake + "/" + s);
    test::WriteFile(fake + "/archive_status/" + s + ".ready", "");
  }
  Chown(dir_ / "fake");
  RunResult r = Cli({"archive-push", fake + "/" + segs[0], "--output", "json"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(nlohmann::json::parse(r.out)["also_pushed"], 2);

  // The second segment vanishes from one region after it was pushed ahead.
  for (const auto& e : fs::recursive_directory_iterator(dir_ / "us/main/wal")) {
    if (e.path().filename().string().rfind(segs[1], 0) == 0) fs::remove(e.path());
  }
  r = Cli({"archive-push", fake + "/" + segs[1], "--output", "json"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  auto j = nlohmann::json::parse(r.out);
  EXPECT_EQ(j["pushed_ahead"], false) << "a record for a missing object was trusted";
  EXPECT_EQ(j["repos"][1]["status"], "stored");
  // The third is intact: the record holds and the call returns at once.
  r = Cli({"archive-push", fake + "/" + segs[2], "--output", "json"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(nlohmann::json::parse(r.out)["pushed_ahead"], true);
}

}  // namespace
}  // namespace gravl
