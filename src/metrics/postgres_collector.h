#pragma once
// The metrics PostgreSQL gives: WAL archive lag and backlog, archiver failures
// (pg_stat_archiver), replication lag (pg_stat_replication on a primary; receive and replay
// positions on a standby). One short connection per refresh through the named operations in
// pg/queries.h. A server that cannot be reached gives gravl_postgres_up 0; never throws.

#include <string>

#include "common/time_util.h"
#include "metrics/family_set.h"

namespace gravl::metrics {

class PostgresCollector {
 public:
  PostgresCollector(std::string conninfo, std::string stanza)
      : conninfo_(std::move(conninfo)), stanza_(std::move(stanza)) {}
  void Collect(FamilySet& out, SystemTime now);
  const std::string& problem() const { return problem_; }

 private:
  std::string conninfo_;
  std::string stanza_;
  std::string problem_;
  std::string ready_problem_;  // logged once
};

}  // namespace gravl::metrics
