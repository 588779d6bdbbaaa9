#include "io/async_sink.h"

#include <algorithm>

namespace gravl::io {

AsyncSink::AsyncSink(Sink& next, std::size_t depth)
    : next_(next), depth_(std::max<std::size_t>(depth, 1)), worker_([this] { Run(); }) {}

AsyncSink::~AsyncSink() {
  {
    std::lock_guard lock(mutex_);
    stop_ = true;
  }
  cv_.notify_all();
  worker_.join();
}

void AsyncSink::RethrowIfFailed() {
  if (error_) std::rethrow_exception(error_);
}

void AsyncSink::Write(ByteView data) {
  while (!data.empty()) {
    std::size_t take = std::min(data.size(), kChunkSize - pending_.size());
    if (pending_.capacity() < kChunkSize) pending_.reserve(kChunkSize);
    pending_.insert(pending_.end(), data.begin(), data.begin() + static_cast<long>(take));
    data = data.subspan(take);
    if (pending_.size() < kChunkSize) break;
    std::unique_lock lock(mutex_);
    EnqueuePending(lock);
  }
}

void AsyncSink::EnqueuePending(std::unique_lock<std::mutex>& lock) {
  cv_.wait(lock, [&] { return queue_.size() < depth_ || error_; });
  RethrowIfFailed();
  queue_.push_back(std::move(pending_));
  if (!spare_.empty()) {
    pending_ = std::move(spare_.back());
    spare_.pop_back();
  } else {
    pending_ = Bytes();
  }
  pending_.clear();
  cv_.notify_all();
}

void AsyncSink::Finish() {
  std::unique_lock lock(mutex_);
  if (!pending_.empty()) EnqueuePending(lock);
  finishing_ = true;
  cv_.notify_all();
  cv_.wait(lock, [&] { return done_ || error_; });
  RethrowIfFailed();
}

bool AsyncSink::Deliver(std::unique_lock<std::mutex>& lock, const std::function<void()>& call) {
  lock.unlock();
  std::exception_ptr failure;
  try {
    call();
  } catch (...) {
    failure = std::current_exception();
  }
  lock.lock();
  if (failure) {
    error_ = failure;
    cv_.notify_all();
  }
  return !failure;
}

void AsyncSink::Run() {
  std::unique_lock lock(mutex_);
  for (;;) {
    cv_.wait(lock, [&] { return stop_ || !queue_.empty() || finishing_; });
    if (stop_ && !finishing_) return;
    if (error_) return;
    if (queue_.empty() && finishing_) {
      if (!Deliver(lock, [&] { next_.Finish(); })) return;
      done_ = true;
      cv_.notify_all();
      return;
    }
    if (queue_.empty()) continue;
    Bytes buf = std::move(queue_.front());
    queue_.pop_front();
    cv_.notify_all();
    if (!Deliver(lock, [&] { next_.Write(buf); })) return;
    if (spare_.size() < 2) spare_.push_back(std::move(buf));
  }
}

}  // namespace gravl::io
