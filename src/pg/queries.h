#pragma once
// Named PostgreSQL operations with typed results: each query gravl-dr sends lives here, not
// as SQL text in a command (pgBackRest's db.h has the same rule: no general purpose query
// function for callers). Every function throws PgError on a failed query.

#include <cstdint>
#include <optional>
#include <string>

#include "common/lsn.h"
#include "pg/connection.h"

namespace gravl::pg {

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

}  // namespace gravl::pg
