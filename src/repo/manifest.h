#pragma once
// Backup manifests: <stanza>/backups/<label>/manifest.json, written last (the commit point
// of a backup). Stored zstd-compressed, and encrypted when the stanza is; its content
// carries an embedded SHA-256 (see metadata.h), verified on every read.
//
// Objects of a backup live under <stanza>/backups/<label>/: files/<n> for large files,
// bundles/<n> for groups of small files (the concatenation of their contents), and
// backup_manifest for PostgreSQL's own manifest.

#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "repo/layout.h"
#include "repo/repository.h"

namespace gravl::repo {

inline std::string BackupObjectPrefix(const std::string& stanza, const std::string& label) {
  return BackupsPrefix(stanza) + label + "/";
}

void WriteManifest(Repository& repo, const std::string& label, nlohmann::json manifest);
// Throws NotFoundError when the backup has no manifest (absent or incomplete).
nlohmann::json ReadManifest(Repository& repo, const std::string& label);
// The same without the per-file and per-table lists ("files", "tables"): what listings need,
// in little memory however many files the backup has.
nlohmann::json ReadManifestSummary(Repository& repo, const std::string& label);

// File and link names in a manifest: JSON strings must be UTF-8, so a name that is not is
// stored as "<key>_hex" (its raw bytes in hex) instead of "<key>".
void SetName(nlohmann::json& entry, const std::string& key, const std::string& raw);
std::string GetName(const nlohmann::json& entry, const std::string& key);
bool IsValidUtf8(std::string_view s);

struct BackupEntry {
  std::string label;
  nlohmann::json manifest;
};
// Complete backups (with a manifest summary), oldest first; incomplete labels go to
// `incomplete`.
std::vector<BackupEntry> ListBackups(Repository& repo, std::vector<std::string>* incomplete);
// Labels of incomplete backups (no manifest), without reading any manifest.
std::vector<std::string> ListIncompleteBackups(Repository& repo);

}  // namespace gravl::repo
