#pragma once
// What the repository benchmarks share: timing, peak RSS, the generated repository's stanza,
// and the two-process run (generate once; measure in a fresh process, so that peak memory is
// the measured code's own).

#include <sys/resource.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <functional>
#include <string>

#include "common/time_util.h"
#include "repo/layout.h"
#include "repo/manifest.h"
#include "repo/metadata.h"
#include "repo/stanza.h"
#include "storage/storage.h"

namespace gravl::bench {

inline double Since(std::chrono::steady_clock::time_point t) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t).count();
}

inline long PeakRssMb() {
  rusage ru{};
  getrusage(RUSAGE_SELF, &ru);
  return ru.ru_maxrss / 1024;
}

// stanza.json of stanza "main" (system identifier 1, PostgreSQL 15).
inline void WriteStanza(storage::Storage& storage, std::uint64_t segment_size) {
  repo::StanzaInfo info;
  info.stanza = "main";
  info.system_identifier = "1";
  info.pg_version_num = 150000;
  info.pg_major = 15;
  info.wal_segment_size = segment_size;
  info.created_at = "2023-01-01T00:00:00Z";
  info.created_by = "bench";
  repo::WriteMetadata(storage, repo::StanzaKey("main"), info.ToJson());
}

// A full backup's manifest (20 bundles, 20 GiB of 5 GiB stored) stopped 10 minutes after
// `t`, starting in segment `segno` and consistent two segments later.
inline void AddFullBackup(repo::Repository& repo, std::uint64_t seg, SystemTime t,
                          std::uint64_t segno) {
  repo::BackupManifest m;
  m.label = FormatCompact(t) + "-full";
  m.type = "full";
  m.stanza = "main";
  m.system_identifier = "1";
  m.start_time = t;
  m.stop_time = t + std::chrono::minutes(10);
  m.compression = CompressionType::kZstd;
  m.size = 20ull << 30;
  m.stored_size = 5ull << 30;
  m.start_lsn = Lsn{segno * seg + 40};
  m.stop_lsn = Lsn{(segno + 2) * seg + 256};
  m.timeline = m.stop_timeline = 1;
  m.backup_manifest = {"backup_manifest", std::string(64, 'a'), 10, 10};
  m.file_list = repo::FileListRecord{
      {"file_list", std::string(64, 'b'), 10, 10}, CompressionType::kZstd, 1000};
  for (int i = 0; i < 20; ++i) {
    m.bundles.push_back({"bundles/" + std::to_string(i), std::string(64, 'c'), 1 << 25, 1 << 20});
  }
  repo::WriteManifest(repo, m);
}

// `prog DIR [BACKUPS=1000] [WAL=200000]`: generates DIR unless it holds a stanza, then
// re-executes itself as `prog --measure DIR`, which calls `measure`.
inline int GenerateThenMeasure(int argc, char** argv,
                               const std::function<void(const std::string&, int, int)>& generate,
                               const std::function<int(const std::string&)>& measure) {
  if (argc >= 3 && std::string(argv[1]) == "--measure") return measure(argv[2]);
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
    generate(dir, backups, wal);
  }
  std::string self = argv[0];
  execl(self.c_str(), self.c_str(), "--measure", dir.c_str(), static_cast<char*>(nullptr));
  std::perror("exec");
  return 1;
}

}  // namespace gravl::bench
