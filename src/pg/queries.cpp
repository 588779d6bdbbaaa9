#include "pg/queries.h"

#include <algorithm>
#include <cstdlib>
#include <string>

#include "common/error.h"

namespace gravl::pg {
namespace {

std::vector<std::string> Split(const std::string& s, char sep) {
  std::vector<std::string> out;
  std::string cur;
  for (char ch : s) {
    if (ch == sep) {
      out.push_back(cur);
      cur.clear();
    } else {
      cur += ch;
    }
  }
  out.push_back(cur);
  return out;
}

std::uint64_t ToU64(const std::string& text, const char* what) {
  try {
    std::size_t end = 0;
    std::uint64_t v = std::stoull(text, &end);
    if (end == text.size()) return v;
  } catch (const std::exception&) {
  }
  throw PgError(std::string("the server returned '") + text + "' as " + what);
}

std::string OidList(const std::vector<Relation>& batch) {
  std::string oids;
  for (const auto& r : batch) oids += (oids.empty() ? "" : ",") + r.oid;
  return oids;
}

}  // namespace

ArchiveSettings GetArchiveSettings(Connection& conn) {
  ArchiveSettings s;
  for (const auto& row :
       conn.Query("SELECT name, setting FROM pg_settings WHERE name IN "
                  "('wal_level', 'archive_mode', 'archive_command', 'max_wal_senders')")) {
    if (row[0] == "wal_level") s.wal_level = row[1];
    if (row[0] == "archive_mode") s.archive_mode = row[1];
    if (row[0] == "archive_command") s.archive_command = row[1];
    if (row[0] == "max_wal_senders") s.max_wal_senders = std::atoi(row[1].c_str());
  }
  return s;
}

ArchiverStatus GetArchiverStatus(Connection& conn) {
  ArchiverStatus s;
  auto rows = conn.Query(
      "SELECT coalesce(last_failed_wal, ''), coalesce(last_failed_time::text, ''), "
      "failed_count FROM pg_stat_archiver");
  if (!rows.empty()) {
    s.last_failed_wal = rows[0][0];
    s.last_failed_time = rows[0][1];
    s.failed_count = ToU64(rows[0][2], "a failure count");
  }
  return s;
}

namespace {
std::optional<double> OptionalDouble(const std::string& text) {
  if (text.empty()) return std::nullopt;
  return std::strtod(text.c_str(), nullptr);
}
}  // namespace

MonitoringStatus GetMonitoringStatus(Connection& conn) {
  MonitoringStatus m;
  auto rows = conn.Query(
      "SELECT pg_is_in_recovery(), (SELECT setting FROM pg_settings WHERE name = "
      "'wal_segment_size'), archived_count, failed_count, "
      "coalesce(extract(epoch FROM last_archived_time)::text, ''), "
      "coalesce(extract(epoch FROM last_failed_time)::text, '') FROM pg_stat_archiver");
  if (rows.empty()) throw PgError("pg_stat_archiver returned no row");
  m.in_recovery = rows[0][0] == "t";
  m.wal_segment_size = ToU64(rows[0][1], "wal_segment_size");
  m.archived_count = ToU64(rows[0][2], "an archived count");
  m.failed_count = ToU64(rows[0][3], "a failure count");
  m.last_archived_time = OptionalDouble(rows[0][4]);
  m.last_failed_time = OptionalDouble(rows[0][5]);
  try {
    auto ready = conn.Query(
        "SELECT count(*), coalesce(extract(epoch FROM min(modification))::text, '') FROM "
        "pg_ls_archive_statusdir() WHERE name LIKE '%.ready'");
    m.ready_segments = ToU64(ready[0][0], "a count of .ready files");
    m.oldest_ready_time = OptionalDouble(ready[0][1]);
  } catch (const PgError& e) {
    m.ready_problem = e.what();
  }
  for (const auto& r : conn.Query(
           "SELECT slot_name, slot_type, active::text, coalesce(greatest(0, pg_wal_lsn_diff(CASE "
           "WHEN pg_is_in_recovery() THEN pg_last_wal_receive_lsn() ELSE pg_current_wal_lsn() "
           "END, restart_lsn))::bigint, 0) FROM pg_replication_slots ORDER BY 1")) {
    m.slots.push_back({r[0], r[1], r[2] == "true", ToU64(r[3], "a slot's retained WAL")});
  }
  if (m.in_recovery) {
    auto r = conn.Query(
        "SELECT coalesce(pg_wal_lsn_diff(pg_last_wal_receive_lsn(), "
        "pg_last_wal_replay_lsn())::bigint, 0), coalesce(extract(epoch FROM now() - "
        "pg_last_xact_replay_timestamp())::text, '')");
    m.replay_lag_bytes = static_cast<std::uint64_t>(std::max<long long>(0, std::stoll(r[0][0])));
    m.replay_delay_seconds = OptionalDouble(r[0][1]);
  } else {
    for (const auto& r : conn.Query(
             "SELECT coalesce(application_name, ''), coalesce(client_addr::text, 'local'), "
             "coalesce(state, ''), coalesce(sync_state, ''), greatest(0, "
             "pg_wal_lsn_diff(pg_current_wal_lsn(), coalesce(replay_lsn, '0/0')))::bigint, "
             "coalesce(extract(epoch FROM replay_lag), 0) FROM pg_stat_replication WHERE state "
             "<> 'backup' ORDER BY 1, 2")) {
      StandbyStatus s;
      s.name = r[0].empty() ? r[1] : r[0];
      s.client_addr = r[1];
      s.state = r[2];
      s.sync_state = r[3];
      s.lag_bytes = ToU64(r[4], "a replication lag");
      s.lag_seconds = std::strtod(r[5].c_str(), nullptr);
      m.standbys.push_back(std::move(s));
    }
  }
  return m;
}

std::vector<std::string> Databases(Connection& conn) {
  std::vector<std::string> out;
  for (const auto& r : conn.Query("SELECT datname FROM pg_database WHERE datallowconn AND NOT "
                                  "datistemplate ORDER BY datname")) {
    out.push_back(r[0]);
  }
  return out;
}

bool DatabaseExists(Connection& conn, const std::string& name) {
  return !conn.Query("SELECT 1 FROM pg_database WHERE datname = " + conn.Literal(name)).empty();
}

std::map<std::string, std::string> TablespaceNames(Connection& conn) {
  std::map<std::string, std::string> out;
  for (const auto& row : conn.Query("SELECT oid::text, spcname FROM pg_tablespace")) {
    out[row[0]] = row[1];
  }
  return out;
}

void CreateRestorePoint(Connection& conn, const std::string& name) {
  conn.Exec("SELECT pg_create_restore_point(" + conn.Literal(name) + ")");
}

std::string SwitchWal(Connection& conn) {
  auto v = conn.QueryValue("SELECT pg_walfile_name(pg_switch_wal())");
  if (!v) throw PgError("pg_switch_wal() returned nothing");
  return *v;
}

std::uint64_t NextTransactionId(Connection& conn) {
  // txid_current_snapshot() exists in every supported version (pg_current_snapshot() from 13).
  auto v = conn.QueryValue("SELECT txid_snapshot_xmax(txid_current_snapshot())::text");
  if (!v) throw PgError("the server returned no transaction snapshot");
  return ToU64(*v, "its next transaction id");
}

ReplayState GetReplayState(Connection& conn) {
  auto rows = conn.Query(
      "SELECT pg_is_in_recovery(), CASE WHEN pg_is_in_recovery() THEN "
      "pg_is_wal_replay_paused() ELSE false END, COALESCE(pg_last_wal_replay_lsn(), "
      "pg_current_wal_lsn())::text, (SELECT timeline_id FROM pg_control_checkpoint())");
  if (rows.size() != 1 || rows[0].size() != 4) throw PgError("unexpected answer to a replay query");
  ReplayState s;
  s.in_recovery = rows[0][0] == "t";
  s.paused = rows[0][1] == "t";
  s.replayed = Lsn::Parse(rows[0][2]);
  s.timeline = static_cast<TimelineId>(ToU64(rows[0][3], "a timeline"));
  return s;
}

ServerRole GetServerRole(Connection& conn) {
  ServerRole r;
  auto rows = conn.Query(
      "SELECT (SELECT system_identifier FROM pg_control_system())::text, pg_is_in_recovery(), "
      "current_setting('default_transaction_read_only'), "
      "CASE WHEN pg_is_in_recovery() THEN COALESCE(pg_last_wal_replay_lsn(), '0/0') ELSE "
      "pg_current_wal_lsn() END::text, "
      "COALESCE(pg_last_wal_receive_lsn(), '0/0')::text, "
      "CASE WHEN pg_is_in_recovery() THEN pg_get_wal_replay_pause_state() ELSE 'not paused' END, "
      "CASE WHEN pg_is_in_recovery() THEN (SELECT timeline_id FROM pg_control_checkpoint()) "
      "ELSE ('x' || substr(pg_walfile_name(pg_current_wal_lsn()), 1, 8))::bit(32)::int END, "
      "extract(epoch FROM pg_last_xact_replay_timestamp())::text, "
      "current_setting('archive_mode'), current_setting('archive_command'), "
      "current_setting('restore_command'), current_setting('data_checksums'), "
      "current_setting('wal_log_hints')");
  if (rows.size() != 1 || rows[0].size() != 13) throw PgError("unexpected answer to a role query");
  const auto& v = rows[0];
  r.system_identifier = v[0];
  r.in_recovery = v[1] == "t";
  r.read_only = v[2] == "on";
  r.current = Lsn::Parse(v[3]);
  r.replayed = r.in_recovery ? r.current : Lsn();
  r.received = Lsn::Parse(v[4]);
  r.pause_state = v[5];
  r.timeline = static_cast<TimelineId>(ToU64(v[6], "a timeline"));
  if (!v[7].empty()) r.last_replay_time = std::stod(v[7]);
  r.archive_mode = v[8];
  r.archive_command = v[9];
  r.restore_command = v[10];
  r.data_checksums = v[11] == "on";
  r.wal_log_hints = v[12] == "on";
  if (r.in_recovery) {
    auto rx = conn.Query(
        "SELECT status, COALESCE(sender_host, '') || ':' || COALESCE(sender_port::text, ''), "
        "received_tli, extract(epoch FROM now() - last_msg_receipt_time)::text "
        "FROM pg_stat_wal_receiver");
    if (!rx.empty() && rx[0].size() == 4) {
      r.streaming = rx[0][0] == "streaming";
      if (r.streaming) r.sender = rx[0][1];
      // The checkpoint's timeline lags behind a timeline switch until the next restartpoint.
      if (!rx[0][2].empty()) {
        r.timeline = std::max(r.timeline, static_cast<TimelineId>(ToU64(rx[0][2], "a timeline")));
      }
      if (!rx[0][3].empty()) r.last_contact_age = std::stod(rx[0][3]);
    }
  }
  return r;
}

std::string BackendPid(Connection& conn) {
  auto v = conn.QueryValue("SELECT pg_backend_pid()::text");
  if (!v) throw PgError("pg_backend_pid() returned nothing");
  return *v;
}

void Promote(Connection& conn, int wait_seconds) {
  auto done =
      conn.QueryValue("SELECT pg_promote(true, " + std::to_string(wait_seconds) + ")::text");
  if (!done || *done != "true") {
    throw PgError("the server did not finish its promotion within " + std::to_string(wait_seconds) +
                  " s (pg_promote returned false)");
  }
}

void ResumeReplay(Connection& conn) { conn.Exec("SELECT pg_wal_replay_resume()"); }

int MakeReadOnly(Connection& conn) {
  conn.Exec("ALTER SYSTEM SET default_transaction_read_only = on");
  conn.Exec("SELECT pg_reload_conf()");
  auto n = conn.QueryValue(
      "SELECT count(pg_terminate_backend(pid))::text FROM pg_stat_activity "
      "WHERE backend_type = 'client backend' AND pid <> pg_backend_pid()");
  return n ? std::atoi(n->c_str()) : 0;
}

void ConfigureNewPrimary(Connection& conn, const std::string& archive_command) {
  conn.Exec("ALTER SYSTEM RESET default_transaction_read_only");
  if (!archive_command.empty()) {
    conn.Exec("ALTER SYSTEM SET archive_command = " + conn.Literal(archive_command));
  }
  conn.Exec("SELECT pg_reload_conf()");
}

void Checkpoint(Connection& conn) { conn.Exec("CHECKPOINT"); }

void EnsurePhysicalSlot(Connection& conn, const std::string& name) {
  conn.Exec("SELECT pg_create_physical_replication_slot(" + conn.Literal(name) +
            ", true) WHERE NOT EXISTS (SELECT 1 FROM pg_replication_slots WHERE slot_name = " +
            conn.Literal(name) + ")");
}

std::map<std::string, Lsn> StreamingStandbys(Connection& conn) {
  std::map<std::string, Lsn> out;
  for (const auto& row :
       conn.Query("SELECT application_name, COALESCE(replay_lsn, '0/0')::text FROM "
                  "pg_stat_replication WHERE state = 'streaming'")) {
    out[row[0]] = Lsn::Parse(row[1]);
  }
  return out;
}

std::vector<UserTable> UserTables(Connection& conn) {
  std::vector<UserTable> out;
  for (const auto& r : conn.Query(
           "SELECT n.nspname, c.relname, format('%I.%I', n.nspname, c.relname), "
           "c.reltuples::float8 FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
           "WHERE c.relkind IN ('r', 'p') AND c.relpersistence = 'p' AND n.nspname NOT IN "
           "('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg_toast%' "
           "ORDER BY 1, 2")) {
    out.push_back({r[0], r[1], r[2], std::stod(r[3])});
  }
  return out;
}

std::map<std::pair<std::string, std::string>, std::string> ExistingTables(Connection& conn) {
  std::map<std::pair<std::string, std::string>, std::string> out;
  for (const auto& r : conn.Query("SELECT n.nspname, c.relname, format('%I.%I', n.nspname, "
                                  "c.relname) FROM pg_class c JOIN pg_namespace n ON n.oid = "
                                  "c.relnamespace WHERE c.relkind IN ('r', 'p')")) {
    out[{r[0], r[1]}] = r[2];
  }
  return out;
}

std::vector<std::uint64_t> CountRows(Connection& conn, const std::vector<RowCountRequest>& tables) {
  std::vector<std::uint64_t> counts(tables.size(), 0);
  for (std::size_t start = 0; start < tables.size(); start += kRowCountBatch) {
    std::string batch;
    for (std::size_t k = start; k < std::min(tables.size(), start + kRowCountBatch); ++k) {
      if (!batch.empty()) batch += " UNION ALL ";
      batch += "SELECT " + std::to_string(k) + ", count(*) FROM " +
               (tables[k].any_row ? "(SELECT 1 FROM ONLY " + tables[k].quoted + " LIMIT 1) any_row"
                                  : "ONLY " + tables[k].quoted);
    }
    for (const auto& r : conn.Query(batch)) {
      counts[ToU64(r[0], "a table index")] = ToU64(r[1], "a row count");
    }
  }
  return counts;
}

std::vector<ForeignKey> ForeignKeys(Connection& conn) {
  std::vector<ForeignKey> out;
  for (const auto& fk : conn.Query(R"(
      SELECT c.conname, format('%I.%I', cn.nspname, cl.relname), format('%I.%I', pn.nspname, pl.relname),
        (SELECT string_agg(format('%I', a.attname), chr(31) ORDER BY k.ord)
           FROM unnest(c.conkey) WITH ORDINALITY k(attnum, ord)
           JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = k.attnum),
        (SELECT string_agg(format('%I', a.attname), chr(31) ORDER BY k.ord)
           FROM unnest(c.confkey) WITH ORDINALITY k(attnum, ord)
           JOIN pg_attribute a ON a.attrelid = c.confrelid AND a.attnum = k.attnum)
      FROM pg_constraint c
      JOIN pg_class cl ON cl.oid = c.conrelid JOIN pg_namespace cn ON cn.oid = cl.relnamespace
      JOIN pg_class pl ON pl.oid = c.confrelid JOIN pg_namespace pn ON pn.oid = pl.relnamespace
      WHERE c.contype = 'f' AND cl.relkind = 'r')")) {
    out.push_back({fk[0], fk[1], fk[2], Split(fk[3], '\x1f'), Split(fk[4], '\x1f')});
  }
  return out;
}

std::uint64_t CountOrphans(Connection& conn, const ForeignKey& key) {
  std::string not_null, match;
  for (std::size_t i = 0; i < key.columns.size() && i < key.referenced_columns.size(); ++i) {
    not_null += (i ? " AND " : "") + std::string("c.") + key.columns[i] + " IS NOT NULL";
    match += (i ? " AND " : "") + std::string("p.") + key.referenced_columns[i] + " = c." +
             key.columns[i];
  }
  auto v = conn.QueryValue("SELECT count(*) FROM ONLY " + key.table + " c WHERE " + not_null +
                           " AND NOT EXISTS (SELECT 1 FROM " + key.referenced + " p WHERE " +
                           match + ")");
  return ToU64(v.value_or("0"), "an orphan count");
}

bool EnsureAmcheck(Connection& conn) {
  try {
    conn.Exec("CREATE EXTENSION IF NOT EXISTS amcheck");
    return true;
  } catch (const PgError&) {
    return false;
  }
}

void ReindexDatabase(Connection& conn) {
  conn.Exec("REINDEX DATABASE " + *conn.QueryValue("SELECT quote_ident(current_database())"));
}

std::vector<Relation> BtreeIndexes(Connection& conn) {
  std::vector<Relation> out;
  for (const auto& r :
       conn.Query("SELECT c.oid, c.oid::regclass::text FROM pg_index i JOIN pg_class c ON c.oid = "
                  "i.indexrelid JOIN pg_am am ON am.oid = c.relam WHERE am.amname = 'btree' AND "
                  "c.relpersistence = 'p' AND i.indisvalid AND i.indisready ORDER BY 1")) {
    out.push_back({r[0], r[1]});
  }
  return out;
}

std::vector<Relation> HeapRelations(Connection& conn) {
  std::vector<Relation> out;
  for (const auto& r :
       conn.Query("SELECT c.oid, c.oid::regclass::text FROM pg_class c WHERE "
                  "c.relkind IN ('r', 'm') AND c.relpersistence = 'p' ORDER BY 1")) {
    out.push_back({r[0], r[1]});
  }
  return out;
}

bool IndexesSound(Connection& conn, const std::vector<Relation>& batch) {
  return !conn.Query("SELECT count(*) FROM unnest(ARRAY[" + OidList(batch) +
                     "]::oid[]) o, LATERAL bt_index_check(o, true)")
              .empty();
}

void CheckIndex(Connection& conn, const Relation& index) {
  conn.Exec("SELECT bt_index_check(" + index.oid + ", true)");
}

bool HeapsSound(Connection& conn, const std::vector<Relation>& batch) {
  // A row only when no relation of the batch reports a problem.
  return !conn.Query("SELECT count(*) FROM unnest(ARRAY[" + OidList(batch) +
                     "]::oid[]) o, LATERAL (SELECT 1 FROM verify_heapam(o) LIMIT 1) v "
                     "HAVING count(*) = 0")
              .empty();
}

std::vector<HeapProblem> HeapProblems(Connection& conn, const Relation& relation, int limit) {
  std::vector<HeapProblem> out;
  for (const auto& p : conn.Query("SELECT blkno, offnum, msg FROM verify_heapam(" + relation.oid +
                                  ") LIMIT " + std::to_string(limit))) {
    out.push_back({p[0], p[1], p[2]});
  }
  return out;
}

std::optional<std::string> RunCustomCheck(Connection& conn, const std::string& sql) {
  return conn.QueryValue(sql);
}

}  // namespace gravl::pg
