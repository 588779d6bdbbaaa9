#pragma once
// Repository sync: makes repository B hold every backup of repository A -- and the WAL that
// B's backups and PITR window need -- with every byte verified, for a second region.
//
// - Stored bytes are copied as they are (no decoding): both repositories must use the same
//   key material -- both unencrypted, or encrypted with the same key parameters (stanza-create
//   gives every repository it creates in one run, and every repository added later, the
//   parameters of the existing ones). Different keys are refused, naming the remedy.
// - Each object is streamed (bounded memory, `parallel` at a time) and verified: objects whose
//   manifest records the SHA-256 of their stored bytes (full backups, format 3) as they pass;
//   others (older formats, logical dumps, WAL) by reading B's copy back and checking the
//   content's SHA-256. An object that fails is never committed (or is deleted again).
// - A backup's manifest is copied last, after all its objects are in B and verified: B never
//   lists a backup it does not hold completely. Objects already in B are not copied again
//   (objects are write-once: present means complete), so an interrupted sync resumes.
// - Refused (ConflictError naming the objects, nothing written): another cluster (system
//   identifier) or major version in B, a backup in B under the same label whose manifest
//   differs from A's.
// - Retention applies per repository: a backup B's policy would not keep (it expired there,
//   or would at once) is not copied -- a sync never resurrects what B's retention removed.
// - Verify-only (S3 replication users): nothing is written; the result lists what B lacks.

#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "common/time_util.h"
#include "repo/catalog.h"
#include "repo/retention.h"

namespace gravl::repo {

struct SyncOptions {
  bool dry_run = false;      // plan only
  bool verify_only = false;  // plan only, and report what B lacks as a finding
  int parallel = 4;
  std::optional<RetentionPolicy> policy;  // B's (the configured one); nullopt: keep all
  SystemTime now{};
  // Called after each object is copied (progress; tests interrupt here).
  std::function<void(const std::string& key, std::uint64_t bytes)> on_object;
};

struct SyncedBackup {
  std::string label;
  std::string
      status;  // "present", "copied", "missing" (dry run / verify-only), "expired-in-target"
  std::uint64_t objects = 0;  // copied (or to copy)
  std::uint64_t bytes = 0;    // stored bytes copied (or to copy)
  SystemTime stop_time{};
};

struct SyncResult {
  std::vector<SyncedBackup> backups;  // A's complete backups, oldest first
  std::uint64_t wal_missing = 0;      // WAL objects B lacks that it needs (before the sync)
  std::uint64_t wal_copied = 0;
  std::uint64_t bytes_copied = 0;
  std::uint64_t objects_copied = 0;
  // What B lacks (after the sync; before it with dry_run/verify_only): the stop time of the
  // newest backup and the archive time of the newest WAL segment A has and B does not.
  std::optional<SystemTime> newest_missing_backup;
  std::optional<SystemTime> newest_missing_wal;
  std::uint64_t missing_objects = 0, missing_bytes = 0;
  bool complete() const { return missing_objects == 0; }
};

// How far repository B is behind A (the exporter's and info's sync lag), from both
// repositories' listings alone: A's complete backups B does not hold (those older than B's
// oldest are not counted: B's retention let them go), and the WAL segments A holds from B's
// oldest full backup on (A's, when B has none) that B does not.
struct SyncLag {
  std::uint64_t missing_backups = 0;
  std::uint64_t missing_wal = 0;
  std::uint64_t missing_bytes = 0;                  // stored bytes of both
  std::optional<SystemTime> newest_missing_backup;  // its stop time
  std::optional<SystemTime> newest_missing_wal;     // its archiving time
};
SyncLag LagOf(const std::vector<BackupEntry>& a_backups, const WalIndex& a_wal,
              const std::vector<BackupEntry>& b_backups, const WalIndex& b_wal);

// Throws ConflictError (different cluster, version, keys, or a differing backup of the same
// label), StorageError/IntegrityError when copying fails (what was committed stays; run again).
SyncResult Sync(Catalog& from, Catalog& to, const SyncOptions& options);

}  // namespace gravl::repo
