#pragma once
// A small HTTP/1.1 client over libcurl for the S3 driver and STS.
//
// Requests and responses are whole buffers: the S3 driver never sends or receives more than
// one multipart part or one download chunk per request, so memory stays bounded by those
// sizes. Connections are kept alive and reused through a pool of curl handles; the client is
// safe to use from several threads at once.

#include <chrono>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "common/bytes.h"

namespace gravl::storage::s3 {

using Headers = std::vector<std::pair<std::string, std::string>>;

struct HttpRequest {
  std::string method;  // GET, HEAD, PUT, POST, DELETE
  std::string url;     // already percent-encoded
  Headers headers;
  ByteView body;  // the caller keeps it alive during Perform()
  // Refuse a response body larger than this (0: no limit): a store that ignores Range must
  // not make a ranged read pull a whole object into memory.
  std::uint64_t max_response_bytes = 0;
  // For calls S3 may answer slowly on purpose (CompleteMultipartUpload sends whitespace for
  // minutes): no stall detection, a 15-minute limit instead.
  bool slow_answer = false;
};

struct HttpResponse {
  long status = 0;
  Headers headers;  // names in lower case
  Bytes body;
  bool head_request = false;  // a HEAD: Content-Length describes the object, not a body
  std::uint64_t max_body = 0;
  bool overflow = false;
  std::optional<std::string> Header(const std::string& lower_name) const;
};

struct HttpOptions {
  std::string ca_file;  // extra CA bundle; empty: the system's
  bool verify_tls = true;
  long connect_timeout_seconds = 10;
  // A transfer slower than 1 KiB/s for this long is abandoned (and retried by the caller).
  long stall_timeout_seconds = 60;
};

// The outcome of one exchange: a response (whatever its status), or a transport failure
// (refused, reset, timed out, TLS error) with no response.
struct HttpResult {
  std::optional<HttpResponse> response;
  std::string error;       // the transport failure, when there is no response
  bool retryable = false;  // false for failures that will not go away (TLS trust, bad URL)
};

// Parses an HTTP date (IMF-fixdate, "Sun, 06 Nov 1994 08:49:37 GMT"); nullopt if malformed.
std::optional<std::chrono::system_clock::time_point> ParseHttpDate(const std::string& text);

class HttpClient {
 public:
  explicit HttpClient(HttpOptions options);
  ~HttpClient();
  HttpClient(const HttpClient&) = delete;
  HttpClient& operator=(const HttpClient&) = delete;

  HttpResult Perform(const HttpRequest& request);

 private:
  void* Acquire();
  void Release(void* handle);

  HttpOptions options_;
  std::mutex mutex_;
  std::vector<void*> idle_;
};

}  // namespace gravl::storage::s3
