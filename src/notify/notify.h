#pragma once
// Notifications: webhooks told about the outcome of runs (backup, expire, verify, drill; later
// failover). Contract:
// - An event is named KIND.success or KIND.failure; a target receives it when one of its
//   patterns (notify.targets[].events: "backup.failure", "drill.*", "*.failure", "*")
//   matches.
// - Two payloads: "slack" (Slack-compatible incoming webhook: {"text": one line, "blocks"})
//   and "json" (the event and the run report, for generic receivers).
// - Each target is tried once plus `retries` times with exponential backoff (0.5 s, 1 s,
//   2 s, ... at most 8 s) and a per-request timeout; 2xx is delivered, 429/5xx/network errors
//   are retried, other 4xx are not (the request itself is wrong). Total time is bounded.
// - A failed notification never fails the command: Send() never throws; it returns one
//   Outcome per target, which the caller logs and records (reports/notifications/) for the
//   exporter's gravl_notifications_total.
// - The URL is a secret (Slack's carries the token): it is never logged or returned; error
//   messages name the target and the URL's source.

#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "common/config.h"

namespace gravl::notify {

struct Event {
  std::string kind;  // backup, expire, verify, drill, sync, failover, switchover, failback,
                     // standby-create
  bool ok = false;
  std::string stanza;
  std::string repo;
  std::string summary;  // one line for people
  nlohmann::json report = nlohmann::json::object();
  std::string name() const { return kind + (ok ? ".success" : ".failure"); }
};

struct Outcome {
  std::string target;
  bool delivered = false;
  int attempts = 0;
  int http_status = 0;  // of the last attempt (0: no answer)
  std::string error;    // why it failed, without the URL
};

// Whether `pattern` (an events entry) selects `event_name`.
bool Matches(const std::string& pattern, const std::string& event_name);

// The request body for `format` ("slack" or "json").
std::string Payload(const std::string& format, const Event& event);

// Sends `event` to every target that wants it; never throws.
std::vector<Outcome> Send(const NotifyConfig& config, const Event& event);

}  // namespace gravl::notify
