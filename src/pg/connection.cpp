#include "pg/connection.h"

#include <libpq-fe.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>

#include "common/cleanup.h"
#include "common/error.h"
#include "common/log.h"

namespace gravl::pg {
namespace {

PGconn* Raw(void* p) { return static_cast<PGconn*>(p); }

std::string Trim(std::string s) {
  while (!s.empty() && (s.back() == '\n' || s.back() == ' ')) s.pop_back();
  for (auto& c : s) {
    if (c == '\n') c = ' ';
  }
  return s;
}

}  // namespace

std::string QuoteLiteral(const std::string& text) {
  std::string out = "'";
  for (char c : text) {
    if (c == '\'') out += '\'';
    out += c;
  }
  return out + "'";
}

std::string ConninfoWithDbname(const std::string& conninfo, const std::string& db) {
  std::string quoted = "'";
  for (char c : db) {
    if (c == '\'' || c == '\\') quoted += '\\';
    quoted += c;
  }
  return conninfo + (conninfo.empty() ? "" : " ") + "dbname=" + quoted + "'";
}

std::map<std::string, std::string> ConninfoParams(const std::string& conninfo) {
  std::map<std::string, std::string> out;
  char* err = nullptr;
  PQconninfoOption* options = PQconninfoParse(conninfo.c_str(), &err);
  if (options == nullptr) {
    std::string msg = err ? Trim(err) : "out of memory";
    if (err) PQfreemem(err);
    throw ConfigError("a connection string cannot be parsed: " + msg);
  }
  for (PQconninfoOption* o = options; o->keyword != nullptr; ++o) {
    if (o->val == nullptr || std::string(o->keyword) == "password") continue;
    out[o->keyword] = o->val;
  }
  PQconninfoFree(options);
  return out;
}

ChildCredentials::ChildCredentials(const std::string& conninfo) {
  if (conninfo.empty()) return;
  // A bare database name, as the programs' -d also takes it.
  if (conninfo.find('=') == std::string::npos && conninfo.find("://") == std::string::npos) {
    conninfo_ = ConninfoWithDbname("", conninfo);
    return;
  }
  char* err = nullptr;
  PQconninfoOption* options = PQconninfoParse(conninfo.c_str(), &err);
  if (options == nullptr) {
    std::string msg = err ? Trim(err) : "out of memory";
    if (err) PQfreemem(err);
    throw ConfigError("pg.conninfo cannot be parsed: " + msg);
  }
  std::string password;
  for (PQconninfoOption* o = options; o->keyword != nullptr; ++o) {
    if (o->val == nullptr) continue;
    std::string key = o->keyword, value = o->val;
    if (key == "password") {
      password = value;
      continue;
    }
    std::string quoted = "'";
    for (char c : value) {
      if (c == '\'' || c == '\\') quoted += '\\';
      quoted += c;
    }
    conninfo_ += (conninfo_.empty() ? "" : " ") + key + "=" + quoted + "'";
  }
  PQconninfoFree(options);
  if (password.empty()) return;
  RegisterSecret(password);
  const char* tmp = std::getenv("TMPDIR");
  std::string path = std::string(tmp && *tmp ? tmp : "/tmp") + "/gravl-dr-pgpass-XXXXXX";
  int fd = ::mkstemp(path.data());
  if (fd < 0) throw StorageError(SysErrorText("cannot create a temporary passfile", errno));
  ::fchmod(fd, 0600);
  // hostname:port:database:username:password, any of each; ':' and '\' escaped.
  std::string line = "*:*:*:*:";
  for (char c : password) {
    if (c == ':' || c == '\\') line += '\\';
    line += c;
  }
  line += "\n";
  bool ok = ::write(fd, line.data(), line.size()) == static_cast<ssize_t>(line.size());
  ::close(fd);
  passfile_ = path;
  cleanup_id_ = AddCleanup([path] { ::unlink(path.c_str()); });
  if (!ok) throw StorageError("cannot write the temporary passfile " + path);
}

ChildCredentials::~ChildCredentials() {
  if (passfile_.empty()) return;
  ::unlink(passfile_.c_str());
  RemoveCleanup(cleanup_id_);
}

std::vector<std::string> ChildCredentials::env() const {
  if (passfile_.empty()) return {};
  return {"PGPASSFILE=" + passfile_};
}

std::unique_ptr<Connection> Connection::Open(const std::string& conninfo, bool replication) {
  std::string ci = conninfo;
  if (replication) ci += (ci.empty() ? "" : " ") + std::string("replication=true");
  if (ci.find("application_name") == std::string::npos) {
    ci += (ci.empty() ? "" : " ") + std::string("application_name=gravl-dr");
  }
  if (ci.find("connect_timeout") == std::string::npos) ci += " connect_timeout=15";
  PGconn* conn = PQconnectdb(ci.c_str());
  std::string description = RedactConninfo(conninfo.empty() ? "(libpq defaults)" : conninfo);
  if (conn == nullptr) throw PgError("cannot connect to PostgreSQL: out of memory");
  if (const char* pw = PQpass(conn); pw != nullptr && *pw != '\0') RegisterSecret(pw);
  if (PQstatus(conn) != CONNECTION_OK) {
    std::string msg = Trim(PQerrorMessage(conn));
    PQfinish(conn);
    throw PgError(
        "cannot connect to PostgreSQL (" + description + "): " + msg +
            " -- check pg.conninfo, that the server runs, and pg_hba.conf" +
            (replication ? " (a replication connection needs a 'replication' entry)" : ""),
        true);
  }
  return std::unique_ptr<Connection>(new Connection(conn, description));
}

Connection::Connection(void* conn, std::string description)
    : conn_(conn), description_(std::move(description)) {}

Connection::~Connection() { PQfinish(Raw(conn_)); }

std::vector<std::vector<std::string>> Connection::Query(const std::string& sql) {
  PGresult* res = PQexec(Raw(conn_), sql.c_str());
  ExecStatusType st = PQresultStatus(res);
  if (st != PGRES_TUPLES_OK && st != PGRES_COMMAND_OK) {
    std::string msg = Trim(PQresultErrorMessage(res));
    PQclear(res);
    throw PgError("query on " + description_ + " failed: " + msg);
  }
  std::vector<std::vector<std::string>> rows;
  for (int r = 0; r < PQntuples(res); ++r) {
    std::vector<std::string> row;
    for (int c = 0; c < PQnfields(res); ++c) row.emplace_back(PQgetvalue(res, r, c));
    rows.push_back(std::move(row));
  }
  PQclear(res);
  return rows;
}

std::optional<std::string> Connection::QueryValue(const std::string& sql) {
  auto rows = Query(sql);
  if (rows.empty() || rows[0].empty()) return std::nullopt;
  return rows[0][0];
}

void Connection::Exec(const std::string& sql) { Query(sql); }

std::string Connection::Literal(const std::string& value) {
  char* escaped = PQescapeLiteral(Raw(conn_), value.c_str(), value.size());
  if (escaped == nullptr)
    throw PgError("cannot quote a value: " + Trim(PQerrorMessage(Raw(conn_))));
  std::string out(escaped);
  PQfreemem(escaped);
  return out;
}

ClusterIdentity Connection::Identify() {
  ClusterIdentity id;
  auto rows = Query(
      "SELECT (SELECT system_identifier::text FROM pg_control_system()), "
      "current_setting('server_version_num'), "
      "(SELECT setting FROM pg_settings WHERE name = 'wal_segment_size'), "
      "coalesce((SELECT setting FROM pg_settings WHERE name = 'data_directory'), ''), "
      "pg_is_in_recovery()::text");
  if (rows.empty() || rows[0].size() != 5) throw PgError("cannot identify the cluster");
  id.system_identifier = rows[0][0];
  id.version_num = std::stoi(rows[0][1]);
  id.wal_segment_size = std::stoull(rows[0][2]);
  id.data_directory = rows[0][3];
  id.in_recovery = rows[0][4] == "true";
  return id;
}

}  // namespace gravl::pg
