#pragma once
// Physical WAL streaming over a replication connection (PostgreSQL 15 protocol), as a
// standby's walreceiver or pg_receivewal does it: IDENTIFY_SYSTEM, READ_REPLICATION_SLOT,
// TIMELINE_HISTORY, START_REPLICATION ... PHYSICAL, the XLogData and keepalive messages the
// server sends, and the standby status updates that tell it how far WAL was written and
// flushed. Nothing here decides what is durable; src/receive/ does.
//
// Threads: a WalStream is used by one thread, except Wake(), which any thread may call to end
// a Next() that is waiting.

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>

#include "common/bytes.h"
#include "common/lsn.h"

namespace gravl::pg {

class Connection;

struct SystemIdentity {
  std::string system_identifier;
  TimelineId timeline = 0;  // the server's current timeline
  Lsn xlogpos;              // its current flush (primary) or replay (standby) position
};
// IDENTIFY_SYSTEM on a replication connection.
SystemIdentity IdentifySystem(Connection& replication);

struct SlotState {
  Lsn restart_lsn;             // 0 when the slot never reserved WAL
  TimelineId restart_tli = 0;  // 0 when unknown
};
// READ_REPLICATION_SLOT (PostgreSQL 15): nullopt when there is no slot of that name. Throws
// PgError when the slot is a logical one.
std::optional<SlotState> ReadReplicationSlot(Connection& replication, const std::string& slot);
// CREATE_REPLICATION_SLOT name PHYSICAL RESERVE_WAL; an existing slot is left as it is.
void CreatePhysicalSlot(Connection& replication, const std::string& slot);

struct TimelineHistoryFile {
  std::string name;  // "00000002.history"
  Bytes content;
};
// TIMELINE_HISTORY tli (not for timeline 1, which has none).
TimelineHistoryFile FetchTimelineHistory(Connection& replication, TimelineId tli);

// One thing the server said (or that nothing was said in time).
struct StreamEvent {
  enum class Kind {
    kData,         // `start` and `data`: WAL bytes, in order
    kKeepalive,    // `server_end`, `reply_requested`
    kTimelineEnd,  // the timeline streamed has ended: continue with `next_timeline` at `next_start`
    kEnded,        // the server ended the stream (shut down, or a standby's upstream went away)
    kIdle,         // timeout or Wake()
  };
  Kind kind = Kind::kIdle;
  Lsn start;
  ByteView data;
  std::shared_ptr<const void> owner;  // keeps `data` valid
  Lsn server_end;                     // the server's WAL end as of this message
  bool reply_requested = false;
  TimelineId next_timeline = 0;
  Lsn next_start;
};

// The source of WAL for a receiver; the real one is WalStream, tests use doubles.
class WalSource {
 public:
  virtual ~WalSource() = default;
  // The next event, waiting at most `timeout`.
  virtual StreamEvent Next(std::chrono::milliseconds timeout) = 0;
  // A standby status update: written, flushed (what the server may count as durable, and the
  // slot's new restart position) and applied (never: left invalid).
  virtual void SendStatus(Lsn written, Lsn flushed, bool reply_requested) = 0;
  // Ends a waiting Next() early (thread-safe).
  virtual void Wake() = 0;
};

class WalStream final : public WalSource {
 public:
  // START_REPLICATION [SLOT slot] PHYSICAL start TIMELINE timeline. The connection must be a
  // replication connection and stays owned by the caller (and unused by it) while streaming.
  WalStream(Connection& replication, const std::string& slot, Lsn start, TimelineId timeline);
  ~WalStream() override;
  WalStream(const WalStream&) = delete;
  WalStream& operator=(const WalStream&) = delete;

  StreamEvent Next(std::chrono::milliseconds timeout) override;
  void SendStatus(Lsn written, Lsn flushed, bool reply_requested) override;
  void Wake() override;

 private:
  StreamEvent FinishCopy();
  Connection& conn_;
  int wake_fd_ = -1;  // eventfd
  bool copy_done_ = false;
};

}  // namespace gravl::pg
