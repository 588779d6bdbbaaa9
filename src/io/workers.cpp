#include "io/workers.h"

#include <algorithm>
#include <atomic>
#include <system_error>
#include <thread>

namespace gravl::io {

std::vector<std::exception_ptr> RunParallel(std::size_t count, int workers,
                                            const std::function<void(std::size_t)>& task) {
  std::vector<std::exception_ptr> errors(count);
  std::atomic<std::size_t> next{0};
  auto loop = [&] {
    for (std::size_t i = next++; i < count; i = next++) {
      try {
        task(i);
      } catch (...) {
        errors[i] = std::current_exception();
      }
    }
  };
  std::size_t threads =
      std::min<std::size_t>(count, static_cast<std::size_t>(std::max(1, workers)));
  if (threads <= 1) {
    loop();
    return errors;
  }
  std::vector<std::thread> pool;
  for (std::size_t t = 0; t + 1 < threads; ++t) {
    try {
      pool.emplace_back(loop);
    } catch (const std::system_error&) {
      break;  // no more threads to be had: the ones started and this one do the work
    }
  }
  loop();  // the calling thread works too
  for (auto& th : pool) th.join();
  return errors;
}

}  // namespace gravl::io
