#pragma once
// Recovery targets and the recovery configuration of a restored data directory.
//
// A restore owns the recovery configuration: whatever recovery settings the backup carried
// in postgresql.auto.conf (an earlier restore's target, a standby's primary_conninfo) are
// commented out, and gravl-dr writes every recovery target setting explicitly -- the unused
// ones as '' -- so that nothing in postgresql.conf or an older restore can add a second
// target or change the one asked for. Failback and switchover (src/ha/) write standby
// configurations through the same function.
//
// Targets are validated here, before anything is written: a target PostgreSQL would refuse
// at startup (an xid 0, a name with a newline or longer than 63 bytes, two targets) is a
// UsageError naming the option.

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "common/lsn.h"
#include "common/time_util.h"

namespace gravl::pg {

struct RecoveryTarget {
  enum class Kind { kLatest, kImmediate, kTime, kLsn, kXid, kName };
  Kind kind = Kind::kLatest;
  SystemTime time{};
  Lsn lsn;
  std::uint64_t xid = 0;  // as given: 32-bit, or a full xid8 (pg_current_xact_id())
  std::string name;
  bool inclusive = true;  // false: stop just before the target (recovery_target_inclusive)

  bool IsSet() const { return kind != Kind::kLatest; }
  // "latest", "immediate", "time 2026-03-04T02:00:00Z", "lsn 0/3000028", "xid 741",
  // "name before-upgrade"; "(exclusive)" appended when not inclusive.
  std::string Describe() const;
};

// The operator's target options as given on the command line (nullopt: not given; an empty
// string was given empty, and is refused).
struct RecoveryTargetOptions {
  std::optional<std::string> target;  // "immediate" or "latest"
  std::optional<std::string> time, lsn, xid, name;
  bool exclusive = false;
};
// Validates the options into one target. Throws UsageError naming the option.
RecoveryTarget ParseRecoveryTarget(const RecoveryTargetOptions& options);

// recovery_target_timeline: "latest" (default), "current" (the backup's), or a number.
struct TargetTimeline {
  enum class Kind { kLatest, kCurrent, kNumber };
  Kind kind = Kind::kLatest;
  TimelineId number = 0;
  std::string Setting() const;  // as postgresql.conf takes it
};
// Throws UsageError unless `text` is "latest", "current" or a timeline number (1..2^32-1).
TargetTimeline ParseTargetTimeline(const std::string& text);

struct RecoverySettings {
  std::string restore_command;
  RecoveryTarget target;
  TargetTimeline timeline;
  std::string action = "promote";  // recovery_target_action when a target is set; "" for none
  bool standby = false;            // standby.signal instead of recovery.signal
  std::string primary_conninfo;    // standby: stream from this primary too
  std::string primary_slot_name;
  bool archive_off = true;  // archive_mode = off in the restored cluster
  std::string comment;      // first line of the block, e.g. "restore of backup X at T"
};

// What RewriteAutoConf did: the new text, and the earlier settings it commented out
// ("name = value", as they were).
struct AutoConfRewrite {
  std::string text;
  std::vector<std::string> replaced;
};
// Comments out every recovery setting in `existing` (postgresql.auto.conf), and archive_mode
// when `settings.archive_off`, then appends the full recovery block. Pure, for tests.
AutoConfRewrite RewriteAutoConf(const std::string& existing, const RecoverySettings& settings);

// Settings in `conf_text` (postgresql.conf) that the recovery block overrides: "name = value"
// lines, for the operator's information.
std::vector<std::string> OverriddenSettings(const std::string& conf_text,
                                            const RecoverySettings& settings);

struct RecoveryConfigResult {
  std::vector<std::string> replaced;    // commented out in postgresql.auto.conf
  std::vector<std::string> overridden;  // set in postgresql.conf, now overridden
};
// Writes the recovery configuration of `pgdata`: postgresql.auto.conf rewritten atomically
// (0600), and the signal file (recovery.signal or standby.signal; the other one removed, as
// a backup taken from a standby may carry standby.signal). Throws StorageError.
RecoveryConfigResult WriteRecoveryConfig(const std::string& pgdata,
                                         const RecoverySettings& settings);

}  // namespace gravl::pg
