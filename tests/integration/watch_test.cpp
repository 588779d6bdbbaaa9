// Automatic failover (gravl-dr watch) with a real 3-member etcd cluster on 127.0.0.1 and the
// two regions of the failover tests: a primary ("eu-north-1") and a standby ("us-east-1")
// built from the repository. One agent per region, as processes. Exercised: kill -9 of the
// primary and its agent under pgbench load (promotion after failover_after; detection and
// decision-to-writable measured; the loss measured with a client-side commit log), a
// partition of the primary's agent from etcd (a frozen member: requests hang) while a sampler
// writes to both servers every 100 ms and must never find both writable, the loss of one and
// then two etcd members (nothing changes; no promotion), and flapping (a primary back within
// failover_after keeps its role; an old primary back after a failover stays fenced). A soak
// (label soak, outside the default suite: dev/soak.sh) repeats random kills and partitions.

#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <random>
#include <thread>

#include "common/subprocess.h"
#include "pg/connection.h"
#include "pg/instance.h"
#include "support/cli.h"
#include "support/daemon.h"
#include "support/etcd_cluster.h"
#include "support/http.h"
#include "support/test_util.h"
#include "support/two_regions.h"

namespace gravl {
namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;
using test::TwoRegions;
using test::Writer;

double Seconds(Clock::duration d) { return std::chrono::duration<double>(d).count(); }

// One `gravl-dr watch` process; its stderr in a log file. Killed (-9) when destroyed.
class AgentProcess {
 public:
  AgentProcess(const std::string& config, const std::string& region,
               const std::vector<std::string>& endpoints, const std::string& log,
               std::vector<std::string> extra = {})
      : port_(pg::FindFreePort()), log_(log) {
    std::string urls;
    for (const auto& e : endpoints) urls += (urls.empty() ? "" : ",") + e;
    std::vector<std::string> argv = {test::GravlBinary(),
                                     "--config",
                                     config,
                                     "--etcd-endpoints",
                                     urls,
                                     "--ha-listen",
                                     "127.0.0.1:" + std::to_string(port_)};
    argv.insert(argv.end(), extra.begin(), extra.end());
    argv.insert(argv.end(), {"watch", "--region", region});
    daemon_ = std::make_unique<test::Daemon>(argv, log);
  }
  void Kill() { daemon_->Kill(); }
  // SIGTERM; the exit code (or -1 after 20 s, then killed).
  int Term() {
    int code = daemon_->Term(20);
    return code == -1000 ? -1 : code;
  }
  nlohmann::json Status() const {
    auto a = test::HttpGet("http://127.0.0.1:" + std::to_string(port_) + "/status", 2);
    if (a.status != 200) return nlohmann::json::object();
    auto j = nlohmann::json::parse(a.body, nullptr, false);
    return j.is_discarded() ? nlohmann::json::object() : j;
  }
  std::string Get(const std::string& path) const {
    return test::HttpGet("http://127.0.0.1:" + std::to_string(port_) + path, 2).body;
  }
  std::string Role() const { return Status().value("role", std::string()); }
  std::string Log() const { return test::ReadFile(log_); }

 private:
  int port_;
  std::string log_;
  std::unique_ptr<test::Daemon> daemon_;
};

// Writes to both servers every 100 ms (one row each, in its own transaction) and counts the
// rounds in which both took the write: two writable primaries.
class Sampler {
 public:
  Sampler(std::string a, std::string b) : a_(std::move(a)), b_(std::move(b)) {
    thread_ = std::thread([this] { Loop(); });
  }
  ~Sampler() { Stop(); }
  void Stop() {
    stop_ = true;
    if (thread_.joinable()) thread_.join();
  }
  int both() const { return both_; }
  int rounds() const { return rounds_; }
  // When each server last / first took a write (steady clock), for ordering checks.
  std::optional<Clock::time_point> last_a() {
    std::lock_guard lock(mu_);
    return last_a_;
  }
  std::optional<Clock::time_point> first_b() {
    std::lock_guard lock(mu_);
    return first_b_;
  }

 private:
  static bool Write(std::unique_ptr<pg::Connection>& conn, const std::string& conninfo) {
    try {
      if (!conn) conn = pg::Connection::Open(conninfo + " connect_timeout=2");
      conn->Exec("INSERT INTO probe DEFAULT VALUES");
      return true;
    } catch (const std::exception&) {
      conn.reset();
      return false;
    }
  }
  void Loop() {
    std::unique_ptr<pg::Connection> ca, cb;
    while (!stop_) {
      auto start = Clock::now();
      bool wa = Write(ca, a_);
      bool wb = Write(cb, b_);
      {
        std::lock_guard lock(mu_);
        if (wa) last_a_ = Clock::now();
        if (wb && !first_b_) first_b_ = Clock::now();
      }
      if (wa && wb) ++both_;
      ++rounds_;
      std::this_thread::sleep_until(start + std::chrono::milliseconds(100));
    }
  }
  std::string a_, b_;
  std::atomic<bool> stop_{false};
  std::atomic<int> both_{0}, rounds_{0};
  std::mutex mu_;
  std::optional<Clock::time_point> last_a_, first_b_;
  std::thread thread_;
};

class Watch : public TwoRegions {
 protected:
  static constexpr int kLeaseTtl = 4, kFailoverAfter = 3;

  void SetUp() override {
    // Every process of the test (servers, archive_command, agents) reads the webhook's URL.
    ::setenv("GRAVL_TEST_WATCH_HOOK", receiver_.url("/hook").c_str(), 1);
    ASSERT_FALSE(test::EtcdCluster::Binary().empty())
        << "etcd is not installed: dev/install-deps.sh installs etcd-server";
    etcd_ = std::make_unique<test::EtcdCluster>(dir_ / "etcd");
    TwoRegions::SetUp();
    if (HasFatalFailure()) return;
    // Both servers have the table; the standby gets it by replication.
    Query("CREATE TABLE probe(id bigserial PRIMARY KEY, at timestamptz DEFAULT now())");
  }
  void TearDown() override {
    a_.reset();
    b_.reset();
    TwoRegions::TearDown();
    ::unsetenv("GRAVL_TEST_WATCH_HOOK");
  }
  // The watch events the webhook received ("takeover", "promoted", ...).
  std::vector<std::string> HookEvents() {
    std::vector<std::string> out;
    for (const auto& body : receiver_.Bodies()) {
      auto j = nlohmann::json::parse(body, nullptr, false);
      if (j.is_object() && j.contains("report") && j["report"].contains("event")) {
        out.push_back(j["report"]["event"].get<std::string>());
      }
    }
    return out;
  }
  std::string FailoverExtra() const override {
    // No fencing hook: the lease fences. The endpoint hook records the switch.
    return "  endpoint_command: [sh, -c, 'echo \"$0 $1 $2\" >> " + (dir_ / "endpoint") +
           "', '{region}', '{host}', '{port}']\n"
           "ha:\n  etcd: {prefix: /gravl-dr/test}\n  lease_ttl: " +
           std::to_string(kLeaseTtl) + "s\n  failover_after: " + std::to_string(kFailoverAfter) +
           "s\n  clock_margin: 1s\n  max_loss: 64MB\n"
           "notify:\n  retries: 0\n  timeout: 2\n  targets:\n"
           "    - {name: hook, format: json, url_env: GRAVL_TEST_WATCH_HOOK, events: "
           "['watch.*']}\n";
  }
  std::vector<std::string> Members(std::initializer_list<int> which) const {
    std::vector<std::string> out;
    for (int i : which) out.push_back(etcd_->ClientUrl(i));
    return out;
  }
  void StartAgents(std::vector<std::string> a_endpoints, std::vector<std::string> b_endpoints,
                   std::vector<std::string> a_extra = {}, std::vector<std::string> b_extra = {}) {
    a_ = std::make_unique<AgentProcess>(config_, "eu-north-1", a_endpoints, dir_ / "agent-a.log",
                                        a_extra);
    b_ = std::make_unique<AgentProcess>(config_, "us-east-1", b_endpoints, dir_ / "agent-b.log",
                                        b_extra);
    ASSERT_TRUE(WaitUntil(
        [&] {
          auto b = b_->Status();
          return a_->Role() == "primary" && b.value("role", "") == "standby" &&
                 b["leader"].is_object() && b["leader"].value("region", "") == "eu-north-1";
        },
        30))
        << "agent a: " << a_->Status().dump() << "\n"
        << a_->Log() << "\nagent b: " << b_->Status().dump() << "\n"
        << b_->Log();
  }
  bool WaitUntil(const std::function<bool()>& done, int timeout_s) {
    auto deadline = Clock::now() + std::chrono::seconds(timeout_s);
    while (Clock::now() < deadline) {
      try {
        if (done()) return true;
      } catch (const std::exception&) {
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    return false;
  }
  bool Writable(const std::string& conninfo) {
    try {
      return Sql(conninfo,
                 "SELECT (NOT pg_is_in_recovery() AND "
                 "current_setting('default_transaction_read_only') = 'off')::text") == "true";
    } catch (const std::exception&) {
      return false;
    }
  }
  std::string Logs() { return "agent a:\n" + a_->Log() + "\nagent b:\n" + b_->Log(); }

  test::WebhookReceiver receiver_;
  std::unique_ptr<test::EtcdCluster> etcd_;
  std::unique_ptr<AgentProcess> a_, b_;
};

TEST_F(Watch, PrimaryDeathUnderLoadPromotesTheStandbyWithinTheLossLimit) {
  StartAgents(Members({0, 1, 2}), Members({0, 1, 2}));
  const auto b_status = b_->Status();
  EXPECT_EQ(b_status["leader"]["region"], "eu-north-1") << b_status.dump();
  EXPECT_EQ(b_status["primary_record"]["region"], "eu-north-1");

  Writer writer({A()});
  std::jthread pgbench([&] {
    gravl::Run({cluster_->Bin("pgbench"), "-n", "-c", "2", "-T", "8", "-d", A()});
  });
  while (writer.count() < 300) std::this_thread::sleep_for(std::chrono::milliseconds(20));
  const auto killed = Clock::now();
  a_->Kill();
  Kill(cluster_->data_dir());
  writer.Stop();
  pgbench.join();

  ASSERT_TRUE(WaitUntil([&] { return Writable(B()); }, 90)) << Logs();
  const double to_writable = Seconds(Clock::now() - killed);
  ASSERT_TRUE(WaitUntil([&] { return b_->Status().value("failovers", 0) == 1; }, 120)) << Logs();
  nlohmann::json s = b_->Status();
  EXPECT_EQ(s["role"], "primary") << s.dump();
  EXPECT_EQ(s["primary_record"]["region"], "us-east-1");
  EXPECT_EQ(s["primary_record"]["state"], "primary");
  EXPECT_EQ(s["primary_record"]["previous"], "eu-north-1");
  const std::int64_t token = s["token"].get<std::int64_t>();
  EXPECT_GT(token, 0);
  EXPECT_EQ(s["primary_record"]["token"], token);
  // Not before the lease expired and the key stayed gone for failover_after.
  EXPECT_GE(to_writable, kFailoverAfter) << s.dump();

  // The report: the etcd token, the lease as the fence, the loss within the limit.
  auto reports = Reports("us");
  ASSERT_FALSE(reports.empty());
  const auto& report = reports.back();
  const auto& details = report["details"];
  EXPECT_EQ(details["token"], std::to_string(token)) << report.dump(2);
  EXPECT_GE(details["detection_seconds"].get<double>(), kFailoverAfter) << report.dump(2);
  EXPECT_NE(details.value("lease_fence", std::string()).find("token " + std::to_string(token)),
            std::string::npos);
  const auto& loss = details["loss"];
  EXPECT_LE(loss["bytes"].get<std::uint64_t>(), 64u << 20);
  std::size_t lost = CheckLoss(writer, loss);
  const double decision_to_writable = details["decision_to_writable_seconds"].get<double>();
  std::printf(
      "watch: kill -9 -> writable %.1f s (detection %.1f s after the key was seen gone, "
      "failover %.1f s, decision to writable %.1f s); lost %zu of %zu committed ids; loss "
      "bound %s bytes\n",
      to_writable, s["last_detection_seconds"].get<double>(),
      s["last_failover_seconds"].get<double>(), decision_to_writable, lost, writer.count(),
      loss["bytes"].dump().c_str());
  EXPECT_EQ(test::ReadFile(dir_ / "endpoint"),
            "us-east-1 127.0.0.1 " + std::to_string(port_b_) + "\n");
  EXPECT_TRUE(details["backup"].contains("label")) << report.dump(2);
  // Metrics of the agent.
  std::string metrics = b_->Get("/metrics");
  EXPECT_NE(metrics.find("gravl_ha_role{region=\"us-east-1\",role=\"primary\"} 1"),
            std::string::npos)
      << metrics;
  EXPECT_NE(metrics.find("gravl_ha_fencing_token{region=\"us-east-1\"} " + std::to_string(token)),
            std::string::npos)
      << metrics;
  EXPECT_NE(metrics.find("gravl_ha_failovers_total{region=\"us-east-1\"} 1"), std::string::npos);
  EXPECT_NE(b_->Log().find("event=takeover"), std::string::npos);
  // Every transition is notified (the webhook gets watch.* events as JSON).
  EXPECT_TRUE(WaitUntil(
      [&] {
        auto e = HookEvents();
        return std::count(e.begin(), e.end(), "promoted") == 1;
      },
      20));
  const auto events = HookEvents();
  for (const char* e : {"leader-acquired", "leader-lost", "takeover", "promoted"}) {
    EXPECT_NE(std::find(events.begin(), events.end(), e), events.end())
        << e << " not notified; got " << testing::PrintToString(events);
  }
  EXPECT_EQ(b_->Term(), 0) << b_->Log();
  EXPECT_NE(b_->Log().find("event=stopped"), std::string::npos);
}

TEST_F(Watch, APartitionedPrimaryIsReadOnlyBeforeTheStandbyIsPromotedNeverBothWritable) {
  // The primary's agent reaches etcd only through member 0; freezing it partitions that agent
  // (its requests hang) while members 1 and 2 keep a majority for the standby's agent.
  StartAgents(Members({0}), Members({1, 2}));
  Sampler sampler(A(), B());
  std::this_thread::sleep_for(std::chrono::seconds(2));
  ASSERT_GT(sampler.rounds(), 5);
  etcd_->Freeze(0);
  const auto frozen = Clock::now();
  ASSERT_TRUE(WaitUntil([&] { return Writable(B()); }, 90)) << Logs();
  const double promoted_after = Seconds(Clock::now() - frozen);
  // The old primary stays fenced after the partition heals.
  etcd_->Thaw(0);
  std::this_thread::sleep_for(std::chrono::seconds(4));
  sampler.Stop();
  EXPECT_EQ(sampler.both(), 0) << "rounds in which both servers took a write, of "
                               << sampler.rounds() << "\n"
                               << Logs();
  auto last_a = sampler.last_a();
  auto first_b = sampler.first_b();
  ASSERT_TRUE(last_a && first_b);
  EXPECT_LT(*last_a, *first_b);
  std::printf(
      "watch partition: %d samples, 0 with both writable expected (got %d); old primary's "
      "last write %.1f s after the partition, new primary's first %.1f s after (promoted "
      "%.1f s after)\n",
      sampler.rounds(), sampler.both(), Seconds(*last_a - frozen), Seconds(*first_b - frozen),
      promoted_after);
  EXPECT_NE(a_->Log().find("event=self-fenced"), std::string::npos) << Logs();
  EXPECT_FALSE(Writable(A()));
  EXPECT_TRUE(WaitUntil([&] { return a_->Status().value("etcd_reachable", false); }, 20));
  nlohmann::json s = a_->Status();
  EXPECT_EQ(s["primary_record"]["region"], "us-east-1") << s.dump();
  EXPECT_NE(s["role"], "primary") << s.dump();
}

TEST_F(Watch, EtcdMinorityLossChangesNothingMajorityLossPromotesNobody) {
  StartAgents(Members({0, 1, 2}), Members({0, 1, 2}));
  const auto token = a_->Status()["token"];
  etcd_->Stop(2);
  std::this_thread::sleep_for(std::chrono::seconds(kLeaseTtl + kFailoverAfter + 3));
  EXPECT_TRUE(Writable(A())) << Logs();
  EXPECT_TRUE(InRecovery(B()));
  EXPECT_EQ(a_->Status()["token"], token);
  EXPECT_EQ(a_->Role(), "primary");
  etcd_->Start(2);

  // A majority down: the primary fences itself (no failsafe), nobody is promoted.
  Sampler sampler(A(), B());
  etcd_->Stop(1);
  etcd_->Stop(2);
  EXPECT_TRUE(WaitUntil([&] { return !Writable(A()); }, kLeaseTtl + 5)) << Logs();
  std::this_thread::sleep_for(std::chrono::seconds(kLeaseTtl + kFailoverAfter + 3));
  EXPECT_TRUE(InRecovery(B())) << Logs();
  EXPECT_FALSE(Writable(A()));
  EXPECT_EQ(b_->Status()["etcd_reachable"], false);
  // etcd back: the primary takes its role back (the record names it), the standby stays.
  etcd_->Start(1);
  etcd_->Start(2);
  EXPECT_TRUE(WaitUntil([&] { return Writable(A()); }, 30)) << Logs();
  std::this_thread::sleep_for(std::chrono::seconds(kFailoverAfter + 2));
  sampler.Stop();
  EXPECT_TRUE(InRecovery(B())) << Logs();
  EXPECT_EQ(sampler.both(), 0);
  EXPECT_EQ(b_->Status().value("failovers", -1), 0);
}

TEST_F(Watch, FailsafeKeepsThePrimaryWritableWhileTheStandbyIsStillInRecovery) {
  StartAgents(Members({0, 1, 2}), Members({0, 1, 2}), {"--failsafe", "true"});
  Sampler sampler(A(), B());
  etcd_->Stop(1);
  etcd_->Stop(2);
  std::this_thread::sleep_for(std::chrono::seconds(kLeaseTtl + kFailoverAfter + 3));
  EXPECT_TRUE(Writable(A())) << Logs();
  EXPECT_TRUE(InRecovery(B()));
  EXPECT_NE(a_->Log().find("event=failsafe"), std::string::npos) << Logs();
  etcd_->Start(1);
  etcd_->Start(2);
  std::this_thread::sleep_for(std::chrono::seconds(kFailoverAfter + 2));
  sampler.Stop();
  EXPECT_EQ(sampler.both(), 0);
  EXPECT_TRUE(Writable(A())) << Logs();
  EXPECT_TRUE(InRecovery(B()));
  EXPECT_EQ(a_->Role(), "primary");
}

TEST_F(Watch, SwitchoverWithAgentsRunningHandsTheRecordOverAndNobodyIsFenced) {
  StartAgents(Members({0, 1, 2}), Members({0, 1, 2}));
  std::string urls = etcd_->ClientUrl(0) + "," + etcd_->ClientUrl(1) + "," + etcd_->ClientUrl(2);
  Sampler sampler(A(), B());
  RunResult r = Cli({"--etcd-endpoints", urls, "switchover", "--to", "us-east-1"});
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err << Logs();
  EXPECT_NE(r.out.find("handover-done"), std::string::npos) << r.out;
  EXPECT_TRUE(WaitUntil([&] { return b_->Role() == "primary" && a_->Role() == "standby"; }, 30))
      << Logs();
  std::this_thread::sleep_for(std::chrono::seconds(kLeaseTtl + kFailoverAfter));
  sampler.Stop();
  EXPECT_EQ(sampler.both(), 0);
  EXPECT_TRUE(Writable(B())) << Logs();
  EXPECT_TRUE(InRecovery(A()));
  nlohmann::json s = b_->Status();
  EXPECT_EQ(s["primary_record"]["region"], "us-east-1") << s.dump();
  EXPECT_EQ(s["primary_record"]["state"], "primary");
  EXPECT_EQ(s["leader"]["region"], "us-east-1");
  EXPECT_EQ(s.value("failovers", -1), 0);
  EXPECT_EQ(a_->Log().find("event=takeover"), std::string::npos);
  EXPECT_EQ(b_->Log().find("event=takeover"), std::string::npos) << Logs();
  RunResult info = Cli({"--etcd-endpoints", urls, "info"});
  EXPECT_NE(info.out.find("leader key held by us-east-1"), std::string::npos) << info.out;
  EXPECT_NE(info.out.find("primary of record us-east-1 (primary"), std::string::npos) << info.out;
}

TEST_F(Watch, AFlappingPrimaryKeepsItsRoleAndAReplacedOneStaysFenced) {
  // The standby's agent waits 8 s after the key is gone; the primary's partition lasts about
  // 5 s: longer than its lease (it fences itself), shorter than lease + failover_after.
  StartAgents(Members({0}), Members({1, 2}), {}, {"--failover-after", "8s"});
  etcd_->Freeze(0);
  EXPECT_TRUE(WaitUntil([&] { return !Writable(A()); }, kLeaseTtl + 3)) << Logs();
  std::this_thread::sleep_for(std::chrono::seconds(2));
  etcd_->Thaw(0);
  EXPECT_TRUE(WaitUntil([&] { return Writable(A()); }, 10)) << Logs();
  std::this_thread::sleep_for(std::chrono::seconds(10));
  EXPECT_TRUE(InRecovery(B())) << Logs();
  EXPECT_EQ(a_->Role(), "primary");
  EXPECT_EQ(b_->Status().value("failovers", -1), 0);
  EXPECT_NE(a_->Log().find("event=unfenced"), std::string::npos) << Logs();

  // A partition long enough: the standby is promoted. The old primary, started again as a
  // primary once the partition healed, is fenced by its own agent and never demotes the new.
  etcd_->Freeze(0);
  ASSERT_TRUE(WaitUntil([&] { return Writable(B()); }, 90)) << Logs();
  ASSERT_TRUE(WaitUntil([&] { return b_->Status().value("failovers", 0) == 1; }, 120)) << Logs();
  etcd_->Thaw(0);
  if (!fs::exists(cluster_->data_dir() + "/postmaster.pid")) {
    RunResult start =
        gravl::Run(pg::AsServerUser({cluster_->Bin("pg_ctl"), "-D", cluster_->data_dir(), "-l",
                                     dir_ / "a-again.log", "-w", "start"}));
    ASSERT_EQ(start.exit_code, 0) << start.err;
  }
  EXPECT_TRUE(WaitUntil([&] { return a_->Role() == "fenced"; }, 20)) << Logs();
  Sampler sampler(A(), B());
  std::this_thread::sleep_for(std::chrono::seconds(kLeaseTtl + kFailoverAfter));
  sampler.Stop();
  EXPECT_EQ(sampler.both(), 0);
  EXPECT_FALSE(Writable(A()));
  EXPECT_TRUE(Writable(B()));
  EXPECT_EQ(b_->Role(), "primary");
}

// The soak (label soak, dev/soak.sh; GRAVL_SOAK_SECONDS, default 600): each agent reaches etcd
// through a member of its own (members 0 and 1; member 2 is the witness). Random faults, one
// at a time: a partition of the primary's agent (short: within failover_after; long: a
// failover), kill -9 of the primary's agent (restarted), the loss of one etcd member. After a
// failover the old primary is rebuilt as a standby (failback --no-switchover) and the soak goes
// on with the roles swapped. A sampler writes to both servers every 100 ms throughout.
class WatchSoak : public Watch {};

TEST_F(WatchSoak, RandomKillsAndPartitionsNeverTwoWritablePrimaries) {
  const char* env = std::getenv("GRAVL_SOAK_SECONDS");
  const int seconds = env ? std::atoi(env) : 600;
  StartAgents(Members({0}), Members({1}));
  std::string urls = etcd_->ClientUrl(0) + "," + etcd_->ClientUrl(1) + "," + etcd_->ClientUrl(2);
  std::mt19937 rng(std::random_device{}());
  auto pick = [&](int lo, int hi) { return std::uniform_int_distribution<int>(lo, hi)(rng); };
  Sampler sampler(A(), B());
  std::map<std::string, int> actions;
  int failovers = 0, failbacks = 0;
  const auto end = Clock::now() + std::chrono::seconds(seconds);
  while (Clock::now() < end && !HasFailure()) {
    // Who is primary now: a (eu-north-1, member 0) or b (us-east-1, member 1).
    const bool a_primary = Writable(A());
    std::unique_ptr<AgentProcess>& agent = a_primary ? a_ : b_;
    const std::string region = a_primary ? "eu-north-1" : "us-east-1";
    const int member = a_primary ? 0 : 1;
    const int action = pick(0, 3);
    if (action == 0) {
      ++actions["short partition"];
      etcd_->Freeze(member);
      std::this_thread::sleep_for(std::chrono::seconds(pick(1, kLeaseTtl + kFailoverAfter - 2)));
      etcd_->Thaw(member);
    } else if (action == 1) {
      ++actions["long partition"];
      etcd_->Freeze(member);
      std::this_thread::sleep_for(std::chrono::seconds(kLeaseTtl + kFailoverAfter + 8));
      etcd_->Thaw(member);
    } else if (action == 2) {
      ++actions["agent kill -9"];
      agent->Kill();
      std::this_thread::sleep_for(std::chrono::seconds(pick(1, 6)));
      agent = std::make_unique<AgentProcess>(config_, region, Members({member}),
                                             dir_ / (a_primary ? "agent-a.log" : "agent-b.log"));
    } else {
      ++actions["etcd member down"];
      const int m = pick(0, 2);
      etcd_->Stop(m);
      std::this_thread::sleep_for(std::chrono::seconds(pick(2, 8)));
      etcd_->Start(m);
    }
    // Settle: one writable primary, then the other region a standby again.
    ASSERT_TRUE(WaitUntil([&] { return Writable(A()) || Writable(B()); }, 120)) << Logs();
    std::this_thread::sleep_for(std::chrono::seconds(2));
    const bool a_now = Writable(A());
    if (a_now != a_primary) {
      ++failovers;
      const std::string old = a_primary ? "eu-north-1" : "us-east-1";
      ASSERT_TRUE(WaitUntil(
          [&] { return (a_now ? a_ : b_)->Status().value("role", "") == "primary"; }, 120))
          << Logs();
      RunResult r =
          Cli({"--etcd-endpoints", urls, "failback", "--to", old, "--no-switchover", "--force"});
      ASSERT_EQ(r.exit_code, 0) << r.out << r.err << Logs();
      ++failbacks;
      ASSERT_TRUE(WaitUntil([&] { return InRecovery(a_now ? B() : A()); }, 120)) << Logs();
    }
    ASSERT_TRUE(WaitUntil(
        [&] {
          auto s = (a_now ? b_ : a_)->Status();
          return s.value("role", "") == "standby" && s["leader"].is_object();
        },
        60))
        << Logs();
  }
  sampler.Stop();
  const auto sa = a_->Status(), sb = b_->Status();
  const int transitions = sa.value("transitions", 0) + sb.value("transitions", 0);
  std::string done;
  for (const auto& [k, n] : actions) done += " " + k + "=" + std::to_string(n);
  std::printf(
      "watch soak: %d s, faults:%s; failovers %d, failbacks %d, transitions (current agents) "
      "%d; %d samples, %d with both writable\n",
      seconds, done.c_str(), failovers, failbacks, transitions, sampler.rounds(), sampler.both());
  EXPECT_EQ(sampler.both(), 0) << Logs();
  EXPECT_GT(sampler.rounds(), seconds * 5);
}

}  // namespace
}  // namespace gravl
