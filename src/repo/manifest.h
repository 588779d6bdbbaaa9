#pragma once
// Backup manifests: <stanza>/backups/<label>/manifest.json, written last (the commit point
// of a backup). Stored zstd-compressed, and encrypted when the stanza is; its content
// carries an embedded SHA-256 (see metadata.h), verified on every read.
//
// Objects of a backup live under <stanza>/backups/<label>/: files/<n> for large files,
// bundles/<n> for groups of small files (the concatenation of their contents), file_list, and
// backup_manifest for PostgreSQL's own manifest; a logical backup's dumps/<n>.dump and
// globals.sql.
//
// BackupManifest is the one typed form of that document: commands build it and read it, and
// never touch its JSON. Reading checks every field (a manifest that passed its checksum but
// lacks a field, or holds one of the wrong type, is that backup's IntegrityError naming the
// field). Writing produces exactly the documents earlier versions wrote: full backups in
// format 3, logical ones in format 1; formats 1 and 2 keep reading as they were written.

#include <cstdint>
#include <map>
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
#include "repo/object_io.h"
#include "repo/repository.h"

namespace gravl::repo {

// Manifest formats of full backups. 1: the file list inside the manifest; 2: the file list an
// object of its own; 3: objects' SHA-256 of their stored bytes, files' XXH128 of their content.
inline constexpr int kManifestFormat = 3;

inline std::string BackupObjectPrefix(const std::string& stanza, const std::string& label) {
  return BackupsPrefix(stanza) + label + "/";
}

// An object of a backup and what reading it checks: a bundle, the file list, PostgreSQL's
// backup_manifest, a logical dump.
struct ObjectRecord {
  std::string object;  // name under the backup's folder, e.g. "bundles/000003"
  std::string sha256;  // of the stored bytes (format 3), of the content (before)
  std::uint64_t size = 0;
  std::optional<std::uint64_t> stored_size;  // format 3 (and dumps)
  // What ReadObject expects of it, in a manifest of `format`. IntegrityError unless sha256 is
  // a SHA-256 (an empty one would skip verification).
  Expected expected(int format) const;
};

struct FileListRecord {
  ObjectRecord object;
  CompressionType compression = CompressionType::kZstd;
  std::uint64_t entries = 0;
};

struct TablespaceRecord {
  std::uint32_t oid = 0;
  std::string location;  // where the backup found it
  std::string name;      // empty in backups taken before names were recorded
};

// A table's row count at backup time, for drills.
struct TableRecord {
  std::string database, schema, table;
  std::uint64_t rows = 0;
  bool exact = true;  // false: the planner's estimate (tables of millions of rows)
};

// One database's dump in a logical backup.
struct DumpRecord {
  std::string name;
  ObjectRecord object;
};

struct BackupManifest {
  int format = kManifestFormat;
  std::string label;
  std::string type;  // "full" or "logical"
  std::string stanza;
  std::string system_identifier;
  int pg_version_num = 0;
  std::string created_by;
  SystemTime start_time{};
  SystemTime stop_time{};
  CompressionType compression = CompressionType::kNone;
  bool encrypted = false;
  std::uint64_t size = 0;         // of the content
  std::uint64_t stored_size = 0;  // after compression and encryption

  // Full backups.
  Lsn start_lsn;
  Lsn stop_lsn;  // consistent from here
  TimelineId timeline = 0;
  TimelineId stop_timeline = 0;
  bool from_standby = false;
  bool wal_included = false;  // the backup carries the WAL from start to stop itself
  std::string wal_start_segment, wal_stop_segment;
  // The server's next transaction id (xid8) right after the backup stopped: a transaction
  // with an id at or above it committed after stop_lsn. Absent in backups of older versions.
  std::optional<std::uint64_t> next_xid;
  std::uint64_t file_count = 0;
  std::vector<TablespaceRecord> tablespaces;
  std::vector<ObjectRecord> bundles;
  ObjectRecord backup_manifest;
  std::optional<FileListRecord> file_list;  // formats 2 and 3
  // Row counts: nullopt in summaries (ReadManifestSummary) and in backups without any.
  std::optional<std::vector<TableRecord>> tables;

  // Logical backups.
  std::vector<DumpRecord> databases;
  ObjectRecord globals;

  bool full() const { return type == "full"; }

  nlohmann::json ToJson() const;
  // Throws IntegrityError naming `what` and the field when a field is missing, of the wrong
  // type or out of range; ConflictError for a format newer than this build reads.
  static BackupManifest FromJson(const nlohmann::json& doc, const std::string& what);
};

// Writes the manifest (create-only): the backup's commit point.
void WriteManifest(Repository& repo, const BackupManifest& manifest);
// The whole manifest, row counts included. NotFoundError when the backup has none.
BackupManifest ReadManifest(Repository& repo, const std::string& label);
// Without the per-file and per-table lists: what listings need, in little memory however
// many files the backup has.
BackupManifest ReadManifestSummary(Repository& repo, const std::string& label);
// The document itself, verified, for the one reader of format-1 file lists (file_list.cpp).
nlohmann::json ReadManifestDocument(Repository& repo, const std::string& label);

// File and link names in a manifest: JSON strings must be UTF-8, so a name that is not is
// stored as "<key>_hex" (its raw bytes in hex) instead of "<key>".
void SetName(nlohmann::json& entry, const std::string& key, const std::string& raw);
std::string GetName(const nlohmann::json& entry, const std::string& key);
bool IsValidUtf8(std::string_view s);

struct BackupEntry {
  std::string label;
  std::optional<BackupManifest> manifest;  // a summary; nullopt when it could not be read
  std::string problem;                     // then: why (damaged, unreadable)
  ExitCode problem_code = ExitCode::kSuccess;
  bool ok() const { return manifest.has_value(); }
};
// Every backup that has a manifest object, oldest first, with its summary -- or, when that
// manifest cannot be read or is damaged, the problem: one bad manifest is that backup's
// problem, never the whole listing's. Labels without a manifest go to `incomplete`.
// With `known` (entries of an earlier listing by label), the summaries of labels read before
// are reused instead of read again (the exporter's refresh).
std::vector<BackupEntry> ListBackups(Repository& repo, std::vector<std::string>* incomplete,
                                     const std::map<std::string, BackupEntry>* known = nullptr);
// Labels of incomplete backups (no manifest), without reading any manifest.
std::vector<std::string> ListIncompleteBackups(Repository& repo);

}  // namespace gravl::repo
