// The steps failover, switchover and failback are made of.

#include <spdlog/spdlog.h>

#include <filesystem>

#include "common/error.h"
#include "common/log.h"
#include "common/time_util.h"
#include "ha/ha.h"
#include "pg/connection.h"
#include "pg/recovery.h"

namespace gravl::ha {

Promotion PromoteRegion(const RegionConfig& region, repo::Repository& region_repo,
                        const std::vector<repo::Repository*>& repos, const std::string& reason,
                        const std::string& token, std::chrono::seconds timeout, StepLog& log) {
  Promotion p;
  log.Run("promote", [&] {
    auto conn = pg::Connection::Open(region.conninfo);
    pg::ServerRole role = pg::GetServerRole(*conn);
    std::string detail;
    if (role.in_recovery) {
      if (role.pause_state != "not paused") pg::ResumeReplay(*conn);
      pg::Promote(*conn, static_cast<int>(timeout.count()));
      detail = "pg_promote: " + region.name + " accepts writes";
    } else {
      p.already_primary = true;
      detail = region.name + " was already primary (a run that stopped halfway)";
    }
    pg::ConfigureNewPrimary(*conn, region.archive_command);
    role = pg::GetServerRole(*conn);
    p.timeline = role.timeline;
    if (!region.archive_command.empty()) detail += "; archive_command set for " + region.repo;
    return detail + "; timeline " + std::to_string(p.timeline);
  });
  log.Run("archive-history", [&] {
    std::optional<repo::HistoryEntry> entry;
    bool done = WaitFor(timeout, [&] {
      entry = ArchivedSwitchPoint(region_repo, p.timeline);
      return entry.has_value();
    });
    if (!done) {
      throw StorageError("the new primary did not archive " + TimelineHex(p.timeline) +
                         ".history into " + region_repo.Describe() + " within " +
                         std::to_string(timeout.count()) +
                         " s: check its archive_command (regions[" + region.name +
                         "].pg.archive_command) and the server log, then run the same command "
                         "again to continue");
    }
    p.parent = entry->parent;
    p.switch_point = entry->switch_lsn;
    return TimelineHex(p.timeline) + ".history archived: timeline " + std::to_string(p.parent) +
           " ended at " + p.switch_point.ToString();
  });
  log.Run("fence-repository", [&] {
    repo::TimelineFence fence;
    fence.timeline = p.parent;
    fence.end = p.switch_point;
    fence.successor = p.timeline;
    fence.at = std::chrono::system_clock::now();
    fence.reason = reason;
    fence.region = region.name;
    fence.token = token;
    std::size_t written = 0;
    for (repo::Repository* r : repos) {
      try {
        repo::WriteFence(*r, fence);
        ++written;
      } catch (const ConflictError&) {
        throw;
      } catch (const std::exception& e) {
        p.fence_problems.push_back(r->Describe() + ": " + Redact(e.what()));
        spdlog::warn(
            "cannot fence timeline {} in {} (it is fenced by the next failback or "
            "switchover that reaches it): {}",
            p.parent, r->Describe(), Redact(e.what()));
      }
    }
    return "timeline " + std::to_string(p.parent) + " fenced at " + p.switch_point.ToString() +
           " in " + std::to_string(written) + " of " + std::to_string(repos.size()) +
           " repositories";
  });
  return p;
}

void SwitchEndpoint(const FailoverConfig& policy, const RegionConfig& region, StepLog& log,
                    nlohmann::json& details, const std::string& when_failed) {
  if (policy.endpoint_command.empty()) {
    log.Skip("endpoint", "no failover.endpoint_command configured");
    return;
  }
  log.Run("endpoint", [&] {
    auto hook = RunHook(policy.endpoint_command, HookVars(region),
                        std::chrono::seconds(policy.hook_timeout_s));
    details["endpoint_hook"] = {
        {"command", hook.command}, {"exit_code", hook.exit_code}, {"output", hook.output}};
    if (!hook.ok()) {
      throw Error(ExitCode::kError, "endpoint_command failed (exit " +
                                        std::to_string(hook.exit_code) + "): " + hook.output +
                                        "; " + when_failed);
    }
    return hook.command;
  });
}

void ConfigureAsStandby(const std::string& data_dir, const RegionConfig& self,
                        const RegionConfig& primary, const std::string& restore_command,
                        const std::string& comment) {
  pg::RecoverySettings settings;
  settings.restore_command = restore_command;
  settings.standby = true;
  settings.action = "";
  settings.timeline = pg::TargetTimeline{};  // latest
  settings.primary_conninfo = primary.conninfo + " application_name=" + self.name;
  settings.archive_off = false;
  settings.comment = comment;
  pg::WriteRecoveryConfig(data_dir, settings);
}

void ConfigureForRewind(const std::string& data_dir, const std::string& restore_command) {
  pg::RecoverySettings settings;
  settings.restore_command = restore_command;
  settings.standby = true;
  settings.action = "";
  settings.archive_off = false;
  settings.comment = "pg_rewind --restore-target-wal reads this restore_command";
  pg::WriteRecoveryConfig(data_dir, settings);
  // pg_rewind first finishes a crashed server's recovery in single-user mode, which refuses
  // to run with a signal file; the restore_command alone is what it needs.
  std::error_code ec;
  std::filesystem::remove(data_dir + "/standby.signal", ec);
  if (ec) throw StorageError("cannot remove " + data_dir + "/standby.signal: " + ec.message());
}

void WaitStreaming(const RegionConfig& self, TimelineId timeline, std::chrono::seconds timeout) {
  Probe last;
  bool ok = WaitFor(timeout, [&] {
    last = ProbeRegion(self, 5);
    return last.reachable && last.role.in_recovery && last.role.streaming &&
           last.role.timeline >= timeline;
  });
  if (!ok) {
    throw PgError(self.name + " is not streaming on timeline " + std::to_string(timeline) +
                  " after " + std::to_string(timeout.count()) + " s: it is " + last.Describe());
  }
}

void WaitReplayed(const RegionConfig& standby, Lsn lsn, std::chrono::seconds timeout) {
  Probe last;
  bool ok = WaitFor(timeout, [&] {
    last = ProbeRegion(standby, 5);
    return last.reachable && last.role.replayed >= lsn;
  });
  if (!ok) {
    throw PgError(standby.name + " did not replay up to " + lsn.ToString() + " within " +
                  std::to_string(timeout.count()) + " s: it is " + last.Describe());
  }
}

Lsn WaitReplayedUnlessStalled(const RegionConfig& standby, Lsn lsn, std::chrono::seconds timeout,
                              std::chrono::seconds stall) {
  Probe last;
  Lsn seen;
  auto since = std::chrono::steady_clock::now();
  bool ok = WaitFor(timeout, [&] {
    last = ProbeRegion(standby, 5);
    if (!last.reachable) return false;
    if (last.role.replayed >= lsn) return true;
    const auto now = std::chrono::steady_clock::now();
    if (last.role.replayed != seen) {
      seen = last.role.replayed;
      since = now;
      return false;
    }
    return !last.role.streaming && now - since >= stall;
  });
  if (!ok) {
    throw PgError(standby.name + " did not replay up to " + lsn.ToString() + " within " +
                  std::to_string(timeout.count()) + " s: it is " + last.Describe());
  }
  return last.role.replayed;
}

}  // namespace gravl::ha
