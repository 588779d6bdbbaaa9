#include "storage/s3/s3_storage.h"

#include <openssl/evp.h>

#include <algorithm>
#include <deque>
#include <future>
#include <limits>
#include <thread>

#include "common/error.h"
#include "common/log.h"
#include "io/hash.h"
#include "storage/s3/http.h"
#include "storage/s3/retry.h"
#include "storage/s3/sigv4.h"
#include "storage/s3/xml.h"

namespace gravl::storage::s3 {
namespace {

constexpr std::uint64_t kMaxPartSize = 5ull * 1024 * kMiB;
constexpr std::size_t kDeleteBatch = 1000;
constexpr int kDownloadAhead = 2;

std::string Md5Base64(ByteView data) {
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  if (EVP_Digest(data.data(), data.size(), digest, &len, EVP_md5(), nullptr) != 1) {
    throw StorageError("MD5 is not available in this OpenSSL (needed for DeleteObjects)");
  }
  unsigned char out[64];
  int n = EVP_EncodeBlock(out, digest, static_cast<int>(len));
  return std::string(reinterpret_cast<const char*>(out), static_cast<std::size_t>(n));
}

std::string AmzDate(std::chrono::system_clock::time_point now) {
  std::time_t t = std::chrono::system_clock::to_time_t(now);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y%m%dT%H%M%SZ", &tm);
  return buf;
}

// "https://host:port" -> scheme "https", authority "host:port" (default port dropped).
struct Endpoint {
  std::string scheme;
  std::string authority;
};

Endpoint ParseEndpoint(const std::string& url) {
  auto sep = url.find("://");
  Endpoint e{url.substr(0, sep), url.substr(sep + 3)};
  auto slash = e.authority.find('/');
  if (slash != std::string::npos) e.authority = e.authority.substr(0, slash);
  if ((e.scheme == "https" && e.authority.ends_with(":443")) ||
      (e.scheme == "http" && e.authority.ends_with(":80"))) {
    e.authority = e.authority.substr(0, e.authority.rfind(':'));
  }
  return e;
}

std::uint64_t ParseUint(const std::string& text, const std::string& what) {
  try {
    std::size_t used = 0;
    auto v = std::stoull(text, &used);
    if (used == text.size()) return v;
  } catch (const std::exception&) {
  }
  throw StorageError("S3 answered an unreadable " + what + ": '" + text + "'");
}

struct Call {
  std::string method;
  std::string key;  // object key inside the bucket ("" for bucket-level calls)
  std::vector<std::pair<std::string, std::string>> query;
  Headers headers;
  ByteView body;
  std::string what;              // for messages: "PutObject s3://b/k"
  std::vector<long> ok = {200};  // statuses that are answers, not errors
  // Set when an earlier attempt may have been applied by S3 before its answer was lost
  // (reset, timeout, 5xx): a conditional request's 412 may then be our own doing.
  bool* ambiguous = nullptr;
  std::uint64_t max_response_bytes = 0;  // see HttpRequest
  bool slow_answer = false;              // see HttpRequest
};

struct Answer {
  HttpResponse response;
};

class S3Client {
 public:
  S3Client(std::string repo_name, const S3RepoConfig& config, const EnvLookup& env)
      : repo_name_(std::move(repo_name)),
        config_(config),
        http_(HttpOptions{.ca_file = config.ca_file, .verify_tls = config.verify_tls}) {
    retry_.max_attempts = config.max_attempts;
    retry_.total_time = Duration(config.retry_timeout);
    std::string endpoint = config.endpoint.empty()
                               ? "https://s3." + config.region + ".amazonaws.com"
                               : config.endpoint;
    endpoint_ = ParseEndpoint(endpoint);
    if (config.uri_style == "host") {
      host_ = config.bucket + "." + endpoint_.authority;
      base_path_ = "/";
    } else {
      host_ = endpoint_.authority;
      base_path_ = "/" + config.bucket + "/";
    }
    credentials_ = MakeCredentialsChain(
        CredentialSettings{repo_name_, config.access_key_id, config.secret_access_key,
                           config.session_token, config.profile, config.region,
                           config.sts_endpoint},
        HttpOptions{.ca_file = config.ca_file, .verify_tls = config.verify_tls}, retry_, env);
  }

  const S3RepoConfig& config() const { return config_; }
  std::string Url(const std::string& key) const {
    return "s3://" + config_.bucket + "/" + ObjectName(key);
  }
  // The object's name in the bucket: prefix + key.
  std::string ObjectName(const std::string& key) const {
    return config_.prefix.empty() ? key : config_.prefix + "/" + key;
  }

  // Sends a call, retrying what can be retried. Returns the answer for statuses in call.ok;
  // throws NotFoundError (404 NoSuchKey/NoSuchUpload), ConflictError (412) or StorageError.
  Answer Send(const Call& call) {
    std::string payload = io::Sha256Hex(call.body);
    std::string path = base_path_ + call.key;
    std::string url = endpoint_.scheme + "://" + host_ + UriEncode(path, true);
    std::string query_string;
    for (const auto& [k, v] : call.query) {
      query_string +=
          (query_string.empty() ? "?" : "&") + UriEncode(k, false) + "=" + UriEncode(v, false);
    }
    url += query_string;
    Backoff backoff(retry_);
    bool refreshed = false;
    Answer answer;
    bool ambiguous = false;
    if (call.ambiguous != nullptr) *call.ambiguous = false;
    while (true) {
      Credentials creds = credentials_->Get();
      std::string amz_date = AmzDate(std::chrono::system_clock::now());
      SigningRequest sreq{call.method, path, call.query, call.headers, payload};
      sreq.headers.emplace_back("Host", host_);
      sreq.headers.emplace_back("x-amz-date", amz_date);
      sreq.headers.emplace_back("x-amz-content-sha256", payload);
      Signature sig =
          Sign(sreq, creds, SigningOptions{config_.region, "s3", amz_date, /*normalize=*/false});
      HttpRequest req{call.method,     url, sreq.headers, call.body, call.max_response_bytes,
                      call.slow_answer};
      for (const auto& h : sig.added_headers) req.headers.push_back(h);
      req.headers.emplace_back("Authorization", sig.authorization);
      HttpResult result = http_.Perform(req);

      std::string problem, code;
      bool retryable = false;
      std::optional<Duration> retry_after;
      if (result.response) {
        HttpResponse& r = *result.response;
        if (std::find(call.ok.begin(), call.ok.end(), r.status) != call.ok.end()) {
          // CompleteMultipartUpload and CopyObject can fail with 200 and an error body.
          if (!(r.status == 200 && call.method == "POST" && StartsWithError(r.body))) {
            answer.response = std::move(r);
            return answer;
          }
        }
        std::string text(AsChars(r.body));
        code = XmlText(text, "Code").value_or("");
        std::string message = XmlText(text, "Message").value_or("");
        // HEAD answers carry no body, so an expired token shows only as 400/403 there.
        bool maybe_expired = code == "ExpiredToken" ||
                             (call.method == "HEAD" && (r.status == 400 || r.status == 403));
        if (maybe_expired && !refreshed && credentials_->Invalidate(creds.access_key_id)) {
          refreshed = true;
          spdlog::info("S3 credentials expired; refreshed them from {}", credentials_->Source());
          continue;
        }
        retryable = IsRetryableStatus(r.status, code);
        if (!retryable) Fail(call, r, code, message, ambiguous, creds.access_key_id);
        problem = "HTTP " + std::to_string(r.status) + (code.empty() ? "" : " " + code);
        if (auto ra = r.Header("retry-after")) {
          retry_after = ParseRetryAfter(*ra, std::chrono::system_clock::now());
        }
      } else {
        problem = result.error;
        retryable = result.retryable;
        if (!retryable) {
          throw StorageError(call.what + " failed: " + problem +
                             (problem.find("certificate") != std::string::npos ||
                                      problem.find("SSL") != std::string::npos
                                  ? ": check the endpoint's certificate, or name its CA "
                                    "bundle with ca_file"
                                  : ""));
        }
      }
      // The attempt may have been carried out although we did not see its answer.
      ambiguous = true;
      if (call.ambiguous != nullptr) *call.ambiguous = true;
      auto delay = backoff.NextDelay(retry_after);
      if (!delay) {
        throw StorageError(call.what + " failed after " + std::to_string(backoff.attempts()) +
                               " attempts in " +
                               std::to_string(static_cast<int>(backoff.elapsed().count())) +
                               " s, last: " + problem + ": check that " + Describe() +
                               " is reachable; retries are bounded by retry_timeout (" +
                               std::to_string(config_.retry_timeout) + " s) and max_attempts (" +
                               std::to_string(config_.max_attempts) + ")",
                           /*retryable=*/true);
      }
      spdlog::debug("{}: {} (attempt {}), retrying in {:.2f} s", call.what, problem,
                    backoff.attempts() - 1, delay->count());
      std::this_thread::sleep_for(*delay);
    }
  }

  std::string Describe() const {
    return "s3://" + config_.bucket + (config_.prefix.empty() ? "" : "/" + config_.prefix) +
           " (region " + config_.region +
           (config_.endpoint.empty() ? "" : ", endpoint " + config_.endpoint) + ")";
  }

 private:
  // The first element after any whitespace (S3 keeps a slow completion alive with spaces)
  // and the XML declaration is <Error>.
  static bool StartsWithError(const Bytes& body) {
    std::string_view text(reinterpret_cast<const char*>(body.data()), body.size());
    std::size_t pos = text.find_first_not_of(" \t\r\n");
    if (pos != std::string_view::npos && text.substr(pos).starts_with("<?xml")) {
      pos = text.find("?>", pos);
      pos = pos == std::string_view::npos ? pos : text.find_first_not_of(" \t\r\n", pos + 2);
    }
    return pos != std::string_view::npos && text.substr(pos).starts_with("<Error");
  }

  [[noreturn]] void Fail(const Call& call, const HttpResponse& r, const std::string& code,
                         const std::string& message, bool ambiguous,
                         const std::string& access_key_id) {
    std::string base = call.what + " failed: HTTP " + std::to_string(r.status) +
                       (code.empty() ? "" : " " + code) +
                       (message.empty() ? "" : " (" + Redact(message) + ")");
    std::string key_id = MaskKeyId(access_key_id);
    if (r.status == 404 && (code == "NoSuchBucket")) {
      throw StorageError(base + ": bucket '" + config_.bucket + "' does not exist at " +
                         Describe() + ": create it, or fix 'bucket' of repository '" + repo_name_ +
                         "'");
    }
    if (r.status == 404) {
      throw NotFoundError(call.what + ": no such object" + (code.empty() ? "" : " (" + code + ")"));
    }
    if (r.status == 412) {
      throw ConflictError(call.what + ": the object already exists" +
                          (ambiguous ? " (possibly written by an earlier attempt)" : ""));
    }
    if (r.status == 301 || code == "PermanentRedirect" || code == "AuthorizationHeaderMalformed" ||
        code == "IllegalLocationConstraintException") {
      std::string actual = r.Header("x-amz-bucket-region").value_or("");
      throw StorageError(base + ": the bucket is " +
                         (actual.empty() ? "in another region" : "in region " + actual) +
                         ", the repository says " + config_.region + ": fix 'region' of '" +
                         repo_name_ + "'");
    }
    if (code == "RequestTimeTooSkewed") {
      throw StorageError(base +
                         ": this machine's clock is more than 15 minutes off: fix the "
                         "time (NTP) and try again");
    }
    if (code == "InvalidAccessKeyId") {
      throw StorageError(base + ": S3 does not know access key " + key_id + " (from " +
                         credentials_->Source() + ")");
    }
    if (code == "SignatureDoesNotMatch") {
      throw StorageError(base + ": the secret access key does not belong to access key " + key_id +
                         " (from " + credentials_->Source() + "), or a proxy changed the request");
    }
    if (code == "InvalidToken" || code == "ExpiredToken") {
      throw StorageError(base + ": the session token of " + credentials_->Source() +
                         " is invalid or expired: renew the temporary credentials");
    }
    if (r.status == 403) {
      throw StorageError(base + ": access denied to " + Describe() + " for the credentials of " +
                         credentials_->Source() + " (key " + key_id +
                         "): check the IAM policy allows s3:GetObject, s3:PutObject, "
                         "s3:ListBucket, s3:ListBucketMultipartUploads, s3:DeleteObject and "
                         "s3:AbortMultipartUpload" +
                         (config_.sse == "aws:kms" ? " and kms:GenerateDataKey/kms:Decrypt" : ""));
    }
    throw StorageError(base);
  }

  std::string repo_name_;
  S3RepoConfig config_;
  HttpClient http_;
  RetryPolicy retry_;
  Endpoint endpoint_;
  std::string host_;
  std::string base_path_;
  std::unique_ptr<CredentialsProvider> credentials_;
};

// HeadObject: the object's size and modification time, or nullopt when it does not exist.
std::optional<ObjectInfo> HeadObject(S3Client& client, const std::string& key) {
  Call call{"HEAD", client.ObjectName(key), {}, {}, {}, "HeadObject " + client.Url(key)};
  call.ok = {200, 404};
  Answer a = client.Send(call);
  if (a.response.status == 404) return std::nullopt;
  ObjectInfo info{key,
                  ParseUint(a.response.Header("content-length").value_or("0"), "Content-Length"),
                  std::nullopt};
  if (auto lm = a.response.Header("last-modified")) info.modified = ParseHttpDate(*lm);
  if (auto until = a.response.Header("x-amz-object-lock-retain-until-date")) {
    info.retain_until = ParseIso8601(*until);
  }
  info.storage_class = a.response.Header("x-amz-storage-class").value_or("STANDARD");
  return info;
}

Headers ObjectHeaders(const S3RepoConfig& c) {
  Headers h;
  if (!c.storage_class.empty()) h.emplace_back("x-amz-storage-class", c.storage_class);
  if (!c.sse.empty()) h.emplace_back("x-amz-server-side-encryption", c.sse);
  if (!c.sse_kms_key_id.empty()) {
    h.emplace_back("x-amz-server-side-encryption-aws-kms-key-id", c.sse_kms_key_id);
  }
  return h;
}

class S3Read final : public ReadStream {
 public:
  // Fetches the first chunk at once, so a missing object is known at once (missing()).
  S3Read(std::shared_ptr<S3Client> client, std::string key, const std::optional<Range>& range)
      : client_(std::move(client)), key_(std::move(key)), name_(client_->ObjectName(key_)) {
    std::uint64_t offset = range ? range->offset : 0;
    // One past the last byte wanted (clipped to the object's size below).
    std::uint64_t wanted_end = std::numeric_limits<std::uint64_t>::max();
    if (range && range->length) wanted_end = offset + *range->length;
    if (wanted_end == offset) {
      // Still check that the object exists.
      missing_ = !StatObject();
      end_ = offset;
      next_ = offset;
      return;
    }
    std::uint64_t first_end = std::min(wanted_end, offset + kDownloadChunk);
    Call call{"GET", name_,
              {},    {{"Range", RangeHeader(offset, first_end)}},
              {},    "GetObject " + client_->Url(key_)};
    call.ok = {200, 206, 416, 404};
    // A store that ignores Range answers with the whole object: fine up to one chunk.
    call.max_response_bytes = std::max(first_end - offset, kDownloadChunk);
    Answer a = client_->Send(call);
    HttpResponse& r = a.response;
    std::uint64_t total = 0;
    if (r.status == 404) {
      // No such object -- unless the bucket itself is missing, which is a failure.
      std::string body(r.body.begin(), r.body.end());
      if (body.find("NoSuchBucket") != std::string::npos) {
        throw StorageError("GetObject " + client_->Url(key_) +
                           " failed: HTTP 404 NoSuchBucket: "
                           "bucket '" +
                           client_->config().bucket + "' does not exist");
      }
      missing_ = true;
      return;
    }
    if (r.status == 416) {
      // Empty object, or a range starting past the end.
      missing_ = !StatObject();
      end_ = next_ = offset;
      return;
    }
    if (r.status == 206) {
      auto cr = r.Header("content-range").value_or("");
      auto slash = cr.rfind('/');
      if (slash == std::string::npos) {
        throw StorageError("GetObject " + client_->Url(key_) +
                           " answered 206 without a Content-Range");
      }
      total = ParseUint(cr.substr(slash + 1), "Content-Range");
    } else {
      total = r.body.size();  // a store that ignored Range sent the whole (small) object
      if (offset > 0) {
        r.body.erase(r.body.begin(), r.body.begin() + static_cast<long>(std::min<std::uint64_t>(
                                                          offset, r.body.size())));
      }
    }
    etag_ = r.Header("etag").value_or("");
    end_ = std::min(total, wanted_end);
    if (r.body.size() > end_ - std::min(end_, offset)) r.body.resize(end_ - std::min(end_, offset));
    current_ = std::move(r.body);
    next_ = offset + current_.size();
    Schedule();
  }

  bool missing() const { return missing_; }

  ~S3Read() override {
    for (auto& f : ahead_) {
      if (f.valid()) f.wait();
    }
  }

  std::size_t Read(MutableByteView buf) override {
    while (pos_ == current_.size()) {
      if (ahead_.empty()) return 0;
      auto next = std::move(ahead_.front());
      ahead_.pop_front();
      current_ = next.get();
      pos_ = 0;
      Schedule();
    }
    std::size_t n = std::min(buf.size(), current_.size() - pos_);
    std::copy_n(current_.begin() + static_cast<long>(pos_), n, buf.begin());
    pos_ += n;
    return n;
  }

 private:
  static std::string RangeHeader(std::uint64_t begin, std::uint64_t end) {
    return "bytes=" + std::to_string(begin) + "-" + std::to_string(end - 1);
  }

  std::optional<ObjectInfo> StatObject() { return HeadObject(*client_, key_); }

  void Schedule() {
    while (ahead_.size() < kDownloadAhead && next_ < end_) {
      std::uint64_t begin = next_, end = std::min(end_, next_ + kDownloadChunk);
      next_ = end;
      auto client = client_;
      std::string name = name_, etag = etag_, url = client_->Url(key_);
      ahead_.push_back(std::async(std::launch::async, [client, name, etag, url, begin, end] {
        Call call{"GET", name, {}, {{"Range", RangeHeader(begin, end)}}, {}, "GetObject " + url};
        if (!etag.empty()) call.headers.emplace_back("If-Match", etag);
        call.ok = {206, 412};  // 412: If-Match failed
        call.max_response_bytes = end - begin;
        Answer a = client->Send(call);
        if (a.response.status == 412) {
          throw StorageError(url + " was replaced while it was being read");
        }
        if (a.response.body.size() != end - begin) {
          throw StorageError("GetObject " + url + " returned " +
                             std::to_string(a.response.body.size()) + " bytes for a range of " +
                             std::to_string(end - begin));
        }
        return std::move(a.response.body);
      }));
    }
  }

  std::shared_ptr<S3Client> client_;
  std::string key_, name_;
  std::string etag_;
  std::uint64_t next_ = 0, end_ = 0;
  Bytes current_;
  std::size_t pos_ = 0;
  std::deque<std::future<Bytes>> ahead_;
  bool missing_ = false;
};

class S3Write final : public WriteStream {
 public:
  S3Write(std::shared_ptr<S3Client> client, std::string key, PutOptions options)
      : client_(std::move(client)),
        key_(std::move(key)),
        name_(client_->ObjectName(key_)),
        options_(options),
        base_part_(static_cast<std::uint64_t>(client_->config().part_size_mib) * kMiB) {
    if (options_.if_absent) whole_ = std::make_unique<io::Sha256>();
  }

  ~S3Write() override {
    if (done_) return;
    for (auto& f : in_flight_) {
      if (f.valid()) f.wait();
    }
    if (upload_id_) Abort();
  }

  void Write(ByteView data) override {
    if (done_) throw StorageError("write to " + client_->Url(key_) + " after finish");
    if (whole_) whole_->Update(data);
    total_ += data.size();
    while (!data.empty()) {
      std::uint64_t limit = PartSize(part_index_, base_part_);
      std::size_t take =
          static_cast<std::size_t>(std::min<std::uint64_t>(data.size(), limit - buffer_.size()));
      buffer_.insert(buffer_.end(), data.begin(), data.begin() + static_cast<long>(take));
      data = data.subspan(take);
      if (buffer_.size() == limit) {
        // Keep the full part until more data arrives: an object of exactly one part is
        // still sent with a single PutObject.
        if (!data.empty()) SendPart();
      }
    }
  }

  bool Commit() override {
    if (done_) throw StorageError("finish of " + client_->Url(key_) + " called twice");
    bool created = true;
    if (!upload_id_) {
      created = PutWhole();
    } else {
      SendPart();
      created = Complete();
    }
    done_ = true;
    return created;
  }
  std::string Name() const override { return client_->Url(key_); }

 private:
  // With if_absent, S3 answers 412 when the key exists: false, unless the object there is
  // what an earlier attempt of this very call wrote.
  bool Exists(const Answer& a, bool ambiguous) {
    return a.response.status == 412 && !(ambiguous && OurOwnEarlierWrite());
  }

  // Object Lock headers for this object, when the repository locks and the writer asked.
  void AddLockHeaders(Headers& h) const {
    const S3RepoConfig& c = client_->config();
    if (c.object_lock_mode.empty() || !options_.retain_until) return;
    h.emplace_back("x-amz-object-lock-mode", c.object_lock_mode);
    h.emplace_back("x-amz-object-lock-retain-until-date", FormatIso8601(*options_.retain_until));
  }
  bool Locking() const {
    return !client_->config().object_lock_mode.empty() && options_.retain_until.has_value();
  }

  bool PutWhole() {
    Call call{"PUT",   name_,
              {},      ObjectHeaders(client_->config()),
              buffer_, "PutObject " + client_->Url(key_)};
    AddLockHeaders(call.headers);
    if (Locking()) call.headers.emplace_back("Content-MD5", Md5Base64(buffer_));  // AWS requires it
    if (options_.if_absent) {
      call.headers.emplace_back("If-None-Match", "*");
      call.ok = {200, 412};
    }
    bool ambiguous = false;
    call.ambiguous = &ambiguous;
    Answer a = client_->Send(call);  // sets `ambiguous`: not in one expression with its use
    return !Exists(a, ambiguous);
  }

  // After an attempt whose answer was lost, S3 refused the retry (412 on a conditional
  // write, NoSuchUpload on a completion): is the object there the one we wrote? Compared by
  // content for conditional writes (whose hash we keep), by size otherwise.
  bool OurOwnEarlierWrite() {
    if (whole_) {
      std::string expected = whole_->FinalHex();
      whole_.reset();
      S3Read reader(client_, key_, std::nullopt);
      io::Sha256 sha;
      Bytes buf(io::kChunkSize);
      while (std::size_t n = reader.Read(buf)) sha.Update(ByteView(buf).first(n));
      return sha.FinalHex() == expected;
    }
    auto info = HeadObject(*client_, key_);
    return info && info->size == total_;
  }

  void Begin() {
    Call call{"POST",
              name_,
              {{"uploads", ""}},
              ObjectHeaders(client_->config()),
              {},
              "CreateMultipartUpload " + client_->Url(key_)};
    AddLockHeaders(call.headers);
    Answer a = client_->Send(call);
    auto id = XmlText(std::string(AsChars(a.response.body)), "UploadId");
    if (!id || id->empty()) {
      throw StorageError("CreateMultipartUpload " + client_->Url(key_) +
                         " answered without an UploadId");
    }
    upload_id_ = *id;
  }

  void SendPart() {
    if (!upload_id_) Begin();
    if (part_index_ >= kMaxParts) {
      throw StorageError(client_->Url(key_) + " exceeds S3's 10,000 parts");
    }
    // Bounded memory: wait for the oldest part when enough are in flight.
    while (in_flight_.size() >= static_cast<std::size_t>(client_->config().upload_concurrency)) {
      CollectOldestPart();
    }
    int number = ++part_index_;
    auto body = std::make_shared<Bytes>(std::move(buffer_));
    buffer_ = Bytes();
    buffer_.reserve(static_cast<std::size_t>(
        std::min<std::uint64_t>(PartSize(part_index_, base_part_), 16 * kMiB)));
    auto client = client_;
    std::string name = name_, id = *upload_id_, url = client_->Url(key_);
    bool md5 = Locking();  // parts of a locked object need their Content-MD5 (AWS)
    in_flight_.push_back(std::async(std::launch::async, [client, body, number, name, id, url, md5] {
      Call call{"PUT", name,  {{"partNumber", std::to_string(number)}, {"uploadId", id}},
                {},    *body, "UploadPart " + std::to_string(number) + " of " + url};
      if (md5) call.headers.emplace_back("Content-MD5", Md5Base64(*body));
      Answer a = client->Send(call);
      auto etag = a.response.Header("etag");
      if (!etag) throw StorageError(call.what + " answered without an ETag");
      return *etag;
    }));
  }

  // Waits for the oldest part in flight and keeps its ETag (rethrows its failure).
  void CollectOldestPart() {
    auto part = std::move(in_flight_.front());
    in_flight_.pop_front();
    etags_.push_back(part.get());
  }

  bool Complete() {
    while (!in_flight_.empty()) {
      CollectOldestPart();
    }
    std::string xml = "<CompleteMultipartUpload>";
    for (std::size_t i = 0; i < etags_.size(); ++i) {
      xml += "<Part><PartNumber>" + std::to_string(i + 1) + "</PartNumber><ETag>" +
             XmlEscape(etags_[i]) + "</ETag></Part>";
    }
    xml += "</CompleteMultipartUpload>";
    Call call{"POST",
              name_,
              {{"uploadId", *upload_id_}},
              {{"Content-Type", "application/xml"}},
              AsBytes(xml),
              "CompleteMultipartUpload " + client_->Url(key_)};
    call.slow_answer = true;  // S3 may take minutes, sending whitespace meanwhile
    if (options_.if_absent) {
      call.headers.emplace_back("If-None-Match", "*");
      call.ok = {200, 412};
    }
    bool ambiguous = false;
    call.ambiguous = &ambiguous;
    Answer a;
    try {
      a = client_->Send(call);
    } catch (const NotFoundError&) {
      // NoSuchUpload after a lost answer: an earlier attempt completed the upload. (A 404 is
      // an error here -- the upload was ours -- unless that attempt got through.)
      if (!ambiguous || !OurOwnEarlierWrite()) throw;
      upload_id_.reset();
      return true;
    }
    if (Exists(a, ambiguous)) {
      Abort();
      return false;
    }
    return true;
  }

  void Abort() {
    Call call{"DELETE", name_, {{"uploadId", *upload_id_}},
              {},       {},    "AbortMultipartUpload " + client_->Url(key_)};
    call.ok = {200, 204, 404};
    try {
      client_->Send(call);
    } catch (const std::exception& e) {
      spdlog::warn(
          "could not abort the unfinished upload of {} ({}); it is invisible, and a "
          "lifecycle rule AbortIncompleteMultipartUpload removes its parts",
          client_->Url(key_), e.what());
    }
    upload_id_.reset();
  }

  std::shared_ptr<S3Client> client_;
  std::string key_, name_;
  PutOptions options_;
  std::uint64_t base_part_;
  Bytes buffer_;
  int part_index_ = 0;
  std::optional<std::string> upload_id_;
  std::deque<std::future<std::string>> in_flight_;
  std::vector<std::string> etags_;
  std::unique_ptr<io::Sha256> whole_;  // content hash, for conditional writes
  std::uint64_t total_ = 0;
  bool done_ = false;
};

class S3Storage final : public Storage {
 public:
  S3Storage(const std::string& repo_name, const S3RepoConfig& config, const EnvLookup& env)
      : client_(std::make_shared<S3Client>(repo_name, config, env)) {}

  std::unique_ptr<WriteStream> Put(const std::string& key, const PutOptions& options) override {
    ValidateKey(key);
    return std::make_unique<S3Write>(client_, key, options);
  }

  std::unique_ptr<ReadStream> TryGet(const std::string& key,
                                     const std::optional<Range>& range) override {
    ValidateKey(key);
    auto read = std::make_unique<S3Read>(client_, key, range);
    if (read->missing()) return nullptr;
    return read;
  }

  std::optional<ObjectInfo> Stat(const std::string& key) override {
    ValidateKey(key);
    return HeadObject(*client_, key);
  }

  ListPage List(const std::string& prefix, const ListOptions& options) override {
    std::string full = client_->ObjectName(prefix);
    Call call{"GET", "", {{"list-type", "2"}, {"prefix", full}},
              {},    {}, "ListObjectsV2 " + client_->Url(prefix)};
    call.query.emplace_back("max-keys",
                            std::to_string(std::clamp<std::size_t>(options.limit, 1, 1000)));
    if (options.delimited) call.query.emplace_back("delimiter", "/");
    if (options.token) {
      call.query.emplace_back("continuation-token", *options.token);
    } else if (options.start_after) {
      call.query.emplace_back("start-after", client_->ObjectName(*options.start_after));
    }
    Answer a = client_->Send(call);
    std::string xml(AsChars(a.response.body));
    std::size_t strip = client_->config().prefix.empty() ? 0 : client_->config().prefix.size() + 1;
    ListPage page;
    for (auto contents : XmlElements(xml, "Contents")) {
      auto name = XmlText(contents, "Key").value_or("");
      if (name.size() < strip) continue;
      ObjectInfo info{name.substr(strip),
                      ParseUint(XmlText(contents, "Size").value_or("0"), "Size"), std::nullopt};
      if (auto lm = XmlText(contents, "LastModified")) {
        try {
          info.modified = ParseIso8601(*lm);
        } catch (const UsageError&) {
        }
      }
      page.objects.push_back(std::move(info));
    }
    for (auto cp : XmlElements(xml, "CommonPrefixes")) {
      auto name = XmlText(cp, "Prefix").value_or("");
      if (name.size() >= strip) page.common_prefixes.push_back(name.substr(strip));
    }
    if (XmlText(xml, "IsTruncated").value_or("false") == "true") {
      auto token = XmlText(xml, "NextContinuationToken");
      if (!token || token->empty()) {
        throw StorageError("ListObjectsV2 " + client_->Url(prefix) +
                           " is truncated but has no continuation token");
      }
      page.next_token = *token;
    }
    return page;
  }

  void DeleteMany(const std::vector<std::string>& keys) override {
    for (const auto& k : keys) ValidateKey(k);
    for (std::size_t begin = 0; begin < keys.size(); begin += kDeleteBatch) {
      std::size_t end = std::min(keys.size(), begin + kDeleteBatch);
      std::string xml = "<Delete><Quiet>true</Quiet>";
      for (std::size_t i = begin; i < end; ++i) {
        xml += "<Object><Key>" + XmlEscape(client_->ObjectName(keys[i])) + "</Key></Object>";
      }
      xml += "</Delete>";
      Bytes body(AsBytes(xml).begin(), AsBytes(xml).end());
      Call call{"POST",
                "",
                {{"delete", ""}},
                {{"Content-Type", "application/xml"}, {"Content-MD5", Md5Base64(body)}},
                body,
                "DeleteObjects in " + client_->Describe()};
      Answer a = client_->Send(call);
      std::string text(AsChars(a.response.body));
      for (auto err : XmlElements(text, "Error")) {
        std::string code = XmlText(err, "Code").value_or("");
        if (code == "NoSuchKey") continue;
        throw StorageError("DeleteObjects could not delete s3://" + client_->config().bucket + "/" +
                           XmlText(err, "Key").value_or("?") + ": " + code + " " +
                           XmlText(err, "Message").value_or(""));
      }
    }
  }

  void Persist(const std::string& key) override {
    // S3 acknowledges a write only once it is durable; only existence is left to check.
    if (!Stat(key)) throw NotFoundError("no object " + client_->Url(key));
  }

  // CopyObject onto itself with the new class (metadata and encryption kept). S3 copies at
  // most 5 GiB in one request: larger objects stay (false), as do objects under Object Lock
  // (a copy would be a new version, the locked one still billed).
  bool ChangeStorageClass(const std::string& key, const std::string& storage_class) override {
    const S3RepoConfig& c = client_->config();
    if (!c.object_lock_mode.empty()) return false;
    auto info = HeadObject(*client_, key);
    if (!info) throw NotFoundError("no object " + client_->Url(key));
    if (info->size > (5ull << 30)) return false;
    if (info->storage_class == storage_class) return true;
    Headers h;
    h.emplace_back("x-amz-copy-source",
                   UriEncode("/" + c.bucket + "/" + client_->ObjectName(key), true));
    h.emplace_back("x-amz-metadata-directive", "COPY");
    h.emplace_back("x-amz-storage-class", storage_class);
    if (!c.sse.empty()) h.emplace_back("x-amz-server-side-encryption", c.sse);
    if (!c.sse_kms_key_id.empty()) {
      h.emplace_back("x-amz-server-side-encryption-aws-kms-key-id", c.sse_kms_key_id);
    }
    Call call{"PUT", client_->ObjectName(key), {}, h, {}, "CopyObject " + client_->Url(key)};
    call.slow_answer = true;  // S3 may keep the connection alive with whitespace
    Answer a = client_->Send(call);
    if (std::string(AsChars(a.response.body)).find("<Error>") != std::string::npos) {
      throw StorageError(call.what + " failed: " + std::string(AsChars(a.response.body)));
    }
    return true;
  }

  // PutObjectRetention, in the repository's lock mode (S3 refuses to shorten a retention).
  bool ExtendRetention(const std::string& key, SystemTime until) override {
    const std::string& mode = client_->config().object_lock_mode;
    if (mode.empty()) return false;
    std::string xml = "<Retention xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\"><Mode>" + mode +
                      "</Mode><RetainUntilDate>" + FormatIso8601(until) +
                      "</RetainUntilDate></Retention>";
    Bytes body(xml.begin(), xml.end());
    Call call{"PUT",
              client_->ObjectName(key),
              {{"retention", ""}},
              {{"Content-Type", "application/xml"}, {"Content-MD5", Md5Base64(body)}},
              body,
              "PutObjectRetention " + client_->Url(key)};
    client_->Send(call);
    return true;
  }

  void DeletePrefix(const std::string& prefix) override {
    if (prefix.empty() || prefix.back() != '/') {
      throw StorageError("DeletePrefix needs a folder prefix ending in '/', got '" + prefix + "'");
    }
    std::vector<std::string> keys;
    for (const auto& o : ListAll(*this, prefix)) keys.push_back(o.key);
    DeleteMany(keys);
    AbortUploads(prefix);
  }

  std::string Describe() const override { return client_->Describe(); }

 private:
  // Aborts the unfinished multipart uploads under `prefix` (left by a writer that crashed or
  // whose own abort failed): their parts are invisible but stored and billed.
  void AbortUploads(const std::string& prefix) {
    std::string full = client_->ObjectName(prefix);
    std::optional<std::pair<std::string, std::string>> marker;
    while (true) {
      Call list{"GET", "", {{"uploads", ""}, {"prefix", full}},
                {},    {}, "ListMultipartUploads " + client_->Url(prefix)};
      if (marker) {
        list.query.emplace_back("key-marker", marker->first);
        list.query.emplace_back("upload-id-marker", marker->second);
      }
      list.ok = {200, 501};
      Answer a = client_->Send(list);
      if (a.response.status == 501) {
        spdlog::debug(
            "{} cannot list multipart uploads; unfinished ones under {} stay until a "
            "lifecycle rule removes them",
            client_->Describe(), prefix);
        return;
      }
      std::string xml(AsChars(a.response.body));
      for (auto upload : XmlElements(xml, "Upload")) {
        std::string name = XmlText(upload, "Key").value_or("");
        std::string id = XmlText(upload, "UploadId").value_or("");
        if (name.empty() || id.empty()) continue;
        Call abort{
            "DELETE", name, {{"uploadId", id}},
            {},       {},   "AbortMultipartUpload s3://" + client_->config().bucket + "/" + name};
        abort.ok = {200, 204, 404};
        client_->Send(abort);
      }
      if (XmlText(xml, "IsTruncated").value_or("false") != "true") return;
      marker = std::make_pair(XmlText(xml, "NextKeyMarker").value_or(""),
                              XmlText(xml, "NextUploadIdMarker").value_or(""));
      if (marker->first.empty()) return;
    }
  }

  std::shared_ptr<S3Client> client_;
};

}  // namespace

std::uint64_t PartSize(int index, std::uint64_t base) {
  int doublings = std::min(index / 800, 20);
  return std::min(kMaxPartSize, base << doublings);
}

std::unique_ptr<Storage> MakeS3Storage(const std::string& repo_name, const S3RepoConfig& config,
                                       const EnvLookup& env) {
  return std::make_unique<S3Storage>(repo_name, config, env);
}

}  // namespace gravl::storage::s3
