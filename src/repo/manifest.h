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

#include "common/config.h"
#include "common/error.h"
#include "common/lsn.h"
#include "common/time_util.h"
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

// The typed summary of a manifest.json: the fields every consumer needs (listing, backup
// choice, windows, retention), checked when read. The document itself stays in `raw` for the
// per-backup details only the backup's own readers use (bundles, tablespaces, tables, file
// list record, logical dumps).
struct BackupManifest {
  int format = 1;
  std::string label;
  std::string type;  // "full" or "logical"
  std::string stanza;
  std::string system_identifier;
  int pg_version_num = 0;
  SystemTime start_time{};
  SystemTime stop_time{};
  CompressionType compression = CompressionType::kNone;
  bool encrypted = false;
  std::uint64_t size = 0;
  std::uint64_t stored_size = 0;
  // Full backups.
  Lsn start_lsn;
  Lsn stop_lsn;  // consistent from here
  TimelineId timeline = 0;
  TimelineId stop_timeline = 0;
  bool wal_included = false;  // the backup carries the WAL from start to stop itself
  // The server's next transaction id (xid8) right after the backup stopped: a transaction
  // with an id at or above it committed after stop_lsn. Absent in backups of older versions.
  std::optional<std::uint64_t> next_xid;
  nlohmann::json raw;

  bool full() const { return type == "full"; }
  // Throws IntegrityError naming `what` and the field when a field is missing, of the wrong
  // type or out of range (a manifest that passed its checksum but was written wrongly).
  static BackupManifest FromJson(nlohmann::json doc, const std::string& what);
};

struct BackupEntry {
  std::string label;
  std::optional<BackupManifest> manifest;  // nullopt when it could not be read
  std::string problem;                     // then: why (damaged, unreadable)
  ExitCode problem_code = ExitCode::kSuccess;
  bool ok() const { return manifest.has_value(); }
};
// Every backup that has a manifest object, oldest first, with its summary -- or, when that
// manifest cannot be read or is damaged, the problem: one bad manifest is that backup's
// problem, never the whole listing's. Labels without a manifest go to `incomplete`.
std::vector<BackupEntry> ListBackups(Repository& repo, std::vector<std::string>* incomplete);
// Labels of incomplete backups (no manifest), without reading any manifest.
std::vector<std::string> ListIncompleteBackups(Repository& repo);

}  // namespace gravl::repo
