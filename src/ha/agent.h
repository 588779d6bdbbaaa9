#pragma once
// The watch agent (`gravl-dr watch`, one per region): automatic failover decided through
// etcd (ha/store.h), never by the two regions alone (docs/automatic-failover.md).
//
// Contract. The primary's agent holds the leader key, bound to a lease of lease_ttl that it
// renews every third of it -- only while its PostgreSQL answers a health query made just
// before. A fence guard (its own thread, so no hung request can delay it) makes the server
// stop accepting writes (read-only with every session ended; with stop_on_fence a fast stop
// too) at `sent + lease_ttl - clock_margin`, where `sent` is when the last renewal that
// etcd acknowledged was sent: etcd cannot have let the lease expire before then unless the
// clocks' rates differ by more than the margin. The standby's agent counts how long it has
// seen the leader key absent; after failover_after it takes the key in one transaction (the
// key absent and the primary record unchanged -- compare-and-swap) whose revision is the
// fencing token, and runs the failover procedure (AgentHooks::failover). A promotion thus
// happens at least lease_ttl + failover_after after the old primary's last renewal, while the
// old primary fenced itself by lease_ttl - clock_margin. The primary record (which region was
// made primary last) survives leases: a primary whose region it does not name stays fenced
// and never takes the key again (until failback rewrites the record). Without etcd nothing
// is promoted; the primary fences itself at its deadline unless `failsafe` is set and the
// other region's server is seen still in recovery (then nothing can promote it: a failover
// refuses while the old primary is reachable and writable). A primary that gets the key
// back (it returned within failover_after) lifts its own fence. Every transition is logged
// as one structured line, counted, and passed to AgentHooks::notify.

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "common/config.h"
#include "ha/store.h"

namespace gravl::ha {

// The local PostgreSQL as the agent sees it.
struct LocalState {
  bool reachable = false;
  bool primary = false;   // not in recovery
  bool writable = false;  // a primary without default_transaction_read_only
  std::uint32_t timeline = 0;
  std::string error;
  std::string Describe() const;
};

class LocalServer {
 public:
  virtual ~LocalServer() = default;
  // Never throws; callable from any thread.
  virtual LocalState Check() = 0;
  // Stops writes: read-only with every session ended, and with `stop` a fast stop where the
  // data directory is on this host. What was done; never throws.
  virtual std::string Fence(bool stop) = 0;
  // Starts a server that Fence stopped (it comes back read-only). What was done; never throws.
  virtual std::string Start() = 0;
  // Writable again. What was done; never throws.
  virtual std::string Unfence() = 0;
  // The other regions' servers: is any of them reachable and still in recovery? (failsafe)
  virtual bool PeersStillStandby() = 0;
};

// The region's server over libpq (2 s connect timeout); fencing by stopping needs its
// data_dir on this host, and the other regions for the failsafe check.
std::unique_ptr<LocalServer> MakePgLocal(const RegionConfig& self,
                                         const std::vector<RegionConfig>& others,
                                         const std::string& bin_dir);

struct AgentPolicy {
  std::string region;
  std::chrono::milliseconds lease_ttl{30000};
  std::chrono::milliseconds failover_after{300000};
  std::chrono::milliseconds clock_margin{2000};
  std::chrono::milliseconds interval{500};  // between decision rounds
  bool automatic = true;
  bool failsafe = false;
  bool stop_on_fence = false;
  // A switchover or failback in progress (ha/store.h BeginHandover) older than this was
  // abandoned: the agents decide again.
  std::chrono::seconds handover_stale_after{600};
  static AgentPolicy From(const HaConfig& ha, int failover_timeout_s = 300);
};

enum class FailoverOutcome {
  kPromoted,  // the local server is the primary now
  kRefused,   // nothing was changed (loss above the limit, old primary healthy, ...)
  kFailed,    // stopped part-way: perhaps promoted; retried later
};

struct AgentHooks {
  // Runs the failover procedure to this region with the fencing token.
  std::function<FailoverOutcome(std::int64_t token, const std::string& old_region)> failover;
  // A transition: its name ("leader-acquired", "self-fenced", ...), a line for people, and
  // whether it is good news.
  std::function<void(const std::string& event, const std::string& summary, bool ok)> notify;
};

struct AgentStatus {
  std::string region;
  std::string role = "unknown";  // primary, standby, fenced, promoting, unknown
  LocalState local;
  bool etcd_reachable = false;
  std::string etcd_error;
  std::optional<LeaderKey> leader;
  std::optional<PrimaryRecord> record;
  bool holds_lease = false;
  std::int64_t token = 0;                       // of the leadership this agent holds
  std::optional<double> seconds_since_renewal;  // of the last acknowledged renewal
  std::optional<double> leader_absent_seconds;
  bool self_fenced = false;
  std::int64_t transitions = 0;
  std::int64_t failovers = 0;
  std::optional<double> last_detection_seconds;  // leader gone -> takeover decided
  std::optional<double> last_failover_seconds;   // takeover decided -> failover done
  std::string last_event;
  std::optional<std::chrono::steady_clock::time_point> last_round;
  nlohmann::json ToJson() const;
};

class Agent {
 public:
  Agent(AgentPolicy policy, Store& store, LocalServer& local, AgentHooks hooks);
  ~Agent();
  Agent(const Agent&) = delete;
  Agent& operator=(const Agent&) = delete;

  // One decision round: look at the server and the store, act.
  void Step();
  // Rounds every policy.interval until `stop` is set (checked every 100 ms).
  void Run(const std::atomic<bool>& stop);
  AgentStatus Status() const;

 private:
  void Transition(const std::string& event, const std::string& summary, bool ok);
  void SelfFence(const std::string& why);
  void Unfence(const std::string& why);
  // The lease is ours, renewed after our last fence, and its deadline more than `budget` away.
  bool SafeToLift(std::chrono::milliseconds budget) const;
  void TakeOver(const ClusterView& view, const LocalState& local);
  void Acquire(const ClusterView& view, const LocalState& local);
  void DropLease();
  // Holds `lease` (token `token`) from `granted` on: renewals start, the guard is armed.
  void Hold(std::int64_t lease, std::int64_t token, std::chrono::steady_clock::time_point granted);
  void Arm(std::chrono::steady_clock::time_point deadline);
  void KeeperLoop();
  void GuardLoop();

  AgentPolicy policy_;
  Store& store_;
  LocalServer& local_;
  AgentHooks hooks_;

  std::mutex fence_mutex_;    // one fence or unfence at a time (guard, rounds)
  mutable std::mutex mutex_;  // guards everything below
  std::condition_variable wake_;
  bool stopping_ = false;
  AgentStatus status_;
  std::int64_t lease_ = 0;
  std::optional<std::chrono::steady_clock::time_point> last_renewal_;
  std::optional<std::chrono::steady_clock::time_point> next_renewal_;
  std::optional<std::chrono::steady_clock::time_point> fenced_at_;
  std::optional<std::chrono::steady_clock::time_point> deadline_;  // the guard's
  std::optional<std::chrono::steady_clock::time_point> absent_since_;
  std::optional<std::chrono::steady_clock::time_point> last_attempt_;  // of a takeover
  bool fenced_by_us_ = false;
  bool stopped_by_us_ = false;
  bool recommended_ = false;
  std::thread keeper_, guard_;
};

}  // namespace gravl::ha
