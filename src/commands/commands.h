#pragma once
// Subcommands. Each returns the process exit code for a completed run (0, or a code from
// common/error.h for a result that is a failure but was fully reported) and throws Error for
// failures that end it early.

#include <optional>
#include <sstream>
#include <string>
#include <vector>

#include "commands/context.h"
#include "pg/recovery.h"
#include "repo/manifest.h"
#include "repo/retention.h"

namespace gravl::commands {

int StanzaCreate(const Context& ctx);

struct InfoOptions {
  bool all_stanzas = false;
};
int Info(const Context& ctx, const InfoOptions& options);

struct ArchivePushOptions {
  std::string path;  // %p: the file, relative to the data directory (the working directory)
};
int ArchivePush(const Context& ctx, const ArchivePushOptions& options);

struct ArchiveGetOptions {
  std::string name;         // %f
  std::string destination;  // %p
  bool standby = false;     // real errors return their own code so a standby retries
};
int ArchiveGet(const Context& ctx, const ArchiveGetOptions& options);

int Check(const Context& ctx);

struct BackupOptions {
  std::string type = "full";  // full | logical
  bool fast_checkpoint = true;
  std::vector<std::string> databases;  // logical: --db (default: every database)
};
int Backup(const Context& ctx, const BackupOptions& options);

struct RestoreOptions {
  std::string pgdata;
  std::string set;  // label; empty: the newest backup that can reach the target
  // --target immediate|latest, --target-time, --target-lsn, --target-xid, --target-name,
  // --target-exclusive: validated into one pg::RecoveryTarget before anything is written.
  pg::RecoveryTargetOptions target;
  std::string target_timeline;  // "latest" (default), "current" or a number
  std::string target_action = "promote";
  std::string archive_mode;  // "off" or "preserve"; empty: off, or preserve with --standby
  bool standby = false;
  bool delta = false;             // rewrite only what differs in an existing data directory
  std::string primary_conninfo;   // --standby: stream from this primary too
  std::string primary_slot_name;  // with primary_conninfo: its replication slot
  // Tablespaces elsewhere than where the backup found them: "NAME=DIR" (name or OID), and a
  // directory under which every other tablespace goes (as DIR/<name>).
  std::vector<std::string> tablespace_map;
  std::string tablespace_map_all;
  // Drills: recovery is configured to pause at the backup's consistency point; the settings
  // for the real target are returned in RestoreResult::settings for the drill to write later.
  bool pause_at_consistency = false;
  // Logical restores (--logical): a dump of --db into --target-db, optionally only --table.
  bool logical = false;
  std::string db;
  std::vector<std::string> tables;
  std::string target_db;
};
struct RestoreResult {
  std::string label;
  std::string repo;
  repo::BackupManifest manifest;  // whole: the row counts drills compare
  double seconds = 0;
  pg::RecoverySettings settings;   // the recovery settings for the requested target
  std::optional<Lsn> archive_end;  // where the archived WAL reachable from the backup ends
};
// The restore_command a restored server gets: this binary's archive-get with the same
// configuration (or --repo-path `repo_path` without a configuration file) and --repo.
std::string RestoreCommandFor(const Context& ctx, const std::string& repo_path, bool standby);
// With `result`, nothing is printed and the outcome is returned there (used by drills).
int Restore(const Context& ctx, const RestoreOptions& options, RestoreResult* result = nullptr);
struct VerifyOptions {
  std::string set;    // one backup; empty: all
  bool full = false;  // also decode every object and check every file's content
};
int Verify(const Context& ctx, const VerifyOptions& options);

struct TestRestoreOptions {
  std::string set;
  RestoreOptions restore;  // target options; pgdata is chosen by the drill
  bool keep = false;       // keep the directory (and stop the server) for inspection
};
int TestRestore(const Context& ctx, const TestRestoreOptions& options);

int LogicalBackup(const Context& ctx, const BackupOptions& options);

// Retention (expire.cpp).
repo::RetentionPolicy RetentionPolicyOf(const Config& config);
int Expire(const Context& ctx);
struct ExpireReport {
  nlohmann::json json;
  std::string text;
  bool refused = false;  // the plan holds a refusal: nothing was deleted
};
// Plans and (unless dry_run) carries out retention on one repository, opened and unlocked.
// The caller holds the stanza's "backup" lock when !dry_run.
ExpireReport ExpireRepository(const Context& ctx, repo::Repository& repo, bool dry_run);
// After a successful backup of `label` into `repo` (its lock held): expire there, unless no
// policy is configured or retention.auto is off. Adds "expire" to `json` and the report to
// `text`; returns the exit code (0, 13 when refused, or the failure's: the backup itself
// stays complete and is said to be).
// After a successful backup of `label` into `repo`: repo-sync to every repository of
// backup.copy_to (each a recorded sync run). Adds "copies" to `json` and each sync's report to
// `text`; returns 0, or the first failure's code (the backup itself stays complete).
int CopyAfterBackup(const Context& ctx, repo::Repository& repo, const std::string& label,
                    nlohmann::json& json, std::ostringstream& text);
int ExpireAfterBackup(const Context& ctx, repo::Repository& repo, const std::string& label,
                      nlohmann::json& json, std::ostringstream& text);
struct PinOptions {
  std::string set;
  std::string until;  // empty: without end
  std::string reason = "pinned by an operator";
  bool unpin = false;
};
int Pin(const Context& ctx, const PinOptions& options);
int LogicalRestore(const Context& ctx, const RestoreOptions& options);

// Two regions (docs/failover.md): standby-create.cpp, failover.cpp, switchover.cpp,
// failback.cpp, over src/ha/.
struct StandbyCreateOptions {
  std::string region;  // --region: pgdata and the standby's conninfo from regions[]
  std::string pgdata;
  std::string primary_conninfo;  // empty with --region: the primary region's
  std::string slot;
  bool delta = false;
  std::vector<std::string> settings;  // --set NAME=VALUE, into postgresql.auto.conf
  bool start = false;
};
int StandbyCreate(const Context& ctx, const StandbyCreateOptions& options);

struct FailoverOptions {
  std::string to;
  std::string max_loss;  // empty: failover.max_loss
  bool force = false;
  // Automatic failover (watch): the etcd fencing token of the takeover, recorded in the
  // repository's fence and the report instead of a random one; and that the old primary's
  // lease expired, which fences it when nothing else can be confirmed (its agent made it
  // stop accepting writes before then, docs/automatic-failover.md).
  std::string token;
  std::string lease_fence;
  // How long the leader key had been seen gone when the takeover was decided (the report's
  // detection_seconds).
  std::optional<double> detection_seconds;
};
int Failover(const Context& ctx, const FailoverOptions& options);

struct SwitchoverOptions {
  std::string to;
};
int Switchover(const Context& ctx, const SwitchoverOptions& options);

struct FailbackOptions {
  std::string to;
  bool force = false;          // rebuild over a forked timeline (its commits are reported)
  bool no_switchover = false;  // stop once the region streams again
  bool restore_only = false;   // skip pg_rewind, rebuild by a delta restore
};
int Failback(const Context& ctx, const FailbackOptions& options);

}  // namespace gravl::commands
