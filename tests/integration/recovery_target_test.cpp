// Restores land where the operator asked: recovery settings owned by the restore, targets
// validated and located, timelines chosen, damaged manifests isolated (issue 13).

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <thread>

#include "common/lsn.h"
#include "pg/instance.h"
#include "support/cli.h"
#include "support/restoring_fixture.h"
#include "support/test_util.h"

namespace gravl {
namespace {

namespace fs = std::filesystem;

class RecoveryTargets : public test::RestoringFixture {
 protected:
  std::string Label(const RunResult& backup) {
    return nlohmann::json::parse(backup.out)["label"].get<std::string>();
  }
  // Archiving of a restored copy into the test's repository (as an operator might do).
  std::vector<std::string> ArchiveInto() const {
    return {"archive_mode=on", "archive_command='" + std::string(test::GravlBinary()) +
                                   " --config " + config_ + " archive-push %p'"};
  }
  // Switches WAL on `pg` and waits until its archiver has processed the segment.
  void SwitchAndWaitOn(const pg::Instance& pg) {
    std::string seg = pg.Psql("SELECT pg_walfile_name(pg_switch_wal())");
    seg.pop_back();
    for (int i = 0; i < 600; ++i) {
      std::string last = pg.Psql("SELECT coalesce(last_archived_wal, '') FROM pg_stat_archiver");
      last.pop_back();
      if (!last.empty() && last >= seg) return;
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    ADD_FAILURE() << "the archiver did not reach " << seg << "; log:\n" << pg.LogTail();
  }
  std::string Now() {
    std::this_thread::sleep_for(std::chrono::milliseconds(1100));
    std::string t = Query("SELECT now()");
    std::this_thread::sleep_for(std::chrono::milliseconds(1100));
    return t;
  }
  bool HasTimeline(TimelineId tli) {
    std::error_code ec;
    return fs::exists(dir_ / ("repo/main/wal/" + TimelineHex(tli)), ec);
  }
};

// Issue 13, item 1, exactly as reproduced: a cluster restored with --target immediate,
// promoted, written to and backed up again must restore to the end of its archive, not to
// the old target it inherited in postgresql.auto.conf.
TEST_F(RecoveryTargets, RecoverySettingsAreNotInheritedAcrossRestores) {
  Query("CREATE TABLE t(id int)");
  ASSERT_EQ(Cli({"backup"}).exit_code, 0);
  Query("INSERT INTO t SELECT generate_series(1, 100)");
  SwitchAndWait();
  auto r = RestoreAndStart("R", {"--target", "immediate"}, ArchiveInto());
  ASSERT_TRUE(r);
  EXPECT_EQ(Query(*r, "SELECT count(*) FROM t"), "0");
  Query(*r, "INSERT INTO t SELECT generate_series(1, 50)");
  RunResult b = Cli({"--pg-conninfo", r->conninfo(), "backup", "--output", "json"});
  ASSERT_EQ(b.exit_code, 0) << b.err;
  std::string label = Label(b);
  Query(*r, "INSERT INTO t SELECT generate_series(51, 100)");
  std::string after_all = Now();
  // A commit after the target time: recovery to a time stops at the first one after it.
  Query(*r, "CREATE TABLE marker(id int)");
  SwitchAndWaitOn(*r);
  r.reset();

  auto plain = RestoreAndStart("R-plain", {"--set", label});
  ASSERT_TRUE(plain);
  EXPECT_EQ(Query(*plain, "SELECT count(*) FROM t"), "100");
  EXPECT_NE(last_restore_output_.find("target: latest"), std::string::npos) << last_restore_output_;
  EXPECT_NE(last_restore_output_.find("replaced earlier recovery setting: recovery_target = "
                                      "'immediate'"),
            std::string::npos)
      << last_restore_output_;
  std::string conf = test::ReadFile(dir_ / "R-plain/postgresql.auto.conf");
  EXPECT_NE(conf.find("# replaced by gravl-dr"), std::string::npos) << conf;
  plain.reset();

  auto timed = RestoreAndStart("R-time", {"--set", label, "--target-time", after_all});
  ASSERT_TRUE(timed);
  EXPECT_EQ(Query(*timed, "SELECT count(*) FROM t"), "100");
  timed.reset();

  // A standby of it stays a standby: it does not promote itself onto a new timeline.
  std::string standby_dir = dir_ / "R-standby";
  RunResult s = Cli({"restore", "--pgdata", standby_dir, "--set", label, "--standby"});
  ASSERT_EQ(s.exit_code, 0) << s.err;
  pg::InstanceOptions o;
  o.base_dir = dir_ / "R-standby-run";
  auto standby = pg::Instance::Adopt(o, standby_dir);
  std::string count;
  for (int i = 0; i < 300 && count != "100"; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    count = Query(*standby, "SELECT count(*) FROM t");
  }
  EXPECT_EQ(count, "100");
  std::this_thread::sleep_for(std::chrono::seconds(2));
  EXPECT_EQ(Query(*standby, "SELECT pg_is_in_recovery()"), "t") << standby->LogTail();
}

// Items 3 and 4: restore points and xids before the newest backup choose the backup taken
// before them; targets the archive cannot reach are refused before anything is written.
TEST_F(RecoveryTargets, NameAndXidTargetsChooseABackupTakenBeforeThem) {
  Query("CREATE TABLE t(id int)");
  RunResult b1 = Cli({"backup", "--output", "json"});
  ASSERT_EQ(b1.exit_code, 0) << b1.err;
  std::string xid = Query(
      "WITH ins AS (INSERT INTO t SELECT generate_series(1, 10) RETURNING 1) "
      "SELECT txid_current() FROM ins LIMIT 1");
  Query("INSERT INTO t SELECT generate_series(11, 20)");  // after the xid, before the point
  Query("SELECT pg_create_restore_point('before-second')");
  std::this_thread::sleep_for(std::chrono::milliseconds(1100));
  RunResult b2 = Cli({"backup", "--output", "json"});
  ASSERT_EQ(b2.exit_code, 0) << b2.err;
  Query("INSERT INTO t SELECT generate_series(21, 30)");
  SwitchAndWait();

  auto named = RestoreAndStart("by-name", {"--target-name", "before-second"});
  ASSERT_TRUE(named);
  EXPECT_EQ(Query(*named, "SELECT count(*) FROM t"), "20");
  EXPECT_NE(last_restore_output_.find("backup " + Label(b1)), std::string::npos)
      << last_restore_output_;
  EXPECT_NE(last_restore_output_.find("restore point 'before-second' found at LSN"),
            std::string::npos)
      << last_restore_output_;
  named.reset();

  auto by_xid = RestoreAndStart("by-xid", {"--target-xid", xid});
  ASSERT_TRUE(by_xid);
  EXPECT_EQ(Query(*by_xid, "SELECT count(*) FROM t"), "10");
  EXPECT_NE(last_restore_output_.find("backup " + Label(b1)), std::string::npos)
      << last_restore_output_;
  by_xid.reset();

  // Exclusive: just before the transaction's commit.
  auto before = RestoreAndStart("by-xid-excl", {"--target-xid", xid, "--target-exclusive"});
  ASSERT_TRUE(before);
  EXPECT_EQ(Query(*before, "SELECT count(*) FROM t"), "0");
  before.reset();

  // Unreachable or invalid targets: refused, nothing written.
  struct Case {
    std::vector<std::string> args;
    int code;
    std::string message;
  };
  std::vector<Case> cases = {
      {{"--target-name", "no-such-point"}, 4, "no restore point 'no-such-point'"},
      {{"--target-lsn", "FFFFFFFF/FFFFFFFF"}, 4, "beyond the archived WAL"},
      {{"--target-xid", "0"}, 2, "not a normal transaction id"},
      {{"--target-xid", "abc"}, 2, "not a transaction id"},
      {{"--target-xid", "-5"}, 2, "not a transaction id"},
      {{"--target-name", ""}, 2, "--target-name is empty"},
      {{"--target-name", "a\nb"}, 2, "control character"},
      {{"--target", "latest", "--target-time", "2026-01-01 00:00:00Z"}, 2, "give one"},
      {{"--target-time", "2026-11-30 15:25:62+00"}, 2, "second 62"},
      {{"--target-time", "2026-13-01 00:00:00+00"}, 2, "month 13"},
      {{"--target-time", "2026-02-30 25:61:61+00"}, 2, "day 30"},
      {{"--target-time", "2026-02-01 10:00:00+99:99"}, 2, "offset +99:99"},
      {{"--target-time", "2026-02-01 10:00:00"}, 2, "no time zone"},
      {{"--target-timeline", "x"}, 2, "--target-timeline"},
  };
  for (const auto& c : cases) {
    std::string pgdata = dir_ / "refused";
    std::vector<std::string> args = {"restore", "--pgdata", pgdata};
    args.insert(args.end(), c.args.begin(), c.args.end());
    RunResult r = Cli(args);
    EXPECT_EQ(r.exit_code, c.code) << c.args[0] << " " << c.args.back() << ": " << r.err;
    EXPECT_NE(r.err.find(c.message), std::string::npos) << c.args.back() << ": " << r.err;
    EXPECT_FALSE(fs::exists(pgdata)) << c.args.back();
  }
  // Right after a backup the window is shown in order, never inverted.
  RunResult b3 = Cli({"backup"});
  ASSERT_EQ(b3.exit_code, 0) << b3.err;
  RunResult late =
      Cli({"restore", "--pgdata", dir_ / "late", "--target-time", "2100-01-01 00:00:00+00"});
  EXPECT_EQ(late.exit_code, 4) << late.err;
  auto window = late.err.find("recoverable window is ");
  ASSERT_NE(window, std::string::npos) << late.err;
  std::string from = late.err.substr(window + 22, 20), to = late.err.substr(window + 46, 20);
  EXPECT_LE(from, to) << late.err;
}

// Item 5: a restored copy does not archive unless asked; when one did (into the same
// repository), --target-timeline current recovers the original history.
TEST_F(RecoveryTargets, TimelineChoiceAndArchivingOfRestoredCopies) {
  Query("CREATE TABLE t(id int)");
  ASSERT_EQ(Cli({"backup"}).exit_code, 0);
  Query("INSERT INTO t SELECT generate_series(1, 100)");
  SwitchAndWait();

  // The default: archiving off in the copy, even though the backup's configuration has it.
  auto copy = RestoreAndStart("copy", {});
  ASSERT_TRUE(copy);
  EXPECT_NE(last_restore_output_.find("archiving in the restored cluster: off"), std::string::npos);
  EXPECT_EQ(Query(*copy, "SHOW archive_mode"), "off");
  Query(*copy, "SELECT pg_switch_wal()");
  std::this_thread::sleep_for(std::chrono::seconds(2));
  EXPECT_FALSE(HasTimeline(2));
  copy.reset();

  // --archive-mode preserve: the copy archives into the repository on timeline 2.
  auto archiving = RestoreAndStart("archiving", {"--archive-mode", "preserve"});
  ASSERT_TRUE(archiving);
  Query(*archiving, "INSERT INTO t SELECT generate_series(1, 5)");
  SwitchAndWaitOn(*archiving);
  EXPECT_TRUE(HasTimeline(2));
  archiving.reset();

  // The original goes on to 200 rows on timeline 1.
  Query("INSERT INTO t SELECT generate_series(101, 200)");
  std::string t200 = Now();
  Query("CREATE TABLE marker(id int)");  // a commit after the target time
  SwitchAndWait();
  auto current =
      RestoreAndStart("current", {"--target-time", t200, "--target-timeline", "current"});
  ASSERT_TRUE(current);
  EXPECT_EQ(Query(*current, "SELECT count(*) FROM t"), "200");
  current.reset();
  auto numbered = RestoreAndStart("numbered", {"--target-timeline", "1"});
  ASSERT_TRUE(numbered);
  EXPECT_EQ(Query(*numbered, "SELECT count(*) FROM t"), "200");
  numbered.reset();
  // 'latest' follows the copy's timeline 2, and says so: never silently.
  RunResult latest = Cli({"restore", "--pgdata", dir_ / "latest", "--dry-run"});
  ASSERT_EQ(latest.exit_code, 0) << latest.err;
  EXPECT_NE(latest.out.find("timeline 2"), std::string::npos) << latest.out;
}

// Item 6: one damaged manifest is that backup's problem; the others stay restorable.
TEST_F(RecoveryTargets, ADamagedManifestBlocksOnlyItsOwnBackup) {
  Query("CREATE TABLE t(id int)");
  RunResult b1 = Cli({"backup", "--output", "json"});
  ASSERT_EQ(b1.exit_code, 0) << b1.err;
  Query("INSERT INTO t SELECT generate_series(1, 10)");
  std::this_thread::sleep_for(std::chrono::milliseconds(1100));
  RunResult b2 = Cli({"backup", "--output", "json"});
  ASSERT_EQ(b2.exit_code, 0) << b2.err;
  Query("INSERT INTO t SELECT generate_series(11, 20)");
  SwitchAndWait();
  auto flip = [&](const std::string& label) {
    std::string path = dir_ / ("repo/main/backups/" + label + "/manifest.json");
    std::string bytes = test::ReadFile(path);
    bytes[bytes.size() / 2] ^= 0x01;
    test::WriteFile(path, bytes);
    return path;
  };
  std::string m1 = flip(Label(b1));

  auto r = RestoreAndStart("newest", {});
  ASSERT_TRUE(r);
  EXPECT_EQ(Query(*r, "SELECT count(*) FROM t"), "20");
  r.reset();
  RunResult set = Cli({"restore", "--pgdata", dir_ / "set2", "--set", Label(b2), "--dry-run"});
  EXPECT_EQ(set.exit_code, 0) << set.err;
  RunResult set1 = Cli({"restore", "--pgdata", dir_ / "set1", "--set", Label(b1)});
  EXPECT_EQ(set1.exit_code, 6) << set1.err;
  EXPECT_FALSE(fs::exists(dir_ / "set1"));

  RunResult v = Cli({"verify", "--output", "json"});
  EXPECT_EQ(v.exit_code, 6) << v.out << v.err;
  auto report = nlohmann::json::parse(v.out);
  auto& backups = report["repos"][0]["backups"];
  ASSERT_EQ(backups.size(), 2u) << v.out;
  EXPECT_FALSE(backups[0]["ok"].get<bool>());
  EXPECT_TRUE(backups[1]["ok"].get<bool>()) << backups[1].dump();
  RunResult info = Cli({"info"});
  EXPECT_EQ(info.exit_code, 6);
  EXPECT_NE(info.out.find(Label(b1) + "  DAMAGED"), std::string::npos) << info.out;

  // The newest one damaged instead: restore falls back to the older one and says so.
  flip(Label(b1));  // repaired (the same bit flipped back)
  flip(Label(b2));
  auto fallback = RestoreAndStart("fallback", {});
  ASSERT_TRUE(fallback);
  EXPECT_EQ(Query(*fallback, "SELECT count(*) FROM t"), "20");
  EXPECT_NE(last_restore_output_.find("backup " + Label(b1)), std::string::npos);
  EXPECT_NE(last_restore_output_.find("passed over: " + Label(b2) + " skipped"), std::string::npos)
      << last_restore_output_;
}

}  // namespace
}  // namespace gravl
