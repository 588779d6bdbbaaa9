#include "repo/expire.h"

#include <spdlog/spdlog.h>

#include "common/error.h"
#include "common/log.h"
#include "repo/layout.h"
#include "repo/manifest.h"

namespace gravl::repo {
namespace {

constexpr std::size_t kDeleteBatch = 1000;

void DeleteAll(storage::Storage& storage, const std::vector<std::string>& keys) {
  for (std::size_t i = 0; i < keys.size(); i += kDeleteBatch) {
    auto end = keys.begin() + static_cast<long>(std::min(keys.size(), i + kDeleteBatch));
    storage.DeleteMany(std::vector<std::string>(keys.begin() + static_cast<long>(i), end));
  }
}

}  // namespace

WalDeletion WalToDelete(Catalog& catalog, const RetentionPlan& plan) {
  WalDeletion d;
  if (plan.keep_all_wal || !plan.refusal.empty()) return d;
  const WalIndex& index = catalog.Wal();
  const std::uint64_t seg_size = index.segment_size();
  auto add = [&](const WalObject& o) {
    d.keys.push_back(o.key);
    d.bytes += o.stored_size;
    if (d.first.empty() || o.name < d.first) d.first = o.name;
    if (o.name > d.last) d.last = o.name;
  };
  for (const auto& [tli, timeline] : index.timelines()) {
    for (const auto& [segno, segment] : timeline.segments) {
      if (segno >= plan.wal_all_from) break;  // kept from here on, on every timeline
      if (plan.KeepsSegment(tli, segno)) continue;
      if (auto o = index.Find(tli, segno)) add(*o);
    }
  }
  for (const auto& o : index.others()) {  // .partial segments and .backup labels
    auto seg = WalSegment::ParseName(std::string_view(o.name).substr(0, 24), seg_size);
    if (seg && !plan.KeepsSegment(seg->timeline, seg->segno)) add(o);
  }
  return d;
}

ExpireOutcome CarryOut(Catalog& catalog, const RetentionPlan& plan,
                       const std::function<void(const std::string&)>& progress) {
  ExpireOutcome out;
  if (!plan.refusal.empty()) return out;
  Repository& repo = catalog.repo();
  storage::Storage& storage = repo.storage();
  auto say = [&](const std::string& s) {
    if (progress) progress(s);
  };
  // The WAL to delete is decided from the listing taken with the plan, before anything goes.
  WalDeletion wal = WalToDelete(catalog, plan);

  for (const auto& d : plan.backups) {
    if (d.keep) continue;
    const BackupEntry* b = catalog.Find(d.label);
    if (b == nullptr) continue;
    say("backup " + d.label);
    storage.DeleteMany({ManifestKey(repo.stanza(), d.label)});  // not listed from here on
    storage.DeletePrefix(BackupObjectPrefix(repo.stanza(), d.label));
    out.backups_deleted.push_back(d.label);
    if (b->manifest) out.backup_bytes += b->manifest->stored_size;
  }
  for (const auto& label : ListIncompleteBackups(repo)) {
    say("interrupted backup " + label);
    storage.DeletePrefix(BackupObjectPrefix(repo.stanza(), label));
    out.incomplete_removed.push_back(label);
  }
  if (!wal.keys.empty()) {
    say("wal " + std::to_string(wal.keys.size()) + " objects (" + wal.first + " .. " + wal.last +
        ")");
    DeleteAll(storage, wal.keys);
    out.wal_deleted = wal.keys.size();
    out.wal_bytes = wal.bytes;
  }
  return out;
}

}  // namespace gravl::repo
