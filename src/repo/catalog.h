#pragma once
// The catalog of one stanza in one repository: the facts about it that restore, verify,
// info, drills, backups -- and retention, the exporter, repository sync and failover after
// them -- need, computed here once and typed, never by a command from JSON or its own
// listing.
//
// - Backups(): every backup with a manifest, its typed summary or, for a damaged one, its
//   problem (one listing of backups/, one read per manifest); Incomplete(): folders without a
//   manifest.
// - Wal(): the WAL archive indexed from one listing of wal/ (WalIndex: segments per timeline,
//   .history files read once, paths, gaps).
// - Window(backup): the recoverable window of a backup -- from its consistency point to the
//   end of the contiguous archived WAL along the target timeline.
// - HasWal / WaitForWal: whether, or until, the WAL a backup or check needs is archived (one
//   small listing per look, not a listing of the archive).
// Everything is read lazily and kept for the Catalog's life: a Catalog is a snapshot.
// Not thread-safe.

#include <chrono>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "common/lsn.h"
#include "common/time_util.h"
#include "repo/manifest.h"
#include "repo/reports.h"
#include "repo/repository.h"
#include "repo/retention.h"
#include "repo/wal.h"
#include "repo/wal_index.h"

namespace gravl::repo {

struct RecoverableWindow {
  SystemTime from_time{};           // the backup's consistency point (stop time)
  Lsn from_lsn;                     // and LSN
  SystemTime to_time{};             // newest archiving time reached, never before from_time
  Lsn to_lsn;                       // end of the contiguous archived WAL reached
  TimelineId target_timeline = 0;   // the timeline recovery follows
  TimelineId reached_timeline = 0;  // the timeline of the last segment reached
  std::optional<WalSegment> gap;    // the first missing segment when newer WAL exists
  bool consistent = true;  // the WAL up to the consistency point is there (or in the backup)
  std::string problem;     // non-empty: the target timeline does not descend from the backup's
};

// The recoverable window of full backup `b` in the archive `index` (Catalog::Window, for
// callers that keep their own index across refreshes: the exporter).
RecoverableWindow WindowOf(const WalIndex& index, const BackupManifest& b,
                           std::optional<TimelineId> target = std::nullopt);

// What the retention planner needs of a backup with a readable manifest (pins not included).
BackupFacts FactsOf(const BackupManifest& m);

class Catalog {
 public:
  explicit Catalog(Repository& repo) : repo_(repo) {}
  Repository& repo() { return repo_; }

  // Complete backups, oldest first (see ListBackups).
  const std::vector<BackupEntry>& Backups();
  const std::vector<std::string>& Incomplete();
  // The entry of `label`; nullptr when there is no such complete backup.
  const BackupEntry* Find(const std::string& label);

  const WalIndex& Wal();
  std::optional<WalSegment> NewestWal() { return Wal().Newest(); }

  // The recoverable window of full backup `backup` along `target` (nullopt: the latest
  // timeline descending from the backup's, as recovery_target_timeline = 'latest').
  RecoverableWindow Window(const BackupManifest& backup,
                           std::optional<TimelineId> target = std::nullopt);

  // Whether `file` is archived (a listing of its name's prefix, not of the archive).
  bool HasWal(const WalFileName& file);
  // Waits until every segment holding WAL from `from` to `to` on `timeline` is archived,
  // looking again after 10 ms, then less and less often (at most every 200 ms). Throws
  // StorageError naming the missing segment after `timeout`.
  void WaitForWal(TimelineId timeline, Lsn from, Lsn to, std::chrono::milliseconds timeout);

  // The newest restore drill report (reports/restore-tests/), if any.
  std::optional<RunReport> LastRestoreTest();

  // Every pin (pins/), read and verified; a pin that cannot be read counts as a pin without
  // an end (never a reason to delete), and is named in `problem` of its Pin.reason.
  const std::vector<Pin>& Pins();
  // What the retention planner needs: every backup (damaged ones dated by their label) with
  // its pins.
  std::vector<BackupFacts> RetentionFacts();
  // The retention plan of this repository under `policy` at `now` (PlanRetention on the facts).
  RetentionPlan Plan(const RetentionPolicy& policy, SystemTime now);

 private:
  Repository& repo_;
  std::optional<std::vector<BackupEntry>> backups_;
  std::vector<std::string> incomplete_;
  std::optional<WalIndex> wal_;
  std::optional<std::vector<Pin>> pins_;
};

// Pins `label` (a write-once object of its own): kept, with the WAL it needs, until `until`
// (forever when nullopt). Returns the pin.
Pin WritePin(Repository& repo, const std::string& label, std::optional<SystemTime> until,
             const std::string& reason);
// Removes every pin of `label`; returns how many there were.
std::size_t RemovePins(Repository& repo, const std::string& label);

// ---- what info shows ----

struct BackupSummary {
  std::string label;
  std::optional<BackupManifest> manifest;  // nullopt: damaged (problem) or locked
  std::string problem;                     // the manifest is damaged or unreadable
  bool locked = false;  // encrypted, and no passphrase given: only the label is known
};

struct WalTimelineSummary {
  TimelineId timeline = 0;
  std::string first;  // segment names
  std::string last;
  std::uint64_t segments = 0;
  std::uint64_t missing = 0;  // segments absent between first and last
  std::uint64_t history_files = 0;
  std::uint64_t bytes = 0;  // stored bytes
};

struct StanzaSummary {
  StanzaInfo info;
  std::vector<BackupSummary> backups;          // complete backups, oldest first
  std::vector<std::string> incomplete_labels;  // backup folders without a manifest
  std::vector<WalTimelineSummary> wal;
  std::optional<RunReport> last_restore_test;  // newest reports/restore-tests/ report
};

StanzaSummary Summarize(Catalog& catalog);

}  // namespace gravl::repo
