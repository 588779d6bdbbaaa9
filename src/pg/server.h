#pragma once
// A PostgreSQL server whose data directory is on this host, driven through its own programs
// (pg_ctl, pg_controldata, pg_rewind, pg_waldump) as the server's OS user -- what switchover
// and failback need where gravl-dr runs beside the server (regions[].pg.data_dir). Nothing
// here speaks SQL; the named queries are in pg/queries.h.

#include <chrono>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "common/lsn.h"

namespace gravl::pg {

// What pg_controldata says about a data directory.
struct ControlData {
  std::string state;  // "shut down", "shut down in recovery", "in production", ...
  std::string system_identifier;
  Lsn checkpoint;           // "Latest checkpoint location" (start of the record)
  Lsn redo;                 // "Latest checkpoint's REDO location"
  TimelineId timeline = 0;  // "Latest checkpoint's TimeLineID"
  Lsn min_recovery_end;     // "Minimum recovery ending location"
  TimelineId min_recovery_timeline = 0;
  int data_checksum_version = 0;
  bool wal_log_hints = false;
  std::uint64_t segment_size = 0;

  bool CleanlyShutDown() const { return state == "shut down"; }
  // pg_rewind can run: data checksums or wal_log_hints.
  bool Rewindable() const { return data_checksum_version != 0 || wal_log_hints; }
};
// Parses pg_controldata's output (pure, for tests). Throws PgError when a needed line is
// missing.
ControlData ParseControlData(const std::string& text);

// A commit found in WAL: what the forked tail of an old primary holds.
struct WalCommit {
  Lsn lsn;
  std::string xid;
  std::string time;  // as pg_waldump prints it
};
// Parses pg_waldump's output for commit (and abort) records (pure, for tests).
std::vector<WalCommit> ParseWaldumpCommits(const std::string& text);

class LocalServer {
 public:
  LocalServer(std::string bin_dir, std::string data_dir);

  const std::string& data_dir() const { return data_dir_; }
  // Whether a postmaster runs on the data directory (its postmaster.pid names a live process;
  // a zombie is not one).
  bool Running() const;
  // Removes postmaster.pid when it names no running server (a crash left it; its process may
  // linger as a zombie, which pg_rewind, postgres --single and restore would take for a live
  // server). Returns whether it removed one. Throws PgError when a server runs.
  bool RemoveStalePid() const;
  // pg_ctl start, waiting up to `timeout` until it accepts connections (a standby: until it
  // is consistent). The server log goes to <data_dir>/log/gravl-dr-server.log. Throws
  // PgError with the log's tail.
  void Start(std::chrono::seconds timeout) const;
  // pg_ctl stop -m fast|immediate, waiting up to `timeout`. Throws PgError.
  void Stop(const std::string& mode, std::chrono::seconds timeout) const;
  ControlData Control() const;
  // Where the WAL in pg_wal ends, read with the WAL record reader from the newest segments
  // of the highest timeline (nullopt when pg_wal holds no segment).
  std::optional<Lsn> WalEnd(std::uint64_t segment_size) const;
  // Commits in the WAL of `timeline` from `from` to `to` (pg_waldump over pg_wal): the last
  // `limit` of them (the newest decides how much time a loss spans), their total count in
  // *total. Best effort: an empty list when pg_waldump cannot read it (the reason in *why).
  std::vector<WalCommit> Commits(TimelineId timeline, Lsn from, Lsn to, std::size_t limit,
                                 std::size_t* total, std::string* why) const;
  // pg_rewind --target-pgdata <data_dir> --source-server <conninfo> --restore-target-wal
  // (the restore_command of the data directory's configuration fetches WAL it lacks). The
  // source's password goes through a passfile, never argv. Throws PgError with its output.
  void Rewind(const std::string& source_conninfo, std::chrono::seconds timeout) const;
  // The host's own configuration files (postgresql.conf, pg_hba.conf, pg_ident.conf,
  // postgresql.auto.conf): pg_rewind and a restore bring the source's, which name another
  // host's settings. Saved, then put back.
  std::map<std::string, std::string> SaveConfigFiles() const;
  void RestoreConfigFiles(const std::map<std::string, std::string>& files) const;
  std::string LogTail() const;

 private:
  std::string Bin(const std::string& program) const { return bin_dir_ + "/" + program; }
  std::string bin_dir_;
  std::string data_dir_;
  std::string log_file_;
};

}  // namespace gravl::pg
