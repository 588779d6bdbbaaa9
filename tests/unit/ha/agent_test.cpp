// The watch agent's decisions (ha/agent.h) against the memory store and a fake server, with
// short real durations (lease 2 s, failover_after 1 s, margin 0.5 s): the primary takes and
// renews the key; the standby takes over only after failover_after, with the new key's
// revision as the fencing token; a partitioned primary fences itself before its lease can
// expire; a replaced primary stays fenced; manual mode never acts; a refused failover gives
// the key and the record back; failsafe keeps serving while the other region is a standby.
// Also the primary record's JSON and the handover of switchover.

#include "ha/agent.h"

#include <gtest/gtest.h>

#include <atomic>
#include <thread>

#include "common/error.h"
#include "ha/store.h"

namespace gravl::ha {
namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

class FakeServer : public LocalServer {
 public:
  explicit FakeServer(bool primary) : primary_(primary), writable_(primary) {}
  LocalState Check() override {
    std::lock_guard lock(mu_);
    LocalState s;
    s.reachable = reachable_;
    s.primary = primary_;
    s.writable = primary_ && writable_;
    s.timeline = timeline_;
    if (!reachable_) s.error = "down";
    return s;
  }
  std::string Fence(bool) override {
    std::lock_guard lock(mu_);
    if (failing_fences_ > 0) {  // a fence that does not hold (the server refused it)
      --failing_fences_;
      ++fences_;
      return "could not be made read-only";
    }
    writable_ = false;
    ++fences_;
    fenced_at_ = Clock::now();
    return "read-only";
  }
  std::string Start() override { return "running"; }
  std::string Unfence() override {
    std::lock_guard lock(mu_);
    writable_ = true;
    ++unfences_;
    return "writable";
  }
  bool PeersStillStandby() override { return peers_standby_; }
  void Promote() {
    std::lock_guard lock(mu_);
    primary_ = writable_ = true;
    ++timeline_;
  }
  bool writable() {
    std::lock_guard lock(mu_);
    return primary_ && writable_;
  }
  int fences() {
    std::lock_guard lock(mu_);
    return fences_;
  }
  int unfences() {
    std::lock_guard lock(mu_);
    return unfences_;
  }
  std::optional<Clock::time_point> fenced_at() {
    std::lock_guard lock(mu_);
    return fenced_at_;
  }
  std::atomic<bool> peers_standby_{false};
  int failing_fences_ = 0;

 private:
  std::mutex mu_;
  bool reachable_ = true, primary_, writable_;
  std::uint32_t timeline_ = 1;
  int fences_ = 0, unfences_ = 0;
  std::optional<Clock::time_point> fenced_at_;
};

AgentPolicy Policy(const std::string& region) {
  AgentPolicy p;
  p.region = region;
  p.lease_ttl = 2s;
  p.failover_after = 1s;
  p.clock_margin = 500ms;
  p.interval = 100ms;
  return p;
}

struct Events {
  std::mutex mu;
  std::vector<std::string> names;
  AgentHooks Hooks(std::function<FailoverOutcome(std::int64_t, const std::string&)> failover) {
    AgentHooks h;
    h.failover = std::move(failover);
    h.notify = [this](const std::string& e, const std::string&, bool) {
      std::lock_guard lock(mu);
      names.push_back(e);
    };
    return h;
  }
  bool Has(const std::string& e) {
    std::lock_guard lock(mu);
    return std::find(names.begin(), names.end(), e) != names.end();
  }
};

// Rounds of `agent` until `done` or `limit`.
bool StepUntil(Agent& agent, const std::function<bool()>& done, std::chrono::milliseconds limit) {
  auto deadline = Clock::now() + limit;
  while (Clock::now() < deadline) {
    agent.Step();
    if (done()) return true;
    std::this_thread::sleep_for(50ms);
  }
  return false;
}

TEST(Agent, ThePrimaryTakesTheKeyAndKeepsItByRenewing) {
  MemoryStore store;
  FakeServer server(true);
  Events events;
  Agent agent(Policy("eu"), store, server, events.Hooks(nullptr));
  agent.Step();
  ClusterView v = store.Read();
  ASSERT_TRUE(v.leader);
  EXPECT_EQ(v.leader->region, "eu");
  ASSERT_TRUE(v.record);
  EXPECT_EQ(v.record->region, "eu");
  EXPECT_EQ(agent.Status().role, "primary");
  EXPECT_TRUE(events.Has("leader-acquired"));
  // Three lease lengths later the key is still there: renewed by the keeper alone.
  std::this_thread::sleep_for(6s);
  v = store.Read();
  ASSERT_TRUE(v.leader);
  EXPECT_EQ(v.leader->region, "eu");
  EXPECT_TRUE(server.writable());
  EXPECT_EQ(server.fences(), 0);
  EXPECT_LT(agent.Status().seconds_since_renewal.value_or(99), 1.0);
}

TEST(Agent, ThePartitionedPrimaryFencesItselfBeforeItsLeaseCanExpire) {
  MemoryStore store;
  FakeServer server(true);
  Events events;
  Agent agent(Policy("eu"), store, server, events.Hooks(nullptr));
  agent.Step();
  ASSERT_TRUE(store.Read().leader);
  std::this_thread::sleep_for(800ms);  // at least one renewal
  store.Partition(true);
  const auto cut = Clock::now();
  // The lease can expire 2 s after the last acknowledged renewal was sent (< cut): the fence
  // comes 0.5 s before that.
  ASSERT_TRUE(StepUntil(
      agent, [&] { return server.fences() > 0; }, 3s));
  EXPECT_LT(*server.fenced_at() - cut, 1600ms);
  EXPECT_FALSE(server.writable());
  EXPECT_TRUE(events.Has("self-fenced"));
  EXPECT_TRUE(events.Has("etcd-unreachable"));
  // Back within failover_after: nobody took the key, the primary takes it back and lifts
  // its fence.
  store.Partition(false);
  ASSERT_TRUE(StepUntil(
      agent, [&] { return server.writable(); }, 3s));
  EXPECT_EQ(server.unfences(), 1);
  EXPECT_EQ(agent.Status().role, "primary");
}

TEST(Agent, AFenceThatDoesNotHoldIsTriedAgainUntilItDoes) {
  MemoryStore store;
  FakeServer server(true);
  server.failing_fences_ = 2;
  Events events;
  Agent agent(Policy("eu"), store, server, events.Hooks(nullptr));
  agent.Step();
  ASSERT_TRUE(store.Read().leader);
  store.Partition(true);
  // Nobody renews: the guard fences at its deadline, sees the fence did not hold, and tries
  // again each round interval (no decision round runs here).
  const auto cut = Clock::now();
  while (server.writable() && Clock::now() - cut < 5s) std::this_thread::sleep_for(50ms);
  EXPECT_FALSE(server.writable());
  EXPECT_EQ(server.fences(), 3);
  EXPECT_TRUE(events.Has("self-fence-failed"));
  EXPECT_TRUE(events.Has("self-fenced"));
  EXPECT_TRUE(agent.Status().self_fenced);
}

TEST(Agent, TheStandbyTakesOverAfterFailoverAfterWithTheNewRevisionAsToken) {
  MemoryStore store;
  FakeServer old_primary(true), standby(false);
  Events events;
  std::atomic<std::int64_t> token{0};
  std::string old_region;
  {
    Agent primary(Policy("eu"), store, old_primary, events.Hooks(nullptr));
    primary.Step();
  }  // the primary's agent dies; its lease expires after 2 s
  ASSERT_TRUE(store.Read().leader);
  Agent agent(Policy("us"), store, standby,
              events.Hooks([&](std::int64_t t, const std::string& from) {
                token = t;
                old_region = from;
                standby.Promote();
                return FailoverOutcome::kPromoted;
              }));
  agent.Step();
  EXPECT_EQ(agent.Status().role, "standby");
  const auto start = Clock::now();
  ASSERT_TRUE(StepUntil(
      agent, [&] { return token != 0; }, 6s));
  // The key had to expire (up to 2 s) and then stay gone for failover_after (1 s).
  EXPECT_GE(Clock::now() - start, 1s);
  ClusterView v = store.Read();
  ASSERT_TRUE(v.leader && v.record);
  EXPECT_EQ(v.leader->region, "us");
  EXPECT_EQ(v.leader->token, token);
  EXPECT_EQ(v.record->region, "us");
  EXPECT_EQ(v.record->state, "primary");
  EXPECT_EQ(v.record->token, token);
  EXPECT_EQ(v.record->previous, "eu");
  EXPECT_EQ(old_region, "eu");
  AgentStatus s = agent.Status();
  EXPECT_EQ(s.role, "primary");
  EXPECT_EQ(s.failovers, 1);
  EXPECT_TRUE(s.last_detection_seconds.has_value());
  EXPECT_TRUE(events.Has("leader-lost"));
  EXPECT_TRUE(events.Has("takeover"));
  EXPECT_TRUE(events.Has("promoted"));

  // The old primary's server comes back writable with a new agent: the record names "us",
  // so it is fenced at once and never takes the key.
  Agent returned(Policy("eu"), store, old_primary, events.Hooks(nullptr));
  returned.Step();
  EXPECT_FALSE(old_primary.writable());
  EXPECT_EQ(returned.Status().role, "fenced");
  std::this_thread::sleep_for(3s);
  returned.Step();
  EXPECT_EQ(store.Read().leader->region, "us");
  EXPECT_TRUE(standby.writable());
}

TEST(Agent, ManualModeRecommendsAndNeverActs) {
  MemoryStore store;
  FakeServer standby(false);
  Events events;
  bool called = false;
  AgentPolicy p = Policy("us");
  p.automatic = false;
  Agent agent(p, store, standby, events.Hooks([&](std::int64_t, const std::string&) {
    called = true;
    return FailoverOutcome::kPromoted;
  }));
  ASSERT_TRUE(StepUntil(
      agent, [&] { return events.Has("failover-recommended"); }, 4s));
  StepUntil(
      agent, [] { return false; }, 2s);
  EXPECT_FALSE(called);
  EXPECT_FALSE(store.Read().leader);
}

TEST(Agent, ARefusedFailoverGivesTheKeyAndTheRecordBack) {
  MemoryStore store;
  FakeServer old_primary(true), standby(false);
  Events events;
  {
    Agent primary(Policy("eu"), store, old_primary, events.Hooks(nullptr));
    primary.Step();
  }
  int calls = 0;
  Agent agent(Policy("us"), store, standby, events.Hooks([&](std::int64_t, const std::string&) {
    ++calls;
    return FailoverOutcome::kRefused;
  }));
  ASSERT_TRUE(StepUntil(
      agent, [&] { return calls == 1; }, 6s));
  ClusterView v = store.Read();
  EXPECT_FALSE(v.leader);
  ASSERT_TRUE(v.record);
  EXPECT_EQ(v.record->region, "eu");
  EXPECT_EQ(v.record->state, "primary");
  EXPECT_TRUE(events.Has("failover-refused"));
  // Not again before another failover_after.
  StepUntil(
      agent, [] { return false; }, 600ms);
  EXPECT_EQ(calls, 1);
  // The old primary may take its key back.
  Agent back(Policy("eu"), store, old_primary, events.Hooks(nullptr));
  back.Step();
  EXPECT_EQ(store.Read().leader->region, "eu");
}

TEST(Agent, WithoutEtcdNobodyIsPromotedAndFailsafeKeepsThePrimaryOnlyBesideAStandby) {
  for (bool peer_standby : {true, false}) {
    MemoryStore store;
    FakeServer primary(true), standby(false);
    primary.peers_standby_ = peer_standby;
    Events events;
    AgentPolicy p = Policy("eu");
    p.failsafe = true;
    bool called = false;
    Agent a(p, store, primary, events.Hooks(nullptr));
    Agent b(Policy("us"), store, standby, events.Hooks([&](std::int64_t, const std::string&) {
      called = true;
      return FailoverOutcome::kPromoted;
    }));
    a.Step();
    b.Step();
    store.Partition(true);
    for (int i = 0; i < 40; ++i) {
      a.Step();
      b.Step();
      std::this_thread::sleep_for(100ms);
    }
    EXPECT_FALSE(called);
    EXPECT_EQ(primary.writable(), peer_standby) << peer_standby;
  }
}

TEST(Store, RecordsRoundTripAndHandoverIsACompareAndSwap) {
  PrimaryRecord r{"us", "primary", 17, "eu", 3, "2026-12-01T10:00:00Z", 0};
  auto back = ParseRecord(RecordJson(r));
  ASSERT_TRUE(back);
  EXPECT_EQ(back->region, "us");
  EXPECT_EQ(back->token, 17);
  EXPECT_EQ(back->previous, "eu");
  EXPECT_EQ(back->timeline, 3u);
  EXPECT_FALSE(ParseRecord("[]"));
  EXPECT_FALSE(ParseLeader("{\"x\":1}"));

  MemoryStore store;
  std::int64_t lease = store.Grant(10);
  ClusterView empty = store.Read();
  ASSERT_TRUE(store.Acquire(empty, "eu", lease, PrimaryRecord{"eu", "primary"}));
  // Someone who read before cannot take it.
  EXPECT_FALSE(store.Acquire(empty, "us", store.Grant(10), PrimaryRecord{"us", "primary"}));
  auto before = BeginHandover(store, "eu", "us");
  ASSERT_TRUE(before);
  EXPECT_EQ(before->region, "eu");
  ClusterView v = store.Read();
  EXPECT_FALSE(v.leader);
  EXPECT_EQ(v.record->region, "us");
  EXPECT_EQ(v.record->state, kHandoverState);
  AbortHandover(store, "us", before);
  EXPECT_EQ(store.Read().record->region, "eu");
  BeginHandover(store, "eu", "us");
  EndHandover(store, "us", 2);
  v = store.Read();
  EXPECT_EQ(v.record->region, "us");
  EXPECT_EQ(v.record->state, "primary");
  EXPECT_EQ(v.record->timeline, 2u);
  store.Partition(true);
  EXPECT_THROW(BeginHandover(store, "us", "eu"), StorageError);
}

}  // namespace
}  // namespace gravl::ha
