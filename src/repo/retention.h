#pragma once
// Retention planning: which backups and which WAL a repository keeps under a policy, and why.
//
// PlanRetention is a pure function of the backups (as facts, not manifests), the policy and
// the current time; it reads and deletes nothing (commands/expire.cpp carries a plan out).
// - Tiers are UTC calendar buckets: the newest valid full backup of each of the last `daily`
//   days (today included), `weekly` ISO weeks, `monthly` months and `yearly` years. A backup's
//   time is its stop time, the moment from which it is consistent.
// - The PITR window: every moment from (now - pitr_window) to the newest archived WAL stays
//   restorable. The anchor is the newest valid full backup consistent at or before the window's
//   start (or the oldest one when the repository is younger than the window); it and every
//   full backup after it are kept (`pitr`), and all WAL from its start segment on, on every
//   timeline.
// - Backups kept only for a tier keep the WAL from their start to their stop segment on their
//   timeline, so each stays restorable on its own. History files are always kept.
// - `min_full`: the newest valid full backups are kept until there are that many.
// - Pinned backups are kept (with their WAL) until the pin's date, if it has one.
// - Never deleted: damaged backups (unreadable manifests: reported, left for the operator),
//   backups dated in the future (clock skew; reported), logical backups when no logical tier
//   is configured, and any WAL at all while there is no valid full backup.
// - A refusal (nothing may be deleted) when the window cannot be guaranteed: a backup exists
//   from before the window's start, but none of them is valid.

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "common/lsn.h"
#include "common/time_util.h"

namespace gravl::repo {

struct TierCounts {
  int daily = 0;
  int weekly = 0;
  int monthly = 0;
  int yearly = 0;
  bool any() const { return daily > 0 || weekly > 0 || monthly > 0 || yearly > 0; }
};

struct RetentionPolicy {
  TierCounts full;
  std::chrono::seconds pitr_window{0};
  int min_full = 2;
  TierCounts logical;  // none configured: logical backups are kept
};

// A pin: the backup (and the WAL it needs) is kept until `until` (forever when nullopt).
struct Pin {
  std::string label;
  std::optional<SystemTime> until;
  std::string reason;
  SystemTime created{};
  std::string key;  // the pin's object
  bool Active(SystemTime now) const { return !until || *until > now; }
};

// What the planner needs to know about one backup.
struct BackupFacts {
  std::string label;
  bool full = true;  // false: logical
  bool ok = true;    // false: damaged (its manifest could not be read)
  SystemTime start_time{};
  SystemTime stop_time{};
  Lsn start_lsn, stop_lsn;
  TimelineId timeline = 0;
  std::uint64_t stored_size = 0;
  std::vector<Pin> pins;
};

struct BackupDecision {
  std::string label;
  bool keep = true;
  // Why it is kept: "daily", "weekly", "monthly", "yearly", "pitr", "min_full", "pinned",
  // "damaged", "future", "logical" (no logical tier configured), "window" (refusal).
  std::vector<std::string> reasons;
  // When the last reason to keep it ends if nothing else changes (its buckets age out, the
  // pin ends); nullopt: not foreseeable (min_full, pinned without a date, the newest backups
  // of the window) or not kept.
  std::optional<SystemTime> expires;
  // The latest end among the reasons that have one (nullopt: none has): how long Object Lock
  // should hold it at least, whatever the unforeseeable reasons do.
  std::optional<SystemTime> known_until;
  // The longest tier it can still enter, for Object Lock at write time ("daily" ... "yearly").
  std::string highest_tier;
};

// The WAL a plan keeps: every segment numbered `all_from` or later (any timeline), plus the
// ranges of the backups kept for tiers and pins; history files always.
struct WalRangeKept {
  TimelineId timeline = 0;
  std::uint64_t first = 0, last = 0;  // segment numbers, inclusive
  std::string label;
};

struct RetentionPlan {
  SystemTime now{};
  std::vector<BackupDecision> backups;  // in the order given
  std::optional<std::string> anchor;    // the window's anchor backup
  // The guaranteed PITR window starts here (the later of now - pitr_window and the anchor's
  // consistency point); nullopt when there is no valid full backup.
  std::optional<SystemTime> window_start;
  bool keep_all_wal = true;        // no valid full backup: WAL is never deleted
  std::uint64_t wal_all_from = 0;  // segment number (when !keep_all_wal)
  std::vector<WalRangeKept> wal_ranges;
  std::vector<std::string> warnings;  // future-dated backups, a window shorter than asked
  std::string refusal;                // non-empty: nothing may be deleted, and why

  bool KeepsSegment(TimelineId timeline, std::uint64_t segno) const;
  const BackupDecision* Find(const std::string& label) const;
};

// `segment_size` converts LSNs to segment numbers.
// When the longest configured tier of `tiers` lets go of a backup taken at `now` (the newest
// of its bucket in every tier): the start of the bucket that many buckets on. `now` itself
// when no tier is configured.
SystemTime LongestTierEnd(const TierCounts& tiers, SystemTime now);

RetentionPlan PlanRetention(const std::vector<BackupFacts>& backups, const RetentionPolicy& policy,
                            SystemTime now, std::uint64_t segment_size);

}  // namespace gravl::repo
