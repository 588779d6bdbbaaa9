// The exporter's refresh cost on a large repository: 1,000 full backups, 200,000 WAL objects
// and a year of run reports (365 backup runs, 52 drills, 365 expire runs) in a local
// repository, then -- in a fresh process, so that peak memory is the exporter's own -- the
// first refresh (every manifest and report read, the WAL archive listed), a refresh with
// nothing new, one after a new backup and 10 new WAL segments (incremental listing), and one
// with a complete WAL listing again. Wall time per refresh and the process's peak RSS.
//
// Run: build/bench/gravl_exporter_bench DIR [BACKUPS=1000] [WAL=200000]
//      (generates DIR once; later runs reuse it). bench/exporter_bench.sh runs it.

#include <sys/resource.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <string>

#include "bench_util.h"
#include "common/config.h"
#include "common/log.h"
#include "common/time_util.h"
#include "io/hash.h"
#include "metrics/exporter.h"
#include "repo/layout.h"
#include "repo/manifest.h"
#include "repo/metadata.h"
#include "repo/reports.h"
#include "repo/wal.h"
#include "storage/posix.h"

namespace gravl {
namespace {

using bench::PeakRssMb;
using bench::Since;

constexpr std::uint64_t kSeg = 16 << 20;

std::unique_ptr<repo::Repository> Open(const std::string& dir) {
  auto repo = std::make_unique<repo::Repository>(RepoConfig{"bench", "posix", dir, {}},
                                                 storage::MakePosixStorage(dir), "main");
  repo->Stanza();
  return repo;
}

std::string WalKey(std::uint64_t segno) {
  std::string name = WalSegment{1, segno}.Name(kSeg);
  return repo::WalObjectKey("main", *repo::ParseWalFileName(name), io::Sha256Hex(AsBytes(name)),
                            CompressionType::kZstd);
}

void AddWal(storage::Storage& storage, std::uint64_t segno) {
  storage::PutBytes(storage, WalKey(segno), AsBytes(std::string("w")));
}

void AddReport(repo::Repository& repo, const char* kind, SystemTime t, bool ok) {
  repo::RunReport r;
  r.kind = kind;
  r.subject = kind == std::string(repo::kBackupReports) ? "full" : "";
  r.started = t;
  r.finished = t + std::chrono::minutes(10);
  r.ok = ok;
  r.phases = {{"download", 120}, {"recovery", 60}, {"rto", 180}};
  repo::WriteReport(repo, r);
}

void Generate(const std::string& dir, int backups, int wal) {
  auto storage = storage::MakePosixStorage(dir);
  bench::WriteStanza(*storage, kSeg);
  auto repo = Open(dir);
  std::uint64_t spacing = static_cast<std::uint64_t>(wal) / static_cast<std::uint64_t>(backups);
  auto start = ParseIso8601("2024-01-01T00:00:00Z");
  for (int b = 0; b < backups; ++b) {
    bench::AddFullBackup(*repo, kSeg, start + std::chrono::hours(24 * b),
                         1 + static_cast<std::uint64_t>(b) * spacing);
  }
  for (int d = 0; d < 365; ++d) {
    auto t = start + std::chrono::hours(24 * d);
    AddReport(*repo, repo::kBackupReports, t, d % 50 != 0);
    AddReport(*repo, repo::kExpireReports, t + std::chrono::minutes(11), true);
    if (d % 7 == 0) AddReport(*repo, repo::kDrillReports, t + std::chrono::hours(1), true);
  }
  for (int s = 1; s <= wal; ++s) AddWal(*storage, static_cast<std::uint64_t>(s));
}

int Measure(const std::string& dir) {
  gravl::InitLogging("warn");
  Config config;
  config.stanza = "main";
  config.exporter.full_listing_interval_s = 3600;
  std::vector<std::unique_ptr<repo::Repository>> repos;
  repos.push_back(Open(dir));
  long base_rss = PeakRssMb();
  metrics::Exporter exporter(config, std::move(repos));
  auto now = std::chrono::system_clock::now();
  auto refresh = [&](SystemTime at) {
    auto t = std::chrono::steady_clock::now();
    exporter.Refresh(at);
    return Since(t);
  };
  double first = refresh(now);
  const auto& stats = exporter.repositories().front()->stats();
  std::size_t manifests = stats.manifests_read, reports = stats.reports_read;
  std::size_t wal_listed = stats.wal_objects_listed;
  double unchanged = refresh(now + std::chrono::seconds(60));
  // A new backup and 10 new segments, far beyond the generated archive (new keys sort last).
  auto repo = Open(dir);
  const std::uint64_t top = 10'000'000;
  for (std::uint64_t s = top; s < top + 10; ++s) AddWal(repo->storage(), s);
  bench::AddFullBackup(*repo, kSeg, now, top);
  double incremental = refresh(now + std::chrono::seconds(120));
  std::size_t incremental_listed = exporter.repositories().front()->stats().wal_objects_listed;
  double full = refresh(now + std::chrono::hours(2));  // past full_listing_interval
  std::size_t text_bytes = exporter.Text().size();
  // Leave the repository as generated.
  std::vector<std::string> extra;
  for (std::uint64_t s = top; s < top + 10; ++s) extra.push_back(WalKey(s));
  repo->storage().DeleteMany(extra);
  repo->storage().DeletePrefix(repo::BackupsPrefix("main") + FormatCompact(now) + "-full/");
  std::printf(
      "{\"backups\": %zu, \"wal_objects\": %zu, \"reports\": %zu, \"first_refresh_s\": %.3f, "
      "\"unchanged_refresh_s\": %.3f, \"incremental_refresh_s\": %.3f, "
      "\"incremental_wal_listed\": %zu, \"full_listing_refresh_s\": %.3f, \"metrics_text_bytes\": "
      "%zu, \"peak_rss_mb\": %ld, \"rss_before_mb\": %ld}\n",
      manifests, wal_listed, reports, first, unchanged, incremental, incremental_listed, full,
      text_bytes, PeakRssMb(), base_rss);
  return 0;
}

}  // namespace
}  // namespace gravl

int main(int argc, char** argv) {
  return gravl::bench::GenerateThenMeasure(argc, argv, gravl::Generate, gravl::Measure);
}
