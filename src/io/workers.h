#pragma once
// Runs independent tasks on a bounded number of threads.

#include <cstddef>
#include <exception>
#include <functional>
#include <vector>

namespace gravl::io {

// Runs task(i) for every i in [0, count) on up to `workers` threads (items are taken in
// order). Returns, per item, the exception it threw (null on success); never throws itself
// for a task's failure. Blocks until every task has finished.
std::vector<std::exception_ptr> RunParallel(std::size_t count, int workers,
                                            const std::function<void(std::size_t)>& task);

}  // namespace gravl::io
