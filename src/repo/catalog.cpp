#include "repo/catalog.h"

#include <algorithm>
#include <cstdio>
#include <thread>

#include "common/error.h"
#include "repo/layout.h"
#include "repo/metadata.h"

namespace gravl::repo {

const std::vector<BackupEntry>& Catalog::Backups() {
  if (!backups_) backups_ = ListBackups(repo_, &incomplete_);
  return *backups_;
}

const std::vector<std::string>& Catalog::Incomplete() {
  Backups();
  return incomplete_;
}

const BackupEntry* Catalog::Find(const std::string& label) {
  for (const auto& b : Backups()) {
    if (b.label == label) return &b;
  }
  return nullptr;
}

const WalIndex& Catalog::Wal() {
  if (!wal_) wal_ = WalIndex::Build(repo_);
  return *wal_;
}

RecoverableWindow Catalog::Window(const BackupManifest& b, std::optional<TimelineId> target) {
  const WalIndex& index = Wal();
  RecoverableWindow w;
  w.from_time = b.stop_time;
  w.from_lsn = b.stop_lsn;
  w.to_time = b.stop_time;
  w.to_lsn = b.wal_included ? b.stop_lsn : b.start_lsn;
  w.target_timeline = target.value_or(index.LatestFrom(b.timeline));
  w.reached_timeline = b.timeline;
  std::uint64_t seg = index.segment_size();
  // A backup with its WAL needs the archive only after its stop segment.
  Lsn from = b.wal_included ? Lsn{(b.stop_lsn.value - 1) / seg * seg + seg} : b.start_lsn;
  WalReach reach = index.ReachFrom(b.timeline, from, w.target_timeline);
  if (!reach.problem.empty()) {
    w.problem = reach.problem;
    w.consistent = b.wal_included;
    return w;
  }
  w.to_lsn = std::max(reach.end, b.wal_included ? b.stop_lsn : reach.end);
  w.reached_timeline = reach.segments > 0 ? reach.timeline : b.timeline;
  w.gap = reach.gap;
  if (reach.newest_time && *reach.newest_time > w.to_time) w.to_time = *reach.newest_time;
  w.consistent = w.to_lsn >= b.stop_lsn;
  return w;
}

bool Catalog::HasWal(const WalFileName& file) {
  return !FindWalObjects(repo_.storage(), repo_.stanza(), file).empty();
}

void Catalog::WaitForWal(TimelineId timeline, Lsn from, Lsn to, std::chrono::milliseconds timeout) {
  std::uint64_t seg_size = repo_.Stanza().wal_segment_size;
  if (seg_size == 0) seg_size = kDefaultWalSegmentSize;
  WalSegment first = WalSegment::FromLsn(timeline, from, seg_size);
  WalSegment last = WalSegment::FromLsn(timeline, Lsn{to.value > 0 ? to.value - 1 : 0}, seg_size);
  auto deadline = std::chrono::steady_clock::now() + timeout;
  // The stop segment is usually archived within milliseconds of the switch: look again soon,
  // then less and less often.
  auto pause = std::chrono::milliseconds(10);
  for (std::uint64_t next = first.segno; next <= last.segno;) {
    std::string name = WalSegment{timeline, next}.Name(seg_size);
    if (HasWal(*ParseWalFileName(name))) {
      ++next;
      continue;
    }
    if (std::chrono::steady_clock::now() >= deadline) {
      char waited[32];
      std::snprintf(waited, sizeof waited, "%.0f", std::chrono::duration<double>(timeout).count());
      throw StorageError("WAL segment " + name + " did not reach " + repo_.Describe() + " within " +
                         waited + "s; check archiving with 'gravl-dr check'");
    }
    std::this_thread::sleep_for(pause);
    pause = std::min(pause * 2, std::chrono::milliseconds(200));
  }
}

std::optional<nlohmann::json> Catalog::LastRestoreTest() {
  auto reports = storage::ListAll(repo_.storage(), ReportsPrefix(repo_.stanza(), "restore-tests"));
  if (reports.empty()) return std::nullopt;
  return ReadMetadata(repo_.storage(), reports.back().key);
}

StanzaSummary Summarize(Catalog& catalog) {
  Repository& repo = catalog.repo();
  StanzaSummary summary;
  summary.info = repo.Stanza();
  if (summary.info.encryption && repo.key() == nullptr) {
    // Manifests are encrypted: without the passphrase only the labels can be listed.
    std::string prefix = BackupsPrefix(repo.stanza());
    for (const auto& p : storage::ListPrefixes(repo.storage(), prefix)) {
      std::string label = p.substr(prefix.size(), p.size() - prefix.size() - 1);
      if (repo.storage().Stat(ManifestKey(repo.stanza(), label))) {
        summary.backups.push_back({label, std::nullopt, "", true});
      } else {
        summary.incomplete_labels.push_back(label);
      }
    }
  } else {
    for (const auto& b : catalog.Backups()) {
      summary.backups.push_back({b.label, b.manifest, b.problem, false});
    }
    summary.incomplete_labels = catalog.Incomplete();
  }
  const WalIndex& wal = catalog.Wal();
  std::uint64_t seg_size = wal.segment_size();
  std::map<TimelineId, WalTimelineSummary> timelines;
  for (const auto& [tli, t] : wal.timelines()) {
    WalTimelineSummary& s = timelines[tli];
    s.timeline = tli;
    if (t.history_object) {
      ++s.history_files;
      s.bytes += t.history_object->stored_size;
    }
    if (!t.segments.empty()) {
      s.segments = t.segments.size();
      s.first = WalSegment{tli, t.segments.begin()->first}.Name(seg_size);
      s.last = WalSegment{tli, t.segments.rbegin()->first}.Name(seg_size);
      s.missing = t.segments.rbegin()->first - t.segments.begin()->first + 1 - t.segments.size();
      for (const auto& [segno, segment] : t.segments) s.bytes += segment.stored_size;
    }
  }
  for (const auto& other : wal.others()) {
    WalTimelineSummary& s = timelines[ParseWalFileName(other.name)->timeline];
    s.timeline = ParseWalFileName(other.name)->timeline;
    s.bytes += other.stored_size;
  }
  for (auto& [tli, t] : timelines) summary.wal.push_back(t);
  summary.last_restore_test = catalog.LastRestoreTest();
  return summary;
}

}  // namespace gravl::repo
