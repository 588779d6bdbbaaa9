#pragma once
// High availability across two regions: what `failover`, `switchover`, `failback` and
// `standby-create` (commands/) share. The commands orchestrate; this layer owns the facts and
// the steps they are made of.
//
// Contract. A region (common/config.h RegionConfig) is a PostgreSQL server and the
// repository in the same region. Everything gravl-dr knows about a server comes from a Probe
// (named queries of pg/queries.h over libpq, a short connect timeout) and, where its data
// directory is on this host, from its own programs (pg/server.h). The rule every step keeps:
// never two writable primaries as far as gravl-dr can see -- a server is promoted only when
// every other region's server is fenced -- by the fence hook, or stopped on this host -- or
// the operator forced it (and the report says so) -- read-only is a best effort, never a confirmed
// fence. Steps are idempotent: each first looks whether its effect is already there (a promoted
// server, an archived history file, a stored fence), so a run that stopped halfway is continued by
// running it again. Every step is timed in a StepLog, which becomes the run report's phases and
// details (the measured RTO). Hooks (fencing, endpoint) are argv run without a shell, with a
// timeout; their output is logged redacted.

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "common/config.h"
#include "common/lsn.h"
#include "pg/queries.h"
#include "repo/fence.h"
#include "repo/reports.h"
#include "repo/repository.h"
#include "repo/wal_index.h"

namespace gravl::ha {

// ---- regions and their servers ----

struct Probe {
  std::string region;
  bool reachable = false;
  std::string error;  // why it is not reachable (redacted)
  pg::ServerRole role;

  bool primary() const { return reachable && !role.in_recovery; }
  bool writable() const { return primary() && !role.read_only; }
  std::string Describe() const;  // "primary on timeline 2 at 0/5000060", "unreachable: ..."
};
// Connects (at most `connect_timeout_s`) and reads the server's role; never throws for an
// unreachable server.
Probe ProbeRegion(const RegionConfig& region, int connect_timeout_s = 5);

// Every configured region's server and, for a standby, how far its replay is behind the
// primary's current position (bytes; nullopt without a reachable primary). For `info` and
// the exporter.
struct RegionView {
  std::string name;
  Probe probe;
  std::string role;  // "primary", "read-only primary", "standby", "unreachable"
  std::optional<std::uint64_t> lag_bytes;
};
std::vector<RegionView> ViewRegions(const std::vector<RegionConfig>& regions,
                                    int connect_timeout_s = 5);

// Whether the server `conninfo` reaches is the one running on `data_dir` of this host: the
// postmaster of the backend serving that connection (its parent process, from /proc) is the
// pid in data_dir/postmaster.pid. kNo: the backend is visible here and belongs to another
// postmaster, or no server runs on data_dir; kUnknown: the server cannot be reached, or its
// backend is not visible in this host's /proc (another host, another PID namespace). The
// same configuration on both hosts must never make gravl-dr stop the server it is about to
// promote, so callers act on a data directory only on a definite answer.
enum class Sameness { kYes, kNo, kUnknown };
Sameness SameServer(const std::string& conninfo, const std::string& data_dir);

// host and port of a connection string (defaults: "localhost", "5432"), for hooks.
struct Address {
  std::string host, port;
};
Address AddressOf(const std::string& conninfo);

// ---- loss limits ----

// --max-loss / failover.max_loss: bytes ("16MB", "512kB", "0") or a duration ("30s", "5m").
struct LossLimit {
  std::optional<std::uint64_t> bytes;
  std::optional<std::chrono::seconds> duration;
  std::string text;
};
// Throws UsageError naming `what` for anything else.
LossLimit ParseLossLimit(const std::string& text, const std::string& what);
// "16MB" -> 16777216 (kB, MB, GB, TB as powers of 1024, like PostgreSQL); nullopt when
// `text` is not a size.
std::optional<std::uint64_t> ParseByteSize(const std::string& text);

// ---- hooks ----

struct HookResult {
  std::string command;  // as run, for the report (redacted)
  int exit_code = -1;
  std::string output;  // tail of stdout and stderr, redacted
  double seconds = 0;
  bool ok() const { return exit_code == 0; }
};
// Replaces {region}, {host}, {port}, {conninfo} in every argument; without any placeholder
// in `argv`, the region's name and host are appended. Pure, for tests.
std::vector<std::string> ExpandHook(const std::vector<std::string>& argv,
                                    const std::map<std::string, std::string>& vars);
// Runs the expanded hook; a hook that cannot start or runs over `timeout` is a failed result
// (exit_code -1), not an exception.
HookResult RunHook(const std::vector<std::string>& argv,
                   const std::map<std::string, std::string>& vars, std::chrono::seconds timeout);
std::map<std::string, std::string> HookVars(const RegionConfig& region);

// ---- the step log ----

class StepLog {
 public:
  struct Step {
    std::string name;
    double started = 0;  // seconds since the run began
    double seconds = 0;
    std::string outcome;  // "done", "skipped", "failed", "refused"
    std::string detail;
  };
  StepLog();
  // Runs `body` as step `name`; its return value is the step's detail. An exception marks the
  // step failed (or refused, for RefusedError) and is rethrown.
  void Run(const std::string& name, const std::function<std::string()>& body);
  void Skip(const std::string& name, const std::string& why);
  const std::vector<Step>& steps() const { return steps_; }
  double Elapsed() const;
  // Seconds from the first step to the end of `name` (the decision-to-writable time of
  // "promote"); nullopt when it did not complete.
  std::optional<double> Until(const std::string& name) const;
  nlohmann::json ToJson() const;
  std::string Text() const;
  std::map<std::string, double> Phases() const;
  // When step `name` started (seconds since the run began); nullopt when it did not run.
  std::optional<double> StartOf(const std::string& name) const;
  // details["steps"], "total_seconds" and (once promoted) "decision_to_writable_seconds";
  // then, when the run is recorded, the report's details and phases.
  void Finish(nlohmann::json& details, repo::RunReport* run) const;

 private:
  std::chrono::steady_clock::time_point start_;
  std::vector<Step> steps_;
};

// ---- WAL positions in the repositories ----

// Where valid WAL ends in the newest segment of `timeline` that a repository holds (fetched,
// verified and read record by record) -- or in the streaming receiver's partial segment that
// follows it (repo/partial.h), which archive-get serves to a standby too -- and which
// repository has it.
struct ArchivedEnd {
  Lsn end;
  std::string repo;
  std::string segment;
};
// Over every repository that can be read; unreadable ones are listed in *problems.
std::optional<ArchivedEnd> NewestArchivedWal(const std::vector<repo::Repository*>& repos,
                                             TimelineId timeline, std::uint64_t segment_size,
                                             std::vector<std::string>* problems);

// The repositories of `repos` that answer (stanza read, key unlocked); the others are
// described in *problems -- a region that is down must not stop a failover.
std::vector<repo::Repository*> Reachable(
    const std::vector<std::unique_ptr<repo::Repository>>& repos,
    const std::optional<std::string>& passphrase, std::vector<std::string>* problems);
// The one named `name` among them; nullptr when it did not answer.
repo::Repository* Named(const std::vector<repo::Repository*>& repos, const std::string& name);

// ---- waiting ----

// Polls `done` (every 200 ms) until it returns true or `timeout` passes; returns whether it
// did. `done` may throw to end the wait early.
bool WaitFor(std::chrono::seconds timeout, const std::function<bool()>& done);

// The timeline history file of `timeline` (archived by the promoted server) in `repo`: the
// switch point of its parent, once archived. nullopt while it is not.
std::optional<repo::HistoryEntry> ArchivedSwitchPoint(repo::Repository& repo, TimelineId timeline);

// ---- the steps a change of roles is made of (procedures.cpp) ----

struct Promotion {
  TimelineId parent = 0;    // the timeline that ended
  TimelineId timeline = 0;  // the new one
  Lsn switch_point;         // where the parent ended
  bool already_primary = false;
  std::vector<std::string> fence_problems;  // repositories the fence could not be written to
};
// Steps "promote" (pg_promote unless already primary; replay resumed first if paused; then
// ConfigureNewPrimary with the region's archive_command), "archive-history" (waits until the
// new timeline's history file is in `region_repo`) and "fence-repository" (the parent
// timeline's fence in every repository of `repos` that answers).
Promotion PromoteRegion(const RegionConfig& region, repo::Repository& region_repo,
                        const std::vector<repo::Repository*>& repos, const std::string& reason,
                        const std::string& token, std::chrono::seconds timeout, StepLog& log);

// Step "endpoint": failover.endpoint_command with `region`'s address (skipped when none is
// configured); the hook's outcome goes into details["endpoint_hook"]. A failed hook throws
// Error (exit 1) with `when_failed` appended.
void SwitchEndpoint(const FailoverConfig& policy, const RegionConfig& region, StepLog& log,
                    nlohmann::json& details, const std::string& when_failed);

// The standby configuration of a data directory on this host that is to stream from
// `primary` (application_name = the region's name, recovery_target_timeline = latest,
// `restore_command` for what streaming cannot give), archive_mode kept.
void ConfigureAsStandby(const std::string& data_dir, const RegionConfig& self,
                        const RegionConfig& primary, const std::string& restore_command,
                        const std::string& comment);
// Before pg_rewind: `restore_command` in the data directory's configuration (pg_rewind
// --restore-target-wal reads it) and no signal file (its single-user crash recovery of a
// server that was killed refuses to run with one).
void ConfigureForRewind(const std::string& data_dir, const std::string& restore_command);
// Waits until `self` is a standby streaming on `timeline` or later; throws PgError naming
// what it is instead after `timeout`.
void WaitStreaming(const RegionConfig& self, TimelineId timeline, std::chrono::seconds timeout);
// Waits until `standby` has replayed `lsn`; throws PgError after `timeout`.
void WaitReplayed(const RegionConfig& standby, Lsn lsn, std::chrono::seconds timeout);
// The same for a position that may end inside a record -- what a standby received when its
// primary died can stop mid-record (the primary flushed whole pages), and replay never gets
// past the last complete record: also done when the standby does not stream and its replay
// has not moved for `stall`. Returns where replay is. No commit is lost by stopping there: a
// commit is acknowledged only once its whole record is flushed.
Lsn WaitReplayedUnlessStalled(const RegionConfig& standby, Lsn lsn, std::chrono::seconds timeout,
                              std::chrono::seconds stall);

}  // namespace gravl::ha
