#include "etcd/client.h"

#include <curl/curl.h>

#include <memory>

#include "common/bytes.h"
#include "common/error.h"
#include "version.h"

namespace gravl::etcd {

namespace {

std::string B64(const std::string& s) { return Base64Encode(s); }

std::string Unb64(const nlohmann::json& v) {
  if (!v.is_string()) return "";
  try {
    return Base64Decode(v.get<std::string>());
  } catch (const std::invalid_argument&) {
    throw StorageError("etcd answered a key or value that is not base64");
  }
}

nlohmann::json OpJson(const Op& op) {
  switch (op.kind) {
    case Op::Kind::kPut: {
      nlohmann::json put = {{"key", B64(op.key)}, {"value", B64(op.value)}};
      if (op.lease != 0) put["lease"] = std::to_string(op.lease);
      return {{"requestPut", put}};
    }
    case Op::Kind::kDelete:
      return {{"requestDeleteRange", {{"key", B64(op.key)}}}};
    case Op::Kind::kRange:
      break;
  }
  return {{"requestRange", {{"key", B64(op.key)}}}};
}

size_t Collect(char* data, size_t size, size_t n, void* out) {
  static_cast<std::string*>(out)->append(data, size * n);
  return size * n;
}

struct Answer {
  long status = 0;  // 0: none
  std::string body;
  std::string error;
};

}  // namespace

std::string ErrorMessage(const nlohmann::json& answer, long status) {
  // A gRPC error in JSON: {"error": "...", "code": 14, "message": "..."}; a streaming call's
  // (lease keep-alive): {"error": {"grpc_code": 14, "http_code": 503, "message": "..."}}.
  if (answer.is_object()) {
    auto text = [](const nlohmann::json& v) -> std::string {
      return v.is_string() ? v.get<std::string>() : "";
    };
    if (answer.contains("message") && !text(answer["message"]).empty()) {
      return text(answer["message"]);
    }
    if (answer.contains("error")) {
      const auto& e = answer["error"];
      if (!text(e).empty()) return text(e);
      if (e.is_object() && e.contains("message") && !text(e["message"]).empty()) {
        return text(e["message"]);
      }
    }
  }
  return "HTTP " + std::to_string(status) + " without an error message";
}

std::int64_t Int64Field(const nlohmann::json& object, const std::string& name) {
  auto it = object.find(name);
  if (it == object.end() || it->is_null()) return 0;
  if (it->is_number_integer()) return it->get<std::int64_t>();
  if (it->is_string()) {
    try {
      return std::stoll(it->get<std::string>());
    } catch (const std::exception&) {
    }
  }
  throw StorageError("etcd answered a non-integer '" + name + "'");
}

nlohmann::json TxnRequest(const std::vector<Compare>& compare, const std::vector<Op>& success,
                          const std::vector<Op>& failure) {
  nlohmann::json body = {{"compare", nlohmann::json::array()},
                         {"success", nlohmann::json::array()},
                         {"failure", nlohmann::json::array()}};
  for (const auto& c : compare) {
    nlohmann::json j = {{"key", B64(c.key)}, {"result", "EQUAL"}};
    switch (c.target) {
      case Compare::Target::kCreate:
        j["target"] = "CREATE";
        j["createRevision"] = std::to_string(c.revision);
        break;
      case Compare::Target::kMod:
        j["target"] = "MOD";
        j["modRevision"] = std::to_string(c.revision);
        break;
      case Compare::Target::kValue:
        j["target"] = "VALUE";
        j["value"] = B64(c.value);
        break;
    }
    body["compare"].push_back(j);
  }
  for (const auto& op : success) body["success"].push_back(OpJson(op));
  for (const auto& op : failure) body["failure"].push_back(OpJson(op));
  return body;
}

std::optional<KeyValue> ParseKeyValue(const nlohmann::json& kv) {
  if (!kv.is_object()) return std::nullopt;
  KeyValue out;
  out.key = Unb64(kv.value("key", nlohmann::json()));
  out.value = Unb64(kv.value("value", nlohmann::json()));
  out.create_revision = Int64Field(kv, "create_revision");
  out.mod_revision = Int64Field(kv, "mod_revision");
  out.version = Int64Field(kv, "version");
  out.lease = Int64Field(kv, "lease");
  return out;
}

TxnResult ParseTxn(const nlohmann::json& answer) {
  TxnResult r;
  r.succeeded = answer.value("succeeded", false);
  if (answer.contains("header")) r.revision = Int64Field(answer["header"], "revision");
  if (answer.contains("responses") && answer["responses"].is_array()) {
    for (const auto& resp : answer["responses"]) {
      if (!resp.contains("response_range")) continue;
      const auto& range = resp["response_range"];
      if (range.contains("kvs") && range["kvs"].is_array() && !range["kvs"].empty()) {
        r.ranges.push_back(ParseKeyValue(range["kvs"][0]));
      } else {
        r.ranges.push_back(std::nullopt);
      }
    }
  }
  return r;
}

Client::Client(ClientConfig config) : config_(std::move(config)) {
  if (config_.endpoints.empty()) throw ConfigError("ha.etcd.endpoints: no endpoint configured");
}

std::string Client::Endpoint() const {
  std::lock_guard lock(mutex_);
  return config_.endpoints[current_];
}

nlohmann::json Client::Call(const std::string& path, const nlohmann::json& body,
                            const std::string& tolerate) {
  const std::string payload = body.dump();
  std::size_t start;
  {
    std::lock_guard lock(mutex_);
    start = current_;
  }
  std::string failures;
  const std::size_t n = config_.endpoints.size();
  for (std::size_t i = 0; i < n; ++i) {
    const std::size_t index = (start + i) % n;
    const std::string& endpoint = config_.endpoints[index];
    Answer a;
    std::unique_ptr<CURL, decltype(&curl_easy_cleanup)> curl(curl_easy_init(), curl_easy_cleanup);
    if (!curl) throw StorageError("cannot initialise libcurl");
    char error[CURL_ERROR_SIZE] = {};
    curl_slist* headers = curl_slist_append(nullptr, "Content-Type: application/json");
    std::unique_ptr<curl_slist, decltype(&curl_slist_free_all)> header_list(headers,
                                                                            curl_slist_free_all);
    const std::string url = endpoint + path;
    const std::string agent = std::string("gravl-dr/") + kVersion;
    CURL* c = curl.get();
    curl_easy_setopt(c, CURLOPT_URL, url.c_str());
    curl_easy_setopt(c, CURLOPT_ERRORBUFFER, error);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, static_cast<long>(config_.timeout.count()));
    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, static_cast<long>(config_.timeout.count()));
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, headers);
    curl_easy_setopt(c, CURLOPT_USERAGENT, agent.c_str());
    curl_easy_setopt(c, CURLOPT_POSTFIELDS, payload.c_str());
    curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE, static_cast<long>(payload.size()));
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, Collect);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &a.body);
    if (!config_.ca_file.empty()) curl_easy_setopt(c, CURLOPT_CAINFO, config_.ca_file.c_str());
    if (!config_.cert_file.empty()) {
      curl_easy_setopt(c, CURLOPT_SSLCERT, config_.cert_file.c_str());
    }
    if (!config_.key_file.empty()) curl_easy_setopt(c, CURLOPT_SSLKEY, config_.key_file.c_str());
    CURLcode rc = curl_easy_perform(c);
    if (rc != CURLE_OK) {
      failures += "; " + endpoint + ": " + (error[0] != '\0' ? error : curl_easy_strerror(rc));
      continue;
    }
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &a.status);
    nlohmann::json j = nlohmann::json::parse(a.body, nullptr, false);
    if (j.is_discarded() || !j.is_object()) {
      failures += "; " + endpoint + ": HTTP " + std::to_string(a.status) + ", not a JSON object";
      continue;
    }
    if (a.status == 200 && !j.contains("error")) {
      std::lock_guard lock(mutex_);
      current_ = index;
      return j;
    }
    const std::string message = ErrorMessage(j, a.status);
    if (!tolerate.empty() && message.find(tolerate) != std::string::npos) {
      std::lock_guard lock(mutex_);
      current_ = index;
      return j;
    }
    // No leader, or too many requests: another member may do better.
    failures += "; " + endpoint + ": " + message;
  }
  throw StorageError("etcd did not answer " + path + failures +
                     ": check that a majority of the members in ha.etcd.endpoints is up and "
                     "reachable from here");
}

std::int64_t Client::Grant(std::int64_t ttl_s) {
  nlohmann::json a = Call("/v3/lease/grant", {{"TTL", std::to_string(ttl_s)}});
  std::int64_t id = Int64Field(a, "ID");
  if (id == 0) throw StorageError("etcd granted no lease: " + a.value("error", std::string()));
  return id;
}

std::optional<std::int64_t> Client::KeepAlive(std::int64_t lease) {
  nlohmann::json a = Call("/v3/lease/keepalive", {{"ID", std::to_string(lease)}});
  // A stream of one answer: {"result": {..., "TTL": "30"}}; no TTL: the lease is gone.
  const nlohmann::json& r = a.contains("result") && a["result"].is_object() ? a["result"] : a;
  std::int64_t ttl = Int64Field(r, "TTL");
  if (ttl <= 0) return std::nullopt;
  return ttl;
}

void Client::Revoke(std::int64_t lease) {
  Call("/v3/lease/revoke", {{"ID", std::to_string(lease)}}, "lease not found");
}

std::pair<std::optional<KeyValue>, std::int64_t> Client::Get(const std::string& key) {
  nlohmann::json a = Call("/v3/kv/range", {{"key", B64(key)}});
  std::int64_t revision = a.contains("header") ? Int64Field(a["header"], "revision") : 0;
  if (a.contains("kvs") && a["kvs"].is_array() && !a["kvs"].empty()) {
    return {ParseKeyValue(a["kvs"][0]), revision};
  }
  return {std::nullopt, revision};
}

TxnResult Client::Txn(const std::vector<Compare>& compare, const std::vector<Op>& success,
                      const std::vector<Op>& failure) {
  return ParseTxn(Call("/v3/kv/txn", TxnRequest(compare, success, failure)));
}

}  // namespace gravl::etcd
