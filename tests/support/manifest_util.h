#pragma once
// Manifests for tests: a valid full-backup manifest to start from, and writing a manifest
// document as whoever can write a repository could (any JSON, checksum recomputed) -- to
// test what reading a damaged or forged one does.

#include <memory>
#include <nlohmann/json.hpp>
#include <string>

#include "repo/layout.h"
#include "repo/manifest.h"
#include "repo/metadata.h"
#include "repo/object_io.h"
#include "repo/repository.h"
#include "repo/stanza.h"

namespace gravl::test {

// A full backup of format 3 with every required field, labelled `label`, stopped at `stop`.
inline repo::BackupManifest SampleFullManifest(const std::string& label,
                                               const std::string& stop = "2026-01-01T00:10:00Z") {
  repo::BackupManifest m;
  m.label = label;
  m.type = "full";
  m.stanza = "main";
  m.system_identifier = "1";
  m.start_time = ParseIso8601("2026-01-01T00:00:00Z");
  m.stop_time = ParseIso8601(stop);
  m.compression = CompressionType::kZstd;
  m.start_lsn = Lsn::Parse("0/2000028");
  m.stop_lsn = Lsn::Parse("0/2000100");
  m.timeline = m.stop_timeline = 1;
  m.backup_manifest = {"backup_manifest", std::string(64, 'a'), 10, 10};
  m.file_list =
      repo::FileListRecord{{"file_list", std::string(64, 'b'), 10, 10}, CompressionType::kZstd, 0};
  return m;
}

// A repository of stanza "main" (system identifier 1, PostgreSQL 15) on `storage`: its
// stanza.json written and read back. For unit tests on memory stores and their wrappers.
inline std::unique_ptr<repo::Repository> NewTestRepository(
    std::unique_ptr<storage::Storage> storage, std::uint64_t segment_size) {
  repo::StanzaInfo info;
  info.stanza = "main";
  info.system_identifier = "1";
  info.pg_version_num = 150000;
  info.pg_major = 15;
  info.wal_segment_size = segment_size;
  info.created_at = info.created_by = "x";
  repo::WriteMetadata(*storage, repo::StanzaKey("main"), info.ToJson());
  auto repo = std::make_unique<repo::Repository>(RepoConfig{"mem", "memory", "", {}},
                                                 std::move(storage), "main");
  repo->Stanza();
  return repo;
}

// Replaces (or creates) the manifest of `label` with `doc`, checksummed like a real one.
inline void WriteManifestDocument(repo::Repository& repo, const std::string& label,
                                  const nlohmann::json& doc) {
  std::string key = repo::ManifestKey(repo.stanza(), label);
  repo.storage().DeleteMany({key});
  std::string text = repo::SerializeMetadata(doc);
  repo::ObjectWriter writer(repo.storage(), key, repo.Format(CompressionType::kZstd, 3));
  writer.Write(AsBytes(text));
  writer.Finish();
}

}  // namespace gravl::test
