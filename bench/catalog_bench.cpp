// The catalog's cost on a large repository: 1,000 full backups and 200,000 WAL objects in a
// local repository, then -- in a fresh process, so that peak memory is the catalog's own --
// the backups listed, the WAL archive indexed and every backup's recoverable window computed.
// Reports wall time per step and the process's peak RSS.
//
// Run: build/bench/gravl_catalog_bench DIR [BACKUPS=1000] [WAL=200000]
//      (generates DIR once; later runs reuse it)

#include <sys/resource.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <string>

#include "bench_util.h"
#include "common/time_util.h"
#include "io/hash.h"
#include "repo/catalog.h"
#include "repo/layout.h"
#include "repo/metadata.h"
#include "repo/wal.h"
#include "storage/posix.h"

namespace gravl {
namespace {

using bench::PeakRssMb;
using bench::Since;

constexpr std::uint64_t kSeg = 16 << 20;

void Generate(const std::string& dir, int backups, int wal) {
  auto storage = storage::MakePosixStorage(dir);
  bench::WriteStanza(*storage, kSeg);
  repo::Repository repo(RepoConfig{"bench", "posix", dir, {}}, storage::MakePosixStorage(dir),
                        "main");
  repo.Stanza();
  // One backup every 200 segments, each consistent two segments after its start.
  std::uint64_t spacing = static_cast<std::uint64_t>(wal) / static_cast<std::uint64_t>(backups);
  auto start = ParseIso8601("2024-01-01T00:00:00Z");
  for (int b = 0; b < backups; ++b) {
    bench::AddFullBackup(repo, kSeg, start + std::chrono::hours(24 * b),
                         1 + static_cast<std::uint64_t>(b) * spacing);
  }
  for (int s = 1; s <= wal; ++s) {
    std::string name = WalSegment{1, static_cast<std::uint64_t>(s)}.Name(kSeg);
    std::string key = repo::WalObjectKey("main", *repo::ParseWalFileName(name),
                                         io::Sha256Hex(AsBytes(name)), CompressionType::kZstd);
    storage::PutBytes(*storage, key, AsBytes(std::string("w")));
  }
}

int Measure(const std::string& dir) {
  repo::Repository repo(RepoConfig{"bench", "posix", dir, {}}, storage::MakePosixStorage(dir),
                        "main");
  repo.Stanza();
  long base_rss = PeakRssMb();
  repo::Catalog catalog(repo);
  auto t0 = std::chrono::steady_clock::now();
  std::size_t backups = catalog.Backups().size();
  double backups_s = Since(t0);
  auto t1 = std::chrono::steady_clock::now();
  std::uint64_t segments = catalog.Wal().segment_count();
  double wal_s = Since(t1);
  auto t2 = std::chrono::steady_clock::now();
  std::uint64_t reachable = 0;
  for (const auto& b : catalog.Backups()) {
    reachable += catalog.Window(*b.manifest).consistent ? 1u : 0u;
  }
  double windows_s = Since(t2);
  std::printf(
      "{\"backups\": %zu, \"wal_objects\": %llu, \"list_backups_s\": %.3f, \"index_wal_s\": %.3f, "
      "\"windows_s\": %.3f, \"consistent\": %llu, \"peak_rss_mb\": %ld, \"rss_before_mb\": "
      "%ld}\n",
      backups, static_cast<unsigned long long>(segments), backups_s, wal_s, windows_s,
      static_cast<unsigned long long>(reachable), PeakRssMb(), base_rss);
  return 0;
}

}  // namespace
}  // namespace gravl

int main(int argc, char** argv) {
  return gravl::bench::GenerateThenMeasure(argc, argv, gravl::Generate, gravl::Measure);
}
