#include "repo/expire.h"

#include <spdlog/spdlog.h>

#include <algorithm>

#include "common/error.h"
#include "common/log.h"
#include "repo/layout.h"
#include "repo/manifest.h"
#include "repo/object_lock.h"
#include "repo/partial.h"

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
    d.sizes.push_back(o.stored_size);
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
  // The receiver's partial-segment chunks (repo/partial.h): those of segments the plan does
  // not keep, and those a complete segment has superseded (the receiver deletes them itself;
  // these are what a killed receiver or a timeline switch left).
  for (const auto& info :
       storage::ListAll(catalog.repo().storage(), PartialPrefix(catalog.repo().stanza()))) {
    auto c = ParsePartialChunkKey(info.key, seg_size);
    if (!c) continue;
    const bool kept = c->segment.segno >= plan.wal_all_from ||
                      plan.KeepsSegment(c->segment.timeline, c->segment.segno);
    if (kept && !index.Find(c->segment.timeline, c->segment.segno)) continue;
    WalObject o;
    o.key = info.key;
    o.name = c->segment.Name(seg_size) + ".partial";
    o.stored_size = info.size;
    add(o);
  }
  return d;
}

ExpireOutcome CarryOut(Catalog& catalog, const RetentionPlan& plan,
                       const std::function<void(const std::string&)>& progress) {
  ExpireOutcome out;
  if (!plan.refusal.empty()) return out;
  Repository& repo = catalog.repo();
  const RepoConfig& rc = repo.config();
  const bool check_locks = rc.type == "s3" && !rc.s3.object_lock_mode.empty();
  const std::string archive_class = rc.type == "s3" ? rc.s3.archive_storage_class : "";
  storage::Storage& storage = repo.storage();
  auto say = [&](const std::string& s) {
    if (progress) progress(s);
  };
  // The WAL to delete is decided from the listing taken with the plan, before anything goes
  // (and again below if a locked backup has to stay).
  WalDeletion wal = WalToDelete(catalog, plan);
  RetentionPlan effective = plan;  // plus the WAL of backups Object Lock keeps
  const SystemTime now = std::chrono::system_clock::now();
  // Object Lock: the retain-until date of a key, when it is still in force.
  auto locked_until = [&](const std::string& key) -> std::optional<SystemTime> {
    if (!check_locks) return std::nullopt;
    auto info = storage.Stat(key);
    if (info && info->retain_until && *info->retain_until > now) return info->retain_until;
    return std::nullopt;
  };

  if (check_locks) {
    for (const auto& d : plan.backups) {
      if (!d.keep || !d.known_until) continue;  // no foreseeable end (min_full, pins without end)
      const SystemTime need = *d.known_until + kObjectLockMargin;
      auto info = storage.Stat(ManifestKey(repo.stanza(), d.label));
      if (!info || !info->retain_until || *info->retain_until >= need) continue;
      for (const auto& o : storage::ListAll(storage, BackupObjectPrefix(repo.stanza(), d.label))) {
        storage.ExtendRetention(o.key, need);
      }
      out.extended.push_back(d.label + " until " + FormatIso8601(need));
    }
  }
  for (const auto& d : plan.backups) {
    if (d.keep) continue;
    const BackupEntry* b = catalog.Find(d.label);
    if (b == nullptr) continue;
    // The manifest is written last, so its lock outlasts every other object's.
    if (auto until = locked_until(ManifestKey(repo.stanza(), d.label))) {
      out.locked.push_back("backup " + d.label + " locked until " + FormatIso8601(*until));
      if (b->manifest && b->manifest->full()) {  // it stays listed: so does its WAL
        const std::uint64_t seg = catalog.Wal().segment_size();
        effective.wal_ranges.push_back({b->manifest->timeline, b->manifest->start_lsn.value / seg,
                                        b->manifest->stop_lsn.value / seg, d.label});
      }
      continue;
    }
    say("backup " + d.label);
    storage.DeleteMany({ManifestKey(repo.stanza(), d.label)});  // not listed from here on
    storage.DeletePrefix(BackupObjectPrefix(repo.stanza(), d.label));
    out.backups_deleted.push_back(d.label);
    if (b->manifest) out.backup_bytes += b->manifest->stored_size;
  }
  for (const auto& label : ListIncompleteBackups(repo)) {
    const std::string prefix = BackupObjectPrefix(repo.stanza(), label);
    if (check_locks) {
      std::optional<SystemTime> latest;
      for (const auto& o : storage::ListAll(storage, prefix)) {
        if (auto until = locked_until(o.key)) latest = std::max(latest.value_or(*until), *until);
      }
      if (latest) {
        out.locked.push_back("interrupted backup " + label + " locked until " +
                             FormatIso8601(*latest));
        continue;
      }
    }
    say("interrupted backup " + label);
    storage.DeletePrefix(prefix);
    out.incomplete_removed.push_back(label);
  }
  if (!archive_class.empty()) {
    for (const auto& d : plan.backups) {
      auto has = [&](const char* r) {
        return std::find(d.reasons.begin(), d.reasons.end(), r) != d.reasons.end();
      };
      bool archive_only = d.keep && (has("monthly") || has("yearly")) && !has("daily") &&
                          !has("weekly") && !has("pitr") && !has("min_full");
      if (!archive_only) continue;
      auto info = storage.Stat(ManifestKey(repo.stanza(), d.label));
      if (!info || info->storage_class == archive_class) continue;
      say("archive " + d.label + " to " + archive_class);
      bool all = true;
      for (const auto& o : storage::ListAll(storage, BackupObjectPrefix(repo.stanza(), d.label))) {
        all = storage.ChangeStorageClass(o.key, archive_class) && all;
      }
      out.archived.push_back(d.label + " to " + archive_class +
                             (all ? "" : " (objects over 5 GiB, or locked ones, stay)"));
    }
  }
  if (effective.wal_ranges.size() != plan.wal_ranges.size()) wal = WalToDelete(catalog, effective);
  if (check_locks && !wal.keys.empty()) {
    WalDeletion free;
    std::optional<SystemTime> latest;
    std::size_t held = 0;
    for (std::size_t i = 0; i < wal.keys.size(); ++i) {
      if (auto until = locked_until(wal.keys[i])) {
        ++held;
        latest = std::max(latest.value_or(*until), *until);
      } else {
        free.keys.push_back(wal.keys[i]);
        free.sizes.push_back(wal.sizes[i]);
        free.bytes += wal.sizes[i];
      }
    }
    if (held > 0) {
      out.locked.push_back(std::to_string(held) + " WAL objects locked until " +
                           FormatIso8601(*latest));
      wal.keys = std::move(free.keys);
      wal.bytes = free.bytes;
    }
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
