#include "storage/s3/http.h"

#include <curl/curl.h>

#include <algorithm>
#include <cctype>
#include <cstdlib>
#include <cstring>
#include <ctime>

#include "common/error.h"

namespace gravl::storage::s3 {
namespace {

struct GlobalInit {
  GlobalInit() { curl_global_init(CURL_GLOBAL_DEFAULT); }
};

// libcurl callbacks are C: no exception may leave them (returning a short count aborts).
std::size_t OnBody(char* data, std::size_t size, std::size_t count, void* user) noexcept {
  auto* response = static_cast<HttpResponse*>(user);
  std::size_t n = size * count;
  if (response->max_body > 0 && response->body.size() + n > response->max_body) {
    response->overflow = true;
    return 0;
  }
  try {
    auto* bytes = reinterpret_cast<const std::uint8_t*>(data);
    response->body.insert(response->body.end(), bytes, bytes + n);
  } catch (...) {
    return 0;
  }
  return n;
}

std::size_t OnHeader(char* data, std::size_t size, std::size_t count, void* user) noexcept try {
  auto* response = static_cast<HttpResponse*>(user);
  std::size_t n = size * count;
  std::string line(data, n);
  while (!line.empty() && (line.back() == '\r' || line.back() == '\n')) line.pop_back();
  if (line.rfind("HTTP/", 0) == 0) {
    response->headers.clear();  // a new status line (after 100 Continue)
    return n;
  }
  auto colon = line.find(':');
  if (colon == std::string::npos) return n;
  std::string name = line.substr(0, colon);
  for (auto& c : name) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  std::string value = line.substr(colon + 1);
  auto first = value.find_first_not_of(" \t");
  value = first == std::string::npos ? "" : value.substr(first);
  if (name == "content-length" && !response->head_request) {
    // Size the body once instead of growing it by doubling (bounded: 64 MiB at most).
    char* end = nullptr;
    unsigned long long length = std::strtoull(value.c_str(), &end, 10);
    if (end != value.c_str()) {
      response->body.reserve(static_cast<std::size_t>(std::min(length, 64ull << 20)));
    }
  }
  response->headers.emplace_back(std::move(name), std::move(value));
  return n;
} catch (...) {
  return 0;
}

bool Permanent(CURLcode code) {
  switch (code) {
    case CURLE_UNSUPPORTED_PROTOCOL:
    case CURLE_URL_MALFORMAT:
    case CURLE_PEER_FAILED_VERIFICATION:
    case CURLE_SSL_CACERT_BADFILE:
    case CURLE_SSL_CERTPROBLEM:
    case CURLE_SSL_CIPHER:
    case CURLE_SSL_ISSUER_ERROR:
    case CURLE_SSL_CRL_BADFILE:
      return true;
    default:
      return false;
  }
}

}  // namespace

std::optional<std::chrono::system_clock::time_point> ParseHttpDate(const std::string& text) {
  std::tm tm{};
  const char* end = strptime(text.c_str(), "%a, %d %b %Y %H:%M:%S GMT", &tm);
  if (end == nullptr || *end != '\0') return std::nullopt;
  return std::chrono::system_clock::from_time_t(timegm(&tm));
}

std::optional<std::string> HttpResponse::Header(const std::string& lower_name) const {
  for (const auto& [name, value] : headers) {
    if (name == lower_name) return value;
  }
  return std::nullopt;
}

HttpClient::HttpClient(HttpOptions options) : options_(std::move(options)) {
  static GlobalInit init;
}

HttpClient::~HttpClient() {
  for (void* h : idle_) curl_easy_cleanup(static_cast<CURL*>(h));
}

void* HttpClient::Acquire() {
  {
    std::lock_guard lock(mutex_);
    if (!idle_.empty()) {
      void* h = idle_.back();
      idle_.pop_back();
      return h;
    }
  }
  CURL* h = curl_easy_init();
  if (h == nullptr) throw StorageError("cannot initialise libcurl (out of memory?)");
  return h;
}

void HttpClient::Release(void* handle) {
  std::lock_guard lock(mutex_);
  idle_.push_back(handle);
}

HttpResult HttpClient::Perform(const HttpRequest& request) {
  CURL* curl = static_cast<CURL*>(Acquire());
  curl_easy_reset(curl);  // keeps the connection cache
  HttpResponse response;
  response.head_request = request.method == "HEAD";
  response.max_body = request.max_response_bytes;
  char error_buffer[CURL_ERROR_SIZE] = {};
  curl_easy_setopt(curl, CURLOPT_ERRORBUFFER, error_buffer);
  curl_easy_setopt(curl, CURLOPT_URL, request.url.c_str());
  curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(curl, CURLOPT_CONNECTTIMEOUT, options_.connect_timeout_seconds);
  if (request.slow_answer) {
    curl_easy_setopt(curl, CURLOPT_TIMEOUT, 900L);
  } else {
    curl_easy_setopt(curl, CURLOPT_LOW_SPEED_LIMIT, 1024L);
    curl_easy_setopt(curl, CURLOPT_LOW_SPEED_TIME, options_.stall_timeout_seconds);
  }
  curl_easy_setopt(curl, CURLOPT_SSL_VERIFYPEER, options_.verify_tls ? 1L : 0L);
  curl_easy_setopt(curl, CURLOPT_SSL_VERIFYHOST, options_.verify_tls ? 2L : 0L);
  if (!options_.ca_file.empty()) curl_easy_setopt(curl, CURLOPT_CAINFO, options_.ca_file.c_str());
  curl_easy_setopt(curl, CURLOPT_PROTOCOLS_STR, "http,https");
  curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, OnBody);
  curl_easy_setopt(curl, CURLOPT_WRITEDATA, &response);
  curl_easy_setopt(curl, CURLOPT_HEADERFUNCTION, OnHeader);
  curl_easy_setopt(curl, CURLOPT_HEADERDATA, &response);

  bool has_content_type = false;
  curl_slist* headers = nullptr;
  for (const auto& [name, value] : request.headers) {
    std::string lower = name;
    for (auto& c : lower) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    if (lower == "content-type") has_content_type = true;
    headers = curl_slist_append(headers, (name + ": " + value).c_str());
  }
  headers = curl_slist_append(headers, "Expect:");  // no 100-continue round trip
  if (!has_content_type) headers = curl_slist_append(headers, "Content-Type:");
  headers = curl_slist_append(headers, "Accept:");
  curl_easy_setopt(curl, CURLOPT_HTTPHEADER, headers);

  if (request.method == "GET") {
    curl_easy_setopt(curl, CURLOPT_HTTPGET, 1L);
  } else if (request.method == "HEAD") {
    curl_easy_setopt(curl, CURLOPT_NOBODY, 1L);
  } else {
    curl_easy_setopt(curl, CURLOPT_CUSTOMREQUEST, request.method.c_str());
    if (request.method != "DELETE" || !request.body.empty()) {
      static const char kEmpty[] = "";
      const char* data =
          request.body.empty() ? kEmpty : reinterpret_cast<const char*>(request.body.data());
      curl_easy_setopt(curl, CURLOPT_POSTFIELDSIZE_LARGE,
                       static_cast<curl_off_t>(request.body.size()));
      curl_easy_setopt(curl, CURLOPT_POSTFIELDS, data);
    }
  }

  CURLcode code = curl_easy_perform(curl);
  curl_easy_setopt(curl, CURLOPT_ERRORBUFFER, nullptr);  // points into this frame
  curl_slist_free_all(headers);
  HttpResult result;
  if (code == CURLE_OK) {
    curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &response.status);
    result.response = std::move(response);
    Release(curl);
    return result;
  }
  result.error = std::string(curl_easy_strerror(code)) +
                 (error_buffer[0] != '\0' ? std::string(": ") + error_buffer : std::string());
  result.retryable = !Permanent(code);
  if (response.overflow) {
    result.error = "the answer is larger than the " + std::to_string(request.max_response_bytes) +
                   " bytes asked for (does the store ignore the Range header?)";
    result.retryable = false;
  }
  // A handle whose transfer failed may hold a broken connection: drop it.
  curl_easy_cleanup(curl);
  return result;
}

}  // namespace gravl::storage::s3
