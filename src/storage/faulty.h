#pragma once
// Fault-injecting wrapper for tests: forwards to an inner Storage (ForwardingStorage) and
// breaks things on purpose -- fail the Nth call, cut a stream after N bytes, flip a byte on
// the way out. Every call is counted, so it overrides each of them.

#include <atomic>
#include <cstdint>
#include <mutex>
#include <optional>
#include <string>

#include "storage/forwarding.h"

namespace gravl::storage {

struct FaultPlan {
  // Calls (Put, Get, Stat, List, DeleteMany, and each stream's Finish) are counted from 1;
  // these fail with a retryable StorageError.
  std::optional<std::uint64_t> fail_call;
  // Every call from this one on fails (a repository that went away).
  std::optional<std::uint64_t> fail_from_call;
  // Read streams throw a retryable StorageError once this many bytes were returned.
  std::optional<std::uint64_t> cut_read_after;
  // Write streams throw once this many bytes were written; the object never appears.
  std::optional<std::uint64_t> cut_write_after;
  // Reads return the byte at this object offset with its bits inverted.
  std::optional<std::uint64_t> flip_read_byte;
  // Faults apply only to keys containing this text (empty: every key).
  std::string key_filter;
};

class FaultyStorage final : public ForwardingStorage {
 public:
  FaultyStorage(Storage& inner, FaultPlan plan)
      : ForwardingStorage(inner), plan_(std::move(plan)) {}
  FaultyStorage(std::unique_ptr<Storage> owned, FaultPlan plan)
      : ForwardingStorage(std::move(owned)), plan_(std::move(plan)) {}

  void SetPlan(FaultPlan plan);
  std::uint64_t calls() const { return calls_.load(); }

  std::unique_ptr<WriteStream> Put(const std::string& key, const PutOptions& options) override;
  std::unique_ptr<ReadStream> TryGet(const std::string& key,
                                     const std::optional<Range>& range) override;
  std::optional<ObjectInfo> Stat(const std::string& key) override;
  ListPage List(const std::string& prefix, const ListOptions& options) override;
  void DeleteMany(const std::vector<std::string>& keys) override;
  void DeletePrefix(const std::string& prefix) override;
  void Persist(const std::string& key) override;
  std::string Describe() const override { return "faulty(" + target().Describe() + ")"; }

  // Counts a call and throws if the plan says this one fails. Used by the streams too.
  void MaybeFail(const std::string& what, const std::string& key);
  FaultPlan plan() const;

 private:
  mutable std::mutex mutex_;
  FaultPlan plan_;
  std::atomic<std::uint64_t> calls_{0};
};

}  // namespace gravl::storage
