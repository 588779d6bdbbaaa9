#pragma once
// What the watch agents agree on, kept in etcd (src/etcd/) under ha.etcd.prefix:
// - "<prefix>/leader": the leader key, bound to the primary agent's lease. Present means a
//   healthy primary's agent renewed it within the lease's TTL. Its create revision is the
//   fencing token of that leadership: it only grows, and a takeover is a new key.
// - "<prefix>/primary": the primary record, not bound to a lease: which region was made
//   primary last, by which token and since when. It survives every agent and lease, so an old
//   primary coming back after a failover learns that it was replaced and stays fenced, and
//   the record changes only in the same transaction as a takeover (or by switchover/failback).
// Both are JSON. A Store is the typed view of them; MemoryStore is the double for unit tests
// (leases expire on the steady clock; Partition() makes it unreachable).

#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>

#include "common/config.h"

namespace gravl::ha {

struct LeaderKey {
  std::string region;
  std::int64_t lease = 0;
  std::int64_t token = 0;  // the key's create revision: the fencing token
  std::string since;       // UTC, when it was taken
};

struct PrimaryRecord {
  std::string region;
  std::string state;       // "primary" or "promoting" (a takeover whose failover runs)
  std::int64_t token = 0;  // the fencing token of the leadership that made it primary
  std::string previous;    // the region it replaced
  std::uint32_t timeline = 0;
  std::string since;          // UTC
  std::int64_t revision = 0;  // the record's own mod revision (for compare-and-swap)
};

struct ClusterView {
  std::optional<LeaderKey> leader;
  std::optional<PrimaryRecord> record;
  std::int64_t revision = 0;  // the store's revision when read
};

class Store {
 public:
  virtual ~Store() = default;
  // Both keys in one consistent read; StorageError when the store cannot be reached.
  virtual ClusterView Read() = 0;
  virtual std::int64_t Grant(int ttl_s) = 0;
  // The TTL (seconds) the lease was renewed to; nullopt: the lease is gone (expired, revoked).
  virtual std::optional<std::int64_t> KeepAlive(std::int64_t lease) = 0;
  virtual void Revoke(std::int64_t lease) = 0;
  // Takes the leader key for `region` with `lease` and writes `record` in one transaction --
  // only if the leader key is absent and the record is as `seen` had it. The fencing token
  // (the new key's revision), or nullopt when another agent changed either first. Writes
  // whose answer was lost (a timeout, then a retry on another member that fails its compare)
  // are decided by reading back: the key bound to `lease`, the record as written.
  virtual std::optional<std::int64_t> Acquire(const ClusterView& seen, const std::string& region,
                                              std::int64_t lease, const PrimaryRecord& record) = 0;
  // Writes the record if it is unchanged since `expected_revision` (0: it must be absent).
  virtual bool PutRecord(const PrimaryRecord& record, std::int64_t expected_revision) = 0;
  // Deletes the leader key if it is bound to `lease` (a graceful hand-over).
  virtual void Release(std::int64_t lease) = 0;
  // A planned change of primary: writes `record` and deletes the leader key in one
  // transaction, if the record is as `seen` had it.
  virtual bool Handover(const ClusterView& seen, const PrimaryRecord& record) = 0;
  virtual std::string Describe() const = 0;
};

// etcd under ha.etcd.prefix, with its endpoints and TLS files.
std::unique_ptr<Store> MakeEtcdStore(const HaConfig& ha);

// The JSON of both keys; pure, for tests.
std::string LeaderJson(const LeaderKey& leader);
std::string RecordJson(const PrimaryRecord& record);
std::optional<LeaderKey> ParseLeader(const std::string& json);
std::optional<PrimaryRecord> ParseRecord(const std::string& json);

// switchover and failback with watch agents running (ha.etcd configured): the record names
// the target with state "switchover" and the leader key is gone while they run, so neither
// agent fences the target once promoted nor takes over on its own; agents treat a handover
// older than `stale_after` as abandoned. BeginHandover returns the record as it was, for
// AbortHandover when the change is refused (the old primary is started again as it was).
// Each throws StorageError when etcd cannot be reached or the record changed meanwhile.
std::optional<PrimaryRecord> BeginHandover(Store& store, const std::string& from,
                                           const std::string& to);
void EndHandover(Store& store, const std::string& to, std::uint32_t timeline);
void AbortHandover(Store& store, const std::string& to, const std::optional<PrimaryRecord>& before);
inline constexpr const char* kHandoverState = "switchover";

class MemoryStore : public Store {
 public:
  ClusterView Read() override;
  std::int64_t Grant(int ttl_s) override;
  std::optional<std::int64_t> KeepAlive(std::int64_t lease) override;
  void Revoke(std::int64_t lease) override;
  std::optional<std::int64_t> Acquire(const ClusterView& seen, const std::string& region,
                                      std::int64_t lease, const PrimaryRecord& record) override;
  bool PutRecord(const PrimaryRecord& record, std::int64_t expected_revision) override;
  void Release(std::int64_t lease) override;
  bool Handover(const ClusterView& seen, const PrimaryRecord& record) override;
  std::string Describe() const override { return "memory"; }
  void Partition(bool unreachable);

 private:
  void Expire();  // with mutex_ held
  void Check();   // with mutex_ held: throws while partitioned
  std::mutex mutex_;
  bool partitioned_ = false;
  std::int64_t revision_ = 1, next_lease_ = 100;
  std::map<std::int64_t, std::chrono::steady_clock::time_point> leases_;
  std::map<std::int64_t, int> ttls_;
  std::optional<LeaderKey> leader_;
  std::optional<PrimaryRecord> record_;
};

}  // namespace gravl::ha
