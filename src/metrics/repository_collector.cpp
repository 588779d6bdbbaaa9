#include "metrics/repository_collector.h"

#include <algorithm>
#include <numeric>
#include <set>

#include "common/error.h"
#include "common/log.h"
#include "repo/catalog.h"
#include "repo/fence.h"
#include "repo/layout.h"
#include "repo/stanza.h"

namespace gravl::metrics {

namespace {

double Epoch(SystemTime t) { return std::chrono::duration<double>(t.time_since_epoch()).count(); }

const char* Result(bool ok) { return ok ? "success" : "failure"; }

const std::vector<std::string>& ReportKinds() {
  static const std::vector<std::string> kKinds = {
      repo::kBackupReports, repo::kExpireReports,       repo::kVerifyReports,
      repo::kDrillReports,  repo::kNotificationReports, repo::kFailoverReports};
  return kKinds;
}

}  // namespace

RepositoryCollector::RepositoryCollector(std::unique_ptr<repo::Repository> repo,
                                         RepositoryCollectorOptions options)
    : repo_(std::move(repo)), options_(std::move(options)) {}

void RepositoryCollector::Collect(FamilySet& out, SystemTime now) {
  const Labels labels{{"stanza", repo_->stanza()}, {"repo", name()}};
  auto start = std::chrono::steady_clock::now();
  stats_ = {};
  FamilySet mine;
  try {
    Refresh(now);
    Emit(mine, now);
    problem_.clear();
  } catch (const std::exception& e) {
    // Nothing but up 0: numbers from a repository that cannot be read would be stale.
    std::string why = Redact(e.what());
    if (why != problem_) {
      spdlog::error("event=repository_unreachable repo={} error=\"{}\"", name(), why);
    }
    problem_ = why;
    mine = FamilySet();
  }
  stats_.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  out.Merge(mine);
  out.Gauge("gravl_repository_up", labels, problem_.empty() ? 1 : 0);
  out.Gauge("gravl_repository_refresh_duration_seconds", labels, stats_.seconds);
}

void RepositoryCollector::Refresh(SystemTime now) {
  // A repository whose root vanished (an unmounted volume, a deleted bucket) lists as empty:
  // its stanza object says whether it is still there.
  if (unlocked_ && !repo_->storage().Stat(repo::StanzaKey(repo_->stanza()))) {
    throw NotFoundError("stanza '" + repo_->stanza() + "' is gone from " + repo_->Describe() +
                        " (the repository is unmounted, moved or deleted)");
  }
  if (!unlocked_) {
    const repo::StanzaInfo& info = repo_->Stanza();
    if (!info.created_at.empty()) {
      try {
        stanza_created_ = ParseIso8601(info.created_at);
      } catch (const Error&) {
        stanza_created_.reset();
      }
    }
    repo_->Unlock(options_.passphrase);
    unlocked_ = true;
  }
  // Backups: a label's summary, once read, is kept (manifests are write-once).
  std::map<std::string, repo::BackupEntry> known;
  for (auto& b : backups_) known.emplace(b.label, std::move(b));
  std::vector<std::string> incomplete;
  backups_ = repo::ListBackups(*repo_, &incomplete, &known);
  incomplete_ = std::move(incomplete);
  for (const auto& b : backups_) {
    if (!known.count(b.label) || !known.at(b.label).ok()) ++stats_.manifests_read;
  }
  for (const auto& kind : ReportKinds()) RefreshReports(kind);
  // WAL an old primary pushed after its timeline was fenced (repo/fence.h): one listing.
  quarantined_ = repo::ListQuarantine(repo_->storage(), repo_->stanza()).size();

  // WAL: complete listings now and then, and after expire deleted something; otherwise only
  // what sorts after the greatest key seen.
  const auto& expires = reports_[repo::kExpireReports];
  std::string newest_expire = expires.empty() ? "" : expires.rbegin()->first;
  bool full = !wal_ || now - last_full_listing_ >= options_.full_listing_interval ||
              newest_expire != expire_key_at_full_listing_;
  if (full) {
    std::string last;
    wal_.reset();  // not two indexes of 200,000 segments at once
    wal_ = repo::WalIndex::Build(*repo_, &last);
    wal_last_key_ = std::move(last);
    last_full_listing_ = now;
    expire_key_at_full_listing_ = newest_expire;
    stats_.full_wal_listing = true;
    stats_.wal_objects_listed = wal_->segment_count();
  } else {
    stats_.wal_objects_listed = wal_->AddNewer(*repo_, &wal_last_key_);
  }
}

void RepositoryCollector::RefreshReports(const std::string& kind) {
  auto& reports = reports_[kind];
  std::set<std::string> present;
  for (const auto& key : repo::ListReportKeys(repo_->storage(), repo_->stanza(), kind)) {
    present.insert(key);
    if (reports.count(key) || damaged_reports_.count(key)) continue;
    try {
      reports.emplace(key, repo::ReadReport(repo_->storage(), key));
      ++stats_.reports_read;
    } catch (const IntegrityError& e) {
      damaged_reports_.emplace(key, e.what());
      spdlog::warn("event=damaged_report repo={} key={} error=\"{}\"", name(), key,
                   Redact(e.what()));
    }
  }
  std::erase_if(reports, [&](const auto& kv) { return !present.count(kv.first); });
}

void RepositoryCollector::Emit(FamilySet& out, SystemTime now) const {
  EmitBackups(out);
  EmitRuns(out);
  EmitWal(out, now);
  const Labels labels{{"stanza", repo_->stanza()}, {"repo", name()}};
  if (options_.pitr_window_s > 0) {
    out.Gauge("gravl_retention_pitr_window_seconds", labels,
              static_cast<double>(options_.pitr_window_s));
  }
  if (stanza_created_) {
    out.Gauge("gravl_stanza_created_timestamp_seconds", labels, Epoch(*stanza_created_));
  }
}

void RepositoryCollector::EmitBackups(FamilySet& out) const {
  const std::string stanza = repo_->stanza();
  const Labels labels{{"stanza", stanza}, {"repo", name()}};
  std::map<std::string, std::vector<const repo::BackupManifest*>> by_type;
  by_type["full"];  // always: "no full backup" is a value (0), not an absent series
  std::size_t damaged = 0;
  double stored = 0;
  for (const auto& b : backups_) {
    if (!b.ok()) {
      ++damaged;
      continue;
    }
    by_type[b.manifest->type].push_back(&*b.manifest);
    stored += static_cast<double>(b.manifest->stored_size);
  }
  out.Gauge("gravl_backups_damaged", labels, static_cast<double>(damaged));
  out.Gauge("gravl_backups_incomplete", labels, static_cast<double>(incomplete_.size()));
  out.Gauge("gravl_repository_bytes", {{"stanza", stanza}, {"repo", name()}, {"kind", "backups"}},
            stored);
  // Manifests keep times to the second; the backup's run report has the exact duration.
  std::map<std::string, double> run_seconds;
  if (auto it = reports_.find(repo::kBackupReports); it != reports_.end()) {
    for (const auto& [key, r] : it->second) {
      if (r.ok && !r.label.empty()) run_seconds[r.label] = r.seconds();
    }
  }
  for (const auto& [type, list] : by_type) {
    Labels l{{"stanza", stanza}, {"repo", name()}, {"type", type}};
    out.Gauge("gravl_backups", l, static_cast<double>(list.size()));
    if (list.empty()) continue;
    const repo::BackupManifest& newest = *list.back();
    auto run = run_seconds.find(newest.label);
    double seconds =
        run != run_seconds.end()
            ? run->second
            : std::chrono::duration<double>(newest.stop_time - newest.start_time).count();
    out.Gauge("gravl_backup_last_success_timestamp_seconds", l, Epoch(newest.stop_time));
    out.Gauge("gravl_backup_last_size_bytes", l, static_cast<double>(newest.size));
    out.Gauge("gravl_backup_last_stored_bytes", l, static_cast<double>(newest.stored_size));
    out.Gauge("gravl_backup_last_duration_seconds", l, seconds);
    out.Gauge("gravl_backup_last_throughput_bytes_per_second", l,
              seconds > 0 ? static_cast<double>(newest.size) / seconds : 0);
    // The newest against the mean of the ones before it (0 when there are none).
    std::size_t n = std::min(options_.size_window, list.size() - 1);
    double deviation = 0;
    if (n > 0) {
      double sum = 0;
      for (std::size_t i = list.size() - 1 - n; i < list.size() - 1; ++i) {
        sum += static_cast<double>(list[i]->size);
      }
      double mean = sum / static_cast<double>(n);
      if (mean > 0) deviation = static_cast<double>(newest.size) / mean - 1;
    }
    out.Gauge("gravl_backup_size_deviation_ratio", l, deviation);
  }
}

void RepositoryCollector::EmitRuns(FamilySet& out) const {
  const std::string stanza = repo_->stanza();
  const Labels labels{{"stanza", stanza}, {"repo", name()}};
  auto reports_of = [&](const std::string& kind) -> const std::map<std::string, repo::RunReport>& {
    static const std::map<std::string, repo::RunReport> kNone;
    auto it = reports_.find(kind);
    return it == reports_.end() ? kNone : it->second;
  };

  // Backups, by type: both results always, so that rates and increases see the first failure.
  struct Runs {
    double success = 0, failure = 0;
    const repo::RunReport* last = nullptr;
    const repo::RunReport* last_failure = nullptr;
  };
  std::map<std::string, Runs> backup_runs;
  backup_runs["full"];
  for (const auto& [key, r] : reports_of(repo::kBackupReports)) {
    Runs& runs = backup_runs[r.subject.empty() ? "full" : r.subject];
    (r.ok ? runs.success : runs.failure) += 1;
    // Newest by end time: keys sort by start to the second, then by a random id.
    if (!runs.last || r.finished >= runs.last->finished) runs.last = &r;
    if (!r.ok && (!runs.last_failure || r.finished >= runs.last_failure->finished)) {
      runs.last_failure = &r;
    }
  }
  for (const auto& [type, runs] : backup_runs) {
    for (bool ok : {true, false}) {
      out.Counter("gravl_backup_runs_total",
                  {{"stanza", stanza}, {"repo", name()}, {"type", type}, {"result", Result(ok)}},
                  ok ? runs.success : runs.failure);
    }
    Labels l{{"stanza", stanza}, {"repo", name()}, {"type", type}};
    if (runs.last != nullptr) out.Gauge("gravl_backup_last_run_success", l, runs.last->ok ? 1 : 0);
    if (runs.last_failure != nullptr) {
      out.Gauge("gravl_backup_last_failure_timestamp_seconds", l,
                Epoch(runs.last_failure->finished));
    }
  }

  // verify, expire, drills, notifications: counts by result and the newest run.
  auto simple = [&](const std::string& kind, const std::string& prefix) {
    double success = 0, failure = 0;
    const repo::RunReport* last = nullptr;
    const repo::RunReport* last_success = nullptr;
    for (const auto& [key, r] : reports_of(kind)) {
      (r.ok ? success : failure) += 1;
      if (!last || r.finished >= last->finished) last = &r;
      if (r.ok && (!last_success || r.finished >= last_success->finished)) last_success = &r;
    }
    for (bool ok : {true, false}) {
      Labels l = labels;
      l["result"] = Result(ok);
      out.Counter(prefix + (prefix == "gravl_notifications" ? "_total" : "_runs_total"), l,
                  ok ? success : failure);
    }
    if (prefix == "gravl_notifications" || last == nullptr) return last;
    out.Gauge(prefix + "_last_timestamp_seconds", labels, Epoch(last->finished));
    out.Gauge(prefix + "_last_success", labels, last->ok ? 1 : 0);
    if (prefix == "gravl_drill" && last_success != nullptr) {
      out.Gauge("gravl_drill_last_success_timestamp_seconds", labels,
                Epoch(last_success->finished));
    }
    return last;
  };
  // failover, switchover, failback, standby-create: by kind.
  std::map<std::string, Runs> role_changes;
  for (const auto& [key, r] : reports_of(repo::kFailoverReports)) {
    Runs& runs = role_changes[r.subject.empty() ? "failover" : r.subject];
    (r.ok ? runs.success : runs.failure) += 1;
    if (!runs.last || r.finished >= runs.last->finished) runs.last = &r;
  }
  for (const auto& [kind, runs] : role_changes) {
    Labels l{{"stanza", stanza}, {"repo", name()}, {"kind", kind}};
    for (bool ok : {true, false}) {
      Labels lr = l;
      lr["result"] = Result(ok);
      out.Counter("gravl_role_change_runs_total", lr, ok ? runs.success : runs.failure);
    }
    out.Gauge("gravl_role_change_last_timestamp_seconds", l, Epoch(runs.last->finished));
    out.Gauge("gravl_role_change_last_success", l, runs.last->ok ? 1 : 0);
    const auto& d = runs.last->details;
    if (d.contains("decision_to_writable_seconds") &&
        d["decision_to_writable_seconds"].is_number()) {
      out.Gauge("gravl_role_change_last_writable_seconds", l,
                d["decision_to_writable_seconds"].get<double>());
    }
  }
  out.Gauge("gravl_wal_quarantined_files", labels, static_cast<double>(quarantined_));

  simple(repo::kVerifyReports, "gravl_verify");
  simple(repo::kExpireReports, "gravl_expire");
  simple(repo::kNotificationReports, "gravl_notifications");
  if (const repo::RunReport* drill = simple(repo::kDrillReports, "gravl_drill")) {
    for (const auto& [phase, seconds] : drill->phases) {
      Labels l = labels;
      l["phase"] = phase;
      out.Gauge("gravl_drill_rto_seconds", l, seconds);
    }
  }
}

void RepositoryCollector::EmitWal(FamilySet& out, SystemTime now) const {
  const Labels labels{{"stanza", repo_->stanza()}, {"repo", name()}};
  std::uint64_t segments = 0, bytes = 0;
  std::int64_t newest = 0;
  for (const auto& [tli, t] : wal_->timelines()) {
    segments += t.segments.size();
    for (const auto& [segno, s] : t.segments) {
      bytes += s.stored_size;
      newest = std::max(newest, s.modified);
    }
  }
  out.Gauge("gravl_wal_segments", labels, static_cast<double>(segments));
  out.Gauge("gravl_repository_bytes",
            {{"stanza", repo_->stanza()}, {"repo", name()}, {"kind", "wal"}},
            static_cast<double>(bytes));
  if (newest > 0) {
    out.Gauge("gravl_wal_newest_archived_timestamp_seconds", labels, static_cast<double>(newest));
  }
  // The recoverable window: from the oldest consistency point any full backup reaches with
  // its WAL to the newest moment any reaches.
  std::optional<SystemTime> from, to;
  for (const auto& b : backups_) {
    if (!b.ok() || !b.manifest->full()) continue;
    repo::RecoverableWindow w = repo::WindowOf(*wal_, *b.manifest);
    if (!w.problem.empty() || !w.consistent) continue;
    if (!from || w.from_time < *from) from = w.from_time;
    if (!to || w.to_time > *to) to = w.to_time;
  }
  if (from && to) {
    out.Gauge("gravl_recoverable_window_start_timestamp_seconds", labels, Epoch(*from));
    out.Gauge("gravl_recoverable_window_end_timestamp_seconds", labels, Epoch(*to));
    out.Gauge("gravl_recoverable_window_seconds", labels,
              std::chrono::duration<double>(*to - *from).count());
    out.Gauge("gravl_rpo_estimate_seconds", labels,
              std::max(0.0, std::chrono::duration<double>(now - *to).count()));
  }
}

}  // namespace gravl::metrics
