#pragma once
// HTTP for tests: a GET/POST client (libcurl) and a local webhook receiver (civetweb) that
// records what it is sent, answering with a chosen status after a chosen delay -- or not at
// all once stopped.

#include <atomic>
#include <chrono>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

namespace gravl::test {

struct HttpAnswer {
  long status = 0;  // 0: no answer (connection refused, timeout)
  std::string body;
};
HttpAnswer HttpGet(const std::string& url, int timeout_s = 10);
HttpAnswer HttpPost(const std::string& url, const std::string& body, int timeout_s = 10);
// "a%20b" for a query parameter.
std::string UrlEncode(const std::string& text);

class WebhookReceiver {
 public:
  // Listens on 127.0.0.1 on a free port.
  WebhookReceiver();
  ~WebhookReceiver();
  WebhookReceiver(const WebhookReceiver&) = delete;
  WebhookReceiver& operator=(const WebhookReceiver&) = delete;

  std::string url(const std::string& path = "/hook") const;
  int port() const { return port_; }
  // What the next requests get: a status, after a delay.
  void Answer(int status, std::chrono::milliseconds delay = std::chrono::milliseconds(0));
  // The bodies received so far (every request counts, whatever it was answered).
  std::vector<std::string> Bodies() const;
  std::size_t Requests() const;
  // Waits until at least `n` requests arrived; false after `timeout`.
  bool WaitFor(std::size_t n, std::chrono::milliseconds timeout) const;

  struct Impl;

 private:
  std::unique_ptr<Impl> impl_;
  int port_ = 0;
};

}  // namespace gravl::test
