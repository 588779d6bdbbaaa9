#include "repo/object_lock.h"

#include "repo/layout.h"

namespace gravl::repo {

std::optional<SystemTime> LockUntil(const std::string& stanza, const std::string& key,
                                    const RetentionPolicy& policy, SystemTime now) {
  const SystemTime wal = now + policy.pitr_window + kObjectLockMargin;
  if (key.starts_with(WalPrefix(stanza))) {
    if (key.ends_with(".history") || key.find(".history-") != std::string::npos) {
      return std::nullopt;  // kept for ever anyway; never a reason to refuse anything
    }
    return wal;
  }
  const std::string backups = BackupsPrefix(stanza);
  if (!key.starts_with(backups)) return std::nullopt;
  std::string label = key.substr(backups.size(), key.find('/', backups.size()) - backups.size());
  const TierCounts& tiers = label.ends_with("-logical") ? policy.logical : policy.full;
  return std::max(wal, LongestTierEnd(tiers, now) + kObjectLockMargin);
}

std::unique_ptr<storage::WriteStream> LockingStorage::Put(const std::string& key,
                                                          const storage::PutOptions& options) {
  storage::PutOptions o = options;
  if (!o.retain_until)
    o.retain_until = LockUntil(stanza_, key, policy_, std::chrono::system_clock::now());
  return ForwardingStorage::Put(key, o);
}

}  // namespace gravl::repo
