#pragma once
// Moves the work of a sink chain onto a background thread: Write() copies the data into a
// bounded queue and returns, a worker thread feeds the next sink. So a producer (the tar
// parser) and the chain behind it (hash, compression, encryption, storage) run in parallel.
// Memory: at most `depth` buffers of up to kChunkSize bytes. An exception in the worker is
// rethrown by the next Write() or by Finish(); Finish() returns after the next sink's
// Finish() returned. Destroying it unfinished stops the worker without finishing `next`.

#include <condition_variable>
#include <deque>
#include <exception>
#include <functional>
#include <mutex>
#include <thread>

#include "io/stream.h"

namespace gravl::io {

class AsyncSink final : public Sink {
 public:
  explicit AsyncSink(Sink& next, std::size_t depth = 8);
  ~AsyncSink() override;
  void Write(ByteView data) override;
  void Finish() override;

 private:
  void Run();
  void RethrowIfFailed();
  // Waits for room in the queue (or a worker error), then queues pending_. Holds `lock`.
  void EnqueuePending(std::unique_lock<std::mutex>& lock);
  // Runs `call` on the next sink without the lock; records its exception (returns false).
  bool Deliver(std::unique_lock<std::mutex>& lock, const std::function<void()>& call);

  Sink& next_;
  std::size_t depth_;
  std::mutex mutex_;
  std::condition_variable cv_;
  std::deque<Bytes> queue_;
  std::vector<Bytes> spare_;
  bool finishing_ = false;
  bool stop_ = false;
  bool done_ = false;
  std::exception_ptr error_;
  Bytes pending_;  // small writes are gathered up to kChunkSize
  std::thread worker_;
};

}  // namespace gravl::io
