#include "metrics/names.h"

#include <algorithm>

namespace gravl::metrics {

const std::vector<MetricName>& AllMetrics() {
  static const std::vector<MetricName> kAll = {
      // The exporter itself.
      {"gravl_exporter_build_info", "gravl-dr exporter version (always 1)"},
      {"gravl_exporter_last_refresh_timestamp_seconds", "When the exporter last refreshed"},
      {"gravl_exporter_refresh_duration_seconds", "How long the last refresh took"},
      {"gravl_repository_up", "1 when the repository could be read at the last refresh"},
      {"gravl_repository_refresh_duration_seconds", "How long reading the repository took"},
      {"gravl_postgres_up", "1 when PostgreSQL answered at the last refresh"},
      // 1. Backups.
      {"gravl_backups", "Complete backups in the repository, by type"},
      {"gravl_backups_damaged", "Backups whose manifest cannot be read or verified"},
      {"gravl_backups_incomplete", "Backup folders without a manifest (interrupted backups)"},
      {"gravl_backup_last_success_timestamp_seconds",
       "Stop time of the newest complete backup, by type"},
      {"gravl_backup_runs_total", "Backup runs recorded in the repository, by type and result"},
      {"gravl_backup_last_run_success", "1 when the newest recorded backup run succeeded"},
      {"gravl_backup_last_failure_timestamp_seconds", "When the newest failed backup run ended"},
      // 2. Size.
      {"gravl_backup_last_size_bytes", "Database bytes in the newest backup, by type"},
      {"gravl_backup_last_stored_bytes",
       "Stored (compressed, encrypted) bytes of the newest backup"},
      {"gravl_backup_size_deviation_ratio",
       "Size of the newest backup relative to the mean of the previous 7 of its type, minus 1"},
      // 4. Upload time.
      {"gravl_backup_last_duration_seconds",
       "Start to stop of the newest backup (reading and uploading), by type"},
      {"gravl_backup_last_throughput_bytes_per_second",
       "Database bytes per second of the newest backup"},
      // 3. WAL archive.
      {"gravl_wal_segments", "WAL segments in the repository"},
      {"gravl_wal_newest_archived_timestamp_seconds",
       "When the newest WAL segment in the repository was archived"},
      {"gravl_wal_archive_lag_seconds",
       "Age of the oldest WAL segment waiting for archive_command (0 when none waits)"},
      {"gravl_wal_ready_segments", "WAL segments waiting for archive_command (.ready files)"},
      {"gravl_wal_ready_bytes", "Bytes of WAL waiting for archive_command"},
      {"gravl_pg_archiver_archived_total", "Segments archived since the statistics reset"},
      {"gravl_pg_archiver_failed_total", "archive_command failures since the statistics reset"},
      {"gravl_pg_archiver_last_archived_timestamp_seconds", "Last successful archive_command"},
      {"gravl_pg_archiver_last_failed_timestamp_seconds", "Last failed archive_command"},
      // 5. Replication.
      {"gravl_pg_in_recovery", "1 when the server is a standby"},
      {"gravl_replication_standbys", "Standbys (and WAL receivers) streaming from this primary"},
      {"gravl_replication_lag_bytes", "WAL bytes the standby has not replayed yet"},
      {"gravl_replication_lag_seconds", "Replay lag of the standby (pg_stat_replication)"},
      {"gravl_standby_replay_lag_bytes", "On a standby: WAL received but not replayed"},
      {"gravl_standby_replay_delay_seconds", "On a standby: age of the last replayed transaction"},
      // 6. Restore drills.
      {"gravl_drill_runs_total", "Restore drills recorded in the repository, by result"},
      {"gravl_drill_last_timestamp_seconds", "When the newest restore drill ended"},
      {"gravl_drill_last_success", "1 when the newest restore drill passed"},
      {"gravl_drill_last_success_timestamp_seconds", "When the newest passing drill ended"},
      {"gravl_drill_rto_seconds", "Measured RTO of the newest drill, by phase"},
      // Beyond the seed.
      {"gravl_recoverable_window_start_timestamp_seconds", "Oldest moment a restore can reach"},
      {"gravl_recoverable_window_end_timestamp_seconds", "Newest moment a restore can reach"},
      {"gravl_recoverable_window_seconds", "Length of the recoverable window"},
      {"gravl_rpo_estimate_seconds",
       "Now minus the newest restorable moment: what losing the server now would lose"},
      {"gravl_retention_pitr_window_seconds", "The PITR window the retention policy guarantees"},
      {"gravl_stanza_created_timestamp_seconds", "When the stanza was created"},
      {"gravl_repository_bytes", "Stored bytes in the repository, by kind"},
      {"gravl_verify_runs_total", "verify runs recorded in the repository, by result"},
      {"gravl_verify_last_timestamp_seconds", "When the newest verify run ended"},
      {"gravl_verify_last_success", "1 when the newest verify run passed"},
      {"gravl_expire_runs_total", "expire runs recorded in the repository, by result"},
      {"gravl_expire_last_timestamp_seconds", "When the newest expire run ended"},
      {"gravl_expire_last_success", "1 when the newest expire run succeeded"},
      {"gravl_notifications_total", "Notifications sent, by result"},
      // Two regions: how far each repository is behind the first (repo) one.
      // Two regions (docs/failover.md).
      {"gravl_region_up", "1 when the region's PostgreSQL answered at the last refresh"},
      {"gravl_region_primary", "1 when the region's server is a writable primary"},
      {"gravl_region_timeline", "The timeline the region's server is on"},
      {"gravl_region_replication_lag_bytes",
       "WAL a standby region has not replayed, behind the primary's current position"},
      {"gravl_role_change_runs_total",
       "failover, switchover, failback and standby-create runs, by kind and result"},
      {"gravl_role_change_last_timestamp_seconds", "When the newest run of the kind ended"},
      {"gravl_role_change_last_success", "1 when the newest run of the kind succeeded"},
      {"gravl_role_change_last_writable_seconds",
       "Decision to writable new primary in the newest run of the kind (the measured RTO)"},
      // The watch agent of automatic failover (docs/automatic-failover.md): its own /metrics.
      {"gravl_ha_role",
       "1 for the agent's current role (primary, standby, fenced, promoting, unknown)"},
      {"gravl_ha_etcd_up", "1 when etcd answered the agent's last round"},
      {"gravl_ha_leader", "1 for the region holding the leader key (none when it is gone)"},
      {"gravl_ha_lease_held", "1 while this agent holds the leader key's lease"},
      {"gravl_ha_since_renewal_seconds",
       "Seconds since etcd last acknowledged this agent's lease renewal"},
      {"gravl_ha_fencing_token",
       "The fencing token (leader key revision) of the leadership this agent holds"},
      {"gravl_ha_self_fenced", "1 while this agent keeps its own server fenced"},
      {"gravl_ha_leader_absent_seconds",
       "How long the standby's agent has seen the leader key gone"},
      {"gravl_ha_transitions_total", "Transitions the agent went through (logged and notified)"},
      {"gravl_ha_failovers_total", "Automatic failovers this agent completed"},
      {"gravl_ha_last_detection_seconds",
       "Leader key gone to takeover decided, in the last failover"},
      {"gravl_ha_last_failover_seconds", "Takeover decided to failover done, in the last failover"},
      {"gravl_pg_replication_slot_retained_bytes",
       "WAL a replication slot keeps on the server (current position minus its restart "
       "position): a dead receiver's slot grows until max_slot_wal_keep_size"},
      {"gravl_pg_replication_slot_active", "1 while a client streams from the slot"},
      // The WAL streaming receiver (docs/wal-receive.md): its own /metrics.
      {"gravl_receive_up", "1 while the receiver streams from a server"},
      {"gravl_receive_synchronous",
       "1 when the receiver acknowledges only what the repositories hold "
       "(wal_receive.synchronous)"},
      {"gravl_receive_timeline", "The timeline being received"},
      {"gravl_receive_position_bytes",
       "WAL position of each stage: server (the server's end), received, spooled (fsynced), "
       "uploaded (in every repository), archived (complete segments), acknowledged"},
      {"gravl_receive_lag_bytes", "WAL the stage is behind the server's end"},
      {"gravl_receive_lag_seconds", "How long the oldest WAL not yet at the stage has waited"},
      {"gravl_receive_rpo_bytes",
       "The RPO bound now: WAL the server wrote that the repositories do not hold"},
      {"gravl_receive_rpo_seconds",
       "The RPO bound in time: age of the oldest WAL the repositories do not hold"},
      {"gravl_receive_spool_segments", "Completed segments in the spool waiting to be archived"},
      {"gravl_receive_waiting", "1 while streaming waits for spool space (back-pressure)"},
      {"gravl_receive_chunks_uploaded_total", "Partial-segment chunks uploaded"},
      {"gravl_receive_segments_archived_total", "Complete segments archived by the receiver"},
      {"gravl_receive_failures_total", "Failed uploads and pushes (retried), by stage"},
      {"gravl_receive_reconnects_total", "Connections to the server after the first"},
      {"gravl_receive_timelines_followed_total", "Timeline switches followed"},
      {"gravl_receive_slot_retained_bytes",
       "WAL the receiver's replication slot keeps on the server (its current position minus the "
       "slot's restart position)"},
      {"gravl_wal_quarantined_files",
       "WAL files an old primary archived after its timeline was fenced (kept apart)"},
      {"gravl_sync_missing_backups", "Backups of repo that target lacks"},
      {"gravl_sync_missing_wal_segments",
       "WAL segments of repo (from target's oldest backup) that target lacks"},
      {"gravl_sync_missing_bytes", "Stored bytes of the backups and WAL target lacks"},
      {"gravl_sync_backup_lag_seconds",
       "Age of the newest backup repo has and target lacks (0 when none)"},
      {"gravl_sync_wal_lag_seconds",
       "Age of the newest WAL segment repo has and target lacks (0 when none)"},
  };
  return kAll;
}

const MetricName* FindMetric(const std::string& name) {
  const auto& all = AllMetrics();
  auto it = std::find_if(all.begin(), all.end(), [&](const auto& m) { return m.name == name; });
  return it == all.end() ? nullptr : &*it;
}

}  // namespace gravl::metrics
