// The repository's metrics: values derived from manifests, run reports and the WAL archive;
// bounded refresh cost (manifests and reports read once, WAL listed incrementally); and a
// repository that cannot be read is `up 0`, never an exception.

#include "metrics/repository_collector.h"

#include <gtest/gtest.h>

#include "io/hash.h"
#include "metrics/names.h"
#include "repo/layout.h"
#include "repo/reports.h"
#include "repo/wal.h"
#include "storage/faulty.h"
#include "storage/forwarding.h"
#include "storage/memory.h"
#include "support/manifest_util.h"
#include "support/test_util.h"

namespace gravl::metrics {
namespace {

constexpr std::uint64_t kSeg = 16 << 20;
using std::chrono::hours;
using std::chrono::minutes;

// Counts List calls and the objects they return, and can be switched off.
class CountingStorage final : public storage::ForwardingStorage {
 public:
  using ForwardingStorage::ForwardingStorage;
  storage::ListPage List(const std::string& prefix, const storage::ListOptions& o) override {
    if (down) throw StorageError("connection refused (test)", true);
    auto page = ForwardingStorage::List(prefix, o);
    if (prefix.find("/wal/") != std::string::npos) wal_listed += page.objects.size();
    return page;
  }
  std::unique_ptr<storage::ReadStream> TryGet(const std::string& key,
                                              const std::optional<storage::Range>& r) override {
    if (down) throw StorageError("connection refused (test)", true);
    if (key.find("/manifest.json") != std::string::npos) ++manifest_reads;
    return ForwardingStorage::TryGet(key, r);
  }
  bool down = false;
  std::size_t wal_listed = 0;
  std::size_t manifest_reads = 0;
};

class CollectorTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto counting = std::make_unique<CountingStorage>(storage::MakeMemoryStorage());
    storage_ = counting.get();
    auto repo = test::NewTestRepository(std::move(counting), kSeg);
    repo_ = repo.get();
    RepositoryCollectorOptions options;
    options.pitr_window_s = 7 * 86400;
    collector_ = std::make_unique<RepositoryCollector>(std::move(repo), options);
  }
  void Wal(std::uint64_t segno) {
    std::string name = WalSegment{1, segno}.Name(kSeg);
    storage::PutBytes(*storage_,
                      repo::WalObjectKey("main", *repo::ParseWalFileName(name),
                                         io::Sha256Hex(AsBytes(name)), CompressionType::kNone),
                      AsBytes(name));
  }
  void Backup(const std::string& label, SystemTime stop, std::uint64_t segno, std::uint64_t size) {
    repo::BackupManifest m = test::SampleFullManifest(label);
    m.start_time = stop - minutes(10);
    m.stop_time = stop;
    m.size = size;
    m.stored_size = size / 4;
    m.start_lsn = Lsn{segno * kSeg + 40};
    m.stop_lsn = Lsn{segno * kSeg + 400};
    repo::WriteManifest(*repo_, m);
  }
  void Report(const std::string& kind, bool ok, SystemTime at, const std::string& subject = "",
              std::map<std::string, double> phases = {}) {
    repo::RunReport r;
    r.kind = kind;
    r.subject = subject;
    r.started = at - minutes(1);
    r.finished = at;
    r.ok = ok;
    r.phases = std::move(phases);
    repo::WriteReport(*repo_, r);
  }
  FamilySet Collect() {
    FamilySet out;
    collector_->Collect(out, now_);
    return out;
  }
  static double Epoch(SystemTime t) {
    return std::chrono::duration<double>(t.time_since_epoch()).count();
  }

  CountingStorage* storage_ = nullptr;
  repo::Repository* repo_ = nullptr;
  std::unique_ptr<RepositoryCollector> collector_;
  SystemTime now_ =
      std::chrono::time_point_cast<std::chrono::seconds>(std::chrono::system_clock::now());
  const Labels base_{{"stanza", "main"}, {"repo", "mem"}};
  Labels With(const std::string& k, const std::string& v) const {
    Labels l = base_;
    l[k] = v;
    return l;
  }
};

TEST_F(CollectorTest, EmptyRepositoryHasZeroBackupsNotMissingSeries) {
  FamilySet m = Collect();
  EXPECT_EQ(m.Value("gravl_repository_up", base_), 1);
  EXPECT_EQ(m.Value("gravl_backups", With("type", "full")), 0);
  EXPECT_EQ(m.Value("gravl_backup_runs_total", {{"type", "full"}, {"result", "failure"}}), 0);
  EXPECT_FALSE(m.Value("gravl_backup_last_success_timestamp_seconds"));
  EXPECT_FALSE(m.Value("gravl_recoverable_window_seconds"));
  EXPECT_EQ(m.Value("gravl_retention_pitr_window_seconds", base_), 7 * 86400);
  // Every name used is declared (FamilySet refuses others) and carries HELP and TYPE.
  std::string text = m.Text();
  EXPECT_NE(text.find("# HELP gravl_backups "), std::string::npos);
  EXPECT_NE(text.find("# TYPE gravl_backup_runs_total counter"), std::string::npos);
}

TEST_F(CollectorTest, BackupSizeDurationAndDeviation) {
  for (std::uint64_t s = 1; s <= 12; ++s) Wal(s);
  // Seven backups of 1000 bytes, then one of 1600: +60 % against the mean of the previous 7.
  for (int i = 0; i < 7; ++i) {
    Backup("2026010" + std::to_string(i + 1) + "T000000Z-full", now_ - hours(24 * (8 - i)),
           static_cast<std::uint64_t>(i + 1), 1000);
  }
  Backup("20260110T000000Z-full", now_ - hours(2), 10, 1600);
  FamilySet m = Collect();
  Labels full = With("type", "full");
  EXPECT_EQ(m.Value("gravl_backups", full), 8);
  EXPECT_FALSE(m.Value("gravl_backups", With("type", "logical")));  // no logical backup yet
  EXPECT_EQ(m.Value("gravl_backup_last_success_timestamp_seconds", full), Epoch(now_ - hours(2)));
  EXPECT_EQ(m.Value("gravl_backup_last_size_bytes", full), 1600);
  EXPECT_EQ(m.Value("gravl_backup_last_stored_bytes", full), 400);
  EXPECT_NEAR(*m.Value("gravl_backup_size_deviation_ratio", full), 0.6, 1e-9);
  EXPECT_EQ(m.Value("gravl_backup_last_duration_seconds", full), 600);
  EXPECT_NEAR(*m.Value("gravl_backup_last_throughput_bytes_per_second", full), 1600.0 / 600, 1e-9);
  EXPECT_EQ(m.Value("gravl_repository_bytes", With("kind", "backups")), (7 * 1000 + 1600) / 4);
  // The window: the oldest backup's stop to the newest archived segment reached (1..12).
  EXPECT_EQ(m.Value("gravl_recoverable_window_start_timestamp_seconds", base_),
            Epoch(now_ - hours(24 * 8)));
  EXPECT_EQ(m.Value("gravl_wal_segments", base_), 12);
  double end = *m.Value("gravl_recoverable_window_end_timestamp_seconds", base_);
  EXPECT_GE(end, Epoch(now_ - hours(2)));
  EXPECT_NEAR(*m.Value("gravl_recoverable_window_seconds", base_),
              end - Epoch(now_ - hours(24 * 8)), 1e-6);
}

TEST_F(CollectorTest, WindowStopsAtTheFirstGap) {
  for (std::uint64_t s : {1u, 2u, 3u, 5u, 6u}) Wal(s);  // 4 is missing
  Backup("20260101T000000Z-full", now_ - hours(5), 1, 100);
  FamilySet m = Collect();
  // Reached segments 1-3 only: the archive times of the segments after the gap do not count,
  // and the backup's own stop time is the floor.
  EXPECT_EQ(m.Value("gravl_recoverable_window_start_timestamp_seconds", base_),
            Epoch(now_ - hours(5)));
  EXPECT_GE(*m.Value("gravl_rpo_estimate_seconds", base_), 0);
}

TEST_F(CollectorTest, RunReportsBecomeCountersAndLastOutcomes) {
  Report(repo::kBackupReports, true, now_ - hours(30), "full");
  Report(repo::kBackupReports, false, now_ - hours(6), "full");
  Report(repo::kBackupReports, true, now_ - hours(5), "logical");
  Report(repo::kDrillReports, true, now_ - hours(50), "", {{"download", 3}, {"rto", 9}});
  Report(repo::kDrillReports, false, now_ - hours(2), "", {{"download", 4}, {"rto", 12.5}});
  Report(repo::kVerifyReports, true, now_ - hours(3));
  Report(repo::kExpireReports, false, now_ - hours(4));
  Report(repo::kNotificationReports, false, now_ - hours(4));
  FamilySet m = Collect();
  EXPECT_EQ(m.Value("gravl_backup_runs_total", {{"type", "full"}, {"result", "success"}}), 1);
  EXPECT_EQ(m.Value("gravl_backup_runs_total", {{"type", "full"}, {"result", "failure"}}), 1);
  EXPECT_EQ(m.Value("gravl_backup_runs_total", {{"type", "logical"}, {"result", "success"}}), 1);
  EXPECT_EQ(m.Value("gravl_backup_last_run_success", With("type", "full")), 0);
  EXPECT_EQ(m.Value("gravl_backup_last_run_success", With("type", "logical")), 1);
  EXPECT_EQ(m.Value("gravl_backup_last_failure_timestamp_seconds", With("type", "full")),
            Epoch(now_ - hours(6)));
  EXPECT_EQ(m.Value("gravl_drill_runs_total", With("result", "success")), 1);
  EXPECT_EQ(m.Value("gravl_drill_last_success", base_), 0);
  EXPECT_EQ(m.Value("gravl_drill_last_timestamp_seconds", base_), Epoch(now_ - hours(2)));
  EXPECT_EQ(m.Value("gravl_drill_last_success_timestamp_seconds", base_), Epoch(now_ - hours(50)));
  EXPECT_EQ(m.Value("gravl_drill_rto_seconds", With("phase", "rto")), 12.5);
  EXPECT_EQ(m.Value("gravl_verify_last_success", base_), 1);
  EXPECT_EQ(m.Value("gravl_expire_last_success", base_), 0);
  EXPECT_EQ(m.Value("gravl_notifications_total", With("result", "failure")), 1);
  EXPECT_EQ(m.Value("gravl_notifications_total", With("result", "success")), 0);
}

TEST_F(CollectorTest, RefreshesReadOnlyWhatIsNew) {
  for (std::uint64_t s = 1; s <= 50; ++s) Wal(s);
  for (int i = 0; i < 5; ++i) {
    Backup("2026010" + std::to_string(i + 1) + "T000000Z-full", now_ - hours(10 - i),
           static_cast<std::uint64_t>(i * 5 + 1), 100);
  }
  Report(repo::kBackupReports, true, now_ - hours(1), "full");
  Collect();
  EXPECT_TRUE(collector_->stats().full_wal_listing);
  EXPECT_EQ(collector_->stats().manifests_read, 5u);
  EXPECT_EQ(collector_->stats().reports_read, 1u);
  EXPECT_EQ(storage_->wal_listed, 50u);

  // Nothing new: no manifest or report read again, no WAL object listed again.
  storage_->wal_listed = storage_->manifest_reads = 0;
  FamilySet m = Collect();
  EXPECT_FALSE(collector_->stats().full_wal_listing);
  EXPECT_EQ(collector_->stats().manifests_read, 0u);
  EXPECT_EQ(collector_->stats().reports_read, 0u);
  EXPECT_EQ(storage_->manifest_reads, 0u);
  EXPECT_EQ(storage_->wal_listed, 0u);
  EXPECT_EQ(m.Value("gravl_backups", With("type", "full")), 5);

  // Two new segments and a backup: only they are read.
  Wal(51);
  Wal(52);
  Backup("20260109T000000Z-full", now_ - hours(1), 51, 100);
  m = Collect();
  EXPECT_EQ(storage_->wal_listed, 2u);
  EXPECT_EQ(collector_->stats().manifests_read, 1u);
  EXPECT_EQ(m.Value("gravl_wal_segments", base_), 52);
  EXPECT_EQ(m.Value("gravl_backups", With("type", "full")), 6);

  // An expire run deleted WAL: the next refresh lists everything again and sees it gone.
  std::vector<std::string> gone;
  for (const auto& o : storage::ListAll(*storage_, repo::WalPrefix("main"))) {
    if (gone.size() < 10) gone.push_back(o.key);
  }
  storage_->DeleteMany(gone);
  Report(repo::kExpireReports, true, now_);
  m = Collect();
  EXPECT_TRUE(collector_->stats().full_wal_listing);
  EXPECT_EQ(m.Value("gravl_wal_segments", base_), 42);
}

TEST_F(CollectorTest, UnreachableRepositoryIsUpZeroAndRecovers) {
  Backup("20260101T000000Z-full", now_ - hours(5), 1, 100);
  Collect();
  storage_->down = true;
  FamilySet m;
  EXPECT_NO_THROW(collector_->Collect(m, now_));
  EXPECT_EQ(m.Value("gravl_repository_up", base_), 0);
  EXPECT_FALSE(m.Value("gravl_backups", With("type", "full")));  // no stale numbers
  EXPECT_NE(collector_->problem().find("connection refused"), std::string::npos);
  storage_->down = false;
  m = Collect();
  EXPECT_EQ(m.Value("gravl_repository_up", base_), 1);
  EXPECT_EQ(m.Value("gravl_backups", With("type", "full")), 1);
  EXPECT_TRUE(collector_->problem().empty());
}

TEST_F(CollectorTest, DamagedReportIsSkippedNotFatal) {
  Report(repo::kVerifyReports, true, now_ - hours(3));
  storage::PutBytes(*storage_, repo::ReportsPrefix("main", repo::kVerifyReports) + "zzz.json",
                    AsBytes("{not json"));
  FamilySet m = Collect();
  EXPECT_EQ(m.Value("gravl_repository_up", base_), 1);
  EXPECT_EQ(m.Value("gravl_verify_runs_total", With("result", "success")), 1);
}

TEST(MetricNames, EveryMetricIsDocumentedAndFollowsConventions) {
  std::string doc = test::ReadFile(std::string(GRAVL_SOURCE_DIR) + "/docs/metrics.md");
  for (const auto& m : AllMetrics()) {
    EXPECT_NE(doc.find("`" + m.name + "`"), std::string::npos) << m.name << " not in metrics.md";
    EXPECT_EQ(m.name.rfind("gravl_", 0), 0u) << m.name;
    EXPECT_FALSE(m.help.empty()) << m.name;
    bool counter = m.name.ends_with("_total");
    bool unit = m.name.ends_with("_seconds") || m.name.ends_with("_bytes") ||
                m.name.ends_with("_ratio") || m.name.ends_with("_info") ||
                m.name.ends_with("_up") || m.name.ends_with("_success") ||
                m.name.ends_with("_per_second") || counter;
    // Counts of things and 0/1 states are the remaining, unit-less gauges.
    static const std::set<std::string> kUnitless = {"gravl_backups",
                                                    "gravl_backups_damaged",
                                                    "gravl_backups_incomplete",
                                                    "gravl_wal_segments",
                                                    "gravl_wal_ready_segments",
                                                    "gravl_pg_in_recovery",
                                                    "gravl_replication_standbys",
                                                    "gravl_sync_missing_backups",
                                                    "gravl_sync_missing_wal_segments",
                                                    "gravl_region_primary",
                                                    "gravl_region_timeline",
                                                    "gravl_wal_quarantined_files",
                                                    "gravl_ha_role",
                                                    "gravl_ha_leader",
                                                    "gravl_ha_lease_held",
                                                    "gravl_ha_fencing_token",
                                                    "gravl_ha_self_fenced",
                                                    "gravl_pg_replication_slot_active",
                                                    "gravl_receive_synchronous",
                                                    "gravl_receive_timeline",
                                                    "gravl_receive_spool_segments",
                                                    "gravl_receive_waiting"};
    EXPECT_TRUE(unit || kUnitless.count(m.name)) << m.name << " has no unit suffix";
  }
}

}  // namespace
}  // namespace gravl::metrics
