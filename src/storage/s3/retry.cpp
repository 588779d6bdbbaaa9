#include "storage/s3/retry.h"

#include <algorithm>
#include <cmath>
#include <ctime>

#include "storage/s3/http.h"

namespace gravl::storage::s3 {

bool IsRetryableStatus(long status, const std::string& code) {
  if (code == "SlowDown" || code == "RequestTimeout" || code == "InternalError" ||
      code == "ServiceUnavailable" || code == "Throttling" || code == "ThrottlingException" ||
      code == "RequestLimitExceeded" || code == "IDPCommunicationError" ||
      code == "ConditionalRequestConflict") {
    return true;
  }
  return status == 429 || status == 500 || status == 502 || status == 503 || status == 504;
}

std::optional<Duration> ParseRetryAfter(const std::string& value,
                                        std::chrono::system_clock::time_point now) {
  if (value.empty()) return std::nullopt;
  if (std::all_of(value.begin(), value.end(), [](char c) { return c >= '0' && c <= '9'; })) {
    if (value.size() > 6) return std::nullopt;
    return Duration(std::stod(value));
  }
  auto at = ParseHttpDate(value);
  if (!at) return std::nullopt;
  return std::max(Duration(0), std::chrono::duration_cast<Duration>(*at - now));
}

Backoff::Backoff(const RetryPolicy& policy, Clock::time_point start)
    : policy_(policy), start_(start), rng_(std::random_device{}()) {}

std::optional<Duration> Backoff::NextDelay(std::optional<Duration> retry_after,
                                           Clock::time_point now) {
  if (attempts_ >= policy_.max_attempts) return std::nullopt;
  Duration left = policy_.total_time - (now - start_);
  if (left <= Duration(0)) return std::nullopt;
  double cap = std::min(policy_.max_delay.count(),
                        policy_.base_delay.count() * std::pow(2.0, attempts_ - 1));
  std::uniform_real_distribution<double> jitter(0.0, cap);
  Duration delay(jitter(rng_));
  if (retry_after) delay = std::max(delay, std::min(*retry_after, policy_.max_delay));
  if (delay >= left) return std::nullopt;  // the next attempt could not start in time
  ++attempts_;
  return delay;
}

}  // namespace gravl::storage::s3
