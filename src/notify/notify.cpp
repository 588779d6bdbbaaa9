#include "notify/notify.h"

#include <curl/curl.h>

#include <algorithm>
#include <chrono>
#include <thread>

#include "common/log.h"
#include "version.h"

namespace gravl::notify {

bool Matches(const std::string& pattern, const std::string& event_name) {
  if (pattern == "*" || pattern == event_name) return true;
  auto dot = pattern.find('.');
  auto edot = event_name.find('.');
  if (dot == std::string::npos || edot == std::string::npos) return false;
  std::string pk = pattern.substr(0, dot), po = pattern.substr(dot + 1);
  std::string ek = event_name.substr(0, edot), eo = event_name.substr(edot + 1);
  return (pk == "*" || pk == ek) && (po == "*" || po == eo);
}

std::string Payload(const std::string& format, const Event& event) {
  std::string headline = std::string(event.ok ? ":white_check_mark: " : ":rotating_light: ") +
                         "gravl-dr " + event.kind + (event.ok ? " succeeded" : " FAILED") +
                         " (stanza " + event.stanza +
                         (event.repo.empty() ? "" : ", repository " + event.repo) + ")";
  if (format == "slack") {
    nlohmann::json body = {
        {"text", headline + ": " + event.summary},
        {"blocks",
         {{{"type", "section"}, {"text", {{"type", "mrkdwn"}, {"text", "*" + headline + "*"}}}},
          {{"type", "section"}, {"text", {{"type", "mrkdwn"}, {"text", event.summary}}}}}}};
    return body.dump();
  }
  nlohmann::json body = {
      {"source", "gravl-dr"}, {"version", kVersion},      {"event", event.name()},
      {"kind", event.kind},   {"ok", event.ok},           {"stanza", event.stanza},
      {"repo", event.repo},   {"summary", event.summary}, {"report", event.report}};
  return body.dump();
}

namespace {

std::size_t Discard(char*, std::size_t size, std::size_t n, void*) { return size * n; }

// One POST: the HTTP status (0 when there was no answer) and curl's error text.
std::pair<long, std::string> Post(const std::string& url, const std::string& body, int timeout_s) {
  CURL* curl = curl_easy_init();
  if (curl == nullptr) return {0, "cannot initialise libcurl"};
  char error[CURL_ERROR_SIZE] = {0};
  curl_slist* headers = curl_slist_append(nullptr, "Content-Type: application/json");
  std::string agent = std::string("gravl-dr/") + kVersion;
  curl_easy_setopt(curl, CURLOPT_URL, url.c_str());
  curl_easy_setopt(curl, CURLOPT_ERRORBUFFER, error);
  curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(curl, CURLOPT_PROTOCOLS_STR, "http,https");
  curl_easy_setopt(curl, CURLOPT_CONNECTTIMEOUT, static_cast<long>(std::min(timeout_s, 10)));
  curl_easy_setopt(curl, CURLOPT_TIMEOUT, static_cast<long>(timeout_s));
  curl_easy_setopt(curl, CURLOPT_HTTPHEADER, headers);
  curl_easy_setopt(curl, CURLOPT_USERAGENT, agent.c_str());
  curl_easy_setopt(curl, CURLOPT_POSTFIELDS, body.c_str());
  curl_easy_setopt(curl, CURLOPT_POSTFIELDSIZE, static_cast<long>(body.size()));
  curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, Discard);
  CURLcode rc = curl_easy_perform(curl);
  long status = 0;
  std::string message;
  if (rc == CURLE_OK) {
    curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &status);
  } else {
    // curl's messages may quote the URL (host names, paths): keep only its error class.
    message = curl_easy_strerror(rc);
  }
  curl_slist_free_all(headers);
  curl_easy_cleanup(curl);
  return {status, message};
}

Outcome SendOne(const NotifyConfig& config, const NotifyTarget& target, const Event& event) {
  Outcome out;
  out.target = target.name;
  const std::string body = Payload(target.format, event);
  auto backoff = std::chrono::milliseconds(500);
  for (int attempt = 0; attempt <= config.retries; ++attempt) {
    if (attempt > 0) {
      std::this_thread::sleep_for(backoff);
      backoff = std::min(backoff * 2, std::chrono::milliseconds(8000));
    }
    ++out.attempts;
    auto [status, error] = Post(target.url, body, config.timeout_s);
    out.http_status = static_cast<int>(status);
    if (status >= 200 && status < 300) {
      out.delivered = true;
      out.error.clear();
      return out;
    }
    out.error = status != 0 ? "HTTP status " + std::to_string(status) : error;
    bool retryable = status == 0 || status == 429 || status >= 500;
    if (!retryable) break;
  }
  return out;
}

}  // namespace

std::vector<Outcome> Send(const NotifyConfig& config, const Event& event) {
  std::vector<Outcome> outcomes;
  const std::string name = event.name();
  for (const auto& target : config.targets) {
    bool wanted = std::any_of(target.events.begin(), target.events.end(),
                              [&](const std::string& p) { return Matches(p, name); });
    if (!wanted) continue;
    Outcome o = SendOne(config, target, event);
    if (o.delivered) {
      spdlog::info("event=notification target={} notification={} delivered=true attempts={}",
                   target.name, name, o.attempts);
    } else {
      spdlog::warn(
          "event=notification target={} notification={} delivered=false attempts={} error=\"{}\" "
          "(url from {}; the command's own result is unaffected)",
          target.name, name, o.attempts, Redact(o.error), target.url_source);
    }
    outcomes.push_back(std::move(o));
  }
  return outcomes;
}

}  // namespace gravl::notify
