#include "pg/queries.h"

#include "common/error.h"

namespace gravl::pg {

std::uint64_t NextTransactionId(Connection& conn) {
  // txid_current_snapshot() exists in every supported version (pg_current_snapshot() from 13).
  auto v = conn.QueryValue("SELECT txid_snapshot_xmax(txid_current_snapshot())::text");
  if (!v) throw PgError("the server returned no transaction snapshot");
  try {
    return std::stoull(*v);
  } catch (const std::exception&) {
    throw PgError("the server returned '" + *v + "' as its next transaction id");
  }
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
  s.timeline = static_cast<TimelineId>(std::stoul(rows[0][3]));
  return s;
}

}  // namespace gravl::pg
