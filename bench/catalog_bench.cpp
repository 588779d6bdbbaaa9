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

#include "common/time_util.h"
#include "io/hash.h"
#include "repo/catalog.h"
#include "repo/layout.h"
#include "repo/metadata.h"
#include "repo/wal.h"
#include "storage/posix.h"

namespace gravl {
namespace {

constexpr std::uint64_t kSeg = 16 << 20;

double Since(std::chrono::steady_clock::time_point t) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t).count();
}

long PeakRssMb() {
  rusage ru{};
  getrusage(RUSAGE_SELF, &ru);
  return ru.ru_maxrss / 1024;
}

void Generate(const std::string& dir, int backups, int wal) {
  auto storage = storage::MakePosixStorage(dir);
  repo::StanzaInfo info;
  info.stanza = "main";
  info.system_identifier = "1";
  info.pg_version_num = 150000;
  info.pg_major = 15;
  info.wal_segment_size = kSeg;
  info.created_at = info.created_by = "bench";
  repo::WriteMetadata(*storage, repo::StanzaKey("main"), info.ToJson());
  repo::Repository repo(RepoConfig{"bench", "posix", dir, {}}, storage::MakePosixStorage(dir),
                        "main");
  repo.Stanza();
  // One backup every 200 segments, each consistent two segments after its start.
  std::uint64_t spacing = static_cast<std::uint64_t>(wal) / static_cast<std::uint64_t>(backups);
  auto start = ParseIso8601("2024-01-01T00:00:00Z");
  for (int b = 0; b < backups; ++b) {
    repo::BackupManifest m;
    auto t = start + std::chrono::hours(24 * b);
    m.label = FormatCompact(t) + "-full";
    m.type = "full";
    m.stanza = "main";
    m.system_identifier = "1";
    m.start_time = t;
    m.stop_time = t + std::chrono::minutes(10);
    m.compression = CompressionType::kZstd;
    std::uint64_t segno = 1 + static_cast<std::uint64_t>(b) * spacing;
    m.start_lsn = Lsn{segno * kSeg + 40};
    m.stop_lsn = Lsn{(segno + 2) * kSeg + 256};
    m.timeline = m.stop_timeline = 1;
    m.backup_manifest = {"backup_manifest", std::string(64, 'a'), 10, 10};
    m.file_list = repo::FileListRecord{
        {"file_list", std::string(64, 'b'), 10, 10}, CompressionType::kZstd, 1000};
    for (int i = 0; i < 20; ++i) {
      m.bundles.push_back({"bundles/" + std::to_string(i), std::string(64, 'c'), 1 << 25, 1 << 20});
    }
    repo::WriteManifest(repo, m);
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
  if (argc >= 3 && std::string(argv[1]) == "--measure") return gravl::Measure(argv[2]);
  if (argc < 2) {
    std::fprintf(stderr, "usage: %s DIR [BACKUPS=1000] [WAL=200000]\n", argv[0]);
    return 2;
  }
  std::string dir = argv[1];
  int backups = argc > 2 ? std::atoi(argv[2]) : 1000;
  int wal = argc > 3 ? std::atoi(argv[3]) : 200000;
  if (!std::filesystem::exists(dir + "/main/stanza.json")) {
    std::fprintf(stderr, "generating %d backups and %d WAL objects in %s\n", backups, wal,
                 dir.c_str());
    gravl::Generate(dir, backups, wal);
  }
  std::string self = argv[0];
  execl(self.c_str(), self.c_str(), "--measure", dir.c_str(), static_cast<char*>(nullptr));
  std::perror("exec");
  return 1;
}
