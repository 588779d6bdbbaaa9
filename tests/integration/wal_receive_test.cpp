// The WAL streaming receiver against real servers (docs/wal-receive.md): the RPO measured with
// a client-side log of acknowledged commits -- the primary killed (-9) and its data directory
// deleted, the receiver killed and its spool deleted, then a restore to "latest" from the
// repository alone (posix and S3) -- in synchronous mode (no acknowledged commit may be
// missing) and asynchronous mode (the loss stays within partial_interval); kill -9 of the
// receiver under load; and a failover in the middle, after which it follows the new timeline.

#include <gtest/gtest.h>
#include <sys/prctl.h>

#include <chrono>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <thread>

#include "pg/instance.h"
#include "repo/partial.h"
#include "repo/repository.h"
#include "repo/wal_index.h"
#include "storage/factory.h"
#include "support/cli.h"
#include "support/daemon.h"
#include "support/http.h"
#include "support/restoring_fixture.h"
#include "support/s3_gateway.h"
#include "support/two_regions.h"

namespace gravl {
namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

// One `gravl-dr wal-receive --create-slot` process.
class ReceiverProcess {
 public:
  ReceiverProcess(const std::string& config, const std::string& log,
                  std::vector<std::string> extra = {})
      : port_(pg::FindFreePort()) {
    std::vector<std::string> argv = {test::GravlBinary(), "--config", config, "--receive-listen",
                                     "127.0.0.1:" + std::to_string(port_)};
    argv.insert(argv.end(), extra.begin(), extra.end());
    argv.insert(argv.end(), {"wal-receive", "--create-slot"});
    daemon_ = std::make_unique<test::Daemon>(argv, log);
  }
  nlohmann::json Status() const {
    auto a = test::HttpGet("http://127.0.0.1:" + std::to_string(port_) + "/status", 2);
    if (a.status != 200) return nlohmann::json::object();
    auto j = nlohmann::json::parse(a.body, nullptr, false);
    return j.is_discarded() ? nlohmann::json::object() : j;
  }
  std::string Metrics() const {
    return test::HttpGet("http://127.0.0.1:" + std::to_string(port_) + "/metrics", 2).body;
  }
  // Waits until it streams; false after `timeout_s`.
  bool WaitConnected(int timeout_s = 60) {
    for (int i = 0; i < timeout_s * 10; ++i) {
      if (Status().value("connected", false)) return true;
      if (!daemon_->Running()) return false;
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    return false;
  }
  test::Daemon& daemon() { return *daemon_; }

 private:
  int port_;
  std::unique_ptr<test::Daemon> daemon_;
};

// Runs pgbench for `seconds` in the background (load beside the commit log).
class Pgbench {
 public:
  Pgbench(const pg::Instance& pg, int seconds) {
    thread_ = std::thread([bin = pg.Bin("pgbench"), ci = pg.conninfo(), seconds] {
      gravl::Run({bin, "-c", "2", "-j", "2", "-T", std::to_string(seconds), "-d", ci});
    });
  }
  ~Pgbench() {
    if (thread_.joinable()) thread_.join();
  }

 private:
  std::thread thread_;
};

struct Mode {
  std::string repo;  // posix or s3
  bool synchronous;
};
void PrintTo(const Mode& m, std::ostream* os) {
  *os << m.repo << (m.synchronous ? " synchronous" : " asynchronous");
}

class WalReceive : public test::RestoringFixture, public ::testing::WithParamInterface<Mode> {
 protected:
  void SetUp() override {
    ::prctl(PR_SET_CHILD_SUBREAPER, 1);  // KillServer reaps the killed postmaster's children
    if (GetParam().repo == "s3") gw_ = std::make_unique<test::S3Gateway>();
    ArchivingFixture::SetUp();
    if (HasFatalFailure()) return;
    Query("CREATE TABLE commits(id bigint PRIMARY KEY, at timestamptz DEFAULT now())");
    RunChecked({cluster_->Bin("pgbench"), "-i", "-s", "2", "-q", "-d", cluster_->conninfo()});
  }
  std::vector<std::string> ClusterSettings() const override {
    return {"max_wal_senders = 10", "wal_sender_timeout = '20s'"};
  }
  std::string ConfigBody() const override {
    std::string repos =
        GetParam().repo == "s3"
            ? "repos:\n  - name: s3\n" + gw_->RepoYaml("db1", dir_ / "s3-secret") +
                  "    retry_timeout: 20\n"
            : "repos:\n  - {name: local, type: posix, path: " + (dir_ / "repo") + "}\n";
    return repos + "archive: {async: false}\nparallel: 2\nwal_receive:\n  synchronous: " +
           (GetParam().synchronous ? "true" : "false") + "\n  spool_path: " + (dir_ / "receive") +
           "\n  partial_interval: 500ms\n";
  }
  std::unique_ptr<repo::Repository> OpenRepo() {
    RepoConfig rc;
    if (gw_) {
      rc.name = "s3";
      rc.type = "s3";
      rc.s3 = gw_->Repo("db1");
    } else {
      rc = RepoConfig{"local", "posix", dir_ / "repo"};
    }
    return std::make_unique<repo::Repository>(rc, storage::OpenStorage(rc), "main");
  }
  // The end of the newest complete segment in the repository.
  Lsn NewestCompleteEnd() {
    auto r = OpenRepo();
    auto index = repo::WalIndex::Build(*r);
    auto newest = index.Newest();
    return newest ? Lsn{(newest->segno + 1) * index.segment_size()} : Lsn{};
  }
  bool SyncStandbyAttached() {
    return Query(
               "SELECT count(*) FROM pg_stat_replication WHERE application_name = 'gravl_dr' "
               "AND sync_state = 'sync'") == "1";
  }
  std::set<long> Ids(const pg::Instance& pg) {
    std::set<long> ids;
    auto c = pg::Connection::Open(pg.conninfo());
    for (const auto& row : c->Query("SELECT id FROM commits")) ids.insert(std::stol(row[0]));
    return ids;
  }

  std::unique_ptr<test::S3Gateway> gw_;
};

// The measurement: everything that could hold WAL besides the repository is destroyed.
TEST_P(WalReceive, RestoreFromTheRepositoryAloneAfterPrimaryAndSpoolAreLost) {
  const bool sync = GetParam().synchronous;
  ASSERT_EQ(Cli({"backup"}).exit_code, 0);
  ReceiverProcess receiver(config_, dir_ / "receiver.log");
  ASSERT_TRUE(receiver.WaitConnected()) << receiver.daemon().Log();
  if (sync) {
    // Listed only now: before, every commit (the setup's too) would wait for it.
    Query("ALTER SYSTEM SET synchronous_standby_names = 'gravl_dr'");
    Query("SELECT pg_reload_conf()");
    for (int i = 0; i < 100 && !SyncStandbyAttached(); ++i) {
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    ASSERT_TRUE(SyncStandbyAttached()) << receiver.daemon().Log();
  }
  Clock::time_point killed;
  std::map<long, Lsn> committed;
  std::map<long, Clock::time_point> acknowledged_at;
  {
    Pgbench load(*cluster_, 6);
    test::Writer writer({cluster_->conninfo()});
    std::this_thread::sleep_for(std::chrono::seconds(5));
    test::KillServer(cluster_->data_dir());
    killed = Clock::now();
    writer.Stop();
    committed = writer.committed();
    acknowledged_at = writer.acknowledged_at();
  }
  ASSERT_GT(committed.size(), 20u);
  // Let an asynchronous receiver's last interval pass (what it has then is what a crash at
  // that moment would leave); a synchronous one has nothing to add.
  std::this_thread::sleep_for(std::chrono::milliseconds(sync ? 0 : 100));
  nlohmann::json status = receiver.Status();
  std::string metrics = receiver.Metrics();
  receiver.daemon().Kill();
  fs::remove_all(cluster_->data_dir());
  fs::remove_all(dir_ / "receive");

  auto restored = RestoreAndStart("restored", {});
  ASSERT_TRUE(restored) << last_restore_output_;
  std::set<long> present = Ids(*restored);
  std::size_t lost = 0;
  Lsn newest_present;
  for (const auto& [id, lsn] : committed) {
    if (present.count(id)) {
      newest_present = std::max(newest_present, lsn);
      continue;
    }
    ++lost;
    if (!sync) {
      // Asynchronous: lost only what was acknowledged within the last partial_interval
      // (500 ms), plus the upload and the kill; 5 s leaves room for a loaded 2-core runner.
      double age = std::chrono::duration<double>(killed - acknowledged_at[id]).count();
      EXPECT_LT(age, 5.0) << "commit " << id << " acknowledged " << age
                          << " s before the kill is missing";
    }
  }
  const Lsn complete_end = NewestCompleteEnd();
  std::cout << "[ measured ] " << GetParam().repo << (sync ? " synchronous" : " asynchronous")
            << ": " << committed.size() << " acknowledged commits, " << lost
            << " missing after the restore; newest restored commit at " << newest_present.ToString()
            << ", complete segments end at " << complete_end.ToString()
            << "; receiver: " << status.dump() << "\n";
  if (sync) {
    EXPECT_EQ(lost, 0u);
  }
  // The newest commits came from the partial segment: beyond every complete segment.
  EXPECT_GT(newest_present, complete_end) << "no commit beyond the complete segments was restored";
  EXPECT_NE(metrics.find("gravl_receive_position_bytes{stage=\"uploaded\"}"), std::string::npos)
      << metrics;
  restored->Stop();
}

// kill -9 of the receiver under load, three times, with archive-push archiving the same WAL
// beside it: nothing lost, no conflicting object (the archiver never fails), complete segments
// only under wal/.
class WalReceiveRestart : public WalReceive {};

TEST_P(WalReceiveRestart, KilledUnderLoadLosesNothingAndConflictsWithNothing) {
  EnableArchiving();
  ASSERT_EQ(Cli({"backup"}).exit_code, 0);
  Query("ALTER SYSTEM SET synchronous_standby_names = 'gravl_dr'");
  Query("SELECT pg_reload_conf()");
  auto receiver = std::make_unique<ReceiverProcess>(config_, dir_ / "receiver.log");
  ASSERT_TRUE(receiver->WaitConnected()) << receiver->daemon().Log();
  std::map<long, Lsn> committed;
  int kills = 0;
  {
    Pgbench load(*cluster_, 10);
    test::Writer writer({cluster_->conninfo()});
    for (int i = 0; i < 3; ++i) {
      std::this_thread::sleep_for(std::chrono::milliseconds(2500));
      std::size_t before = writer.count();
      receiver->daemon().Kill();
      ++kills;
      receiver = std::make_unique<ReceiverProcess>(config_, dir_ / "receiver.log");
      ASSERT_TRUE(receiver->WaitConnected()) << receiver->daemon().Log();
      // Synchronous commits go on once it is back.
      for (int w = 0; w < 100 && writer.count() <= before + 5; ++w) {
        std::this_thread::sleep_for(std::chrono::milliseconds(100));
      }
      EXPECT_GT(writer.count(), before + 5) << "no commit after restart " << i;
    }
    writer.Stop();
    committed = writer.committed();
  }
  std::string last = SwitchAndWait();
  EXPECT_EQ(Query("SELECT failed_count FROM pg_stat_archiver"), "0")
      << "archive-push met a conflicting object: " << cluster_->LogTail();
  // The receiver archives the same segments (same objects) and empties its spool.
  const Lsn end = Lsn::Parse(Query("SELECT pg_current_wal_lsn()"));
  bool caught_up = false;
  for (int i = 0; i < 300 && !caught_up; ++i) {
    auto st = receiver->Status();
    caught_up = st.contains("uploaded") && Lsn::Parse(st["uploaded"].get<std::string>()) >= end &&
                st.value("pending_segments", 1) == 0;
    if (!caught_up) std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  EXPECT_TRUE(caught_up) << receiver->Status().dump() << receiver->daemon().Log();
  std::string log = receiver->daemon().Log();
  EXPECT_EQ(log.find("already holds"), std::string::npos) << log;  // ConflictError text
  {
    auto r = OpenRepo();
    auto index = repo::WalIndex::Build(*r);
    EXPECT_TRUE(index.conflicts().empty());
    EXPECT_TRUE(index.others().empty() || std::all_of(index.others().begin(), index.others().end(),
                                                      [](const repo::WalObject& o) {
                                                        return o.name.find(".backup") !=
                                                               std::string::npos;
                                                      }));
  }
  test::KillServer(cluster_->data_dir());
  receiver->daemon().Kill();
  fs::remove_all(cluster_->data_dir());
  fs::remove_all(dir_ / "receive");
  auto restored = RestoreAndStart("restored", {});
  ASSERT_TRUE(restored) << last_restore_output_;
  std::set<long> present = Ids(*restored);
  std::size_t lost = 0;
  for (const auto& [id, lsn] : committed) lost += present.count(id) ? 0u : 1u;
  std::cout << "[ measured ] " << kills << " receiver kills under load: " << committed.size()
            << " acknowledged commits, " << lost << " missing after the restore\n";
  EXPECT_EQ(lost, 0u);
  restored->Stop();
}

INSTANTIATE_TEST_SUITE_P(Sync, WalReceiveRestart, ::testing::Values(Mode{"posix", true}),
                         [](const ::testing::TestParamInfo<Mode>&) {
                           return std::string("posix");
                         });

INSTANTIATE_TEST_SUITE_P(Modes, WalReceive,
                         ::testing::Values(Mode{"posix", true}, Mode{"s3", true},
                                           Mode{"posix", false}),
                         [](const ::testing::TestParamInfo<Mode>& p) {
                           return p.param.repo +
                                  (p.param.synchronous ? "Synchronous" : "Asynchronous");
                         });

// A failover in the middle: the receiver streams from whichever region is primary (two hosts,
// target_session_attrs=primary), and after us-east-1 is promoted it continues there on
// timeline 2, creating its slot; a restore from the repository reaches the new timeline's
// newest commit.
class WalReceiveFailover : public test::TwoRegions {
 protected:
  std::string ConfigBody() const override {
    return test::TwoRegions::ConfigBody() +
           "wal_receive:\n  conninfo: \"host=127.0.0.1,127.0.0.1 port=" +
           std::to_string(cluster_->port()) + "," + std::to_string(port_b_) +
           " user=postgres dbname=postgres target_session_attrs=primary\"\n"
           "  synchronous: true\n  spool_path: " +
           (dir_ / "receive") + "\n";
  }
};

TEST_F(WalReceiveFailover, FollowsTheNewTimelineOfThePromotedRegion) {
  ReceiverProcess receiver(config_, dir_ / "receiver.log");
  ASSERT_TRUE(receiver.WaitConnected()) << receiver.daemon().Log();
  EXPECT_EQ(receiver.Status().value("timeline", 0), 1);
  Sql(A(), "ALTER SYSTEM SET synchronous_standby_names = 'gravl_dr'");
  Sql(A(), "SELECT pg_reload_conf()");
  std::map<long, Lsn> before;
  {
    test::Writer writer({A()});
    std::this_thread::sleep_for(std::chrono::seconds(3));
    Kill(cluster_->data_dir());
    writer.Stop();
    before = writer.committed();
  }
  RunResult r = Cli({"failover", "--to", "us-east-1", "--output", "json"});
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  // Every commit the old primary acknowledged was in the repository (synchronous receiver),
  // and the failover's catch-up replays the receiver's partial segment too: none is lost.
  {
    const std::set<long> on_b = Ids(B());
    std::size_t lost = 0;
    for (const auto& [id, lsn] : before) lost += on_b.count(id) ? 0u : 1u;
    std::cout << "[ measured ] failover after kill -9 with a synchronous receiver: " << lost
              << " of " << before.size() << " acknowledged commits lost; loss "
              << Json(r)["loss"].dump() << "\n";
    EXPECT_EQ(lost, 0u) << r.out;
  }
  // The receiver finds the new primary, creates its slot there and follows timeline 2.
  bool followed = false;
  for (int i = 0; i < 600 && !followed; ++i) {
    auto st = receiver.Status();
    followed = st.value("connected", false) && st.value("timeline", 0) == 2;
    if (!followed) std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  ASSERT_TRUE(followed) << receiver.Status().dump() << receiver.daemon().Log();
  EXPECT_EQ(Sql(B(), "SELECT count(*) FROM pg_replication_slots WHERE slot_name = 'gravl_dr'"),
            "1");
  std::map<long, Lsn> after;
  {
    test::Writer writer({B()}, 1000000);
    std::this_thread::sleep_for(std::chrono::seconds(2));
    writer.Stop();
    after = writer.committed();
  }
  ASSERT_FALSE(after.empty()) << "synchronous_standby_names on us-east-1: "
                              << Sql(B(), "SHOW synchronous_standby_names") << "; receiver "
                              << receiver.Status().dump();
  const Lsn end = Lsn::Parse(Sql(B(), "SELECT pg_current_wal_lsn()::text"));
  bool uploaded = false;
  for (int i = 0; i < 300 && !uploaded; ++i) {
    auto st = receiver.Status();
    uploaded = st.contains("uploaded") && Lsn::Parse(st["uploaded"].get<std::string>()) >= end;
    if (!uploaded) std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  ASSERT_TRUE(uploaded) << receiver.Status().dump();
  const std::set<long> truth = Ids(B());  // the new history's commits
  EXPECT_NE(receiver.daemon().Log().find("event=timeline-end"), std::string::npos);

  // Both servers and the receiver's spool gone: the repository alone.
  Kill(dir_ / "b/data");
  receiver.daemon().Kill();
  fs::remove_all(dir_ / "b/data");
  fs::remove_all(dir_ / "receive");
  const std::string pgdata = dir_ / "restored";
  RunResult rr = Cli({"--repo", "us-east-1", "restore", "--pgdata", pgdata});
  ASSERT_EQ(rr.exit_code, 0) << rr.out << rr.err;
  pg::InstanceOptions o;
  o.base_dir = dir_ / "restored-run";
  auto restored = pg::Instance::Adopt(o, pgdata);
  for (int i = 0; i < 600 && restored->Psql("SELECT pg_is_in_recovery()") != "f\n"; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  std::set<long> present;
  {
    auto c = pg::Connection::Open(restored->conninfo());
    for (const auto& row : c->Query("SELECT id FROM commits")) present.insert(std::stol(row[0]));
  }
  std::size_t missing = 0;
  for (long id : truth) missing += present.count(id) ? 0u : 1u;
  std::size_t after_missing = 0;
  for (const auto& [id, lsn] : after) after_missing += present.count(id) ? 0u : 1u;
  std::cout << "[ measured ] failover in the middle: " << before.size()
            << " commits on timeline 1, " << after.size() << " on timeline 2; " << missing
            << " of the new history's " << truth.size() << " missing after the restore\n";
  EXPECT_EQ(missing, 0u);
  EXPECT_EQ(after_missing, 0u);
  restored->Stop();
}

// The standby stops streaming (its primary_conninfo emptied) while the primary goes on
// committing through the synchronous receiver; then the primary's region is lost. The failover
// catches the standby up from the repository -- complete segments and the receiver's partial
// segment, through archive-get -- and loses no acknowledged commit.
TEST_F(WalReceiveFailover, ALaggingStandbyCatchesUpFromThePartialSegmentLosingNothing) {
  ReceiverProcess receiver(config_, dir_ / "receiver.log");
  ASSERT_TRUE(receiver.WaitConnected()) << receiver.daemon().Log();
  Sql(A(), "ALTER SYSTEM SET synchronous_standby_names = 'gravl_dr'");
  Sql(A(), "SELECT pg_reload_conf()");
  Sql(B(), "ALTER SYSTEM SET primary_conninfo = ''");
  Sql(B(), "SELECT pg_reload_conf()");
  for (int i = 0; i < 100 && Streams(B(), 0); ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  const Lsn standby_received = Lsn::Parse(Sql(B(), "SELECT pg_last_wal_receive_lsn()::text"));
  std::map<long, Lsn> committed;
  {
    test::Writer writer({A()});
    std::this_thread::sleep_for(std::chrono::seconds(3));
    Kill(cluster_->data_dir());
    writer.Stop();
    committed = writer.committed();
  }
  ASSERT_FALSE(committed.empty());
  EXPECT_GT(committed.rbegin()->second, standby_received) << "the standby did not lag";
  RunResult r = Cli({"failover", "--to", "us-east-1", "--output", "json"});
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  const std::set<long> on_b = Ids(B());
  std::size_t lost = 0;
  for (const auto& [id, lsn] : committed) lost += on_b.count(id) ? 0u : 1u;
  std::cout << "[ measured ] lagging standby (received " << standby_received.ToString()
            << "), failover after kill -9: " << lost << " of " << committed.size()
            << " acknowledged commits lost (newest at " << committed.rbegin()->second.ToString()
            << "); loss " << Json(r)["loss"].dump() << "\n";
  EXPECT_EQ(lost, 0u) << r.out;
}

}  // namespace
}  // namespace gravl
