#pragma once
// Work behind a bounded queue on one background thread, so that a producer (the tar parser of
// a backup) and the work it hands off (compression, encryption, storage writes) run in
// parallel.
//
//   SerialWorker worker(16 << 20);            // at most 16 MiB of posted work pending
//   QueuedSink a(object_a, worker);           // writes to object_a run on the worker
//   a.Write(...); a.Finish();                 // returns at once: posted, not yet done
//   worker.Wait();                            // everything posted has run (or rethrows)

#include <condition_variable>
#include <cstddef>
#include <deque>
#include <exception>
#include <functional>
#include <memory>
#include <mutex>
#include <thread>

#include "io/stream.h"

namespace gravl::io {

// Runs posted tasks one after another, in order, on its own thread. Post() waits while
// adding a task would take the bytes of the tasks posted and not yet finished (as declared by
// the poster) past `max_pending_bytes`, until they are down to half of it; a task of more
// than half the budget can therefore take the total past it, once. The first task that throws stops
// the worker: the tasks after it are dropped, and its exception is rethrown by every later Post()
// and Wait(). Destruction cancels (see Cancel()) and joins the thread.
class SerialWorker {
 public:
  explicit SerialWorker(std::size_t max_pending_bytes);
  ~SerialWorker();
  SerialWorker(const SerialWorker&) = delete;
  SerialWorker& operator=(const SerialWorker&) = delete;

  void Post(std::function<void()> task, std::size_t bytes = 0);
  // Returns when every task posted so far has run; rethrows the first failure.
  void Wait();
  // Drops the tasks not yet started; Post() and Wait() (also those waiting now, e.g. another
  // worker's task posting here) throw from then on. The running task runs to its end.
  void Cancel();

 private:
  struct Task {
    std::function<void()> run;
    std::size_t bytes;
  };
  void Run();

  std::size_t max_pending_bytes_;
  std::mutex mutex_;
  std::condition_variable work_;      // wakes the worker
  std::condition_variable progress_;  // wakes Post() and Wait()
  std::deque<Task> queue_;
  std::size_t pending_bytes_ = 0;  // queued and running
  bool running_ = false;
  bool worker_sleeping_ = false;
  int posters_waiting_ = 0;  // in Post(), waiting for room
  int waiters_ = 0;          // in Wait()
  bool stop_ = false;
  std::exception_ptr error_;
  std::thread thread_;  // last: started after everything it uses
};

// A sink whose writes run on a SerialWorker: Write() gathers data into chunks of kChunkSize
// (one copy) and posts them; Finish() posts the rest and next.Finish() and returns without
// waiting. `next` must outlive the worker's run of these tasks (worker.Wait() or the
// worker's destruction); the QueuedSink itself may be destroyed once finished.
class QueuedSink final : public Sink {
 public:
  QueuedSink(Sink& next, SerialWorker& worker) : next_(next), worker_(worker) {}
  void Write(ByteView data) override;
  // Like Write(), without the copy for pieces of kShareMin bytes or more: the task holds
  // `owner`, which keeps `data` valid.
  void Write(ByteView data, const std::shared_ptr<const void>& owner);
  void Finish() override;

  // A shared piece keeps its whole buffer alive while queued but counts only its own bytes:
  // with pieces of at least half of libpq's 32 KiB messages, memory stays within twice the
  // budget.
  static constexpr std::size_t kShareMin = 16 * 1024;

 private:
  void Flush();
  Sink& next_;
  SerialWorker& worker_;
  Bytes pending_;
};

}  // namespace gravl::io
