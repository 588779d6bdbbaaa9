#pragma once
// When and how long the S3 driver waits before trying a request again.
//
// Exponential backoff with full jitter (delay drawn from [0, min(cap, base * 2^attempt)]),
// honouring a server's Retry-After, within a maximum number of attempts and a total time
// budget per request: a repository that stays down fails the command in bounded time.

#include <chrono>
#include <optional>
#include <random>
#include <string>

namespace gravl::storage::s3 {

using Clock = std::chrono::steady_clock;
using Duration = std::chrono::duration<double>;

struct RetryPolicy {
  int max_attempts = 10;
  Duration base_delay{0.1};
  Duration max_delay{20.0};
  Duration total_time{120.0};  // from the first attempt's start
};

// True for answers worth trying again: 500, 502, 503, 504, 429, and the S3 error codes
// SlowDown, RequestTimeout, InternalError, ServiceUnavailable, RequestTimeTooSkewed is not.
bool IsRetryableStatus(long status, const std::string& code);

// Parses Retry-After: delta seconds or an HTTP date. nullopt when absent or malformed.
std::optional<Duration> ParseRetryAfter(const std::string& value,
                                        std::chrono::system_clock::time_point now);

class Backoff {
 public:
  explicit Backoff(const RetryPolicy& policy, Clock::time_point start = Clock::now());
  // Called after a failed attempt: the delay before the next attempt, or nullopt when the
  // attempts or the time budget are used up. `retry_after` raises the delay (never past the
  // budget).
  std::optional<Duration> NextDelay(std::optional<Duration> retry_after = std::nullopt,
                                    Clock::time_point now = Clock::now());
  int attempts() const { return attempts_; }
  Duration elapsed(Clock::time_point now = Clock::now()) const { return now - start_; }

 private:
  RetryPolicy policy_;
  Clock::time_point start_;
  int attempts_ = 1;
  std::mt19937_64 rng_;
};

}  // namespace gravl::storage::s3
