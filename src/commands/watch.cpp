// watch: the automatic failover agent of one region (ha/agent.h, docs/automatic-failover.md).
// Holds or watches the leader key in etcd, fences its own primary when it cannot renew the
// lease, and fails over to its region when the key has been gone for ha.failover_after (the
// failover command's steps, with the fencing token). Serves /healthz, /status (JSON) and
// /metrics on ha.listen; logs one structured line per event to stderr; notifications go out
// from a queue of their own, so a slow webhook never delays a fence. SIGTERM or SIGINT stops
// it (exit 0) without giving up the leader key: a restarted agent adopts it, and while it is
// away the lease expires only after lease_ttl.

#include <CivetServer.h>
#include <spdlog/spdlog.h>

#include <atomic>
#include <condition_variable>
#include <deque>
#include <sstream>
#include <thread>

#include "commands/cli.h"
#include "commands/commands.h"
#include "commands/http_server.h"
#include "commands/run_record.h"
#include "common/cleanup.h"
#include "common/error.h"
#include "common/log.h"
#include "ha/agent.h"
#include "ha/store.h"
#include "metrics/family_set.h"
#include "notify/notify.h"
#include "pg/instance.h"
#include "version.h"

namespace gravl::commands {

namespace {

constexpr const char* kListenSetting = "ha.listen or --ha-listen";

struct WatchOptions {
  std::string region;
};

std::string MetricsText(const ha::AgentStatus& s) {
  metrics::FamilySet f;
  const metrics::Labels region = {{"region", s.region}};
  for (const char* role : {"primary", "standby", "fenced", "promoting", "unknown"}) {
    f.Gauge("gravl_ha_role", {{"region", s.region}, {"role", role}}, s.role == role ? 1 : 0);
  }
  f.Gauge("gravl_ha_etcd_up", region, s.etcd_reachable ? 1 : 0);
  if (s.leader) f.Gauge("gravl_ha_leader", {{"region", s.region}, {"holder", s.leader->region}}, 1);
  f.Gauge("gravl_ha_lease_held", region, s.holds_lease ? 1 : 0);
  if (s.seconds_since_renewal) {
    f.Gauge("gravl_ha_since_renewal_seconds", region, *s.seconds_since_renewal);
  }
  f.Gauge("gravl_ha_fencing_token", region, static_cast<double>(s.token));
  f.Gauge("gravl_ha_self_fenced", region, s.self_fenced ? 1 : 0);
  f.Gauge("gravl_ha_leader_absent_seconds", region, s.leader_absent_seconds.value_or(0));
  f.Counter("gravl_ha_transitions_total", region, static_cast<double>(s.transitions));
  f.Counter("gravl_ha_failovers_total", region, static_cast<double>(s.failovers));
  if (s.last_detection_seconds) {
    f.Gauge("gravl_ha_last_detection_seconds", region, *s.last_detection_seconds);
  }
  if (s.last_failover_seconds) {
    f.Gauge("gravl_ha_last_failover_seconds", region, *s.last_failover_seconds);
  }
  return f.Text();
}

class StatusHandler : public CivetHandler {
 public:
  enum class Kind { kHealth, kStatus, kMetrics };
  StatusHandler(const ha::Agent& agent, Kind kind, std::chrono::milliseconds stale)
      : agent_(agent), kind_(kind), stale_(stale) {}
  bool handleGet(CivetServer*, mg_connection* conn) override {
    ha::AgentStatus s = agent_.Status();
    switch (kind_) {
      case Kind::kMetrics:
        Reply(conn, 200, "text/plain; version=0.0.4; charset=utf-8", MetricsText(s));
        break;
      case Kind::kStatus:
        Reply(conn, 200, "application/json", s.ToJson().dump() + "\n");
        break;
      case Kind::kHealth: {
        // Healthy while decision rounds happen; etcd or PostgreSQL being down is status.
        // A failover runs inside one round (catch-up, promotion, backup): healthy meanwhile.
        bool ok = (s.last_round && std::chrono::steady_clock::now() - *s.last_round < stale_) ||
                  s.role == "promoting";
        nlohmann::json body = {{"status", ok ? "ok" : "unhealthy"},
                               {"version", kVersion},
                               {"role", s.role},
                               {"etcd_reachable", s.etcd_reachable}};
        Reply(conn, ok ? 200 : 503, "application/json", body.dump() + "\n");
        break;
      }
    }
    return true;
  }

 private:
  const ha::Agent& agent_;
  Kind kind_;
  std::chrono::milliseconds stale_;
};

// Notifications from their own thread: Send() may take its retries' time.
class Notifier {
 public:
  explicit Notifier(const Config& config) : config_(config) {
    if (!config_.notify.targets.empty()) thread_ = std::thread([this] { Loop(); });
  }
  ~Notifier() {
    {
      std::lock_guard lock(mutex_);
      stop_ = true;
    }
    wake_.notify_all();
    if (thread_.joinable()) thread_.join();
  }
  void Post(notify::Event event) {
    if (config_.notify.targets.empty()) return;
    {
      std::lock_guard lock(mutex_);
      if (queue_.size() >= 100) queue_.pop_front();  // bounded: the newest matter most
      queue_.push_back(std::move(event));
    }
    wake_.notify_all();
  }

 private:
  void Loop() {
    std::unique_lock lock(mutex_);
    while (true) {
      wake_.wait(lock, [&] { return stop_ || !queue_.empty(); });
      if (queue_.empty()) return;  // stopping, everything sent
      notify::Event e = std::move(queue_.front());
      queue_.pop_front();
      lock.unlock();
      for (const auto& o : notify::Send(config_.notify, e)) {
        if (!o.delivered) {
          spdlog::warn("event=notification-failed target={} error=\"{}\"", o.target, o.error);
        }
      }
      lock.lock();
    }
  }
  const Config& config_;
  std::mutex mutex_;
  std::condition_variable wake_;
  std::deque<notify::Event> queue_;
  bool stop_ = false;
  std::thread thread_;
};

int Watch(const Context& ctx, const WatchOptions& options) {
  Config cfg = ctx.config;
  if (!cfg.ha.configured()) {
    throw ConfigError(
        "watch needs ha.etcd.endpoints (docs/automatic-failover.md): the agents agree through "
        "an etcd cluster with a member outside both regions");
  }
  if (!options.region.empty()) cfg.ha.region = options.region;
  if (cfg.ha.region.empty()) {
    throw ConfigError("watch needs the region it runs in: set ha.region or --region");
  }
  if (cfg.regions.size() < 2) {
    throw ConfigError("watch needs two configured regions (regions:, docs/failover.md)");
  }
  // The repositories a takeover's failover works on (--repo narrows them, as for failover):
  // a wrong name is said now, not at 3 a.m.
  (void)cfg.SelectRepos(ctx.repo_name);
  const RegionConfig& self = cfg.Region(cfg.ha.region);
  std::vector<RegionConfig> others;
  for (const auto& r : cfg.regions) {
    if (r.name != self.name) others.push_back(r);
  }
  if (!cfg.ha.max_loss.empty()) cfg.failover.max_loss = cfg.ha.max_loss;

  auto store = ha::MakeEtcdStore(cfg.ha);
  auto local = ha::MakePgLocal(self, others, pg::ResolveBinDir(cfg.pg_bin_dir));
  ha::AgentPolicy policy = ha::AgentPolicy::From(cfg.ha, cfg.failover.timeout_s);

  if (ctx.dry_run) {
    ha::LocalState l = local->Check();
    std::string etcd;
    nlohmann::json view_json;
    try {
      ha::ClusterView v = store->Read();
      etcd = "answers (" + store->Describe() + ")";
      view_json = {{"leader", v.leader ? v.leader->region : ""},
                   {"primary_record", v.record ? v.record->region : ""}};
    } catch (const Error& e) {
      throw StorageError(std::string("etcd: ") + e.what());
    }
    // The address is free (bound and released).
    Listen(cfg.ha.listen, 1, kListenSetting).server->close();
    nlohmann::json out = {{"region", self.name},
                          {"postgres", l.Describe()},
                          {"etcd", etcd},
                          {"view", view_json},
                          {"listen", cfg.ha.listen},
                          {"mode", cfg.ha.mode},
                          {"lease_ttl_s", cfg.ha.lease_ttl_s},
                          {"failover_after_s", cfg.ha.failover_after_s}};
    ctx.Emit(out, "watch " + self.name + " (dry run): PostgreSQL " + l.Describe() + "; etcd " +
                      etcd + "; would listen on " + cfg.ha.listen + "; nothing was changed\n");
    return 0;
  }

  Notifier notifier(cfg);
  ha::AgentHooks hooks;
  hooks.notify = [&](const std::string& event, const std::string& summary, bool ok) {
    notify::Event e;
    e.kind = "watch";
    e.ok = ok;
    e.stanza = cfg.stanza;
    e.repo = self.repo;
    e.summary = "watch " + self.name + ": " + event + ": " + summary;
    e.report = {{"event", event}, {"region", self.name}, {"summary", summary}};
    notifier.Post(std::move(e));
  };
  const ha::Agent* agent_ptr = nullptr;  // set once the agent exists
  hooks.failover = [&](std::int64_t token, const std::string& old_region) {
    Context fctx = ctx;
    fctx.config = cfg;
    fctx.dry_run = false;
    fctx.output = OutputFormat::kJson;
    std::ostringstream captured;  // the failover's own result is logged, not printed
    fctx.out = &captured;
    FailoverOptions fo;
    fo.to = self.name;
    fo.token = std::to_string(token);
    fo.lease_fence = "the leader key's lease of " +
                     (old_region.empty() ? std::string("the old primary") : old_region) +
                     " expired; etcd fencing token " + std::to_string(token);
    if (agent_ptr != nullptr) fo.detection_seconds = agent_ptr->Status().last_detection_seconds;
    int code = 1;
    try {
      code = RecordRun(fctx, repo::kFailoverReports, "failover",
                       [&](const Context& c) { return Failover(c, fo); });
    } catch (const RefusedError& e) {
      spdlog::warn("event=failover-refused region={} error=\"{}\"", self.name, Redact(e.what()));
      return ha::FailoverOutcome::kRefused;
    } catch (const Error& e) {
      spdlog::warn("event=failover-error region={} exit={} error=\"{}\"", self.name,
                   static_cast<int>(e.code()), Redact(e.what()));
      return ha::FailoverOutcome::kFailed;
    }
    spdlog::info("event=failover-done region={} exit={} report={}", self.name, code,
                 Redact(captured.str().substr(0, 2000)));
    return code == 0 ? ha::FailoverOutcome::kPromoted : ha::FailoverOutcome::kFailed;
  };

  std::atomic<bool> stop{false};
  SetStopHandler([&](int sig) {
    spdlog::info("event=stopping signal={}", sig);
    stop = true;
  });

  ha::Agent agent(policy, *store, *local, hooks);
  agent_ptr = &agent;
  Listening listening = Listen(cfg.ha.listen, 4, kListenSetting);
  CivetServer* server = listening.server.get();
  const auto stale =
      std::max<std::chrono::milliseconds>(policy.interval * 10, std::chrono::seconds(15));
  StatusHandler health(agent, StatusHandler::Kind::kHealth, stale);
  StatusHandler status(agent, StatusHandler::Kind::kStatus, stale);
  StatusHandler metrics(agent, StatusHandler::Kind::kMetrics, stale);
  server->addHandler("/healthz", health);
  server->addHandler("/status", status);
  server->addHandler("/metrics", metrics);
  const std::string& bound = listening.address;
  spdlog::info(
      "event=started region={} listen={} etcd=\"{}\" lease_ttl_s={} failover_after_s={} "
      "clock_margin_s={} mode={} self_fence={} failsafe={} version={}",
      self.name, bound, store->Describe(), cfg.ha.lease_ttl_s, cfg.ha.failover_after_s,
      cfg.ha.clock_margin_s, cfg.ha.mode, cfg.ha.self_fence, cfg.ha.failsafe, kVersion);

  agent.Run(stop);
  server->close();
  ha::AgentStatus s = agent.Status();
  spdlog::info("event=stopped region={} role={} holds_lease={}{}", self.name, s.role, s.holds_lease,
               s.holds_lease ? " note=\"the leader key expires after ha.lease_ttl unless an agent "
                               "of this region renews it\""
                             : "");
  return 0;
}

}  // namespace

void AddWatch(CLI::App& app, Invocation& inv) {
  auto options = std::make_shared<WatchOptions>();
  auto* cmd = app.add_subcommand(
      "watch",
      "Automatic failover agent of one region: holds or watches the leader key in etcd "
      "(ha.etcd), fences its own primary when it cannot renew the lease, fails over when the "
      "key has been gone for ha.failover_after; serves /healthz, /status and /metrics on "
      "ha.listen");
  cmd->add_option("--region", options->region, "the region this agent runs in (ha.region)");
  cmd->add_flag("--dry-run", inv.dry_run,
                "check the configuration, etcd, PostgreSQL and the listen address; change nothing");
  cmd->callback([&inv, options] { inv.result = Watch(inv.MakeContext(), *options); });
}

}  // namespace gravl::commands
