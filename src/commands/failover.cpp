// failover --to REGION: unplanned promotion of the standby in REGION (docs/failover.md).
// Assess, catch up from the repositories, bound the loss, fence the old primary, promote,
// fence the repository, switch the endpoint, back up the new primary -- each step timed
// (the measured RTO) and recorded in reports/failovers/.

#include <spdlog/spdlog.h>

#include <filesystem>
#include <sstream>

#include "commands/cli.h"
#include "commands/commands.h"
#include "commands/run_record.h"
#include "common/bytes.h"
#include "common/error.h"
#include "common/log.h"
#include "common/time_util.h"
#include "ha/ha.h"
#include "ha/store.h"
#include "pg/connection.h"
#include "pg/instance.h"
#include "pg/server.h"
#include "repo/catalog.h"

namespace gravl::commands {
namespace {

std::string Token() { return HexEncode(RandomBytes(8)); }

std::optional<double> ParseWaldumpTime(const std::string& text) {
  try {
    return std::chrono::duration<double>(ParseTargetTime(text).time_since_epoch()).count();
  } catch (const std::exception&) {
    return std::nullopt;
  }
}

// What the old primary wrote that the promoted standby does not have, as far as it can be
// known: the old primary's WAL end (its pg_wal, when its data directory is on this host and
// it is stopped: exact), else the newest WAL streamed or archived (a lower bound).
struct LossBound {
  Lsn replayed;
  Lsn last_known;
  std::vector<std::string> sources;
  bool exact = false;
  std::uint64_t bytes = 0;
  std::optional<double> seconds;            // commit-time span of the lost WAL, when known
  std::vector<pg::WalCommit> lost_commits;  // the newest 1,000
  std::size_t lost_commit_count = 0;
  bool commits_known = false;  // pg_waldump read the lost WAL
  std::optional<double> last_contact_age;
  bool decided_earlier = false;  // a re-run: the earlier run's report has it
};

nlohmann::json ToJson(const LossBound& b) {
  nlohmann::json commits = nlohmann::json::array();
  for (const auto& c : b.lost_commits) {
    commits.push_back({{"lsn", c.lsn.ToString()}, {"xid", c.xid}, {"time", c.time}});
  }
  return {{"replayed", b.replayed.ToString()},
          {"old_primary_last_known", b.last_known.ToString()},
          {"sources", b.sources},
          {"exact", b.exact},
          {"bytes", b.bytes},
          {"seconds", b.seconds ? nlohmann::json(*b.seconds) : nlohmann::json(nullptr)},
          {"lost_commits", commits},
          {"lost_commit_count", b.lost_commit_count},
          {"decided_by_earlier_run", b.decided_earlier},
          {"last_contact_age_seconds",
           b.last_contact_age ? nlohmann::json(*b.last_contact_age) : nlohmann::json(nullptr)}};
}

}  // namespace

// The old primary's data directory is on this host -- and is not the target's own server,
// which one configuration shared by both hosts, with the same path, could make it look like:
// a running server there must be definitely another one than the target's, and a stopped one
// must not be a standby's (the target runs, in recovery, perhaps where /proc cannot see it).
bool LocalOldPrimary(const RegionConfig& old, const RegionConfig& target,
                     const std::string& bin_dir) {
  if (old.data_dir.empty() || !std::filesystem::exists(old.data_dir + "/PG_VERSION")) return false;
  pg::LocalServer server(bin_dir, old.data_dir);
  if (server.Running()) return ha::SameServer(target.conninfo, old.data_dir) == ha::Sameness::kNo;
  const std::string state = server.Control().state;
  return state != "in archive recovery" && state != "shut down in recovery";
}

int Failover(const Context& ctx, const FailoverOptions& options) {
  const Config& cfg = ctx.config;
  const RegionConfig& target = cfg.Region(options.to);
  const ha::LossLimit limit = ha::ParseLossLimit(cfg.failover.max_loss, "--max-loss");
  const auto timeout = std::chrono::seconds(cfg.failover.timeout_s);
  const std::string token = options.token.empty() ? Token() : options.token;
  const std::string bin_dir = pg::ResolveBinDir(cfg.pg_bin_dir);
  std::vector<const RegionConfig*> others;
  for (const auto& r : cfg.regions) {
    if (r.name != target.name) others.push_back(&r);
  }
  if (ctx.run) {
    ctx.run->repo = target.repo;  // the surviving region's repository holds the report
    ctx.run->label = target.name;
  }

  ha::StepLog log;
  nlohmann::json details = {
      {"to", target.name}, {"token", token}, {"force", options.force}, {"max_loss", limit.text}};
  if (!options.lease_fence.empty()) details["lease_fence"] = options.lease_fence;
  if (options.detection_seconds) details["detection_seconds"] = *options.detection_seconds;
  std::vector<std::string> repo_problems;
  auto owned = ctx.OpenRepos();
  auto repos = ha::Reachable(owned, cfg.passphrase, &repo_problems);
  details["repository_problems"] = repo_problems;
  repo::Repository* region_repo = ha::Named(repos, target.repo);

  ha::Probe target_probe;
  std::map<std::string, ha::Probe> old_probes;
  bool resumed = false;
  LossBound loss;
  std::string forced;  // what --force overrode

  auto finish = [&](int code) {
    details["loss"] = ToJson(loss);
    details["forced"] = forced;
    log.Finish(details, ctx.run.get());
    return code;
  };

  try {
    log.Run("assess", [&] {
      if (region_repo == nullptr) {
        throw StorageError("the repository of region " + target.name + " (" + target.repo +
                           ") cannot be read; a new primary there could not archive. Fix it "
                           "first (the log names what failed)");
      }
      target_probe = ha::ProbeRegion(target);
      if (!target_probe.reachable) {
        throw PgError("the standby in " + target.name + " cannot be reached: " +
                      target_probe.error + "; there is nothing to promote");
      }
      if (!target_probe.role.in_recovery) {
        // Promoted by an earlier run that stopped halfway -- or simply the primary.
        if (target_probe.role.timeline <= 1) {
          throw RefusedError(target.name + " is already the primary (timeline " +
                             std::to_string(target_probe.role.timeline) +
                             ", never promoted): there is nothing to fail over. Nothing was "
                             "changed");
        }
        resumed = true;
      }
      std::ostringstream d;
      d << target.name << ": " << target_probe.Describe();
      for (const auto* o : others) {
        ha::Probe p = ha::ProbeRegion(*o);
        old_probes[o->name] = p;
        d << "; " << o->name << ": " << p.Describe();
        if (p.reachable && p.role.system_identifier != target_probe.role.system_identifier) {
          throw ConflictError(o->name + " runs another cluster (system identifier " +
                              p.role.system_identifier + ", " + target.name + " has " +
                              target_probe.role.system_identifier + "): check regions[]");
        }
        if (resumed && p.reachable && p.role.in_recovery) {
          throw RefusedError(target.name + " is already the primary and " + o->name +
                             " is a standby: there is nothing to fail over (to move the primary, "
                             "use `gravl-dr switchover --to " +
                             o->name + "`). Nothing was changed");
        }
        if (p.writable() && !resumed) {
          if (!options.force) {
            throw RefusedError(
                "the primary in " + o->name + " is reachable and accepts writes (" + p.Describe() +
                "): this is not an outage. Use `gravl-dr switchover --to " + target.name +
                "` for a planned switch without data loss. --force promotes " + target.name +
                " anyway: " + o->name +
                " is fenced first (made read-only, stopped), and what it commits after the "
                "catch-up is lost. Nothing was changed");
          }
          forced += "old primary " + o->name + " was healthy; ";
        }
      }
      details["probes"] = nlohmann::json::object();
      details["probes"][target.name] = target_probe.Describe();
      for (const auto& [n, p] : old_probes) details["probes"][n] = p.Describe();
      return d.str();
    });

    if (resumed) {
      loss.decided_earlier = true;
      log.Skip("catch-up", target.name + " is already primary: continuing an earlier failover");
      log.Skip("loss-bound", "decided by the earlier run (see its report)");
    } else {
      log.Run("catch-up", [&] {
        auto conn = pg::Connection::Open(target.conninfo);
        pg::ServerRole role = pg::GetServerRole(*conn);
        std::string d;
        if (role.pause_state != "not paused") {
          if (!ctx.dry_run) pg::ResumeReplay(*conn);
          d +=
              "replay was " + role.pause_state + (ctx.dry_run ? ": would resume; " : ": resumed; ");
        }
        const std::uint64_t seg_size = region_repo->Stanza().wal_segment_size;
        std::vector<std::string> problems;
        auto archived = ha::NewestArchivedWal(repos, role.timeline, seg_size, &problems);
        Lsn want = role.received;
        if (archived && archived->end > want) {
          if (role.restore_command.empty()) {
            d += "the repositories hold WAL up to " + archived->end.ToString() +
                 ", but the standby has no restore_command to fetch it; ";
          } else {
            want = archived->end;
            d += "the repository " + archived->repo + " holds WAL up to " +
                 archived->end.ToString() + " (" + archived->segment + "); ";
          }
        }
        if (ctx.dry_run) {
          d += "would wait until the standby replayed up to " + want.ToString() + "; ";
        } else if (want == role.received) {
          // What it received may end inside a record that will never be completed.
          Lsn at = ha::WaitReplayedUnlessStalled(target, want, timeout, std::chrono::seconds(10));
          if (at < want) {
            d += "replay stopped at " + at.ToString() + ", " +
                 std::to_string(want.value - at.value) +
                 " bytes before the end of what it received (an unfinished record); ";
          }
        } else {
          ha::WaitReplayed(target, want, timeout);
        }
        role = pg::GetServerRole(*conn);
        loss.replayed = role.replayed;
        loss.last_contact_age = role.last_contact_age;
        loss.last_known = std::max(role.received, role.replayed);
        loss.sources.push_back("streamed " + role.received.ToString());
        if (archived) {
          loss.last_known = std::max(loss.last_known, archived->end);
          loss.sources.push_back("archived " + archived->end.ToString() + " in " + archived->repo);
        }
        for (const auto& p : problems) loss.sources.push_back("unreadable: " + p);
        return d + "replayed up to " + role.replayed.ToString();
      });

      log.Run("loss-bound", [&] {
        // The old primary's own WAL, where its data directory is on this host and it is down.
        for (const auto* o : others) {
          if (o->data_dir.empty() || !std::filesystem::exists(o->data_dir + "/PG_VERSION"))
            continue;
          pg::LocalServer old(bin_dir, o->data_dir);
          if (old.Running()) continue;
          const std::uint64_t seg_size = region_repo->Stanza().wal_segment_size;
          if (auto end = old.WalEnd(seg_size)) {
            loss.exact = true;
            loss.last_known = std::max(loss.last_known, *end);
            loss.sources.push_back("pg_wal of " + o->name + " ends at " + end->ToString());
            if (*end > loss.replayed) {
              std::string why;
              pg::ControlData c = old.Control();
              loss.lost_commits =
                  old.Commits(c.timeline, loss.replayed, *end, 1000, &loss.lost_commit_count, &why);
              loss.commits_known = why.empty() || !loss.lost_commits.empty();
              if (!why.empty()) loss.sources.push_back("pg_waldump: " + why);
            } else {
              loss.commits_known = true;
            }
          }
        }
        loss.bytes =
            loss.last_known > loss.replayed ? loss.last_known.value - loss.replayed.value : 0;
        auto conn = pg::Connection::Open(target.conninfo);
        pg::ServerRole role = pg::GetServerRole(*conn);
        if (loss.bytes == 0 && loss.exact) {
          loss.seconds = 0;
        } else if (loss.exact && loss.commits_known && loss.lost_commits.empty()) {
          loss.seconds = 0;  // WAL without commits: no committed transaction is lost
        } else if (loss.exact && loss.commits_known && role.last_replay_time) {
          // The newest lost commit against the newest replayed one.
          if (auto t = ParseWaldumpTime(loss.lost_commits.back().time)) {
            loss.seconds = std::max(0.0, *t - *role.last_replay_time);
          }
        }
        std::string d = FormatBytes(loss.bytes) + (loss.exact ? "" : " at least") +
                        " of WAL the old primary wrote is not on " + target.name + " (" +
                        (loss.commits_known ? std::to_string(loss.lost_commit_count)
                                            : std::string("an unknown number of")) +
                        " commits)";
        if (!loss.exact) {
          d += "; the old primary's own WAL cannot be read from here, so WAL it wrote after it "
               "last sent any is unknown";
          if (loss.last_contact_age) {
            d += " (last contact " + std::to_string(static_cast<long>(*loss.last_contact_age)) +
                 " s ago)";
          }
        }
        bool over = false;
        if (limit.bytes && loss.bytes > *limit.bytes) over = true;
        // Zero loss asked: only an exact bound can promise it.
        if (limit.bytes && *limit.bytes == 0 && !loss.exact) over = true;
        if (limit.duration) {
          if (!loss.seconds)
            over = true;  // unknown time span: not within any duration
          else if (*loss.seconds > static_cast<double>(limit.duration->count()))
            over = true;
        }
        if (over) {
          if (!options.force || ctx.dry_run) {
            throw RefusedError("the failover would lose " + d + ", more than --max-loss " +
                               limit.text +
                               " allows. Bring the old primary (or its disk) back "
                               "if you can; --force promotes anyway and loses it. Nothing "
                               "was changed");
          }
          forced += "loss above --max-loss; ";
        }
        return d;
      });
    }

    if (ctx.dry_run) {
      for (const char* step : {"fence", "final-catch-up", "promote", "archive-history",
                               "fence-repository", "endpoint", "backup"}) {
        log.Skip(step, "--dry-run");
      }
      finish(0);
      ctx.Emit(details,
               "failover to " + target.name + " (dry run): nothing was changed\n" + log.Text());
      return 0;
    }

    // Watch agents (ha.etcd) and a failover run by hand: the primary record names the target
    // while it runs (the leader key released: an old primary whose agent still runs fences
    // itself), so that the target's agent does not fence it once promoted.
    std::unique_ptr<ha::Store> ha_store;
    std::optional<ha::PrimaryRecord> ha_before;
    bool handed = false;
    if (cfg.ha.configured() && options.token.empty() && !resumed) {
      log.Run("handover", [&] {
        ha_store = ha::MakeEtcdStore(cfg.ha);
        ha_before =
            ha::BeginHandover(*ha_store, others.empty() ? "" : others.front()->name, target.name);
        handed = true;
        return "the primary record in " + ha_store->Describe() + " names " + target.name +
               " while the failover runs; the leader key was released";
      });
    }
    try {
      log.Run("fence", [&] {
        std::ostringstream d;
        for (const auto* o : others) {
          std::string region_detail;
          bool confirmed = false;
          const bool hook = !cfg.failover.fence_command.empty();
          if (hook) {
            auto result = ha::RunHook(cfg.failover.fence_command, ha::HookVars(*o),
                                      std::chrono::seconds(cfg.failover.hook_timeout_s));
            details["fence_hooks"][o->name] = {{"command", result.command},
                                               {"exit_code", result.exit_code},
                                               {"output", result.output},
                                               {"seconds", result.seconds}};
            if (!result.ok()) {
              std::string why = "fence_command for " + o->name + " failed (exit " +
                                std::to_string(result.exit_code) + "): " + result.output;
              if (!options.force) {
                throw RefusedError(
                    why + ". Fencing of " + o->name + " cannot be confirmed, so " + target.name +
                    " was not promoted (two primaries could take writes). Fence it by hand and run "
                    "again, or --force to promote without a confirmed fence");
              }
              forced += "fencing of " + o->name + " not confirmed; ";
              region_detail += "hook failed (forced); ";
            } else {
              confirmed = true;
              region_detail += "hook done; ";
            }
          }
          ha::Probe p = ha::ProbeRegion(*o);
          if (p.primary()) {
            // Best effort: read-only by default and every session ended. Not a fence by itself
            // (BEGIN READ WRITE overrides the default), so it confirms nothing.
            auto conn = pg::Connection::Open(o->conninfo);
            int ended = pg::MakeReadOnly(*conn);
            region_detail += "made read-only (" + std::to_string(ended) + " sessions ended); ";
          }
          if (LocalOldPrimary(*o, target, bin_dir)) {
            pg::LocalServer old(bin_dir, o->data_dir);
            if (old.Running()) {
              try {
                old.Stop("fast", std::chrono::seconds(60));
              } catch (const Error&) {
                old.Stop("immediate", std::chrono::seconds(60));
              }
              region_detail += "stopped; ";
            } else {
              region_detail += "not running on this host; ";
            }
            if (!hook) confirmed = !old.Running();
          } else if (!hook) {
            region_detail += p.reachable ? "still running where gravl-dr cannot stop it; "
                                         : "unreachable from here, and no fence_command to make "
                                           "sure it stays down; ";
          }
          if (!confirmed && !options.lease_fence.empty()) {
            confirmed = true;
            region_detail += "fenced by its expired lease (" + options.lease_fence + "); ";
          }
          if (!confirmed && !hook) {
            if (!options.force) {
              throw RefusedError(
                  "fencing of " + o->name + " cannot be confirmed (" + region_detail +
                  "): it may still accept writes where gravl-dr cannot see it. Configure "
                  "failover.fence_command (docs/failover.md), or stop it by hand and run again, "
                  "or --force to promote without a confirmed fence. " +
                  target.name + " was not promoted");
            }
            forced += "fencing of " + o->name + " not confirmed; ";
          }
          d << o->name << ": " << region_detail << (confirmed ? "confirmed" : "NOT confirmed");
        }
        return d.str();
      });

      if (resumed) {
        log.Skip("final-catch-up", "already primary");
      } else {
        log.Run("final-catch-up", [&] {
          // WAL archived while fencing (the old primary's last pushes) is replayed too.
          auto conn = pg::Connection::Open(target.conninfo);
          pg::ServerRole role = pg::GetServerRole(*conn);
          auto archived = ha::NewestArchivedWal(repos, role.timeline,
                                                region_repo->Stanza().wal_segment_size, nullptr);
          if (archived && archived->end > role.replayed && !role.restore_command.empty()) {
            ha::WaitReplayed(target, archived->end, timeout);
            return "replayed up to " + archived->end.ToString() + " archived while fencing";
          }
          return std::string("nothing new in the repositories");
        });
      }

    } catch (const Error&) {
      if (handed) {
        try {
          ha::AbortHandover(*ha_store, target.name, ha_before);
        } catch (const Error& e) {
          spdlog::error("the primary record could not be given back: {}", Redact(e.what()));
        }
      }
      throw;
    }

    ha::Promotion promo =
        ha::PromoteRegion(target, *region_repo, repos, "failover", token, timeout, log);
    if (cfg.ha.configured() && options.token.empty()) {
      log.Run("handover-done", [&] {
        if (!ha_store) ha_store = ha::MakeEtcdStore(cfg.ha);
        ha::EndHandover(*ha_store, target.name, promo.timeline);
        return "the primary record names " + target.name + " (timeline " +
               std::to_string(promo.timeline) + "); its watch agent takes the leader key";
      });
    }
    details["timeline"] = {{"old", promo.parent},
                           {"new", promo.timeline},
                           {"switch_point", promo.switch_point.ToString()}};
    details["fence_problems"] = promo.fence_problems;

    ha::SwitchEndpoint(cfg.failover, target, log, details,
                       target.name +
                           " is primary, but applications may still be pointed at the "
                           "old one: fix the hook and run the failover again (it "
                           "continues from here)");

    if (!cfg.failover.backup) {
      log.Skip("backup", "failover.backup is off");
    } else {
      log.Run("backup", [&] {
        // A re-run: the earlier run's backup of the new timeline counts.
        repo::Catalog catalog(*region_repo);
        for (const auto& b : catalog.Backups()) {
          if (b.ok() && b.manifest->full() && b.manifest->timeline >= promo.timeline) {
            details["backup"] = {{"label", b.label}, {"existing", true}};
            return "backup " + b.label + " of timeline " + std::to_string(b.manifest->timeline) +
                   " is already in " + target.repo;
          }
        }
        Context bctx = ctx;
        bctx.config.pg_conninfo = target.conninfo;
        bctx.repo_name = target.repo;
        bctx.output = OutputFormat::kJson;
        bctx.run.reset();
        std::ostringstream captured;  // the backup's own result goes into this one's
        bctx.out = &captured;
        BackupOptions bo;
        int code = RecordRun(bctx, repo::kBackupReports, "full",
                             [&](const Context& c) { return Backup(c, bo); });
        details["backup"] = nlohmann::json::parse(captured.str(), nullptr, false);
        if (code != 0) {
          throw Error(static_cast<ExitCode>(code),
                      "the backup of the new primary ended with exit code " + std::to_string(code));
        }
        return "full backup of " + target.name + " into " + target.repo;
      });
    }
  } catch (const Error&) {
    finish(1);
    throw;
  }
  finish(0);

  std::ostringstream text;
  text << "failover to " << target.name << " complete";
  if (auto t = log.Until("promote")) {
    char took[64];
    std::snprintf(took, sizeof took, " (writable %.1f s after the decision)", *t);
    text << took;
  }
  text << "\n" << log.Text();
  if (loss.decided_earlier) {
    text << "loss bound: decided by the earlier run that promoted " << target.name
         << " (see its report)\n";
  } else {
    text << "loss bound: " << FormatBytes(loss.bytes) << (loss.exact ? " (exact)" : " (at least)")
         << ", " << (loss.commits_known ? std::to_string(loss.lost_commit_count) : std::string("?"))
         << " commits\n";
  }
  if (!forced.empty()) text << "FORCED: " << forced << "\n";
  ctx.Emit(details, text.str());
  return 0;
}

void AddFailover(CLI::App& app, Invocation& inv) {
  auto options = std::make_shared<FailoverOptions>();
  auto* cmd = app.add_subcommand(
      "failover",
      "Unplanned: promote the standby of --to REGION after the primary's region failed "
      "(catch-up from the repositories, loss bound, fencing, promotion, endpoint, backup)");
  cmd->add_option("--to", options->to, "the region whose standby becomes primary")->required();
  cmd->add_flag("--force", options->force,
                "promote even when the old primary is healthy, the loss exceeds --max-loss, or "
                "fencing cannot be confirmed (each is recorded in the report)");
  cmd->add_flag("--dry-run", inv.dry_run, "assess and print the plan; change nothing");
  cmd->callback([&inv, options] {
    inv.result = RecordRun(inv.MakeContext(), repo::kFailoverReports, "failover",
                           [&](const Context& ctx) { return Failover(ctx, *options); });
  });
}

}  // namespace gravl::commands
