#include "io/serial_worker.h"

#include <algorithm>
#include <memory>

#include "common/error.h"

namespace gravl::io {

SerialWorker::SerialWorker(std::size_t max_pending_bytes)
    : max_pending_bytes_(max_pending_bytes), thread_([this] { Run(); }) {}

SerialWorker::~SerialWorker() {
  Cancel();
  thread_.join();
}

void SerialWorker::Cancel() {
  {
    std::lock_guard lock(mutex_);
    stop_ = true;
    if (!error_) error_ = std::make_exception_ptr(Error(ExitCode::kError, "work cancelled"));
    for (const auto& task : queue_) pending_bytes_ -= task.bytes;
    queue_.clear();
  }
  work_.notify_all();
  progress_.notify_all();
}

// Wake-ups are batched both ways (each costs two context switches): a sleeping worker is
// woken once half the budget is queued (or by Wait()), a waiting poster once the worker has
// brought the queue down to half the budget.
void SerialWorker::Post(std::function<void()> task, std::size_t bytes) {
  std::unique_lock lock(mutex_);
  if (pending_bytes_ > 0 && pending_bytes_ + bytes > max_pending_bytes_) {
    ++posters_waiting_;
    progress_.wait(lock, [&] { return error_ || pending_bytes_ <= max_pending_bytes_ / 2; });
    --posters_waiting_;
  }
  if (error_) std::rethrow_exception(error_);
  queue_.push_back(Task{std::move(task), bytes});
  pending_bytes_ += bytes;
  if (worker_sleeping_ && pending_bytes_ >= max_pending_bytes_ / 2) work_.notify_one();
}

void SerialWorker::Wait() {
  std::unique_lock lock(mutex_);
  ++waiters_;
  if (worker_sleeping_) work_.notify_one();
  progress_.wait(lock, [&] { return error_ || (queue_.empty() && !running_); });
  --waiters_;
  if (error_) std::rethrow_exception(error_);
}

void SerialWorker::Run() {
  std::unique_lock lock(mutex_);
  for (;;) {
    if (queue_.empty() && !stop_) {
      worker_sleeping_ = true;
      work_.wait(lock, [&] { return stop_ || !queue_.empty(); });
      worker_sleeping_ = false;
    }
    if (stop_) return;
    Task task = std::move(queue_.front());
    queue_.pop_front();
    running_ = true;
    lock.unlock();
    std::exception_ptr failure;
    try {
      task.run();
    } catch (...) {
      failure = std::current_exception();
    }
    task.run = nullptr;  // release what the task holds before reporting it done
    lock.lock();
    running_ = false;
    pending_bytes_ -= task.bytes;
    if (failure) {
      error_ = failure;
      pending_bytes_ = 0;
      queue_.clear();
      progress_.notify_all();
      return;
    }
    if ((waiters_ > 0 && queue_.empty()) ||
        (posters_waiting_ > 0 && pending_bytes_ <= max_pending_bytes_ / 2)) {
      progress_.notify_all();
    }
  }
}

void QueuedSink::Write(ByteView data) {
  while (!data.empty()) {
    if (pending_.capacity() < kChunkSize) pending_.reserve(kChunkSize);
    std::size_t take = std::min(data.size(), kChunkSize - pending_.size());
    pending_.insert(pending_.end(), data.begin(), data.begin() + static_cast<long>(take));
    data = data.subspan(take);
    if (pending_.size() == kChunkSize) Flush();
  }
}

void QueuedSink::Write(ByteView data, const std::shared_ptr<const void>& owner) {
  if (data.size() < kShareMin || !owner) {
    Write(data);
    return;
  }
  Flush();  // what was gathered before goes first
  worker_.Post([next = &next_, data, owner] { next->Write(data); }, data.size());
}

void QueuedSink::Finish() {
  Flush();
  worker_.Post([next = &next_] { next->Finish(); }, 0);
}

void QueuedSink::Flush() {
  if (pending_.empty()) return;
  auto chunk = std::make_shared<const Bytes>(std::move(pending_));
  pending_ = Bytes();
  ByteView view(*chunk);
  worker_.Post([next = &next_, view, chunk] { next->Write(view); }, view.size());
}

}  // namespace gravl::io
