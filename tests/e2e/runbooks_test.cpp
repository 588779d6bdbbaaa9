// The runbooks' commands, run as written (tests/e2e/runbook.h) on real local clusters, one test
// per scenario of the strategy:
//   1 pod crash (pod-crash.md): kill -9, restart, archiving checked; then a damaged data
//     directory restored in place with --delta and started, nothing committed lost;
//   2 accidental deletion (data-deletion.md): writes stopped, a copy restored next to
//     production at the moment before the DELETE, the missing rows put back, writes resumed;
//   3 region outage (region-outage.md): the primary killed under load, failover to the other
//     region by the operator script, the loss within the stated bound, then failback;
//   4 restore-test failure (restore-test-failure.md): a drill fails on a damaged backup, verify
//     names the object, the previous backup drills and restores cleanly.
// Each prints its steps' times (the ones the runbooks state). Every shell block of the four
// runbooks is either run here or says why it cannot be (RunbooksMarkEveryCommandBlock).

#include <gtest/gtest.h>
#include <sys/prctl.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <thread>

#include "common/lsn.h"
#include "e2e/runbook.h"
#include "pg/connection.h"
#include "support/archiving_fixture.h"
#include "support/cli.h"
#include "support/restoring_fixture.h"
#include "support/test_util.h"
#include "support/two_regions.h"

namespace gravl {
namespace {

namespace fs = std::filesystem;
using test::Runbook;

void ExpectRanAll(const Runbook& book) {
  EXPECT_EQ(book.Ran(), book.Ids()) << "blocks marked e2e that the test did not run";
}

const char* const kRunbooks[] = {"pod-crash.md", "data-deletion.md", "region-outage.md",
                                 "restore-test-failure.md"};

TEST(Runbooks, MarkEveryCommandBlock) {
  for (const char* name : kRunbooks) {
    Runbook book(name);
    EXPECT_TRUE(book.Unmarked().empty())
        << "shell blocks with neither <!-- e2e: ID --> nor <!-- manual: REASON -->: "
        << testing::PrintToString(book.Unmarked());
    EXPECT_FALSE(book.Ids().empty()) << name << " has no block the end-to-end test runs";
  }
}

// A production cluster archiving into one local repository, its server settings in its own
// configuration (so that pg_ctl, typed by the operator, starts it as the test did), and a side
// directory for copies.
class RunbookFixture : public test::RestoringFixture {
 protected:
  void SetUp() override {
    // Servers that pg_ctl starts (here or in a runbook) are re-parented to this process, so
    // that a killed one can be reaped (test::KillServer).
    ::prctl(PR_SET_CHILD_SUBREAPER, 1);
    RestoringFixture::SetUp();
    if (HasFatalFailure()) return;
    cluster_->AppendConfig({"port = " + std::to_string(cluster_->port()),
                            "listen_addresses = '127.0.0.1'",
                            "unix_socket_directories = '" + cluster_->base_dir() + "'"});
    fs::create_directories(dir_ / "side");
    Chown(dir_.path());
  }
  // The variables each runbook tells the operator to set.
  std::vector<std::string> Env() const {
    return {"GRAVL_DR_CONFIG=" + config_,
            "PGHOST=127.0.0.1",
            "PGPORT=" + std::to_string(cluster_->port()),
            "PGUSER=postgres",
            "PGDATABASE=postgres",
            "PGDATA=" + cluster_->data_dir(),
            "SIDE=" + (dir_ / "side"),
            "SIDE_PORT=" + std::to_string(side_port_)};
  }
  std::string Backup() {
    RunResult r = Cli({"--output", "json", "backup"});
    EXPECT_EQ(r.exit_code, 0) << r.err;
    auto j = nlohmann::json::parse(r.out, nullptr, false);
    return j.is_discarded() ? "" : j.value("label", "");
  }
  void TearDown() override {
    // A copy the operator started and the test did not stop (a failed step).
    if (fs::exists(dir_ / "side/data/postmaster.pid")) {
      gravl::Run(pg::AsServerUser(
          {cluster_->Bin("pg_ctl"), "-D", dir_ / "side/data", "-m", "immediate", "stop"}));
    }
  }

  int side_port_ = pg::FindFreePort();
};

class DataDeletion : public RunbookFixture {};

TEST_F(DataDeletion, TheRunbookPutsTheDeletedRowsBackAndKeepsLaterWrites) {
  Query("CREATE TABLE orders(id int PRIMARY KEY, customer int NOT NULL, note text)");
  Query("INSERT INTO orders SELECT g, g % 10, md5(g::text) FROM generate_series(1, 1000) g");
  ASSERT_FALSE(Backup().empty());
  Query("INSERT INTO orders SELECT g, g % 10, md5(g::text) FROM generate_series(1001, 1500) g");
  std::this_thread::sleep_for(std::chrono::milliseconds(1100));
  const std::string before =
      Query("SELECT to_char(now() AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS.US') || '+00'");
  std::this_thread::sleep_for(std::chrono::milliseconds(1100));
  Query("DELETE FROM orders WHERE customer = 7");  // the accident: 150 rows
  Query("INSERT INTO orders VALUES (2001, 7, 'written after the accident')");
  SwitchAndWait();

  Runbook book("data-deletion.md");
  std::vector<std::string> env = Env();
  env.push_back("BEFORE=" + before);
  book.MustStep("stop-writes", env);
  try {
    Query("INSERT INTO orders VALUES (3000, 1, 'x')");
    ADD_FAILURE() << "a write went through after step 1";
  } catch (const std::exception& e) {
    EXPECT_NE(std::string(e.what()).find("read-only"), std::string::npos) << e.what();
  }
  test::StepResult dry = book.MustStep("dry-run", env);
  EXPECT_NE(dry.out.find("would restore backup"), std::string::npos) << dry.out;
  EXPECT_FALSE(fs::exists(dir_ / "side/data"));
  book.MustStep("restore", env);
  test::StepResult started = book.MustStep("start-copy", env);
  EXPECT_NE(started.out.find(" f\n"), std::string::npos) << started.out;  // promoted
  book.MustStep("export", env);
  test::StepResult put = book.MustStep("put-back", env);
  EXPECT_NE(put.out.find("INSERT 0 150"), std::string::npos) << put.out;
  book.MustStep("resume", env);

  EXPECT_EQ(Query("SELECT count(*) FROM orders"), "1501");
  EXPECT_EQ(Query("SELECT count(*) FROM orders WHERE customer = 7"), "151");
  EXPECT_EQ(Query("SELECT note FROM orders WHERE id = 2001"), "written after the accident");
  EXPECT_EQ(Query("SELECT count(*) FROM pg_tables WHERE tablename = 'restore_orders'"), "0");
  Query("INSERT INTO orders VALUES (3000, 1, 'writes work again')");
  EXPECT_FALSE(fs::exists(dir_ / "side/data"));
  ExpectRanAll(book);
}

class RestoreTestFailure : public RunbookFixture {};

TEST_F(RestoreTestFailure, ADrillFailsOnADamagedBackupAndThePreviousOneRestores) {
  Query("CREATE TABLE t(id int PRIMARY KEY, v text)");
  Query("INSERT INTO t SELECT g, md5(g::text) FROM generate_series(1, 20000) g");
  const std::string older = Backup();
  std::this_thread::sleep_for(std::chrono::milliseconds(1100));
  Query("INSERT INTO t SELECT g, md5(g::text) FROM generate_series(20001, 30000) g");
  const std::string newest = Backup();
  ASSERT_FALSE(older.empty());
  ASSERT_FALSE(newest.empty());
  Query("INSERT INTO t VALUES (30001, 'after both backups')");
  SwitchAndWait();
  // The newest backup's largest object gets one flipped byte.
  fs::path victim;
  for (const auto& e : fs::recursive_directory_iterator(dir_ / ("repo/main/backups/" + newest))) {
    if (e.is_regular_file() && e.path().filename() != "manifest.json" &&
        (victim.empty() || e.file_size() > fs::file_size(victim))) {
      victim = e.path();
    }
  }
  ASSERT_FALSE(victim.empty());
  {
    std::fstream f(victim, std::ios::in | std::ios::out | std::ios::binary);
    f.seekg(static_cast<std::streamoff>(fs::file_size(victim) / 2));
    char c = 0;
    f.read(&c, 1);
    c = static_cast<char>(c ^ 0x20);
    f.seekp(static_cast<std::streamoff>(fs::file_size(victim) / 2));
    f.write(&c, 1);
  }
  // The weekly drill (the CronJob's command) fails on it.
  RunResult weekly = Cli({"test-restore"});
  ASSERT_EQ(weekly.exit_code, 6) << weekly.out << weekly.err;

  Runbook book("restore-test-failure.md");
  std::vector<std::string> env = Env();
  test::StepResult what = book.MustStep("what-failed", env);
  EXPECT_NE(what.out.find("FAILED"), std::string::npos) << what.out;
  EXPECT_NE(what.out.find("the failed drill restored backup " + newest), std::string::npos)
      << what.out;
  test::StepResult again = book.MustStep("reproduce", env);
  EXPECT_NE(again.out.find("drill exit code: 6"), std::string::npos) << again.out << again.err;
  test::StepResult verify = book.MustStep("verify", env);
  EXPECT_NE(verify.out.find("verify exit code: 6"), std::string::npos) << verify.out;
  EXPECT_NE((verify.out + verify.err).find(victim.filename().string()), std::string::npos)
      << "verify does not name " << victim << ":\n"
      << verify.out << verify.err;
  test::StepResult previous = book.MustStep("drill-previous", env);
  EXPECT_NE(previous.out.find("previous backup: " + older), std::string::npos) << previous.out;
  book.MustStep("restore-previous", env);
  EXPECT_TRUE(fs::exists(dir_ / "side/data/PG_VERSION"));
  // The copy recovers past both backups, to the end of the archived WAL.
  auto copy = pg::Instance::Adopt({}, dir_ / "side/data");
  for (int i = 0;
       i < 600 && copy->Psql("SELECT pg_is_in_recovery()").find('f') == std::string::npos; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  EXPECT_EQ(copy->Psql("SELECT count(*) FROM t"), "30001\n");
  copy->Stop(true);
  copy.reset();
  book.MustStep("new-backup", env);
  RunResult info = Cli({"info"});
  EXPECT_NE(info.out.find("passed"), std::string::npos) << info.out;
  EXPECT_TRUE(fs::exists(dir_ / ("repo/main/pins/" + older)))
      << "the last good backup is not pinned";
  ExpectRanAll(book);
}

class PodCrash : public RunbookFixture {};

TEST_F(PodCrash, CrashRecoveryThenADamagedDataDirectoryRestoredInPlaceLosesNothingArchived) {
  Query("CREATE TABLE commits(id int PRIMARY KEY, v text)");
  Query("INSERT INTO commits SELECT g, md5(g::text) FROM generate_series(1, 1000) g");
  ASSERT_FALSE(Backup().empty());
  Query("INSERT INTO commits SELECT g, md5(g::text) FROM generate_series(1001, 2000) g");
  const std::string data = cluster_->data_dir();
  const std::string relation = data + "/" + Query("SELECT pg_relation_filepath('commits')");

  // The crash, and the restart Kubernetes does.
  test::KillServer(data);
  if (HasFatalFailure()) return;
  auto pg_ctl_start = [&] {
    RunResult r = gravl::Run(pg::AsServerUser(
        {cluster_->Bin("pg_ctl"), "-D", data, "-l", dir_ / "restart.log", "-w", "start"}));
    ASSERT_EQ(r.exit_code, 0) << r.out << r.err << test::ReadFile(dir_ / "restart.log");
  };
  pg_ctl_start();
  if (HasFatalFailure()) return;
  Runbook book("pod-crash.md");
  std::vector<std::string> env = Env();
  test::StepResult ready = book.MustStep("ready", env);
  EXPECT_NE(ready.out.find("accepting connections"), std::string::npos) << ready.out;
  book.MustStep("check-archiving", env);
  EXPECT_EQ(Query("SELECT count(*) FROM commits"), "2000");  // crash recovery lost nothing

  // More commits, archived; then the crash damages the data directory: the table's file
  // zeroed (a server started on it would silently miss the rows) and pg_control gone.
  Query("INSERT INTO commits SELECT g, md5(g::text) FROM generate_series(2001, 2500) g");
  SwitchAndWait();
  test::KillServer(data);
  if (HasFatalFailure()) return;
  {
    std::uintmax_t size = fs::file_size(relation);
    std::ofstream zero(relation, std::ios::binary | std::ios::trunc);
    zero << std::string(size, '\0');
  }
  fs::remove(data + "/global/pg_control");
  book.MustStep("restore-in-place", env);
  book.MustStep("start-restored", env);
  EXPECT_EQ(Query("SELECT count(*) FROM commits"), "2500");
  EXPECT_EQ(Query("SHOW archive_mode"), "on");  // still the primary, archiving
  Query("CREATE EXTENSION IF NOT EXISTS amcheck");
  EXPECT_EQ(Query("SELECT count(*) FROM verify_heapam('commits')"), "0");
  ExpectRanAll(book);
}

class RegionOutage : public test::TwoRegions {
 protected:
  std::vector<std::string> Env() const {
    return {"GRAVL_DR_CONFIG=" + config_, "EU_NORTH_1=" + A(), "US_EAST_1=" + B(),
            "EU_PGDATA=" + cluster_->data_dir()};
  }
  nlohmann::json NewestReport(const std::string& repo, const std::string& command) {
    nlohmann::json newest;
    for (const auto& r : Reports(repo)) {
      if (r.value("subject", "") == command) newest = r;
    }
    return newest;
  }
};

TEST_F(RegionOutage, FailoverByTheRunbookLosesNoMoreThanItsBoundThenBackAndAPlannedSwitchover) {
  test::Writer writer({A()});
  while (writer.count() < 300) std::this_thread::sleep_for(std::chrono::milliseconds(20));
  Kill(cluster_->data_dir());  // the region is gone
  writer.Stop();
  if (HasFatalFailure()) return;

  Runbook book("region-outage.md");
  const std::vector<std::string> env = Env();
  test::StepResult confirm = book.MustStep("confirm", env);
  EXPECT_NE(confirm.out.find("eu-north-1 does not answer"), std::string::npos) << confirm.out;
  book.MustStep("plan", env);
  EXPECT_TRUE(InRecovery(B())) << "the dry run changed something";
  book.MustStep("failover", env);
  ASSERT_FALSE(InRecovery(B()));
  EXPECT_EQ(test::ReadFile(dir_ / "fenced"), "eu-north-1\n");

  // The loss: every acknowledged commit missing on us-east-1 lies in the WAL the report
  // says was lost.
  nlohmann::json report = NewestReport("us", "failover");
  ASSERT_TRUE(report.contains("details")) << report.dump(2);
  const nlohmann::json& loss = report["details"]["loss"];
  ASSERT_TRUE(loss.contains("replayed")) << report.dump(2);
  std::size_t lost = CheckLoss(writer, loss);
  std::printf("region outage: %zu of %zu acknowledged commits lost (report: %s bytes)\n", lost,
              writer.count(), loss["bytes"].dump().c_str());
  const std::set<long> present = Ids(B());
  book.MustStep("check-new-primary", env);
  Sql(B(), "INSERT INTO commits(id) VALUES (-1)");

  // E: the old primary's supervisor restarts it -- a second writable primary -- and the
  // runbook finds the real one and fences the other.
  {
    RunResult start =
        gravl::Run(pg::AsServerUser({cluster_->Bin("pg_ctl"), "-D", cluster_->data_dir(), "-l",
                                     dir_ / "a-again.log", "-w", "start"}));
    ASSERT_EQ(start.exit_code, 0) << start.err << test::ReadFile(dir_ / "a-again.log");
  }
  Sql(A(), "INSERT INTO commits(id) VALUES (-100)");  // taken by the wrong primary
  test::StepResult found = book.MustStep("find-primary", env);
  EXPECT_NE(found.out.find("WARNING: 2 writable primaries (eu-north-1, us-east-1): keep us-east-1 "
                           "(timeline 2)"),
            std::string::npos)
      << found.out;
  book.MustStep("fence-old-primary", env);

  // C: back to eu-north-1.
  book.MustStep("failback-plan", env);
  // The old primary took a write while it was back (before the fence): a fork, so the
  // rebuild refuses (13) and the runbook's fork branch forces it -- every time, whatever the
  // kill lost.
  test::StepResult failback = book.Step("failback", env);
  EXPECT_EQ(failback.exit_code, 13) << failback.out << failback.err;
  EXPECT_NE((failback.out + failback.err).find("fork-check"), std::string::npos)
      << failback.out << failback.err;
  book.MustStep("failback-force", env);
  EXPECT_TRUE(Streams(A()));
  book.MustStep("switch-back", env);
  EXPECT_FALSE(InRecovery(A()));
  EXPECT_TRUE(Streams(B()));
  book.MustStep("repositories", env);
  EXPECT_EQ(Sql(A(), "SELECT count(*)::text FROM commits WHERE id = -1"), "1");

  // D: a planned switchover loses nothing.
  Query("INSERT INTO commits(id) VALUES (-2)");
  book.MustStep("switchover", env);
  EXPECT_FALSE(InRecovery(B()));
  EXPECT_EQ(Sql(B(), "SELECT count(*)::text FROM commits WHERE id IN (-1, -2)"), "2");
  const std::set<long> now = Ids(B());
  for (long id : present) EXPECT_TRUE(now.count(id)) << id;
  AmCheck(port_b_);
  ExpectRanAll(book);
}

}  // namespace
}  // namespace gravl
