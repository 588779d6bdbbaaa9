// switchover --to REGION: planned change of primary without data loss (docs/failover.md).
// The primary is shut down cleanly, the standby must have replayed its shutdown checkpoint,
// then it is promoted and the old primary restarts as its standby (no rewind: its WAL ends at
// that checkpoint). A standby that does not catch up in time changes nothing: the old primary
// is started again as it was.

#include <spdlog/spdlog.h>

#include <filesystem>
#include <sstream>

#include "commands/cli.h"
#include "commands/commands.h"
#include "commands/run_record.h"
#include "common/error.h"
#include "common/log.h"
#include "ha/ha.h"
#include "ha/store.h"
#include "pg/connection.h"
#include "pg/instance.h"
#include "pg/server.h"

namespace gravl::commands {

int Switchover(const Context& ctx, const SwitchoverOptions& options) {
  const Config& cfg = ctx.config;
  const RegionConfig& target = cfg.Region(options.to);
  const auto timeout = std::chrono::seconds(cfg.failover.timeout_s);
  const std::string token = HexEncode(RandomBytes(8));
  const std::string bin_dir = pg::ResolveBinDir(cfg.pg_bin_dir);
  if (ctx.run) {
    ctx.run->repo = target.repo;
    ctx.run->label = target.name;
  }
  ha::StepLog log;
  nlohmann::json details = {{"to", target.name}, {"token", token}};
  std::vector<std::string> repo_problems;
  auto owned = ctx.OpenRepos();
  auto repos = ha::Reachable(owned, cfg.passphrase, &repo_problems);
  details["repository_problems"] = repo_problems;
  repo::Repository* region_repo = ha::Named(repos, target.repo);
  const RegionConfig* old = nullptr;
  ha::Probe target_probe, old_probe;
  bool already = false;

  auto finish = [&] { log.Finish(details, ctx.run.get()); };
  // Watch agents (ha.etcd): the primary record is handed over while the switchover runs.
  std::unique_ptr<ha::Store> ha_store;
  std::optional<ha::PrimaryRecord> ha_before;
  bool handed = false;

  try {
    log.Run("assess", [&] {
      if (region_repo == nullptr) {
        throw StorageError("the repository of region " + target.name + " (" + target.repo +
                           ") cannot be read; fix it before a switchover");
      }
      target_probe = ha::ProbeRegion(target);
      if (!target_probe.reachable) {
        throw PgError(target.name + " cannot be reached: " + target_probe.error);
      }
      std::vector<const RegionConfig*> primaries;
      std::ostringstream d;
      d << target.name << ": " << target_probe.Describe();
      for (const auto& r : cfg.regions) {
        if (r.name == target.name) continue;
        ha::Probe p = ha::ProbeRegion(r);
        d << "; " << r.name << ": " << p.Describe();
        if (p.primary()) {
          primaries.push_back(&r);
          old_probe = p;
        } else if (old == nullptr) {
          old_probe = p;
          old = &r;
        }
      }
      if (!target_probe.role.in_recovery) {
        if (primaries.empty()) {
          if (old_probe.reachable && old_probe.role.in_recovery && old_probe.role.streaming) {
            throw RefusedError(target.name + " is already the primary and " + old->name +
                               " streams from it: there is nothing to switch. Nothing was "
                               "changed");
          }
          if (target_probe.role.timeline <= 1) {
            throw RefusedError(target.name +
                               " is already the primary (timeline 1, never "
                               "promoted): there is nothing to switch. Nothing was changed");
          }
          already = true;  // done by an earlier run; the old primary may still need restarting
          return d.str() + " (already primary)";
        }
        throw RefusedError("both " + target.name + " and " + primaries.front()->name +
                           " are primaries: resolve this first (failback --to the one that "
                           "should become a standby). Nothing was changed");
      }
      if (primaries.size() != 1) {
        throw RefusedError(
            "a switchover needs a running primary, and none of the other "
            "regions has one (" +
            d.str() + "): use `gravl-dr failover --to " + target.name +
            "` for an outage. Nothing was changed");
      }
      old = primaries.front();
      if (ha::SameServer(old->conninfo, old->data_dir) != ha::Sameness::kYes) {
        throw RefusedError("a switchover shuts down and restarts the primary in " + old->name +
                           ", whose server is not running on this host" +
                           (old->data_dir.empty() ? std::string(" (regions[") + old->name +
                                                        "].pg.data_dir is not set)"
                                                  : " in " + old->data_dir) +
                           ": run it on that server's host. Nothing was changed");
      }
      if (target_probe.role.pause_state != "not paused") {
        throw RefusedError("replay is " + target_probe.role.pause_state + " on " + target.name +
                           ", so it is not catching up with " + old->name +
                           ": resume it (SELECT pg_wal_replay_resume()) and run again. Nothing "
                           "was changed");
      }
      if (target_probe.role.system_identifier != old_probe.role.system_identifier) {
        throw ConflictError(old->name + " and " + target.name + " are different clusters");
      }
      // Caught up with where the primary was a moment ago, before anything stops.
      Lsn mark = old_probe.role.current;
      try {
        ha::WaitReplayed(target, mark, timeout);
      } catch (const PgError& e) {
        throw RefusedError(std::string(e.what()) + ": the standby is behind " + old->name + " at " +
                           mark.ToString() + "; nothing was changed");
      }
      return d.str();
    });

    pg::LocalServer old_server(bin_dir, old ? old->data_dir : "");
    if (ctx.dry_run) {
      for (const char* step : {"stop-primary", "confirm", "promote", "archive-history",
                               "fence-repository", "endpoint", "restart-old", "handover-done"}) {
        log.Skip(step, "--dry-run");
      }
      finish();
      ctx.Emit(details,
               "switchover to " + target.name + " (dry run): nothing was changed\n" + log.Text());
      return 0;
    } else if (already) {
      log.Skip("stop-primary", target.name + " was promoted by an earlier run");
      log.Skip("confirm", target.name + " was promoted by an earlier run");
    } else {
      if (cfg.ha.configured()) {
        log.Run("handover", [&] {
          ha_store = ha::MakeEtcdStore(cfg.ha);
          ha_before = ha::BeginHandover(*ha_store, old ? old->name : "", target.name);
          handed = true;
          return "the primary record in " + ha_store->Describe() + " names " + target.name +
                 " while the switchover runs; the leader key was released";
        });
      }
      pg::ControlData control;
      // Refused or failed before the promotion: the old primary runs as it was, and the
      // primary record names it again.
      auto abort_handover = [&] {
        if (!handed) return;
        try {
          ha::AbortHandover(*ha_store, target.name, ha_before);
        } catch (const Error& e) {
          spdlog::error(
              "the primary record could not be given back to {}: {}; fix it with "
              "etcdctl or run the switchover again",
              old ? old->name : std::string("the old primary"), Redact(e.what()));
        }
      };
      try {
        log.Run("stop-primary", [&] {
          old_server.Stop("fast", timeout);
          control = old_server.Control();
          if (!control.CleanlyShutDown()) {
            old_server.Start(timeout);
            throw PgError(old->name + " did not shut down cleanly (" + control.state +
                          "); it was started again, nothing else changed");
          }
          return "clean shutdown; shutdown checkpoint at " + control.checkpoint.ToString();
        });
        log.Run("confirm", [&] {
          Lsn need{control.checkpoint.value + 1};  // the checkpoint record replayed
          try {
            ha::WaitReplayed(target, need, timeout);
          } catch (const PgError& e) {
            spdlog::error("{}; starting {} again as it was", e.what(), old->name);
            old_server.Start(timeout);
            throw RefusedError(target.name + " did not receive " + old->name +
                               "'s shutdown checkpoint (" + control.checkpoint.ToString() +
                               ") within " + std::to_string(timeout.count()) + " s (" + e.what() +
                               "); " + old->name +
                               " was started again as primary, nothing was "
                               "lost or changed");
          }
          return target.name + " has everything up to the shutdown checkpoint";
        });
      } catch (const Error&) {
        abort_handover();
        throw;
      }
    }

    ha::Promotion promo =
        ha::PromoteRegion(target, *region_repo, repos, "switchover", token, timeout, log);
    details["timeline"] = {{"old", promo.parent},
                           {"new", promo.timeline},
                           {"switch_point", promo.switch_point.ToString()}};

    ha::SwitchEndpoint(cfg.failover, target, log, details,
                       target.name + " is primary, but applications may still be pointed at " +
                           (old ? old->name : std::string("the old primary")) +
                           ": fix the hook and run the switchover again");

    log.Run("restart-old", [&] {
      if (old == nullptr || old->data_dir.empty() ||
          !std::filesystem::exists(old->data_dir + "/PG_VERSION")) {
        return std::string("the old primary's data directory is not on this host");
      }
      if (old_server.Running()) {
        if (ha::SameServer(old->conninfo, old->data_dir) != ha::Sameness::kYes) {
          throw PgError("the server running on " + old->data_dir + " is not " + old->name +
                        "'s: not touching it; restart " + old->name +
                        " as a standby on its own host (gravl-dr failback --to " + old->name +
                        " --no-switchover)");
        }
        ha::Probe p = ha::ProbeRegion(*old);
        if (p.reachable && p.role.in_recovery) {
          ha::WaitStreaming(*old, promo.timeline, timeout);
          return old->name + " already streams from " + target.name;
        }
        old_server.Stop("fast", timeout);
      }
      ha::ConfigureAsStandby(old->data_dir, *old, target, RestoreCommandFor(ctx, "", true),
                             "switchover to " + target.name + " at " +
                                 FormatIso8601(std::chrono::system_clock::now()));
      old_server.Start(timeout);
      ha::WaitStreaming(*old, promo.timeline, timeout);
      return old->name + " streams from " + target.name + " on timeline " +
             std::to_string(promo.timeline);
    });

    if (cfg.ha.configured()) {
      log.Run("handover-done", [&] {
        if (!ha_store) ha_store = ha::MakeEtcdStore(cfg.ha);
        ha::EndHandover(*ha_store, target.name, promo.timeline);
        return "the primary record names " + target.name + " (timeline " +
               std::to_string(promo.timeline) + "); its watch agent takes the leader key";
      });
    }

  } catch (const Error&) {
    finish();
    throw;
  }
  finish();
  std::ostringstream text;
  text << "switchover to " << target.name << " complete";
  if (auto t = log.Until("promote")) {
    char took[64];
    std::snprintf(took, sizeof took, " (writes stopped %.1f s)",
                  *t - log.StartOf("stop-primary").value_or(0));
    text << took;
  }
  text << "\n" << log.Text();
  ctx.Emit(details, text.str());
  return 0;
}

void AddSwitchover(CLI::App& app, Invocation& inv) {
  auto options = std::make_shared<SwitchoverOptions>();
  auto* cmd = app.add_subcommand(
      "switchover",
      "Planned: make --to REGION's standby the primary without data loss; the old primary "
      "becomes its standby");
  cmd->add_option("--to", options->to, "the region whose standby becomes primary")->required();
  cmd->add_flag("--dry-run", inv.dry_run, "assess and print the plan; change nothing");
  cmd->callback([&inv, options] {
    inv.result = RecordRun(inv.MakeContext(), repo::kFailoverReports, "switchover",
                           [&](const Context& ctx) { return Switchover(ctx, *options); });
  });
}

}  // namespace gravl::commands
