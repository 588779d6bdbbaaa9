#include "ha/store.h"

#include <nlohmann/json.hpp>

#include "common/error.h"
#include "common/time_util.h"
#include "etcd/client.h"

namespace gravl::ha {

std::string LeaderJson(const LeaderKey& leader) {
  return nlohmann::json{{"region", leader.region}, {"since", leader.since}}.dump();
}

std::string RecordJson(const PrimaryRecord& r) {
  return nlohmann::json{{"region", r.region},     {"state", r.state},       {"token", r.token},
                        {"previous", r.previous}, {"timeline", r.timeline}, {"since", r.since}}
      .dump();
}

std::optional<LeaderKey> ParseLeader(const std::string& json) {
  auto j = nlohmann::json::parse(json, nullptr, false);
  if (!j.is_object() || !j.contains("region") || !j["region"].is_string()) return std::nullopt;
  LeaderKey k;
  k.region = j["region"].get<std::string>();
  k.since = j.value("since", std::string());
  return k;
}

std::optional<PrimaryRecord> ParseRecord(const std::string& json) {
  auto j = nlohmann::json::parse(json, nullptr, false);
  if (!j.is_object() || !j.contains("region") || !j["region"].is_string()) return std::nullopt;
  PrimaryRecord r;
  r.region = j["region"].get<std::string>();
  r.state = j.value("state", std::string("primary"));
  r.token = j.value("token", std::int64_t{0});
  r.previous = j.value("previous", std::string());
  r.timeline = j.value("timeline", std::uint32_t{0});
  r.since = j.value("since", std::string());
  return r;
}

namespace {

class EtcdStore : public Store {
 public:
  explicit EtcdStore(const HaConfig& ha)
      : client_(Config(ha)),
        leader_key_(ha.etcd_prefix + "/leader"),
        record_key_(ha.etcd_prefix + "/primary"),
        prefix_(ha.etcd_prefix) {}

  static etcd::ClientConfig Config(const HaConfig& ha) {
    etcd::ClientConfig c;
    c.endpoints = ha.etcd_endpoints;
    c.ca_file = ha.etcd_ca_file;
    c.cert_file = ha.etcd_cert_file;
    c.key_file = ha.etcd_key_file;
    // A renewal every third of the TTL must not wait longer than that on one member.
    c.timeout = std::chrono::milliseconds(
        std::clamp<std::int64_t>(std::int64_t{ha.lease_ttl_s} * 1000 / 6, 300, 2000));
    return c;
  }

  ClusterView Read() override {
    auto r = client_.Txn({}, {etcd::Range(leader_key_), etcd::Range(record_key_)});
    ClusterView v;
    v.revision = r.revision;
    if (r.ranges.size() != 2) throw StorageError("etcd answered an incomplete read");
    if (r.ranges[0]) {
      v.leader = ParseLeader(r.ranges[0]->value);
      if (!v.leader) {
        throw Foreign("the leader key " + leader_key_);
      }
      v.leader->lease = r.ranges[0]->lease;
      v.leader->token = r.ranges[0]->create_revision;
    }
    if (r.ranges[1]) {
      v.record = ParseRecord(r.ranges[1]->value);
      if (!v.record) {
        throw Foreign("the primary record " + record_key_);
      }
      v.record->revision = r.ranges[1]->mod_revision;
    }
    return v;
  }
  static StorageError Foreign(const std::string& what) {
    return StorageError(what +
                        " holds something that is not gravl-dr's: is ha.etcd.prefix "
                        "shared with another program?");
  }
  std::int64_t Grant(int ttl_s) override { return client_.Grant(ttl_s); }
  std::optional<std::int64_t> KeepAlive(std::int64_t lease) override {
    return client_.KeepAlive(lease);
  }
  void Revoke(std::int64_t lease) override { client_.Revoke(lease); }
  std::optional<std::int64_t> Acquire(const ClusterView& seen, const std::string& region,
                                      std::int64_t lease, const PrimaryRecord& record) override {
    LeaderKey k{region, lease, 0, record.since};
    try {
      auto r = client_.Txn({etcd::KeyAbsent(leader_key_), RecordAsSeen(seen)},
                           {etcd::Put(leader_key_, LeaderJson(k), lease),
                            etcd::Put(record_key_, RecordJson(record))});
      if (r.succeeded) return r.revision;
    } catch (const Error&) {
      if (auto token = HeldBy(lease)) return token;
      throw;
    }
    return HeldBy(lease);
  }
  bool PutRecord(const PrimaryRecord& record, std::int64_t expected) override {
    etcd::Compare c =
        expected == 0 ? etcd::KeyAbsent(record_key_) : etcd::ModRevisionIs(record_key_, expected);
    try {
      if (client_.Txn({c}, {etcd::Put(record_key_, RecordJson(record))}).succeeded) return true;
    } catch (const Error&) {
      if (RecordIs(record)) return true;
      throw;
    }
    return RecordIs(record);
  }
  void Release(std::int64_t lease) override {
    // Deleting the key is revoking its lease: nothing else is bound to it.
    client_.Revoke(lease);
  }
  bool Handover(const ClusterView& seen, const PrimaryRecord& record) override {
    try {
      if (client_
              .Txn({RecordAsSeen(seen)},
                   {etcd::Put(record_key_, RecordJson(record)), etcd::Delete(leader_key_)})
              .succeeded) {
        return true;
      }
    } catch (const Error&) {
      if (RecordIs(record)) return true;
      throw;
    }
    return RecordIs(record);
  }
  std::string Describe() const override {
    return "etcd " + prefix_ + " (via " + client_.Endpoint() + ")";
  }

 private:
  // Reading back after a write whose answer was lost or whose retry failed its compare.
  std::optional<std::int64_t> HeldBy(std::int64_t lease) {
    ClusterView v = Read();
    if (v.leader && v.leader->lease == lease) return v.leader->token;
    return std::nullopt;
  }
  bool RecordIs(const PrimaryRecord& r) {
    ClusterView v = Read();
    return v.record && RecordJson(*v.record) == RecordJson(r);
  }
  etcd::Compare RecordAsSeen(const ClusterView& seen) const {
    return seen.record ? etcd::ModRevisionIs(record_key_, seen.record->revision)
                       : etcd::KeyAbsent(record_key_);
  }
  mutable etcd::Client client_;
  std::string leader_key_, record_key_, prefix_;
};

}  // namespace

std::unique_ptr<Store> MakeEtcdStore(const HaConfig& ha) { return std::make_unique<EtcdStore>(ha); }

// ---- MemoryStore ----

void MemoryStore::Check() {
  if (partitioned_) throw StorageError("memory store: partitioned");
}

void MemoryStore::Expire() {
  auto now = std::chrono::steady_clock::now();
  for (auto it = leases_.begin(); it != leases_.end();) {
    if (it->second <= now) {
      if (leader_ && leader_->lease == it->first) {
        leader_.reset();
        ++revision_;
      }
      ttls_.erase(it->first);
      it = leases_.erase(it);
    } else {
      ++it;
    }
  }
}

ClusterView MemoryStore::Read() {
  std::lock_guard lock(mutex_);
  Check();
  Expire();
  return {leader_, record_, revision_};
}

std::int64_t MemoryStore::Grant(int ttl_s) {
  std::lock_guard lock(mutex_);
  Check();
  std::int64_t id = next_lease_++;
  leases_[id] = std::chrono::steady_clock::now() + std::chrono::seconds(ttl_s);
  ttls_[id] = ttl_s;
  return id;
}

std::optional<std::int64_t> MemoryStore::KeepAlive(std::int64_t lease) {
  std::lock_guard lock(mutex_);
  Check();
  Expire();
  auto it = leases_.find(lease);
  if (it == leases_.end()) return std::nullopt;
  it->second = std::chrono::steady_clock::now() + std::chrono::seconds(ttls_[lease]);
  return ttls_[lease];
}

void MemoryStore::Revoke(std::int64_t lease) {
  std::lock_guard lock(mutex_);
  Check();
  leases_.erase(lease);
  ttls_.erase(lease);
  if (leader_ && leader_->lease == lease) {
    leader_.reset();
    ++revision_;
  }
}

std::optional<std::int64_t> MemoryStore::Acquire(const ClusterView& seen, const std::string& region,
                                                 std::int64_t lease, const PrimaryRecord& record) {
  std::lock_guard lock(mutex_);
  Check();
  Expire();
  if (leader_ || !leases_.count(lease)) return std::nullopt;
  if (seen.record.has_value() != record_.has_value()) return std::nullopt;
  if (record_ && record_->revision != seen.record->revision) return std::nullopt;
  ++revision_;
  leader_ = LeaderKey{region, lease, revision_, record.since};
  record_ = record;
  record_->revision = revision_;
  return revision_;
}

bool MemoryStore::PutRecord(const PrimaryRecord& record, std::int64_t expected) {
  std::lock_guard lock(mutex_);
  Check();
  if (expected == 0 ? record_.has_value() : (!record_ || record_->revision != expected)) {
    return false;
  }
  ++revision_;
  record_ = record;
  record_->revision = revision_;
  return true;
}

void MemoryStore::Release(std::int64_t lease) { Revoke(lease); }

bool MemoryStore::Handover(const ClusterView& seen, const PrimaryRecord& record) {
  std::lock_guard lock(mutex_);
  Check();
  if (seen.record.has_value() != record_.has_value()) return false;
  if (record_ && record_->revision != seen.record->revision) return false;
  ++revision_;
  record_ = record;
  record_->revision = revision_;
  leader_.reset();
  return true;
}

// ---- planned changes of primary ----

std::optional<PrimaryRecord> BeginHandover(Store& store, const std::string& from,
                                           const std::string& to) {
  ClusterView seen = store.Read();
  PrimaryRecord r;
  r.region = to;
  r.state = kHandoverState;
  r.previous = from;
  r.since = FormatIso8601(std::chrono::system_clock::now());
  if (seen.record) {
    r.token = seen.record->token;
    r.timeline = seen.record->timeline;
  }
  if (!store.Handover(seen, r)) {
    throw StorageError("the primary record in " + store.Describe() +
                       " changed while it was being handed over to " + to +
                       " (a watch agent acted meanwhile): run again");
  }
  return seen.record;
}

void EndHandover(Store& store, const std::string& to, std::uint32_t timeline) {
  ClusterView v = store.Read();
  PrimaryRecord r = v.record.value_or(PrimaryRecord{});
  r.region = to;
  r.state = "primary";
  r.timeline = timeline;
  r.since = FormatIso8601(std::chrono::system_clock::now());
  if (v.leader && v.leader->region == to) r.token = v.leader->token;
  if (!store.PutRecord(r, v.record ? v.record->revision : 0)) {
    throw StorageError("the primary record in " + store.Describe() +
                       " changed while the handover to " + to + " ended: run again");
  }
}

void AbortHandover(Store& store, const std::string& to,
                   const std::optional<PrimaryRecord>& before) {
  ClusterView v = store.Read();
  if (!v.record || v.record->region != to || v.record->state != kHandoverState) return;
  if (before) {
    store.PutRecord(*before, v.record->revision);
  } else {
    PrimaryRecord r = *v.record;
    r.region = r.previous;
    r.state = "primary";
    store.PutRecord(r, v.record->revision);
  }
}

void MemoryStore::Partition(bool unreachable) {
  std::lock_guard lock(mutex_);
  partitioned_ = unreachable;
}

}  // namespace gravl::ha
