#pragma once
// libpq connections behind named operations (no free-form SQL from commands).

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace gravl::pg {

struct ClusterIdentity {
  std::string system_identifier;  // decimal uint64
  int version_num = 0;            // server_version_num, e.g. 150020
  std::uint64_t wal_segment_size = 0;
  std::string data_directory;  // empty if not visible to this role
  bool in_recovery = false;
};

// 'text' with quotes doubled: a SQL literal (standard_conforming_strings) or a
// postgresql.conf value.
std::string QuoteLiteral(const std::string& text);

// `conninfo` with dbname set to `db` (later keywords win in libpq), quoted for libpq.
std::string ConninfoWithDbname(const std::string& conninfo, const std::string& db);

// The keywords a connection string sets (password left out), e.g. {"host": ..., "port": ...}.
// Throws ConfigError when it cannot be parsed.
std::map<std::string, std::string> ConninfoParams(const std::string& conninfo);

// Credentials for a PostgreSQL client program (pg_dump, pg_dumpall, pg_restore): the
// connection string without its password -- argv is visible to every user in `ps` -- and,
// when it had one, a temporary passfile (0600, in $TMPDIR) that env() names with PGPASSFILE
// and that is removed when this object goes (or the process is stopped by a signal).
class ChildCredentials {
 public:
  explicit ChildCredentials(const std::string& conninfo);
  ~ChildCredentials();
  ChildCredentials(const ChildCredentials&) = delete;
  ChildCredentials& operator=(const ChildCredentials&) = delete;
  const std::string& conninfo() const { return conninfo_; }
  std::vector<std::string> env() const;

 private:
  std::string conninfo_;
  std::string passfile_;
  int cleanup_id_ = 0;
};

class Connection {
 public:
  // Connects; throws PgError with libpq's message (password redacted) and a hint.
  // `replication` opens a physical replication connection (replication=true).
  static std::unique_ptr<Connection> Open(const std::string& conninfo, bool replication = false);
  ~Connection();
  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;

  ClusterIdentity Identify();

  // Single-row, single-column helper for the named operations; throws PgError.
  std::optional<std::string> QueryValue(const std::string& sql);
  // Rows of text columns (NULL -> empty).
  std::vector<std::vector<std::string>> Query(const std::string& sql);
  void Exec(const std::string& sql);
  // A quoted SQL literal for `value` (PQescapeLiteral).
  std::string Literal(const std::string& value);

  // The PGconn*, for protocol-level code in pg/ (base_backup.cpp); not for commands.
  void* native_handle() { return conn_; }
  const std::string& description() const { return description_; }

 private:
  explicit Connection(void* conn, std::string description);
  void* conn_;  // PGconn*
  std::string description_;
};

}  // namespace gravl::pg
