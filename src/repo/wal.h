#pragma once
// WAL files in the repository.
//
// A file PostgreSQL archives (segment, .partial, .history, .backup) is stored once per
// repository as
//     <stanza>/wal/<TTTTTTTT>/<name>-<sha256 of the original>[.zst|.lz4|.gz]
// The checksum in the name makes pushes idempotent without reading the object back (same
// name and checksum: already archived; same name, other checksum: a conflict that is
// never overwritten), and lets archive-get verify what it fetched.

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "common/bytes.h"
#include "common/config.h"
#include "common/lsn.h"
#include "storage/storage.h"

namespace gravl::repo {

enum class WalFileKind { kSegment, kPartial, kHistory, kBackupLabel };

struct WalFileName {
  std::string name;  // as PostgreSQL names it, e.g. 000000010000000000000003
  WalFileKind kind;
  TimelineId timeline;
};

// Classifies a PostgreSQL WAL archive file name; nullopt when it is not one.
std::optional<WalFileName> ParseWalFileName(const std::string& name);

struct WalObject {
  std::string key;
  std::string name;    // PostgreSQL's name
  std::string sha256;  // of the original file
  CompressionType compression = CompressionType::kNone;
  std::uint64_t stored_size = 0;
};

std::string WalObjectKey(const std::string& stanza, const WalFileName& file,
                         const std::string& sha256, CompressionType compression);
// Parses a key under <stanza>/wal/; nullopt for anything else (temporary files etc.).
std::optional<WalObject> ParseWalObjectKey(const std::string& key);

// Every stored copy of `file` in the storage (normally zero or one).
std::vector<WalObject> FindWalObjects(storage::Storage& storage, const std::string& stanza,
                                      const WalFileName& file);

// Checks a segment's first page header (XLogLongPageHeaderData): magic present, long
// header, and that system identifier and segment size match the stanza. Throws
// ConflictError naming the file when it belongs to another cluster, IntegrityError when it
// is not a valid segment.
void ValidateSegmentHeader(ByteView data, const std::string& what,
                           const std::string& expected_system_identifier,
                           std::uint64_t expected_segment_size);

}  // namespace gravl::repo
