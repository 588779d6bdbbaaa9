// failback --to REGION: after a failover, rebuild REGION's old primary as a standby of the
// current primary -- pg_rewind when its prerequisites hold, else a delta restore from the
// repository -- wait until it has caught up, then switch over back (docs/failover.md). A
// forked old timeline (the old primary kept committing after the failover) is reported, its
// WAL kept in the repository's quarantine, and never rewound away without --force.

#include <spdlog/spdlog.h>

#include <filesystem>
#include <sstream>

#include "commands/cli.h"
#include "commands/commands.h"
#include "commands/run_record.h"
#include "common/error.h"
#include "common/log.h"
#include "ha/ha.h"
#include "io/file.h"
#include "io/hash.h"
#include "pg/connection.h"
#include "pg/instance.h"
#include "pg/server.h"
#include "repo/fence.h"

namespace gravl::commands {

int Failback(const Context& ctx, const FailbackOptions& options) {
  const Config& cfg = ctx.config;
  const RegionConfig& target = cfg.Region(options.to);
  const auto timeout = std::chrono::seconds(cfg.failover.timeout_s);
  const std::string bin_dir = pg::ResolveBinDir(cfg.pg_bin_dir);
  if (target.data_dir.empty() || !std::filesystem::exists(target.data_dir + "/PG_VERSION")) {
    throw UsageError("failback rebuilds the server of " + target.name +
                     " on this host: set regions[" + target.name +
                     "].pg.data_dir to its data directory and run it there");
  }
  if (ctx.run) ctx.run->label = target.name;
  ha::StepLog log;
  nlohmann::json details = {{"to", target.name}, {"force", options.force}};
  std::vector<std::string> repo_problems;
  auto owned = ctx.OpenRepos();
  auto repos = ha::Reachable(owned, cfg.passphrase, &repo_problems);
  details["repository_problems"] = repo_problems;
  const RegionConfig* primary = nullptr;
  ha::Probe primary_probe;
  pg::LocalServer server(bin_dir, target.data_dir);
  bool already_standby = false;
  std::string method;

  auto finish = [&] {
    details["method"] = method;
    log.Finish(details, ctx.run.get());
  };

  try {
    log.Run("assess", [&] {
      std::ostringstream d;
      for (const auto& r : cfg.regions) {
        if (r.name == target.name) continue;
        ha::Probe p = ha::ProbeRegion(r);
        d << r.name << ": " << p.Describe() << "; ";
        if (p.writable()) {
          if (primary) throw RefusedError("more than one region has a writable primary");
          primary = &r;
          primary_probe = p;
        }
      }
      if (primary == nullptr) {
        throw RefusedError("no other region has a writable primary to fail back from (" + d.str() +
                           "): nothing was changed");
      }
      if (ctx.run) ctx.run->repo = primary->repo;
      if (ha::SameServer(primary->conninfo, target.data_dir) == ha::Sameness::kYes) {
        throw RefusedError(target.data_dir +
                           " on this host is the data directory of the current "
                           "primary (" +
                           primary->name + "), not of " + target.name +
                           "'s old primary: run failback on " + target.name +
                           "'s host. Nothing was changed");
      }
      if (!options.no_switchover &&
          ha::SameServer(primary->conninfo, primary->data_dir) != ha::Sameness::kYes) {
        throw RefusedError(
            "failback ends with a switchover, which stops the primary in " + primary->name +
            ", and its server is not running on this host: run `gravl-dr failback --to " +
            target.name + " --no-switchover` here, then `gravl-dr switchover --to " + target.name +
            "` on " + primary->name + "'s host. Nothing was changed");
      }
      ha::Probe self = ha::ProbeRegion(target);
      d << target.name << ": " << self.Describe();
      if (self.reachable && self.role.in_recovery && self.role.streaming &&
          self.role.timeline >= primary_probe.role.timeline) {
        already_standby = true;
      }
      return d.str();
    });
    if (ha::Named(repos, primary->repo) == nullptr) {
      throw StorageError("the repository of the primary's region (" + primary->repo +
                         ") cannot be read");
    }
    repo::Repository& primary_repo = *ha::Named(repos, primary->repo);
    const std::uint64_t seg_size = primary_repo.Stanza().wal_segment_size;

    if (already_standby) {
      for (const char* step : {"fork-check", "stop", "rebuild", "start-standby"}) {
        log.Skip(step, target.name + " already streams from " + primary->name);
      }
    } else if (ctx.dry_run) {
      for (const char* step :
           {"fork-check", "stop", "rebuild", "start-standby", "catch-up", "switchover"}) {
        log.Skip(step, "--dry-run");
      }
      finish();
      ctx.Emit(details,
               "failback to " + target.name + " (dry run): nothing was changed\n" + log.Text());
      return 0;
    } else {
      log.Run("stop", [&] {
        if (!server.Running()) {
          return std::string(server.RemoveStalePid()
                                 ? "not running (a crash left postmaster.pid: removed)"
                                 : "not running");
        }
        server.Stop("fast", timeout);
        return std::string("stopped (fast)");
      });

      log.Run("fork-check", [&] {
        pg::ControlData control = server.Control();
        auto fence =
            repo::ReadFence(primary_repo.storage(), primary_repo.stanza(), control.timeline);
        if (!fence) {
          // The fence may be missing where the failover could not reach: the history of the
          // primary's timeline says where the old timeline ended.
          for (TimelineId t = control.timeline + 1; t <= primary_probe.role.timeline; ++t) {
            auto entry = ha::ArchivedSwitchPoint(primary_repo, t);
            if (entry && entry->parent == control.timeline) {
              fence = repo::TimelineFence{
                  control.timeline, entry->switch_lsn, t, std::chrono::system_clock::now(),
                  "failback",       primary->name,     ""};
              for (auto* r : repos) repo::WriteFence(*r, *fence);
              break;
            }
          }
        }
        if (!fence) {
          return "timeline " + std::to_string(control.timeline) +
                 " was not ended by a promotion the repository knows of";
        }
        auto end = server.WalEnd(seg_size);
        details["fork"] = {{"timeline", control.timeline},
                           {"fork_point", fence->end.ToString()},
                           {"wal_end", end ? end->ToString() : ""}};
        if (!end || *end <= fence->end) {
          return "no fork: timeline " + std::to_string(control.timeline) + " ends at " +
                 (end ? end->ToString() : std::string("?")) + ", not after " +
                 fence->end.ToString();
        }
        std::string why;
        std::size_t total = 0;
        auto commits = server.Commits(control.timeline, fence->end, *end, 1000, &total, &why);
        details["fork"]["commit_count"] = total;
        nlohmann::json list = nlohmann::json::array();
        for (const auto& c : commits) {
          list.push_back({{"lsn", c.lsn.ToString()}, {"xid", c.xid}, {"time", c.time}});
        }
        details["fork"]["commits"] = list;
        // The forked WAL is kept: every segment of the old timeline from the fork on.
        std::size_t kept = 0;
        for (const auto& e : std::filesystem::directory_iterator(target.data_dir + "/pg_wal")) {
          auto name = e.path().filename().string();
          auto wal = repo::ParseWalFileName(name);
          if (!wal || wal->kind != repo::WalFileKind::kSegment || wal->timeline != control.timeline)
            continue;
          if (!repo::BeyondFence(*fence, *wal, seg_size)) continue;
          auto data = io::ReadFileBytes(e.path().string());
          repo::QuarantineWalFile(primary_repo, *wal, data, io::Sha256Hex(data), cfg.compression,
                                  cfg.compression_level);
          ++kept;
        }
        std::string what = std::to_string(total) + " transactions committed on " + target.name +
                           " after the fork at " + fence->end.ToString() + " (WAL up to " +
                           end->ToString() + ", " + std::to_string(kept) + " segments kept in " +
                           primary_repo.Describe() + " quarantine)";
        details["fork"]["quarantined_segments"] = kept;
        if (commits.empty() && why.empty()) {
          return "WAL after the fork at " + fence->end.ToString() + " up to " + end->ToString() +
                 " holds no committed transaction (" + std::to_string(kept) +
                 " segments kept in quarantine)";
        }
        if (!why.empty()) what += "; pg_waldump could not read all of it: " + why;
        if (!options.force) {
          throw RefusedError(what +
                             ": they are not on the current timeline, and rebuilding "
                             "the server removes them. Recover what matters from the "
                             "quarantined WAL (the report lists their xids and times), then "
                             "run again with --force. The server was stopped, nothing else "
                             "changed");
        }
        return what + "; discarded (--force)";
      });

      log.Run("rebuild", [&] {
        pg::ControlData control = server.Control();
        auto config_files = server.SaveConfigFiles();
        const std::string restore_command = RestoreCommandFor(ctx, "", true);
        std::string rewind_problem;
        if (options.restore_only) {
          rewind_problem = "--restore-only";
        } else if (!control.Rewindable()) {
          rewind_problem = "pg_rewind needs data checksums or wal_log_hints = on, and " +
                           target.name + " has neither";
        } else {
          try {
            ha::ConfigureForRewind(target.data_dir, restore_command);
            {
              auto conn = pg::Connection::Open(primary->conninfo);
              pg::Checkpoint(*conn);
            }
            server.Rewind(primary->conninfo, timeout * 4);
            method = "pg_rewind";
          } catch (const Error& e) {
            rewind_problem = std::string("pg_rewind failed: ") + Redact(e.what());
            spdlog::warn("{}; rebuilding by a delta restore instead", rewind_problem);
          }
        }
        if (method.empty()) {
          Context rctx = ctx;
          rctx.run.reset();
          std::ostringstream captured;
          rctx.out = &captured;
          RestoreOptions ro;
          ro.pgdata = target.data_dir;
          ro.delta = true;
          ro.standby = true;
          ro.primary_conninfo = primary->conninfo;
          RestoreResult result;
          Restore(rctx, ro, &result);
          method = "delta restore of " + result.label + " from " + result.repo;
        }
        server.RestoreConfigFiles(config_files);
        details["rewind_problem"] = rewind_problem;
        return method + (rewind_problem.empty() ? "" : " (" + rewind_problem + ")");
      });

      log.Run("start-standby", [&] {
        ha::ConfigureAsStandby(target.data_dir, target, *primary, RestoreCommandFor(ctx, "", true),
                               "failback to " + target.name + " at " +
                                   FormatIso8601(std::chrono::system_clock::now()));
        server.Start(timeout);
        ha::WaitStreaming(target, primary_probe.role.timeline, timeout);
        return target.name + " streams from " + primary->name;
      });
    }

    log.Run("catch-up", [&] {
      ha::Probe p = ha::ProbeRegion(*primary);
      ha::WaitReplayed(target, p.role.current, timeout);
      return target.name + " replayed up to " + p.role.current.ToString();
    });

    if (options.no_switchover) {
      log.Skip("switchover", "--no-switchover");
    } else {
      log.Run("switchover", [&] {
        Context sctx = ctx;
        sctx.run.reset();
        sctx.output = OutputFormat::kJson;
        std::ostringstream captured;
        sctx.out = &captured;
        Switchover(sctx, SwitchoverOptions{target.name});
        details["switchover"] = nlohmann::json::parse(captured.str(), nullptr, false);
        return target.name + " is primary again";
      });
    }
  } catch (const Error&) {
    finish();
    throw;
  }
  finish();
  ctx.Emit(details, "failback to " + target.name + " complete (" + method + ")\n" + log.Text());
  return 0;
}

void AddFailback(CLI::App& app, Invocation& inv) {
  auto options = std::make_shared<FailbackOptions>();
  auto* cmd = app.add_subcommand(
      "failback",
      "After a failover: rebuild --to REGION's old primary as a standby (pg_rewind, else a delta "
      "restore), let it catch up, and switch over back to it");
  cmd->add_option("--to", options->to, "the region to fail back to (its old primary)")->required();
  cmd->add_flag("--force", options->force,
                "rebuild even over a forked timeline (its commits are reported and its WAL kept "
                "in quarantine, then discarded from the server)");
  cmd->add_flag("--no-switchover", options->no_switchover,
                "stop once the region's server streams again (switch over later)");
  cmd->add_flag("--restore-only", options->restore_only,
                "rebuild by a delta restore from the repository, without trying pg_rewind");
  cmd->add_flag("--dry-run", inv.dry_run, "assess and print the plan; change nothing");
  cmd->callback([&inv, options] {
    inv.result = RecordRun(inv.MakeContext(), repo::kFailoverReports, "failback",
                           [&](const Context& ctx) { return Failback(ctx, *options); });
  });
}

}  // namespace gravl::commands
