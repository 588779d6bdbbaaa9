#pragma once
// A chain of filters built back to front: start from the final sink, prepend filters.
//
//   FilterChain chain(storage_write);          // tail
//   chain.Prepend<Encryptor>(...)              // becomes the new head
//   chain.head().Write(...); chain.head().Finish();
//
// The chain owns its filters; the tail is not owned.

#include <memory>
#include <utility>
#include <vector>

#include "io/stream.h"

namespace gravl::io {

class FilterChain {
 public:
  explicit FilterChain(Sink& tail) : head_(&tail) {}
  FilterChain(const FilterChain&) = delete;
  FilterChain& operator=(const FilterChain&) = delete;

  // Prepends a filter made by `make(Sink& next) -> std::unique_ptr<Sink>` (PrependWith), or
  // constructed as T(next, args...) (Prepend); returns it.
  template <typename Make>
  Sink& PrependWith(Make&& make) {
    filters_.push_back(std::forward<Make>(make)(*head_));
    head_ = filters_.back().get();
    return *head_;
  }
  template <typename T, typename... Args>
  T& Prepend(Args&&... args) {
    auto filter = std::make_unique<T>(*head_, std::forward<Args>(args)...);
    T& ref = *filter;
    filters_.push_back(std::move(filter));
    head_ = &ref;
    return ref;
  }

  Sink& head() { return *head_; }

 private:
  std::vector<std::unique_ptr<Sink>> filters_;
  Sink* head_;
};

}  // namespace gravl::io
