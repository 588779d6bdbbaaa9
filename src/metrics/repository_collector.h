#pragma once
// The metrics of one stanza in one repository, derived from what the repository holds:
// backup manifests, run reports (repo/reports.h) and the WAL archive.
//
// Cost is bounded across refreshes: manifests are write-once, so each is read once (a
// label seen before is not read again); reports likewise (one listing per kind, new keys
// read); the WAL archive is listed completely once, then only from the greatest key seen
// (start-after), with a complete listing again every `full_listing_interval` and after every
// new expire report (deletions, late additions). A repository that cannot be read gives
// gravl_repository_up 0 and its reason in problem(); Collect never throws.

#include <chrono>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "common/config.h"
#include "common/time_util.h"
#include "metrics/family_set.h"
#include "repo/manifest.h"
#include "repo/reports.h"
#include "repo/repository.h"
#include "repo/wal_index.h"

namespace gravl::metrics {

struct RepositoryCollectorOptions {
  std::chrono::seconds full_listing_interval{3600};
  std::optional<std::string> passphrase;
  std::int64_t pitr_window_s = 0;  // retention.pitr_window; 0: none
  std::size_t size_window = 7;     // backups the size deviation compares with
};

// What the last Collect did, for logs and benchmarks.
struct CollectStats {
  std::size_t manifests_read = 0;
  std::size_t reports_read = 0;
  std::size_t wal_objects_listed = 0;
  bool full_wal_listing = false;
  double seconds = 0;
};

class RepositoryCollector {
 public:
  RepositoryCollector(std::unique_ptr<repo::Repository> repo, RepositoryCollectorOptions options);

  // Reads what is new in the repository and adds its metrics to `out`.
  void Collect(FamilySet& out, SystemTime now);

  const std::string& name() const { return repo_->config().name; }
  const std::string& problem() const { return problem_; }
  const CollectStats& stats() const { return stats_; }
  // The state of the last successful refresh (for cross-repository metrics: sync lag).
  bool up() const { return problem_.empty() && wal_.has_value(); }
  const std::vector<repo::BackupEntry>& backups() const { return backups_; }
  const repo::WalIndex* wal() const { return wal_ ? &*wal_ : nullptr; }

 private:
  void Refresh(SystemTime now);
  void RefreshReports(const std::string& kind);
  void Emit(FamilySet& out, SystemTime now) const;
  void EmitBackups(FamilySet& out) const;
  void EmitRuns(FamilySet& out) const;
  void EmitWal(FamilySet& out, SystemTime now) const;

  std::unique_ptr<repo::Repository> repo_;
  RepositoryCollectorOptions options_;
  bool unlocked_ = false;
  std::optional<SystemTime> stanza_created_;
  std::vector<repo::BackupEntry> backups_;  // oldest first
  std::vector<std::string> incomplete_;
  // kind -> key -> report (damaged reports are left out, and named once in the log)
  std::map<std::string, std::map<std::string, repo::RunReport>> reports_;
  std::map<std::string, std::string> damaged_reports_;
  std::optional<repo::WalIndex> wal_;
  std::string wal_last_key_;
  SystemTime last_full_listing_{};
  std::string expire_key_at_full_listing_;
  std::string problem_;
  CollectStats stats_;
  std::size_t quarantined_ = 0;
};

}  // namespace gravl::metrics
