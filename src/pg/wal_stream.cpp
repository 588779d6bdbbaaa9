#include "pg/wal_stream.h"

#include <libpq-fe.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <cerrno>
#include <ctime>

#include "common/error.h"
#include "pg/connection.h"

namespace gravl::pg {
namespace {

PGconn* Raw(Connection& c) { return static_cast<PGconn*>(c.native_handle()); }

std::string ErrorText(PGconn* conn, PGresult* res) {
  std::string msg = res ? PQresultErrorMessage(res) : PQerrorMessage(conn);
  while (!msg.empty() && (msg.back() == '\n' || msg.back() == ' ')) msg.pop_back();
  return msg;
}

std::uint64_t ReadBe64(const char* p) {
  std::uint64_t v = 0;
  for (int i = 0; i < 8; ++i) v = v << 8 | static_cast<std::uint8_t>(p[i]);
  return v;
}

void WriteBe64(char* p, std::uint64_t v) {
  for (int i = 7; i >= 0; --i) {
    p[i] = static_cast<char>(v & 0xff);
    v >>= 8;
  }
}

// Microseconds since 2000-01-01 00:00:00 UTC (PostgreSQL's TimestampTz).
std::int64_t PgNow() {
  timespec ts{};
  ::clock_gettime(CLOCK_REALTIME, &ts);
  constexpr std::int64_t kPgEpochOffset = 946684800;  // 2000-01-01 in Unix seconds
  return (static_cast<std::int64_t>(ts.tv_sec) - kPgEpochOffset) * 1000000 + ts.tv_nsec / 1000;
}

struct FreeResult {
  void operator()(PGresult* r) const { PQclear(r); }
};
using Result = std::unique_ptr<PGresult, FreeResult>;

}  // namespace

SystemIdentity IdentifySystem(Connection& replication) {
  auto rows = replication.Query("IDENTIFY_SYSTEM");
  if (rows.size() != 1 || rows[0].size() < 3) {
    throw PgError("IDENTIFY_SYSTEM on " + replication.description() +
                  " returned an unexpected result (is this a replication connection?)");
  }
  SystemIdentity id;
  id.system_identifier = rows[0][0];
  id.timeline = static_cast<TimelineId>(std::stoul(rows[0][1]));
  id.xlogpos = Lsn::Parse(rows[0][2]);
  return id;
}

std::optional<SlotState> ReadReplicationSlot(Connection& replication, const std::string& slot) {
  auto rows = replication.Query("READ_REPLICATION_SLOT " + slot);
  if (rows.size() != 1 || rows[0].size() < 3) {
    throw PgError("READ_REPLICATION_SLOT on " + replication.description() +
                  " returned an unexpected result (PostgreSQL 15 or later is needed)");
  }
  if (rows[0][0].empty()) return std::nullopt;  // NULLs: no such slot
  if (rows[0][0] != "physical") {
    throw PgError("replication slot '" + slot + "' on " + replication.description() + " is a " +
                  rows[0][0] +
                  " slot; wal-receive needs a physical one (choose another "
                  "wal_receive.slot)");
  }
  SlotState s;
  if (!rows[0][1].empty()) s.restart_lsn = Lsn::Parse(rows[0][1]);
  if (!rows[0][2].empty()) s.restart_tli = static_cast<TimelineId>(std::stoul(rows[0][2]));
  return s;
}

void CreatePhysicalSlot(Connection& replication, const std::string& slot) {
  if (ReadReplicationSlot(replication, slot)) return;
  replication.Query("CREATE_REPLICATION_SLOT " + slot + " PHYSICAL RESERVE_WAL");
}

TimelineHistoryFile FetchTimelineHistory(Connection& replication, TimelineId tli) {
  auto rows = replication.Query("TIMELINE_HISTORY " + std::to_string(tli));
  if (rows.size() != 1 || rows[0].size() < 2) {
    throw PgError("TIMELINE_HISTORY " + std::to_string(tli) + " on " + replication.description() +
                  " returned an unexpected result");
  }
  return {rows[0][0], Bytes(rows[0][1].begin(), rows[0][1].end())};
}

WalStream::WalStream(Connection& replication, const std::string& slot, Lsn start,
                     TimelineId timeline)
    : conn_(replication) {
  PGconn* conn = Raw(conn_);
  std::string cmd = "START_REPLICATION " + (slot.empty() ? "" : "SLOT " + slot + " ") +
                    "PHYSICAL " + start.ToString() + " TIMELINE " + std::to_string(timeline);
  Result res(PQexec(conn, cmd.c_str()));
  if (PQresultStatus(res.get()) != PGRES_COPY_BOTH) {
    throw PgError("cannot start streaming from " + conn_.description() + " at " + start.ToString() +
                  " on timeline " + std::to_string(timeline) + ": " + ErrorText(conn, res.get()));
  }
  wake_fd_ = ::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  if (wake_fd_ < 0) throw StorageError(SysErrorText("eventfd", errno));
}

WalStream::~WalStream() {
  if (wake_fd_ >= 0) ::close(wake_fd_);
}

void WalStream::Wake() {
  std::uint64_t one = 1;
  [[maybe_unused]] auto n = ::write(wake_fd_, &one, sizeof one);
}

StreamEvent WalStream::Next(std::chrono::milliseconds timeout) {
  PGconn* conn = Raw(conn_);
  if (copy_done_) return {.kind = StreamEvent::Kind::kEnded};
  for (int attempt = 0; attempt < 2; ++attempt) {
    char* buf = nullptr;
    int len = PQgetCopyData(conn, &buf, 1);
    if (len > 0) {
      std::shared_ptr<const void> owner(buf, PQfreemem);
      if (buf[0] == 'w' && len >= 25) {
        StreamEvent e;
        e.kind = StreamEvent::Kind::kData;
        e.start = Lsn{ReadBe64(buf + 1)};
        e.server_end = Lsn{ReadBe64(buf + 9)};
        e.data = ByteView(reinterpret_cast<const std::uint8_t*>(buf) + 25,
                          static_cast<std::size_t>(len - 25));
        e.owner = std::move(owner);
        return e;
      }
      if (buf[0] == 'k' && len >= 18) {
        StreamEvent e;
        e.kind = StreamEvent::Kind::kKeepalive;
        e.server_end = Lsn{ReadBe64(buf + 1)};
        e.reply_requested = buf[17] != 0;
        return e;
      }
      throw PgError("unexpected streaming message '" + std::string(1, buf[0]) + "' from " +
                    conn_.description());
    }
    if (len == -1) return FinishCopy();
    if (len == -2) {
      throw PgError("streaming from " + conn_.description() +
                    " failed: " + ErrorText(conn, nullptr));
    }
    if (attempt == 1) break;
    // Nothing buffered: wait for the socket or a wake-up.
    pollfd fds[2] = {{PQsocket(conn), POLLIN, 0}, {wake_fd_, POLLIN, 0}};
    int n = ::poll(fds, 2, static_cast<int>(timeout.count()));
    if (n < 0 && errno != EINTR) throw StorageError(SysErrorText("poll", errno));
    if (n <= 0) return {};
    if (fds[1].revents & POLLIN) {
      std::uint64_t v = 0;
      [[maybe_unused]] auto r = ::read(wake_fd_, &v, sizeof v);
    }
    if (fds[0].revents) {
      if (PQconsumeInput(conn) != 1) {
        throw PgError("streaming from " + conn_.description() +
                      " failed: " + ErrorText(conn, nullptr));
      }
    } else {
      return {};
    }
  }
  return {};
}

StreamEvent WalStream::FinishCopy() {
  PGconn* conn = Raw(conn_);
  copy_done_ = true;
  // The server ended COPY: answer with our CopyDone, then read the end-of-timeline result
  // (next timeline and its start) if there is one.
  if (PQputCopyEnd(conn, nullptr) != 1 || PQflush(conn) != 0) {
    throw PgError("ending the stream from " + conn_.description() +
                  " failed: " + ErrorText(conn, nullptr));
  }
  StreamEvent e;
  e.kind = StreamEvent::Kind::kEnded;
  while (Result res{PQgetResult(conn)}) {
    ExecStatusType st = PQresultStatus(res.get());
    if (st == PGRES_TUPLES_OK && PQntuples(res.get()) == 1 && PQnfields(res.get()) >= 2) {
      e.kind = StreamEvent::Kind::kTimelineEnd;
      e.next_timeline = static_cast<TimelineId>(std::stoul(PQgetvalue(res.get(), 0, 0)));
      e.next_start = Lsn::Parse(PQgetvalue(res.get(), 0, 1));
    } else if (st == PGRES_COPY_OUT || st == PGRES_COPY_BOTH) {
      // Data still in flight after our CopyDone is discarded.
      char* buf = nullptr;
      while (PQgetCopyData(conn, &buf, 0) > 0) PQfreemem(buf);
    } else if (st != PGRES_COMMAND_OK) {
      throw PgError("the stream from " + conn_.description() +
                    " ended with an error: " + ErrorText(conn, res.get()));
    }
  }
  return e;
}

void WalStream::SendStatus(Lsn written, Lsn flushed, bool reply_requested) {
  PGconn* conn = Raw(conn_);
  char msg[1 + 8 + 8 + 8 + 8 + 1];
  msg[0] = 'r';
  WriteBe64(msg + 1, written.value);
  WriteBe64(msg + 9, flushed.value);
  WriteBe64(msg + 17, 0);  // applied: nothing is applied here
  WriteBe64(msg + 25, static_cast<std::uint64_t>(PgNow()));
  msg[33] = reply_requested ? 1 : 0;
  if (PQputCopyData(conn, msg, sizeof msg) != 1 || PQflush(conn) != 0) {
    throw PgError("sending a status update to " + conn_.description() +
                  " failed: " + ErrorText(conn, nullptr));
  }
}

}  // namespace gravl::pg
