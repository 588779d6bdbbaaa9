#pragma once
// An etcd v3 client over etcd's HTTP/JSON gateway (POST /v3/kv/range, /v3/kv/txn,
// /v3/lease/grant, /v3/lease/keepalive, /v3/lease/revoke), with the libcurl gravl-dr already
// links -- the consensus store of automatic failover (src/ha/agent.h), not a home-made one.
//
// Contract. Every request has a hard time limit (`timeout`, connection included), so a member
// that hangs -- a partition, a stopped process -- costs at most that long per endpoint; the
// endpoints are tried in turn, starting with the last one that answered, and a request fails
// (StorageError, exit 8) only when none answered within its limit. etcd's own refusals
// (no leader, lease not found, a failed compare) are answers, not failures: a failed compare is
// TxnResult::succeeded == false. TLS: the CA, client certificate and key come from files
// (etcd's --client-cert-auth authenticates the agent by its certificate).
// Keys and values are byte strings (base64 on the wire); revisions and lease ids are int64.
// Reads are linearizable (etcd's default): with a majority of members lost they fail, which
// is what a failover decision needs -- never a stale answer.

#include <chrono>
#include <cstdint>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

namespace gravl::etcd {

struct ClientConfig {
  std::vector<std::string> endpoints;  // "http://host:2379", "https://host:2379"
  std::string ca_file, cert_file, key_file;
  std::chrono::milliseconds timeout{2000};  // per request and endpoint
};

struct KeyValue {
  std::string key, value;
  std::int64_t create_revision = 0, mod_revision = 0, version = 0, lease = 0;
};

// One comparison of a transaction: the key's create or mod revision, or its value.
struct Compare {
  enum class Target { kCreate, kMod, kValue };
  std::string key;
  Target target = Target::kMod;
  std::int64_t revision = 0;  // kCreate 0: the key does not exist
  std::string value;          // kValue
};
inline Compare KeyAbsent(const std::string& key) { return {key, Compare::Target::kCreate, 0, {}}; }
inline Compare ModRevisionIs(const std::string& key, std::int64_t revision) {
  return {key, Compare::Target::kMod, revision, {}};
}

// One operation of a transaction.
struct Op {
  enum class Kind { kPut, kDelete, kRange };
  Kind kind = Kind::kRange;
  std::string key, value;
  std::int64_t lease = 0;  // kPut: bound to this lease (0: none)
};
inline Op Put(const std::string& key, const std::string& value, std::int64_t lease = 0) {
  return {Op::Kind::kPut, key, value, lease};
}
inline Op Delete(const std::string& key) { return {Op::Kind::kDelete, key, {}, 0}; }
inline Op Range(const std::string& key) { return {Op::Kind::kRange, key, {}, 0}; }

struct TxnResult {
  bool succeeded = false;
  std::int64_t revision = 0;  // the store's revision after the transaction
  // For every kRange operation of the branch that ran, in order: the key, when it exists.
  std::vector<std::optional<KeyValue>> ranges;
};

// The request bodies and answers of the gateway; pure, for tests.
nlohmann::json TxnRequest(const std::vector<Compare>& compare, const std::vector<Op>& success,
                          const std::vector<Op>& failure);
TxnResult ParseTxn(const nlohmann::json& answer);
std::optional<KeyValue> ParseKeyValue(const nlohmann::json& kv);
// The message of an error answer, whichever of the gateway's two forms it has.
std::string ErrorMessage(const nlohmann::json& answer, long status);
// int64 fields arrive as strings ("12"), sometimes as numbers, and are left out when 0.
std::int64_t Int64Field(const nlohmann::json& object, const std::string& name);

class Client {
 public:
  explicit Client(ClientConfig config);

  // A lease of `ttl` seconds; its id.
  std::int64_t Grant(std::int64_t ttl_s);
  // Renews `lease` once; the TTL it was renewed to, or nullopt when the lease no longer
  // exists (expired or revoked).
  std::optional<std::int64_t> KeepAlive(std::int64_t lease);
  // Revokes `lease` (every key bound to it is deleted); a lease that is already gone is fine.
  void Revoke(std::int64_t lease);
  // The key, when it exists, and the store's revision.
  std::pair<std::optional<KeyValue>, std::int64_t> Get(const std::string& key);
  TxnResult Txn(const std::vector<Compare>& compare, const std::vector<Op>& success,
                const std::vector<Op>& failure = {});

  // The endpoint that answered last ("" before any answer).
  std::string Endpoint() const;

 private:
  // POSTs `body` to `path` on the endpoints in turn; the JSON answer of the first that
  // answers with 200, or StorageError. etcd's error answers (gRPC status in JSON) throw
  // StorageError too, with its message, unless `tolerate` is part of it.
  nlohmann::json Call(const std::string& path, const nlohmann::json& body,
                      const std::string& tolerate = "");
  ClientConfig config_;
  mutable std::mutex mutex_;
  std::size_t current_ = 0;
};

}  // namespace gravl::etcd
