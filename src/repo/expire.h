#pragma once
// Carrying out a retention plan (repo/retention.h) on one repository, in a crash-safe order:
//  1. each expired backup's manifest -- its commit point -- so it stops being listed, then
//     its other objects; backups left without a manifest (by an interruption of this, or of
//     a backup) go the same way;
//  2. WAL last, only once every expired backup is gone: a segment the plan does not keep is
//     needed by no listed backup and by no moment of the window.
// A kill at any moment leaves only listed backups that can be restored, and the next run
// finishes the job. The caller holds the stanza's "backup" lock (no backup runs meanwhile).
// With Object Lock, an object is never sent for deletion before its
// retain-until date (one Stat each): a locked backup stays listed and whole, locked WAL
// stays, and both are reported as "locked until DATE". Kept backups locked for less time than
// the plan keeps them get their lock extended first (every object of the backup).
// With an archive storage class, backups kept only for the monthly or yearly tier (no daily,
// weekly, window or min_full reason) are moved to that storage class, object by object, in place.

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "repo/catalog.h"
#include "repo/retention.h"

namespace gravl::repo {

struct WalDeletion {
  std::vector<std::string> keys;
  std::vector<std::uint64_t> sizes;  // stored size of each key
  std::uint64_t bytes = 0;
  std::string first, last;  // PostgreSQL names, for the report
};

// The WAL objects the plan does not keep (segments, .partial and .backup files, and the
// receiver's partial-segment chunks, also where a complete segment superseded them; never
// history files).
WalDeletion WalToDelete(Catalog& catalog, const RetentionPlan& plan);

struct ExpireOutcome {
  std::vector<std::string> backups_deleted;
  std::uint64_t backup_bytes = 0;  // stored bytes of the deleted backups
  std::vector<std::string> incomplete_removed;
  std::uint64_t wal_deleted = 0;
  std::uint64_t wal_bytes = 0;
  // "backup LABEL" / "N WAL objects" with the latest retain-until date: left for later.
  std::vector<std::string> locked;
  // "LABEL until DATE": kept backups whose lock was extended to when the plan lets them go
  // (a promotion to a longer tier, a pin, a longer policy).
  std::vector<std::string> extended;
  // "LABEL to CLASS": backups kept only for the monthly or yearly tier, moved.
  std::vector<std::string> archived;
};

// Deletes what `plan` does not keep (nothing when it holds a refusal). `progress` is told
// each step ("backup LABEL", "wal N objects"). Object Lock and the archive storage class
// come from the repository's configuration (S3 object_lock, archive_storage_class).
ExpireOutcome CarryOut(Catalog& catalog, const RetentionPlan& plan,
                       const std::function<void(const std::string&)>& progress = {});

}  // namespace gravl::repo
