#pragma once
// The WAL streaming receiver (`gravl-dr wal-receive`, docs/wal-receive.md): what it does with
// the WAL a server streams, and what it may acknowledge.
//
// Contract. WAL arrives in order (Write) and goes to a spool file per segment,
// <spool>/<segment>.partial, written from the segment's start. Three durability stages follow,
// each a position that only grows on a timeline: `spooled` (fsynced in the spool), `uploaded`
// (every byte up to it is in every repository, as complete segments or as partial-segment
// chunks, repo/partial.h) and `archived` (complete segments pushed exactly like archive-push,
// same objects, so both can run at once). A chunk uploader sends what arrived since its last
// upload: at once in synchronous mode, every `partial_interval` otherwise. A completed segment
// is fsynced, renamed to <spool>/<segment> and pushed by a segment pusher, which then deletes
// the segment's chunks and its spool file. `Acknowledged()` -- the flush position the server
// may count as durable and to which it advances the replication slot -- is `uploaded` in
// synchronous mode (RPO 0 even when the server and the spool are lost together) and `spooled`
// otherwise. Memory does not grow with the WAL rate: WAL goes straight to the spool file,
// uploads read it back in pieces of at most `max_chunk` bytes, and Write() blocks (the server
// then waits, as for any standby) while `max_spool_segments` completed segments await
// pushing. Failed uploads and pushes are retried with backoff until Stop(); they never lose
// the spool. After a restart, streaming begins again at a segment's start (Begin): completed
// segments left in the spool are pushed, the segment is received and uploaded again (the same
// WAL; the overlapping chunks agree).
//
// Threads: Begin, Write, Sync and EndTimeline from one thread (the stream's); Status and
// Acknowledged from any. `on_progress` is called from the uploader's and pusher's threads.

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "common/bytes.h"
#include "common/config.h"
#include "common/lsn.h"
#include "common/time_util.h"
#include "pg/wal_stream.h"

namespace gravl::repo {
class Repository;
}

namespace gravl::receive {

struct ReceiverOptions {
  std::string spool_dir;  // this stanza's spool, e.g. /var/lib/gravl-dr/receive/main
  std::uint64_t segment_size = kDefaultWalSegmentSize;
  std::string system_identifier;  // of the stanza: every completed segment is checked
  bool synchronous = true;
  std::chrono::milliseconds partial_interval{1000};
  CompressionType compression = CompressionType::kZstd;
  int compression_level = 1;
  int max_spool_segments = 64;                // completed segments not yet pushed
  std::uint64_t max_chunk = 4 * 1024 * 1024;  // bytes read back per upload
};

struct ReceiverStatus {
  TimelineId timeline = 0;
  Lsn received, spooled, uploaded, archived, acknowledged;
  Lsn server_end;  // the server's WAL end, as last reported
  // How long the oldest WAL not yet at a stage has waited (0 when nothing waits).
  double spool_lag_seconds = 0, upload_lag_seconds = 0;
  std::uint64_t chunks_uploaded = 0, segments_archived = 0, upload_failures = 0, push_failures = 0,
                timelines_followed = 0;
  std::size_t pending_segments = 0;  // completed, waiting in the spool to be pushed
  bool waiting_for_spool = false;    // back-pressure: Write() waits
  std::string last_error;            // redacted; empty when the last attempt succeeded
  std::optional<SystemTime> last_upload;
};

class Receiver {
 public:
  // `repos` are unlocked and outlive the receiver. Starts the uploader and pusher threads; the
  // pusher begins with the completed segments a previous run left in the spool.
  Receiver(ReceiverOptions options, std::vector<repo::Repository*> repos);
  ~Receiver();  // Stop()
  Receiver(const Receiver&) = delete;
  Receiver& operator=(const Receiver&) = delete;

  // Starts (again) at `start`, a segment boundary, on `timeline`: the segment's spool file is
  // written anew from its start. Positions of another timeline are reset.
  void Begin(TimelineId timeline, Lsn start);
  // Appends WAL at `start` (== the received position). Blocks under back-pressure.
  void Write(Lsn start, ByteView data);
  // fsyncs the segment being written (asynchronous mode's acknowledgement).
  void Sync();
  // The timeline ended: waits until all of it is uploaded, stores the successor's history file
  // in every repository, drops the old timeline's last (partial) spool file. Begin() follows.
  void EndTimeline(const std::string& history_name, ByteView history);
  void SetServerEnd(Lsn end);

  Lsn Received() const;
  Lsn Acknowledged() const;
  // Where streaming resumes after a reconnect: the start of the segment holding the
  // acknowledged position, on its timeline. Not the received position: WAL received but not yet
  // durable is received again, so that the flush position reported after Begin() never claims
  // more than is durable.
  std::pair<TimelineId, Lsn> ResumePosition() const;
  bool synchronous() const { return options_.synchronous; }
  ReceiverStatus Status() const;
  // Called (from a worker thread) whenever `uploaded` or `archived` advanced or a failure was
  // recorded; the stream uses it to wake up and report the new flush position.
  void OnProgress(std::function<void()> callback);
  // Blocks until `uploaded` reaches `lsn` or `timeout` passes; true when it did.
  bool WaitUploaded(Lsn lsn, std::chrono::milliseconds timeout);
  // Stops the workers (what is not uploaded stays in the spool for the next run).
  void Stop();

 private:
  void UploadLoop();
  void PushLoop();
  void OpenSegment();
  void CompleteSegment();
  void NotifyProgress();
  void RecordFailure(std::uint64_t ReceiverStatus::*counter, const std::string& what,
                     const std::exception& e);
  std::string SpoolPath(TimelineId tli, std::uint64_t segno, bool complete) const;
  Lsn SegmentEnd(Lsn lsn) const;

  const ReceiverOptions options_;
  const std::vector<repo::Repository*> repos_;

  mutable std::mutex mu_;
  std::condition_variable upload_cv_, push_cv_, space_cv_, uploaded_cv_;
  bool stop_ = false;
  ReceiverStatus status_;
  // Completed segments in the spool, by (timeline, segno).
  std::map<std::pair<TimelineId, std::uint64_t>, std::string> pending_;
  // When WAL arrived: (end position, time), oldest first, pruned past `uploaded`.
  std::deque<std::pair<Lsn, std::chrono::steady_clock::time_point>> arrivals_;
  std::chrono::steady_clock::time_point synced_at_{};
  std::function<void()> on_progress_;

  // The stream thread's segment file.
  int fd_ = -1;
  std::uint64_t segno_ = 0;

  std::thread uploader_, pusher_;
};

struct StreamLoopOptions {
  // A status update at least this often (the server's wal_sender_timeout is 60 s by default),
  // and at once whenever the acknowledged position moves or the server asks.
  std::chrono::milliseconds status_interval{10000};
  // Asynchronous mode: the spool is fsynced (and acknowledged) at least this often while WAL
  // arrives, and whenever the stream is idle.
  std::chrono::milliseconds sync_interval{1000};
};

// Feeds `receiver` from `source` and reports its positions back, until the stream ends --
// returns the kTimelineEnd or kEnded event -- or `stop` is set (returns a kIdle event).
pg::StreamEvent RunStream(pg::WalSource& source, Receiver& receiver, const std::atomic<bool>& stop,
                          const StreamLoopOptions& options = {});

}  // namespace gravl::receive
