#include "metrics/exporter.h"

#include <chrono>

#include "common/log.h"
#include "ha/ha.h"
#include "repo/replicate.h"
#include "storage/factory.h"
#include "version.h"

namespace gravl::metrics {

namespace {

RepositoryCollectorOptions OptionsOf(const Config& config) {
  RepositoryCollectorOptions o;
  o.full_listing_interval = std::chrono::seconds(config.exporter.full_listing_interval_s);
  o.passphrase = config.passphrase;
  o.pitr_window_s = config.retention.pitr_window_s;
  return o;
}

std::vector<std::unique_ptr<repo::Repository>> OpenRepositories(const Config& config) {
  std::vector<std::unique_ptr<repo::Repository>> repos;
  for (RepoConfig rc : config.repos) {
    // A refresh must end while the next is due, also when a region is down.
    rc.s3.retry_timeout = std::min(rc.s3.retry_timeout, 20);
    rc.s3.max_attempts = std::min(rc.s3.max_attempts, 3);
    repos.push_back(
        std::make_unique<repo::Repository>(rc, storage::OpenStorage(rc), config.stanza));
  }
  return repos;
}

}  // namespace

Exporter::Exporter(const Config& config) : Exporter(config, OpenRepositories(config)) {}

Exporter::Exporter(const Config& config, std::vector<std::unique_ptr<repo::Repository>> repos)
    : config_stanza_(config.stanza) {
  for (auto& r : repos) {
    repositories_.push_back(std::make_unique<RepositoryCollector>(std::move(r), OptionsOf(config)));
  }
  if (!config.pg_conninfo.empty()) postgres_.emplace(config.pg_conninfo, config.stanza);
  regions_ = config.regions;
}

void Exporter::Refresh(SystemTime now) {
  auto start = std::chrono::steady_clock::now();
  FamilySet next;
  next.Gauge("gravl_exporter_build_info", {{"version", kVersion}}, 1);
  std::vector<std::string> problems;
  for (auto& r : repositories_) {
    r->Collect(next, now);
    if (!r->problem().empty()) problems.push_back("repository " + r->name() + ": " + r->problem());
    const CollectStats& s = r->stats();
    spdlog::debug(
        "event=repository_refreshed repo={} seconds={:.3f} manifests_read={} reports_read={} "
        "wal_listed={} full_wal_listing={}",
        r->name(), s.seconds, s.manifests_read, s.reports_read, s.wal_objects_listed,
        s.full_wal_listing);
  }
  // Sync lag from the first repository (the primary region's) to each other one.
  for (std::size_t i = 1; i < repositories_.size(); ++i) {
    const RepositoryCollector& a = *repositories_.front();
    const RepositoryCollector& b = *repositories_[i];
    if (!a.up() || !b.up()) continue;
    repo::SyncLag lag = repo::LagOf(a.backups(), *a.wal(), b.backups(), *b.wal());
    Labels l{{"stanza", config_stanza_}, {"repo", a.name()}, {"target", b.name()}};
    auto age = [&](std::optional<SystemTime> t) {
      return t ? std::max(0.0, std::chrono::duration<double>(now - *t).count()) : 0.0;
    };
    next.Gauge("gravl_sync_missing_backups", l, static_cast<double>(lag.missing_backups));
    next.Gauge("gravl_sync_missing_wal_segments", l, static_cast<double>(lag.missing_wal));
    next.Gauge("gravl_sync_missing_bytes", l, static_cast<double>(lag.missing_bytes));
    next.Gauge("gravl_sync_backup_lag_seconds", l, age(lag.newest_missing_backup));
    next.Gauge("gravl_sync_wal_lag_seconds", l, age(lag.newest_missing_wal));
  }
  if (postgres_) {
    postgres_->Collect(next, now);
    if (!postgres_->problem().empty()) problems.push_back("postgres: " + postgres_->problem());
  }
  for (const auto& v : ha::ViewRegions(regions_)) {
    Labels l{{"stanza", config_stanza_}, {"region", v.name}};
    next.Gauge("gravl_region_up", l, v.probe.reachable ? 1 : 0);
    if (!v.probe.reachable) continue;
    next.Gauge("gravl_region_primary", l, v.probe.writable() ? 1 : 0);
    next.Gauge("gravl_region_timeline", l, v.probe.role.timeline);
    if (v.lag_bytes) {
      next.Gauge("gravl_region_replication_lag_bytes", l, static_cast<double>(*v.lag_bytes));
    }
  }
  double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  next.Gauge("gravl_exporter_refresh_duration_seconds", {}, seconds);
  next.Gauge("gravl_exporter_last_refresh_timestamp_seconds", {},
             std::chrono::duration<double>(now.time_since_epoch()).count());
  std::string text = next.Text();
  std::lock_guard lock(mutex_);
  snapshot_ = std::move(next);
  text_ = std::move(text);
  health_.refreshed = true;
  health_.last_refresh = now;
  health_.refresh_seconds = seconds;
  health_.problems = std::move(problems);
}

std::string Exporter::Text() const {
  std::lock_guard lock(mutex_);
  return text_;
}

FamilySet Exporter::Snapshot() const {
  std::lock_guard lock(mutex_);
  return snapshot_;
}

Health Exporter::GetHealth() const {
  std::lock_guard lock(mutex_);
  return health_;
}

}  // namespace gravl::metrics
