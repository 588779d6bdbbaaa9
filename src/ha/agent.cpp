#include "ha/agent.h"

#include <spdlog/spdlog.h>

#include "common/error.h"
#include "common/log.h"
#include "common/time_util.h"

namespace gravl::ha {

namespace {

using Clock = std::chrono::steady_clock;

double Since(Clock::time_point t) {
  return std::chrono::duration<double>(Clock::now() - t).count();
}

std::string Tenths(double seconds) {
  char text[32];
  std::snprintf(text, sizeof text, "%.1f", seconds);
  return text;
}

std::string NowUtc() { return FormatIso8601(std::chrono::system_clock::now()); }

}  // namespace

std::string LocalState::Describe() const {
  if (!reachable) return "unreachable: " + error;
  if (!primary) return "standby on timeline " + std::to_string(timeline);
  return std::string(writable ? "writable" : "read-only") + " primary on timeline " +
         std::to_string(timeline);
}

AgentPolicy AgentPolicy::From(const HaConfig& ha, int failover_timeout_s) {
  AgentPolicy p;
  p.region = ha.region;
  p.lease_ttl = std::chrono::seconds(ha.lease_ttl_s);
  p.failover_after = std::chrono::seconds(ha.failover_after_s);
  p.clock_margin = std::chrono::seconds(ha.clock_margin_s);
  p.interval = std::chrono::milliseconds(std::clamp(ha.lease_ttl_s * 1000 / 8, 200, 1000));
  p.automatic = ha.mode == "automatic";
  p.failsafe = ha.failsafe;
  p.stop_on_fence = ha.self_fence == "stop";
  // A switchover waits up to failover.timeout for each of its steps.
  p.handover_stale_after = std::chrono::seconds(4 * failover_timeout_s);
  return p;
}

nlohmann::json AgentStatus::ToJson() const {
  auto opt = [](const std::optional<double>& v) {
    return v ? nlohmann::json(*v) : nlohmann::json(nullptr);
  };
  nlohmann::json j = {{"region", region},
                      {"role", role},
                      {"postgres", local.Describe()},
                      {"etcd_reachable", etcd_reachable},
                      {"etcd_error", etcd_error},
                      {"holds_lease", holds_lease},
                      {"token", token},
                      {"seconds_since_renewal", opt(seconds_since_renewal)},
                      {"leader_absent_seconds", opt(leader_absent_seconds)},
                      {"self_fenced", self_fenced},
                      {"transitions", transitions},
                      {"failovers", failovers},
                      {"last_detection_seconds", opt(last_detection_seconds)},
                      {"last_failover_seconds", opt(last_failover_seconds)},
                      {"last_event", last_event}};
  j["leader"] = leader ? nlohmann::json{{"region", leader->region},
                                        {"token", leader->token},
                                        {"since", leader->since}}
                       : nlohmann::json(nullptr);
  j["primary_record"] =
      record ? nlohmann::json{{"region", record->region},     {"state", record->state},
                              {"token", record->token},       {"previous", record->previous},
                              {"timeline", record->timeline}, {"since", record->since}}
             : nlohmann::json(nullptr);
  return j;
}

Agent::Agent(AgentPolicy policy, Store& store, LocalServer& local, AgentHooks hooks)
    : policy_(std::move(policy)), store_(store), local_(local), hooks_(std::move(hooks)) {
  status_.region = policy_.region;
  // An exception that escapes a loop (none should) restarts it: never std::terminate, and
  // never a primary left without its guard.
  auto resilient = [this](const char* name, void (Agent::*loop)()) {
    while (true) {
      try {
        (this->*loop)();
        return;
      } catch (const std::exception& e) {
        spdlog::error("event=thread-error region={} thread={} error=\"{}\"", policy_.region, name,
                      Redact(e.what()));
      } catch (...) {
        spdlog::error("event=thread-error region={} thread={}", policy_.region, name);
      }
      std::unique_lock lock(mutex_);
      if (wake_.wait_for(lock, std::chrono::milliseconds(200), [&] { return stopping_; })) return;
    }
  };
  keeper_ = std::thread([resilient] { resilient("keeper", &Agent::KeeperLoop); });
  guard_ = std::thread([resilient] { resilient("guard", &Agent::GuardLoop); });
}

Agent::~Agent() {
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;
  }
  wake_.notify_all();
  keeper_.join();
  guard_.join();
}

AgentStatus Agent::Status() const {
  std::lock_guard lock(mutex_);
  AgentStatus s = status_;
  s.holds_lease = lease_ != 0;
  if (last_renewal_ && lease_ != 0) s.seconds_since_renewal = Since(*last_renewal_);
  if (absent_since_) s.leader_absent_seconds = Since(*absent_since_);
  s.self_fenced = fenced_by_us_;
  return s;
}

void Agent::Transition(const std::string& event, const std::string& summary, bool ok) {
  {
    std::lock_guard lock(mutex_);
    ++status_.transitions;
    status_.last_event = event;
  }
  if (ok) {
    spdlog::info("event={} region={} {}", event, policy_.region, Redact(summary));
  } else {
    spdlog::warn("event={} region={} {}", event, policy_.region, Redact(summary));
  }
  if (hooks_.notify) hooks_.notify(event, summary, ok);
}

void Agent::Arm(Clock::time_point deadline) {
  {
    std::lock_guard lock(mutex_);
    deadline_ = deadline;
  }
  wake_.notify_all();
}

void Agent::DropLease() {
  std::int64_t lease;
  {
    std::lock_guard lock(mutex_);
    lease = lease_;
    lease_ = 0;
    deadline_.reset();
    last_renewal_.reset();
    next_renewal_.reset();
    status_.token = 0;
  }
  wake_.notify_all();
  if (lease != 0) {
    try {
      store_.Release(lease);
    } catch (const Error& e) {
      spdlog::warn("event=release-failed region={} error=\"{}\"", policy_.region, Redact(e.what()));
    }
  }
}

void Agent::Hold(std::int64_t lease, std::int64_t token, Clock::time_point granted) {
  {
    std::lock_guard lock(mutex_);
    lease_ = lease;
    status_.token = token;
    last_renewal_ = granted;
    next_renewal_ = granted + policy_.lease_ttl / 3;
    deadline_ = granted + policy_.lease_ttl - policy_.clock_margin;
  }
  wake_.notify_all();
}

void Agent::SelfFence(const std::string& why) {
  std::lock_guard fencing(fence_mutex_);
  std::string done = local_.Fence(policy_.stop_on_fence);
  // Confirmed only when the server no longer takes writes; otherwise the guard tries again
  // at its next check.
  LocalState after = local_.Check();
  const bool fenced = !(after.reachable && after.primary && after.writable);
  if (fenced) {
    std::lock_guard lock(mutex_);
    fenced_by_us_ = true;
    fenced_at_ = Clock::now();
    stopped_by_us_ = policy_.stop_on_fence && !after.reachable;
    status_.role = "fenced";
  }
  Transition(fenced ? "self-fenced" : "self-fence-failed", why + ": " + done, false);
}

bool Agent::SafeToLift(std::chrono::milliseconds budget) const {
  std::lock_guard lock(mutex_);
  // The lease is ours and renewed after any fence, and its deadline leaves room.
  return lease_ != 0 && last_renewal_ && (!fenced_at_ || *last_renewal_ > *fenced_at_) &&
         deadline_ && Clock::now() + budget < *deadline_;
}

void Agent::Unfence(const std::string& why) {
  std::lock_guard fencing(fence_mutex_);
  std::string done;
  bool stopped;
  {
    std::lock_guard lock(mutex_);
    stopped = stopped_by_us_;
  }
  if (stopped) done = local_.Start() + "; ";  // read-only still: the reset comes next
  // Checked again right before the server takes writes: a start may have taken long, and
  // the guard cannot fence in between (fence_mutex_).
  if (!SafeToLift(policy_.clock_margin)) {
    spdlog::warn("event=unfence-skipped region={} {}the lease is not renewed far enough ahead",
                 policy_.region, done);
    return;
  }
  done += local_.Unfence();
  {
    std::lock_guard lock(mutex_);
    fenced_by_us_ = false;
    stopped_by_us_ = false;
    fenced_at_.reset();
  }
  Transition("unfenced", why + ": " + done, true);
}

// ---- the renewal thread ----

void Agent::KeeperLoop() {
  std::unique_lock lock(mutex_);
  while (!stopping_) {
    if (lease_ == 0 || !next_renewal_) {
      wake_.wait_for(lock, std::chrono::milliseconds(100), [&] { return stopping_; });
      continue;
    }
    const auto next = *next_renewal_;
    if (Clock::now() < next) {
      wake_.wait_until(lock, next, [&] { return stopping_ || next_renewal_ != next; });
      continue;
    }
    const std::int64_t lease = lease_;
    lock.unlock();
    // Renewed only while the server answers a health query, asked just before.
    LocalState local = local_.Check();
    bool renewed = false, gone = false;
    std::optional<std::int64_t> ttl;
    const auto sent = Clock::now();
    if (local.reachable) {
      try {
        ttl = store_.KeepAlive(lease);
        renewed = ttl.has_value();
        gone = !renewed;
      } catch (const Error& e) {
        spdlog::warn("event=renewal-failed region={} error=\"{}\"", policy_.region,
                     Redact(e.what()));
      }
    } else {
      spdlog::warn("event=renewal-skipped region={} postgres=\"{}\"", policy_.region,
                   Redact(local.Describe()));
    }
    if (gone) spdlog::warn("event=lease-lost region={} lease={}", policy_.region, lease);
    lock.lock();
    if (lease_ != lease) continue;  // dropped or replaced meanwhile
    if (renewed) {
      // etcd's TTL if it is shorter than ours (a lease granted under an older ha.lease_ttl).
      const auto lease_ttl =
          std::min<Clock::duration>(policy_.lease_ttl, std::chrono::seconds(*ttl));
      last_renewal_ = sent;
      next_renewal_ = sent + lease_ttl / 3;
      deadline_ = sent + lease_ttl - policy_.clock_margin;
    } else if (gone) {
      // The key is gone: another agent may take over after failover_after. Fence now.
      lease_ = 0;
      next_renewal_.reset();
      last_renewal_.reset();
      deadline_ = Clock::now();
    } else {
      // Not renewed (etcd or the server did not answer): try again soon; the guard fences
      // at the deadline.
      next_renewal_ = Clock::now() + std::min<Clock::duration>(policy_.lease_ttl / 3,
                                                               std::chrono::milliseconds(500));
    }
    wake_.notify_all();
  }
}

// ---- the fence guard ----

void Agent::GuardLoop() {
  std::unique_lock lock(mutex_);
  while (!stopping_) {
    if (!deadline_) {
      wake_.wait(lock);
      continue;
    }
    const auto deadline = *deadline_;
    if (Clock::now() < deadline) {
      wake_.wait_until(lock, deadline, [&] { return stopping_ || deadline_ != deadline; });
      continue;
    }
    // Overdue. Checked again every interval until a renewal moves the deadline ahead or the
    // lease is given up: one failed look at the server never disarms the guard.
    deadline_ = Clock::now() + policy_.interval;
    const bool held = lease_ != 0;
    const bool etcd_down = !status_.etcd_reachable;
    lock.unlock();
    try {
      LocalState local = local_.Check();
      if (local.reachable && local.primary && local.writable) {
        if (policy_.failsafe && etcd_down && local_.PeersStillStandby()) {
          spdlog::warn(
              "event=failsafe region={} lease renewal overdue with etcd unreachable; the other "
              "region's server is still in recovery, so the primary keeps serving",
              policy_.region);
        } else {
          SelfFence(held ? "the lease could not be renewed before it could expire"
                         : "the lease is gone");
        }
      }
    } catch (const std::exception& e) {
      spdlog::error("event=guard-error region={} error=\"{}\"", policy_.region, Redact(e.what()));
    }
    lock.lock();
  }
}

// ---- decisions ----

void Agent::Step() {
  LocalState local = local_.Check();
  ClusterView view;
  bool etcd_ok = true;
  std::string etcd_error;
  try {
    view = store_.Read();
  } catch (const Error& e) {
    etcd_ok = false;
    etcd_error = Redact(e.what());
  }
  std::optional<bool> was_reachable;
  std::int64_t lease;
  {
    std::lock_guard lock(mutex_);
    if (status_.last_round) was_reachable = status_.etcd_reachable;
    status_.local = local;
    status_.etcd_reachable = etcd_ok;
    status_.etcd_error = etcd_error;
    status_.last_round = Clock::now();
    if (etcd_ok) {
      status_.leader = view.leader;
      status_.record = view.record;
    }
    lease = lease_;
  }
  // Said on a change, and on the first round only when etcd is away.
  if (was_reachable ? *was_reachable != etcd_ok : !etcd_ok) {
    Transition(etcd_ok ? "etcd-reachable" : "etcd-unreachable",
               etcd_ok ? "etcd answers again" : "etcd cannot be reached: " + etcd_error, etcd_ok);
  }
  if (!etcd_ok) {
    // Without etcd nothing is decided: the standby never promotes, the primary's guard
    // fences it at its deadline -- and a writable primary whose agent holds no lease (it
    // started while etcd was away) has no deadline to wait for: its lease, if any, may be
    // gone already.
    bool unguarded;
    {
      std::lock_guard lock(mutex_);
      absent_since_.reset();
      unguarded = lease_ == 0 && !fenced_by_us_;
    }
    if (unguarded && local.reachable && local.writable &&
        !(policy_.failsafe && local_.PeersStillStandby())) {
      SelfFence("etcd cannot be reached and this agent holds no lease");
    }
    return;
  }

  const std::string& me = policy_.region;
  bool mine = view.leader && lease != 0 && view.leader->lease == lease;
  if (lease != 0 && !mine) {
    // Our lease no longer holds the key (expired, or another agent's key).
    std::lock_guard lock(mutex_);
    if (lease_ == lease) {
      lease_ = 0;
      last_renewal_.reset();
      next_renewal_.reset();
      deadline_ = Clock::now();  // the guard fences a writable primary now
    }
    wake_.notify_all();
    lease = 0;
  }
  const bool replaced = view.record && view.record->region != me;

  if (!local.reachable) {
    bool restart;
    {
      std::lock_guard lock(mutex_);
      absent_since_.reset();
      status_.role = "unknown";
      // Fenced by a stop, and nobody replaced it: take the key back, then start it.
      restart = stopped_by_us_ && !replaced && !view.leader;
    }
    if (restart) {
      // Started read-only first; made writable once the key is ours again (Acquire).
      Acquire(view, local);
    }
    return;
  }

  if (local.primary) {
    {
      std::lock_guard lock(mutex_);
      absent_since_.reset();
    }
    if (replaced) {
      if (mine) DropLease();
      if (local.writable) {
        SelfFence("the primary record names " + view.record->region + " (token " +
                  std::to_string(view.record->token) + ", since " + view.record->since +
                  "): this server was replaced and stays fenced until failback");
      } else {
        std::lock_guard lock(mutex_);
        status_.role = "fenced";
      }
      return;
    }
    if (view.leader && !mine) {
      if (view.leader->region == me && lease == 0) {
        // Our own key from before a restart of this agent: adopt its lease once a renewal
        // of it is acknowledged (the guard is armed from then on); a lease that expired
        // meanwhile is gone, and the next round decides afresh.
        const auto sent = Clock::now();
        bool renewed = false;
        std::optional<std::int64_t> ttl;
        try {
          ttl = store_.KeepAlive(view.leader->lease);
          renewed = ttl.has_value();
        } catch (const Error& e) {
          spdlog::warn("event=renewal-failed region={} error=\"{}\"", policy_.region,
                       Redact(e.what()));
        }
        if (!renewed) {
          if (local.writable && !policy_.failsafe) {
            SelfFence("the leader key of this region's earlier agent could not be renewed");
          }
          return;
        }
        Hold(view.leader->lease, view.leader->token, sent);
        {
          std::lock_guard lock(mutex_);
          status_.role = "primary";
          // A lease granted under a shorter ha.lease_ttl keeps its own TTL.
          if (std::chrono::seconds(*ttl) < policy_.lease_ttl) {
            deadline_ = sent + std::chrono::seconds(*ttl) - policy_.clock_margin;
            next_renewal_ = sent + std::chrono::seconds(*ttl) / 3;
          }
        }
        Transition("leader-adopted",
                   "this agent holds the leader key it held before it restarted (token " +
                       std::to_string(view.leader->token) + ")",
                   true);
        return;
      }
      if (view.leader->region != me) {
        if (local.writable) {
          SelfFence("the leader key is held by " + view.leader->region +
                    ": two writable primaries must never be");
        }
        return;
      }
    }
    if (!view.leader) {
      Acquire(view, local);
      return;
    }
    // Ours. A read-only primary holding the key (fenced by us before, or by an earlier run of
    // this agent) is made writable once the lease was renewed after the fence.
    const bool lift = !local.writable && SafeToLift(policy_.clock_margin);
    {
      std::lock_guard lock(mutex_);
      status_.role = local.writable || lift ? "primary" : "fenced";
    }
    if (lift) {
      Unfence("the leader key is ours again (token " + std::to_string(view.leader->token) +
              "): this server keeps its role");
      std::lock_guard lock(mutex_);
      status_.role = "primary";
    }
    if (view.record && view.record->state == "promoting" && view.record->region == me) {
      // A takeover whose failover stopped part-way: continue it.
      bool due;
      {
        std::lock_guard lock(mutex_);
        due = !last_attempt_ || Clock::now() - *last_attempt_ >= policy_.failover_after;
      }
      if (due) TakeOver(view, local);
    }
    return;
  }

  // A standby. It holds no key -- unless it is the one a takeover of ours is promoting.
  const bool promoting_here =
      view.record && view.record->region == me && view.record->state == "promoting";
  if (mine && !promoting_here) DropLease();
  if (view.record && view.record->state == kHandoverState) {
    // A switchover or failback runs: it promotes whom it chose; nobody takes over meanwhile.
    bool stale = false;
    try {
      stale = std::chrono::system_clock::now() - ParseIso8601(view.record->since) >
              policy_.handover_stale_after;
    } catch (const Error&) {
      stale = true;
    }
    if (!stale) {
      std::lock_guard lock(mutex_);
      absent_since_.reset();
      status_.role = "standby";
      return;
    }
  }
  if (view.leader) {
    std::lock_guard lock(mutex_);
    absent_since_.reset();
    recommended_ = false;
    status_.role = "standby";
    return;
  }
  bool first = false, due = false, manual_first = false;
  double absent = 0;
  {
    std::lock_guard lock(mutex_);
    status_.role = "standby";
    if (!absent_since_) {
      absent_since_ = Clock::now();
      first = true;
    }
    absent = Since(*absent_since_);
    due = Clock::now() - *absent_since_ >= policy_.failover_after &&
          (!last_attempt_ || Clock::now() - *last_attempt_ >= policy_.failover_after);
    if (due && !policy_.automatic && !recommended_) {
      recommended_ = true;
      manual_first = true;
    }
  }
  if (first) {
    Transition("leader-lost",
               "the leader key is gone (no primary renews it); failover after " +
                   FormatDuration(
                       std::chrono::duration_cast<std::chrono::seconds>(policy_.failover_after)) +
                   (policy_.automatic ? "" : " is only recommended (ha.mode manual)"),
               false);
  }
  if (!due) return;
  if (!policy_.automatic) {
    if (manual_first) {
      Transition("failover-recommended",
                 "the leader key has been gone for " + std::to_string(static_cast<long>(absent)) +
                     " s: run `gravl-dr failover --to " + me + "` (ha.mode is manual)",
                 false);
    }
    return;
  }
  TakeOver(view, local);
}

void Agent::Acquire(const ClusterView& view, const LocalState& local) {
  // Before the request: etcd's countdown starts when it applies the grant, not later.
  const auto granted = Clock::now();
  std::int64_t lease = store_.Grant(static_cast<int>(
      std::chrono::duration_cast<std::chrono::seconds>(policy_.lease_ttl).count()));
  PrimaryRecord record;
  if (view.record) {
    record = *view.record;
  } else {
    record.region = policy_.region;
    record.state = "primary";
    record.timeline = local.timeline;
    record.since = NowUtc();
  }
  std::optional<std::int64_t> token;
  try {
    token = store_.Acquire(view, policy_.region, lease, record);
  } catch (const Error&) {
    try {
      store_.Revoke(lease);
    } catch (const Error&) {
    }
    throw;
  }
  if (!token) {
    store_.Revoke(lease);
    return;  // another agent was first; the next round sees it
  }
  Hold(lease, *token, granted);
  {
    std::lock_guard lock(mutex_);
    status_.role = "primary";
  }
  Transition("leader-acquired",
             "this region's primary holds the leader key (token " + std::to_string(*token) +
                 ", lease " + std::to_string(lease) + ")",
             true);
  if (!local.writable) {
    // Read-only (or stopped) by a fence of ours, or of an earlier run of this agent: the
    // record names this region and the key is ours, so nobody else can have been promoted.
    Unfence("the leader key is ours again (token " + std::to_string(*token) +
            "): this server keeps its role");
  }
}

void Agent::TakeOver(const ClusterView& view, const LocalState& local) {
  const auto decided = Clock::now();
  std::int64_t token = 0;
  std::string old_region;
  double detection = 0;
  std::int64_t held_lease;
  {
    std::lock_guard lock(mutex_);
    if (absent_since_) detection = Since(*absent_since_);
    held_lease = lease_;
  }
  std::optional<PrimaryRecord> before = view.record;
  const bool resuming = view.record && view.record->state == "promoting" &&
                        view.record->region == policy_.region && view.leader && held_lease != 0 &&
                        view.leader->lease == held_lease;
  if (resuming) {
    token = view.leader->token;
    old_region = view.record->previous;
    std::lock_guard lock(mutex_);
    status_.role = "promoting";
    last_attempt_ = decided;
  } else {
    const auto granted = Clock::now();  // before the grant: etcd's countdown starts there
    std::int64_t lease = store_.Grant(static_cast<int>(
        std::chrono::duration_cast<std::chrono::seconds>(policy_.lease_ttl).count()));
    if (!view.record) {
      old_region = view.leader ? view.leader->region : "";
    } else {
      // A record naming this region (a handover, a takeover that failed part-way) keeps the
      // region it replaced.
      old_region =
          view.record->region == policy_.region ? view.record->previous : view.record->region;
    }
    PrimaryRecord record{policy_.region, "promoting", 0, old_region, local.timeline, NowUtc(), 0};
    auto t = store_.Acquire(view, policy_.region, lease, record);
    if (!t) {
      store_.Revoke(lease);
      return;
    }
    token = *t;
    Hold(lease, token, granted);
    {
      std::lock_guard lock(mutex_);
      status_.role = "promoting";
      status_.last_detection_seconds = detection;
      last_attempt_ = decided;  // the next attempt (if this one fails) after failover_after
    }
    Transition("takeover",
               "took the leader key (fencing token " + std::to_string(token) + ") after it was " +
                   "gone for " + std::to_string(static_cast<long>(detection)) +
                   " s; failing over from " + (old_region.empty() ? "(unknown)" : old_region),
               true);
  }
  FailoverOutcome outcome = FailoverOutcome::kFailed;
  std::string error;
  try {
    outcome = hooks_.failover(token, old_region);
  } catch (const std::exception& e) {
    error = Redact(e.what());
  }
  const double took = Since(decided);
  if (outcome == FailoverOutcome::kPromoted) {
    LocalState now = local_.Check();
    try {
      ClusterView v = store_.Read();
      if (v.record && v.record->region == policy_.region) {
        PrimaryRecord r = *v.record;
        r.state = "primary";
        r.token = token;
        r.timeline = now.timeline;
        store_.PutRecord(r, v.record->revision);
      }
    } catch (const Error& e) {
      spdlog::warn("event=record-update-failed region={} error=\"{}\"", policy_.region,
                   Redact(e.what()));
    }
    {
      std::lock_guard lock(mutex_);
      status_.role = "primary";
      ++status_.failovers;
      status_.last_failover_seconds = took;
      absent_since_.reset();
    }
    Transition("promoted",
               "this region's server is the primary (timeline " + std::to_string(now.timeline) +
                   ", fencing token " + std::to_string(token) + "), " + Tenths(took) +
                   " s after the decision",
               true);
    return;
  }
  if (outcome == FailoverOutcome::kRefused) {
    // Nothing changed: give the key and the record back, so that the old primary may return.
    DropLease();
    try {
      ClusterView v = store_.Read();
      if (v.record && v.record->region == policy_.region && v.record->state == "promoting") {
        // The record as it was -- or, when there was none (or it already named this region),
        // one naming the region that was primary, so that its agent keeps its role.
        if (before && before->region != policy_.region) {
          store_.PutRecord(*before, v.record->revision);
        } else if (!old_region.empty()) {
          PrimaryRecord back{
              old_region, "primary", before ? before->token : 0, "", before ? before->timeline : 0,
              NowUtc(),   0};
          store_.PutRecord(back, v.record->revision);
        }
      }
    } catch (const Error& e) {
      spdlog::warn("event=record-restore-failed region={} error=\"{}\"", policy_.region,
                   Redact(e.what()));
    }
    {
      std::lock_guard lock(mutex_);
      status_.role = "standby";
      absent_since_ = Clock::now();
    }
    Transition("failover-refused",
               "the failover to " + policy_.region + " refused and changed nothing" +
                   (error.empty() ? std::string() : ": " + error) +
                   "; the leader key was released and the next attempt is after failover_after",
               false);
    return;
  }
  Transition("failover-failed",
             "the failover to " + policy_.region + " stopped part-way" +
                 (error.empty() ? std::string() : ": " + error) +
                 "; this agent keeps the leader key and continues it after failover_after",
             false);
}

void Agent::Run(const std::atomic<bool>& stop) {
  while (!stop) {
    auto start = Clock::now();
    try {
      Step();
    } catch (const std::exception& e) {
      spdlog::warn("event=round-failed region={} error=\"{}\"", policy_.region, Redact(e.what()));
    }
    while (!stop && Clock::now() - start < policy_.interval) {
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
  }
}

}  // namespace gravl::ha
