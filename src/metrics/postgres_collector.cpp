#include "metrics/postgres_collector.h"

#include <chrono>

#include "common/error.h"
#include "common/log.h"
#include "pg/connection.h"
#include "pg/queries.h"

namespace gravl::metrics {

void PostgresCollector::Collect(FamilySet& out, SystemTime now) {
  const Labels labels{{"stanza", stanza_}};
  FamilySet mine;
  try {
    auto conn = pg::Connection::Open(conninfo_);
    pg::MonitoringStatus m = pg::GetMonitoringStatus(*conn);
    const double now_s = std::chrono::duration<double>(now.time_since_epoch()).count();
    mine.Gauge("gravl_pg_in_recovery", labels, m.in_recovery ? 1 : 0);
    mine.Counter("gravl_pg_archiver_archived_total", labels, static_cast<double>(m.archived_count));
    mine.Counter("gravl_pg_archiver_failed_total", labels, static_cast<double>(m.failed_count));
    // Never-happened timestamps are 0, so that "last failure after last success" compares.
    mine.Gauge("gravl_pg_archiver_last_archived_timestamp_seconds", labels,
               m.last_archived_time.value_or(0));
    mine.Gauge("gravl_pg_archiver_last_failed_timestamp_seconds", labels,
               m.last_failed_time.value_or(0));
    if (m.ready_segments) {
      mine.Gauge("gravl_wal_ready_segments", labels, static_cast<double>(*m.ready_segments));
      mine.Gauge("gravl_wal_ready_bytes", labels,
                 static_cast<double>(*m.ready_segments * m.wal_segment_size));
      mine.Gauge("gravl_wal_archive_lag_seconds", labels,
                 m.oldest_ready_time ? std::max(0.0, now_s - *m.oldest_ready_time) : 0.0);
      ready_problem_.clear();
    } else if (m.ready_problem != ready_problem_) {
      ready_problem_ = m.ready_problem;
      spdlog::warn(
          "event=archive_status_unreadable error=\"{}\" (gravl_wal_archive_lag_seconds needs "
          "pg_ls_archive_statusdir(): GRANT pg_monitor TO the exporter's role)",
          Redact(m.ready_problem));
    }
    for (const auto& slot : m.slots) {
      Labels l{{"stanza", stanza_}, {"slot", slot.name}, {"type", slot.type}};
      mine.Gauge("gravl_pg_replication_slot_retained_bytes", l,
                 static_cast<double>(slot.retained_bytes));
      mine.Gauge("gravl_pg_replication_slot_active", l, slot.active ? 1 : 0);
    }
    if (m.in_recovery) {
      mine.Gauge("gravl_standby_replay_lag_bytes", labels, static_cast<double>(m.replay_lag_bytes));
      if (m.replay_delay_seconds) {
        mine.Gauge("gravl_standby_replay_delay_seconds", labels, *m.replay_delay_seconds);
      }
    } else {
      mine.Gauge("gravl_replication_standbys", labels, static_cast<double>(m.standbys.size()));
      for (const auto& s : m.standbys) {
        Labels l{{"stanza", stanza_}, {"standby", s.name}};
        mine.Gauge("gravl_replication_lag_bytes", l, static_cast<double>(s.lag_bytes));
        mine.Gauge("gravl_replication_lag_seconds", l, s.lag_seconds);
      }
    }
    if (!problem_.empty()) spdlog::info("event=postgres_reachable again");
    problem_.clear();
  } catch (const Error& e) {
    std::string why = Redact(e.what());
    if (why != problem_) spdlog::error("event=postgres_unreachable error=\"{}\"", why);
    problem_ = why;
    mine = FamilySet();
  }
  out.Merge(mine);
  out.Gauge("gravl_postgres_up", labels, problem_.empty() ? 1 : 0);
}

}  // namespace gravl::metrics
