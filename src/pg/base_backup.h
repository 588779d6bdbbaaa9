#pragma once
// BASE_BACKUP over a physical replication connection (PostgreSQL 15 protocol): no agent
// and no file system access on the database host.

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "common/bytes.h"
#include "common/lsn.h"

namespace gravl::pg {

class Connection;

struct BaseBackupOptions {
  std::string label;
  bool fast_checkpoint = true;
  bool include_wal = false;  // the server adds the WAL needed for consistency to base.tar
  // The server's per-file checksums in backup_manifest: NONE leaves them to the client
  // (see ManifestChecksumFilter), CRC32C (PostgreSQL's default) or SHA224..SHA512.
  std::string manifest_checksums = "NONE";
};

struct TablespaceEntry {
  std::string oid;       // empty for the main data directory
  std::string location;  // absolute path on the server; empty for the data directory
  std::uint64_t size_bytes = 0;
};

struct BaseBackupResult {
  Lsn start_lsn;
  TimelineId start_tli = 0;
  Lsn stop_lsn;
  TimelineId stop_tli = 0;
  std::vector<TablespaceEntry> tablespaces;
};

// Receives what the server streams. Archives come one after another: base.tar for the
// data directory, <oid>.tar for each tablespace; then the backup manifest.
class BaseBackupReceiver {
 public:
  virtual ~BaseBackupReceiver() = default;
  virtual void OnStart(const BaseBackupResult& start) = 0;  // start LSN and tablespaces known
  virtual void OnArchiveStart(const std::string& name, const std::string& tablespace_path) = 0;
  // `data` lies in a buffer that stays valid as long as `owner` is held: a receiver may keep
  // it (shared, without copying) beyond the call.
  virtual void OnArchiveData(ByteView data, const std::shared_ptr<const void>& owner) = 0;
  virtual void OnArchiveEnd() = 0;
  virtual void OnManifestData(ByteView data) = 0;
  virtual void OnProgress(std::uint64_t bytes_done) = 0;
};

// Runs BASE_BACKUP with a manifest (for pg_verifybackup). Throws PgError on
// failure; any exception from the receiver aborts the backup (the connection is then unusable).
BaseBackupResult RunBaseBackup(Connection& replication, const BaseBackupOptions& options,
                               BaseBackupReceiver& receiver);

}  // namespace gravl::pg
