#include "io/serial_worker.h"

#include <algorithm>
#include <memory>

namespace gravl::io {

SerialWorker::SerialWorker(std::size_t max_pending_bytes)
    : max_pending_bytes_(max_pending_bytes), thread_([this] { Run(); }) {}

SerialWorker::~SerialWorker() {
  {
    std::lock_guard lock(mutex_);
    stop_ = true;
  }
  work_.notify_all();
  thread_.join();
}

void SerialWorker::Post(std::function<void()> task, std::size_t bytes) {
  std::unique_lock lock(mutex_);
  progress_.wait(lock, [&] {
    return error_ || pending_bytes_ == 0 || pending_bytes_ + bytes <= max_pending_bytes_;
  });
  if (error_) std::rethrow_exception(error_);
  queue_.push_back(Task{std::move(task), bytes});
  pending_bytes_ += bytes;
  work_.notify_one();
}

void SerialWorker::Wait() {
  std::unique_lock lock(mutex_);
  progress_.wait(lock, [&] { return error_ || (queue_.empty() && !running_); });
  if (error_) std::rethrow_exception(error_);
}

void SerialWorker::Run() {
  std::unique_lock lock(mutex_);
  for (;;) {
    work_.wait(lock, [&] { return stop_ || !queue_.empty(); });
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
    progress_.notify_all();
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

void QueuedSink::Finish() {
  Flush();
  worker_.Post([next = &next_] { next->Finish(); });
}

void QueuedSink::Flush() {
  if (pending_.empty()) return;
  auto chunk = std::make_shared<Bytes>(std::move(pending_));
  pending_ = Bytes();
  worker_.Post([next = &next_, chunk] { next->Write(*chunk); }, chunk->size());
}

}  // namespace gravl::io
