#include "pg/base_backup.h"

#include <libpq-fe.h>

#include <memory>

#include "common/error.h"
#include "pg/connection.h"

namespace gravl::pg {
namespace {

struct ResultDeleter {
  void operator()(PGresult* r) const { PQclear(r); }
};
using Result = std::unique_ptr<PGresult, ResultDeleter>;

std::string ErrorText(PGconn* conn, PGresult* res) {
  std::string msg = res ? PQresultErrorMessage(res) : PQerrorMessage(conn);
  while (!msg.empty() && (msg.back() == '\n' || msg.back() == ' ')) msg.pop_back();
  return msg;
}

Result Next(PGconn* conn, ExecStatusType expected, const char* what) {
  Result res(PQgetResult(conn));
  if (!res || PQresultStatus(res.get()) != expected) {
    throw PgError(std::string("BASE_BACKUP failed while reading ") + what + ": " +
                  ErrorText(conn, res.get()));
  }
  return res;
}

std::uint64_t ReadBe64(const char* p) {
  std::uint64_t v = 0;
  for (int i = 0; i < 8; ++i) v = v << 8 | static_cast<std::uint8_t>(p[i]);
  return v;
}

}  // namespace

BaseBackupResult RunBaseBackup(Connection& replication, const BaseBackupOptions& options,
                               BaseBackupReceiver& receiver) {
  PGconn* conn = static_cast<PGconn*>(replication.native_handle());
  std::string cmd =
      "BASE_BACKUP ( LABEL " + QuoteLiteral(options.label) + ", PROGRESS, CHECKPOINT " +
      (options.fast_checkpoint ? "'fast'" : "'spread'") + ", MANIFEST 'yes', MANIFEST_CHECKSUMS " +
      QuoteLiteral(options.manifest_checksums) + (options.include_wal ? ", WAL" : "") +
      // The server would otherwise wait without limit for the stop segment to be archived,
      // holding the backup open while archiving fails; gravl-dr waits itself, bounded by
      // archive_timeout (or carries the WAL in the backup).
      ", WAIT false )";
  if (PQsendQuery(conn, cmd.c_str()) != 1) {
    throw PgError("cannot start BASE_BACKUP: " + ErrorText(conn, nullptr));
  }
  BaseBackupResult result;
  {
    Result start = Next(conn, PGRES_TUPLES_OK, "the start position");
    result.start_lsn = Lsn::Parse(PQgetvalue(start.get(), 0, 0));
    result.start_tli = static_cast<TimelineId>(std::stoul(PQgetvalue(start.get(), 0, 1)));
  }
  {
    Result ts = Next(conn, PGRES_TUPLES_OK, "the tablespace list");
    for (int r = 0; r < PQntuples(ts.get()); ++r) {
      TablespaceEntry t;
      t.oid = PQgetisnull(ts.get(), r, 0) ? "" : PQgetvalue(ts.get(), r, 0);
      t.location = PQgetisnull(ts.get(), r, 1) ? "" : PQgetvalue(ts.get(), r, 1);
      if (!PQgetisnull(ts.get(), r, 2)) {
        t.size_bytes = std::stoull(PQgetvalue(ts.get(), r, 2)) * 1024;  // reported in kB
      }
      result.tablespaces.push_back(t);
    }
  }
  receiver.OnStart(result);
  Next(conn, PGRES_COPY_OUT, "the data stream");

  bool in_archive = false;
  bool in_manifest = false;
  for (;;) {
    char* buf = nullptr;
    int len = PQgetCopyData(conn, &buf, 0);
    if (len == -1) break;
    if (len == -2) throw PgError("BASE_BACKUP stream failed: " + ErrorText(conn, nullptr), true);
    std::shared_ptr<const void> hold(buf, PQfreemem);
    if (len < 1) continue;
    switch (buf[0]) {
      case 'n': {
        if (in_archive) receiver.OnArchiveEnd();
        std::string name(buf + 1);
        std::string path(buf + 1 + name.size() + 1);
        receiver.OnArchiveStart(name, path);
        in_archive = true;
        break;
      }
      case 'd':
        if (in_manifest) {
          receiver.OnManifestData(ByteView(reinterpret_cast<const std::uint8_t*>(buf + 1),
                                           static_cast<std::size_t>(len - 1)));
        } else if (in_archive) {
          receiver.OnArchiveData(ByteView(reinterpret_cast<const std::uint8_t*>(buf + 1),
                                          static_cast<std::size_t>(len - 1)),
                                 hold);
        } else {
          throw PgError("BASE_BACKUP sent data outside an archive");
        }
        break;
      case 'p':
        if (len >= 9) receiver.OnProgress(ReadBe64(buf + 1));
        break;
      case 'm':
        if (in_archive) receiver.OnArchiveEnd();
        in_archive = false;
        in_manifest = true;
        break;
      default:
        throw PgError(std::string("BASE_BACKUP sent an unknown message type '") + buf[0] + "'");
    }
  }
  if (in_archive) receiver.OnArchiveEnd();
  // After the stream: the end of the COPY (COMMAND_OK), the stop position (one row), and
  // the command's completion; take them as they come and fail on an error.
  bool have_stop = false;
  while (Result res{PQgetResult(conn)}) {
    ExecStatusType st = PQresultStatus(res.get());
    if (st == PGRES_TUPLES_OK && PQntuples(res.get()) == 1 && !have_stop) {
      result.stop_lsn = Lsn::Parse(PQgetvalue(res.get(), 0, 0));
      result.stop_tli = static_cast<TimelineId>(std::stoul(PQgetvalue(res.get(), 0, 1)));
      have_stop = true;
    } else if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK) {
      throw PgError("BASE_BACKUP failed at its end: " + ErrorText(conn, res.get()));
    }
  }
  if (!have_stop) throw PgError("BASE_BACKUP ended without a stop position");
  return result;
}
}  // namespace gravl::pg
