#pragma once
// S3 Object Lock: the retain-until date each repository object is written with, from the
// retention policy at write time (docs/retention.md).
// - WAL: the PITR window plus a day's margin (the window is what may need it).
// - A backup's objects: the end of the longest tier the backup can still enter -- written
//   today, it is the newest of its day, week, month and year, so e.g. with yearly: 7 it is
//   locked until 1 January seven years on; never less than the WAL's lock.
// - Anything else (locks, pins, reports, stanza.json) is not locked: it must stay changeable.
// LockingStorage applies this to every Put (the S3 driver sends the headers only for a
// repository with object_lock configured).

#include <memory>
#include <optional>
#include <string>

#include "common/time_util.h"
#include "repo/retention.h"
#include "storage/forwarding.h"

namespace gravl::repo {

inline constexpr std::chrono::hours kObjectLockMargin{24};

std::optional<SystemTime> LockUntil(const std::string& stanza, const std::string& key,
                                    const RetentionPolicy& policy, SystemTime now);

class LockingStorage final : public storage::ForwardingStorage {
 public:
  LockingStorage(std::unique_ptr<storage::Storage> inner, std::string stanza,
                 RetentionPolicy policy)
      : ForwardingStorage(std::move(inner)), stanza_(std::move(stanza)), policy_(policy) {}
  std::unique_ptr<storage::WriteStream> Put(const std::string& key,
                                            const storage::PutOptions& options) override;

 private:
  std::string stanza_;
  RetentionPolicy policy_;
};

}  // namespace gravl::repo
