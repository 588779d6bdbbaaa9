#pragma once
// The metrics exporter's model (src/metrics/): gravl-dr's metrics come from what the
// repositories hold -- manifests, run reports every recorded command leaves
// (repo/reports.h), the WAL archive -- and from PostgreSQL's statistics, never from the
// memory of a process, so a CronJob pod that exits leaves its numbers behind and every
// replica of the exporter reports the same thing. An Exporter refreshes its view of every
// configured repository (RepositoryCollector: cached manifests and reports, incremental WAL
// listings) and of the configured server (PostgresCollector) on demand -- the serving loop in
// commands/exporter.cpp does it on an interval, never per scrape -- and keeps the last
// complete snapshot, which scrapes read concurrently. A repository or server that cannot be
// reached is a metric (`gravl_repository_up 0`, `gravl_postgres_up 0`) and a log line,
// never an exception. Metric names and HELP texts are declared in metrics/names.h and
// documented in docs/metrics.md.

#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "common/config.h"
#include "common/time_util.h"
#include "metrics/family_set.h"
#include "metrics/postgres_collector.h"
#include "metrics/repository_collector.h"

namespace gravl::metrics {

struct Health {
  bool refreshed = false;  // at least one refresh completed
  std::optional<SystemTime> last_refresh;
  double refresh_seconds = 0;
  std::vector<std::string> problems;  // unreachable repositories or server, by name
};

class Exporter {
 public:
  // Repositories of `config` (S3 requests capped at 20 s of retries each, so that a refresh
  // ends in bounded time when a region is down), and its PostgreSQL when pg.conninfo is set.
  explicit Exporter(const Config& config);
  // For tests: given repositories.
  Exporter(const Config& config, std::vector<std::unique_ptr<repo::Repository>> repos);

  // Reads every repository and the server; the new snapshot replaces the old at the end.
  void Refresh(SystemTime now);
  // The current snapshot in the Prometheus text format ("" before the first refresh).
  std::string Text() const;
  FamilySet Snapshot() const;
  Health GetHealth() const;
  const std::vector<std::unique_ptr<RepositoryCollector>>& repositories() const {
    return repositories_;
  }

 private:
  std::string config_stanza_;
  std::vector<std::unique_ptr<RepositoryCollector>> repositories_;
  std::optional<PostgresCollector> postgres_;
  std::vector<RegionConfig> regions_;  // regions: each server's role and lag (src/ha/)

  mutable std::mutex mutex_;  // guards the snapshot and health
  FamilySet snapshot_;
  std::string text_;
  Health health_;
};

}  // namespace gravl::metrics
