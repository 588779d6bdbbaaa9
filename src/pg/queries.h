#pragma once
// Named PostgreSQL operations with typed results: every query gravl-dr sends lives here, not
// as SQL text in a command (pgBackRest's db.h keeps the same rule: no general purpose query
// function for callers). Each function throws PgError when its query fails; batched
// operations say how many items go into one query. The one deliberate exception -- SQL the
// operator configured for drills -- is RunCustomCheck, isolated at the end.

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "common/lsn.h"
#include "pg/connection.h"

namespace gravl::pg {

// ---- the server and its settings ----

struct ArchiveSettings {
  std::string wal_level, archive_mode, archive_command;
  int max_wal_senders = 0;
};
ArchiveSettings GetArchiveSettings(Connection& conn);

struct ArchiverStatus {
  std::string last_failed_wal;  // empty when nothing failed
  std::string last_failed_time;
  std::uint64_t failed_count = 0;
};
ArchiverStatus GetArchiverStatus(Connection& conn);

// Databases that accept connections, templates excluded, by name.
std::vector<std::string> Databases(Connection& conn);
bool DatabaseExists(Connection& conn, const std::string& name);
// Tablespace names by OID (as text).
std::map<std::string, std::string> TablespaceNames(Connection& conn);

// ---- WAL ----

// pg_create_restore_point(name).
void CreateRestorePoint(Connection& conn, const std::string& name);
// pg_switch_wal(); returns the name of the segment it closed.
std::string SwitchWal(Connection& conn);

// The server's next transaction id (xid8, with epoch) as of now, without assigning one:
// every transaction that starts later gets an id at least this large. Works on standbys.
std::uint64_t NextTransactionId(Connection& conn);

struct ReplayState {
  bool in_recovery = false;
  bool paused = false;      // recovery paused (at a target with recovery_target_action = pause)
  Lsn replayed;             // last WAL replayed (after promotion: where recovery ended)
  TimelineId timeline = 0;  // of the latest checkpoint
};
ReplayState GetReplayState(Connection& conn);

// ---- high availability (src/ha/: failover, switchover, failback) ----

// A server's role and WAL positions, as failover and switchover decide on them.
struct ServerRole {
  std::string system_identifier;
  bool in_recovery = false;
  bool read_only = false;   // default_transaction_read_only (a fenced primary)
  TimelineId timeline = 0;  // primary: of its current WAL; standby: of the WAL it replays
  Lsn current;              // primary: pg_current_wal_lsn(); standby: = replayed
  // Standby only.
  Lsn received;             // pg_last_wal_receive_lsn() (0/0 when it never streamed)
  Lsn replayed;             // pg_last_wal_replay_lsn()
  std::string pause_state;  // "not paused", "pause requested", "paused"
  bool streaming = false;   // its WAL receiver streams from a primary now
  std::string sender;       // the primary it streams from ("host:port"), if it does
  // Seconds since the WAL receiver last heard from its primary (nullopt: never / no receiver).
  std::optional<double> last_contact_age;
  std::optional<double> last_replay_time;  // pg_last_xact_replay_timestamp(), epoch seconds
  // Settings failover and failback rely on.
  std::string archive_mode, archive_command, restore_command;
  bool data_checksums = false, wal_log_hints = false;
};
ServerRole GetServerRole(Connection& conn);

// pg_backend_pid() of this connection, as text.
std::string BackendPid(Connection& conn);
// pg_promote(wait => true): ends recovery and waits up to `wait_seconds` until the server
// accepts writes. Throws PgError when it did not finish in time.
void Promote(Connection& conn, int wait_seconds);
// pg_wal_replay_resume(): a standby whose replay was paused continues (failover catch-up).
void ResumeReplay(Connection& conn);
// Fencing a reachable primary: default_transaction_read_only = on (ALTER SYSTEM, reload) and
// every other client session terminated, so no open session keeps writing. Returns the number
// of sessions terminated.
int MakeReadOnly(Connection& conn);
// A promoted server: default_transaction_read_only reset (a fence it may carry from an earlier
// role) and, when non-empty, archive_command set -- both with ALTER SYSTEM and a reload.
void ConfigureNewPrimary(Connection& conn, const std::string& archive_command);
// CHECKPOINT (pg_rewind needs the source's control file on the new timeline).
void Checkpoint(Connection& conn);
// A physical replication slot, created unless it exists (reserving WAL from now on).
void EnsurePhysicalSlot(Connection& conn, const std::string& name);
// The standbys streaming from this primary: application_name -> replay LSN.
std::map<std::string, Lsn> StreamingStandbys(Connection& conn);

// ---- monitoring (the exporter) ----

// A standby (or WAL receiver) connected to this primary, from pg_stat_replication; base
// backups' WAL senders are left out.
struct StandbyStatus {
  std::string name;  // application_name, or the client address when it has none
  std::string client_addr;
  std::string state;            // streaming, catchup, startup
  std::string sync_state;       // async, sync, potential, quorum
  std::uint64_t lag_bytes = 0;  // the primary's current LSN minus the standby's replay LSN
  double lag_seconds = 0;       // replay_lag (0 when caught up and idle)
};

struct MonitoringStatus {
  bool in_recovery = false;
  std::uint64_t wal_segment_size = 0;
  // pg_stat_archiver
  std::uint64_t archived_count = 0, failed_count = 0;
  std::optional<double> last_archived_time, last_failed_time;  // seconds since the epoch
  // pg_ls_archive_statusdir(): segments waiting for archive_command (.ready), and the
  // modification time of the oldest (when it became ready). nullopt when the role may not
  // read the directory (grant pg_monitor).
  std::optional<std::uint64_t> ready_segments;
  std::optional<double> oldest_ready_time;
  std::string ready_problem;  // why ready_segments is unknown
  // On a primary: its standbys.
  std::vector<StandbyStatus> standbys;
  // Physical and logical replication slots: the WAL each keeps on the server (its current
  // position minus the slot's restart position; 0 when it reserves none) and whether a client
  // streams from it. A slot nobody uses keeps WAL until the disk fills (max_slot_wal_keep_size).
  struct Slot {
    std::string name, type;
    bool active = false;
    std::uint64_t retained_bytes = 0;
  };
  std::vector<Slot> slots;
  // On a standby: received but not replayed, and the age of the last replayed transaction.
  std::uint64_t replay_lag_bytes = 0;
  std::optional<double> replay_delay_seconds;
};
// Everything the exporter reads from a server, in five small queries.
MonitoringStatus GetMonitoringStatus(Connection& conn);

// ---- tables and row counts (recorded by backups, compared by drills) ----

struct UserTable {
  std::string schema, table;
  std::string quoted;   // schema.table, quoted for SQL
  double estimate = 0;  // the planner's row estimate (reltuples; -1: never analysed)
};
// Permanent ordinary and partitioned tables outside the system schemas, by schema and name.
std::vector<UserTable> UserTables(Connection& conn);
// Ordinary and partitioned tables of any schema: (schema, table) -> quoted name.
std::map<std::pair<std::string, std::string>, std::string> ExistingTables(Connection& conn);

struct RowCountRequest {
  std::string quoted;    // the table, quoted
  bool any_row = false;  // only whether it has a row (0 or 1): for tables of millions of rows
};
// count(*) of each table (ONLY the table itself, not its children), kRowCountBatch tables per
// query: a database with 50,000 tables takes 100 round trips.
inline constexpr std::size_t kRowCountBatch = 500;
std::vector<std::uint64_t> CountRows(Connection& conn, const std::vector<RowCountRequest>& tables);

// ---- referential integrity ----

struct ForeignKey {
  std::string name;
  std::string table, referenced;                         // quoted
  std::vector<std::string> columns, referenced_columns;  // quoted, in key order
};
// Foreign keys of ordinary tables.
std::vector<ForeignKey> ForeignKeys(Connection& conn);
// Rows of the referencing table (ONLY) with a complete key that has no referenced row.
std::uint64_t CountOrphans(Connection& conn, const ForeignKey& key);

// ---- amcheck ----

// CREATE EXTENSION IF NOT EXISTS amcheck; false (and nothing thrown) when unavailable.
bool EnsureAmcheck(Connection& conn);
// REINDEX DATABASE of the connection's database (amcheck unavailable).
void ReindexDatabase(Connection& conn);

struct Relation {
  std::string oid;
  std::string name;  // as regclass text
};
// Valid, ready btree indexes of permanent relations.
std::vector<Relation> BtreeIndexes(Connection& conn);
// Permanent tables and materialized views.
std::vector<Relation> HeapRelations(Connection& conn);
// bt_index_check(heapallindexed) over a batch: true when every index is sound; false or
// PgError when one is not (then check them one by one).
inline constexpr std::size_t kAmcheckBatch = 200;
bool IndexesSound(Connection& conn, const std::vector<Relation>& batch);
// bt_index_check of one index; PgError describes the damage.
void CheckIndex(Connection& conn, const Relation& index);
// verify_heapam over a batch: true when no relation reports a problem.
bool HeapsSound(Connection& conn, const std::vector<Relation>& batch);
struct HeapProblem {
  std::string block, offset, message;
};
// The first `limit` problems verify_heapam reports for one relation.
std::vector<HeapProblem> HeapProblems(Connection& conn, const Relation& relation, int limit = 3);

// ---- the deliberate exception ----

// An operator's drill check (drill.checks in the configuration): the single value its SQL
// returns, nullopt for no row.
std::optional<std::string> RunCustomCheck(Connection& conn, const std::string& sql);

}  // namespace gravl::pg
