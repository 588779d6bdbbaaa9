#pragma once
// Subcommands. Each returns the process exit code for a completed run (0, or a code from
// common/error.h for a result that is a failure but was fully reported) and throws Error for
// failures that end it early.

#include <string>
#include <vector>

#include "commands/context.h"

namespace gravl::commands {

int StanzaCreate(const Context& ctx);

struct InfoOptions {
  bool all_stanzas = false;
};
int Info(const Context& ctx, const InfoOptions& options);

struct ArchivePushOptions {
  std::string path;  // %p: the file, relative to the data directory (the working directory)
};
int ArchivePush(const Context& ctx, const ArchivePushOptions& options);

struct ArchiveGetOptions {
  std::string name;         // %f
  std::string destination;  // %p
  bool standby = false;     // real errors return their own code so a standby retries
};
int ArchiveGet(const Context& ctx, const ArchiveGetOptions& options);

int Check(const Context& ctx);

struct BackupOptions {
  std::string type = "full";  // full | logical
  bool fast_checkpoint = true;
  std::vector<std::string> databases;  // logical: --db (default: every database)
};
int Backup(const Context& ctx, const BackupOptions& options);

struct RestoreOptions {
  std::string pgdata;
  std::string set;     // label; empty: the newest backup that can reach the target
  std::string target;  // "", "immediate" or "latest"
  std::string target_time, target_lsn, target_xid, target_name;
  std::string target_action = "promote";
  bool standby = false;
  bool delta = false;            // rewrite only what differs in an existing data directory
  std::string primary_conninfo;  // --standby: stream from this primary too
  // Tablespaces elsewhere than where the backup found them: "NAME=DIR" (name or OID), and a
  // directory under which every other tablespace goes (as DIR/<name>).
  std::vector<std::string> tablespace_map;
  std::string tablespace_map_all;
  // Logical restores (--logical): a dump of --db into --target-db, optionally only --table.
  bool logical = false;
  std::string db;
  std::vector<std::string> tables;
  std::string target_db;
};
struct RestoreResult {
  std::string label;
  std::string repo;
  nlohmann::json manifest;
  double seconds = 0;
};
// With `result`, nothing is printed and the outcome is returned there (used by drills).
int Restore(const Context& ctx, const RestoreOptions& options, RestoreResult* result = nullptr);
struct VerifyOptions {
  std::string set;  // one backup; empty: all
};
int Verify(const Context& ctx, const VerifyOptions& options);

struct TestRestoreOptions {
  std::string set;
  RestoreOptions restore;  // target options; pgdata is chosen by the drill
  bool keep = false;       // keep the directory (and stop the server) for inspection
};
int TestRestore(const Context& ctx, const TestRestoreOptions& options);

int LogicalBackup(const Context& ctx, const BackupOptions& options);
int LogicalRestore(const Context& ctx, const RestoreOptions& options);

}  // namespace gravl::commands
