#include "support/http.h"

#include <CivetServer.h>
#include <curl/curl.h>

#include <thread>

#include "common/error.h"

namespace gravl::test {

namespace {

std::size_t Collect(char* data, std::size_t size, std::size_t n, void* out) {
  static_cast<std::string*>(out)->append(data, size * n);
  return size * n;
}

HttpAnswer Perform(const std::string& url, const std::string* post, int timeout_s) {
  HttpAnswer answer;
  CURL* curl = curl_easy_init();
  curl_slist* headers = curl_slist_append(nullptr, "Content-Type: application/json");
  curl_easy_setopt(curl, CURLOPT_URL, url.c_str());
  curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(curl, CURLOPT_TIMEOUT, static_cast<long>(timeout_s));
  curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, Collect);
  curl_easy_setopt(curl, CURLOPT_WRITEDATA, &answer.body);
  if (post != nullptr) {
    curl_easy_setopt(curl, CURLOPT_HTTPHEADER, headers);
    curl_easy_setopt(curl, CURLOPT_POSTFIELDS, post->c_str());
    curl_easy_setopt(curl, CURLOPT_POSTFIELDSIZE, static_cast<long>(post->size()));
  }
  if (curl_easy_perform(curl) == CURLE_OK) {
    curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &answer.status);
  }
  curl_slist_free_all(headers);
  curl_easy_cleanup(curl);
  return answer;
}

}  // namespace

HttpAnswer HttpGet(const std::string& url, int timeout_s) {
  return Perform(url, nullptr, timeout_s);
}

HttpAnswer HttpPost(const std::string& url, const std::string& body, int timeout_s) {
  return Perform(url, &body, timeout_s);
}

std::string UrlEncode(const std::string& text) {
  CURL* curl = curl_easy_init();
  char* e = curl_easy_escape(curl, text.c_str(), static_cast<int>(text.size()));
  std::string out = e;
  curl_free(e);
  curl_easy_cleanup(curl);
  return out;
}

struct WebhookReceiver::Impl : public CivetHandler {
  mutable std::mutex mutex;
  std::vector<std::string> bodies;
  int status = 200;
  std::chrono::milliseconds delay{0};
  std::unique_ptr<CivetServer> server;

  bool handlePost(CivetServer*, mg_connection* conn) override {
    std::string body;
    char buf[4096];
    int n;
    while ((n = mg_read(conn, buf, sizeof buf)) > 0) body.append(buf, static_cast<std::size_t>(n));
    int answer;
    std::chrono::milliseconds wait;
    {
      std::lock_guard lock(mutex);
      bodies.push_back(body);
      answer = status;
      wait = delay;
    }
    std::this_thread::sleep_for(wait);
    mg_printf(conn, "HTTP/1.1 %d X\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok", answer);
    return true;
  }
};

WebhookReceiver::WebhookReceiver() : impl_(std::make_unique<Impl>()) {
  std::vector<std::string> options = {"listening_ports", "127.0.0.1:0", "num_threads", "8"};
  impl_->server = std::make_unique<CivetServer>(options);
  impl_->server->addHandler("/", *impl_);
  port_ = impl_->server->getListeningPorts().at(0);
}

WebhookReceiver::~WebhookReceiver() { impl_->server->close(); }

std::string WebhookReceiver::url(const std::string& path) const {
  return "http://127.0.0.1:" + std::to_string(port_) + path;
}

void WebhookReceiver::Answer(int status, std::chrono::milliseconds delay) {
  std::lock_guard lock(impl_->mutex);
  impl_->status = status;
  impl_->delay = delay;
}

std::vector<std::string> WebhookReceiver::Bodies() const {
  std::lock_guard lock(impl_->mutex);
  return impl_->bodies;
}

std::size_t WebhookReceiver::Requests() const {
  std::lock_guard lock(impl_->mutex);
  return impl_->bodies.size();
}

bool WebhookReceiver::WaitFor(std::size_t n, std::chrono::milliseconds timeout) const {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  while (Requests() < n) {
    if (std::chrono::steady_clock::now() > deadline) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return true;
}

}  // namespace gravl::test
