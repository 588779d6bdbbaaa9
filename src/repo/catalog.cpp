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
  return WindowOf(Wal(), b, target);
}

RecoverableWindow WindowOf(const WalIndex& index, const BackupManifest& b,
                           std::optional<TimelineId> target) {
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

std::optional<RunReport> Catalog::LastRestoreTest() {
  auto keys = ListReportKeys(repo_.storage(), repo_.stanza(), kDrillReports);
  if (keys.empty()) return std::nullopt;
  return ReadReport(repo_.storage(), keys.back());
}

namespace {

// Labels begin with the backup's start time, "20261130T172811Z-full": the date of a backup
// whose manifest cannot be read.
SystemTime LabelTime(const std::string& label) {
  if (label.size() < 16 || label[8] != 'T' || label[15] != 'Z') return SystemTime{};
  std::string iso = label.substr(0, 4) + "-" + label.substr(4, 2) + "-" + label.substr(6, 2) + "T" +
                    label.substr(9, 2) + ":" + label.substr(11, 2) + ":" + label.substr(13, 2) +
                    "Z";
  try {
    return ParseIso8601(iso);
  } catch (const Error&) {
    return SystemTime{};
  }
}

}  // namespace

const std::vector<Pin>& Catalog::Pins() {
  if (pins_) return *pins_;
  pins_.emplace();
  const std::string prefix = PinsPrefix(repo_.stanza());
  for (const auto& o : storage::ListAll(repo_.storage(), prefix)) {
    std::string rest = o.key.substr(prefix.size());
    auto slash = rest.find('/');
    if (slash == std::string::npos || !rest.ends_with(".json")) continue;  // temporaries
    Pin pin;
    pin.label = rest.substr(0, slash);
    pin.key = o.key;
    try {
      nlohmann::json doc = ReadMetadata(repo_.storage(), o.key);
      pin.reason = doc.at("reason").get<std::string>();
      pin.created = ParseIso8601(doc.at("created_at").get<std::string>());
      if (doc.contains("until") && !doc["until"].is_null()) {
        pin.until = ParseIso8601(doc["until"].get<std::string>());
      }
      if (doc.at("label").get<std::string>() != pin.label) {
        throw IntegrityError(o.key + " pins " + doc.at("label").get<std::string>());
      }
    } catch (const std::exception& e) {
      pin.until.reset();  // an unreadable pin never lets a backup go
      pin.reason = std::string("unreadable pin, kept as a pin without end: ") + e.what();
    }
    pins_->push_back(std::move(pin));
  }
  return *pins_;
}

BackupFacts FactsOf(const BackupManifest& m) {
  BackupFacts f;
  f.label = m.label;
  f.full = m.full();
  f.start_time = m.start_time;
  f.stop_time = m.stop_time;
  f.start_lsn = m.start_lsn;
  f.stop_lsn = m.stop_lsn;
  f.timeline = m.timeline;
  f.stored_size = m.stored_size;
  return f;
}

std::vector<BackupFacts> Catalog::RetentionFacts() {
  std::vector<BackupFacts> facts;
  for (const auto& b : Backups()) {
    BackupFacts f;
    f.label = b.label;
    f.ok = b.ok();
    if (b.ok()) {
      f = FactsOf(*b.manifest);
    } else {
      f.full = !b.label.ends_with("-logical");
      f.start_time = f.stop_time = LabelTime(b.label);
    }
    for (const auto& p : Pins()) {
      if (p.label == b.label) f.pins.push_back(p);
    }
    facts.push_back(std::move(f));
  }
  return facts;
}

RetentionPlan Catalog::Plan(const RetentionPolicy& policy, SystemTime now) {
  return PlanRetention(RetentionFacts(), policy, now, repo_.Stanza().wal_segment_size);
}

Pin WritePin(Repository& repo, const std::string& label, std::optional<SystemTime> until,
             const std::string& reason) {
  Pin pin{label, until, reason, std::chrono::system_clock::now(), ""};
  pin.key = PinsPrefix(repo.stanza()) + label + "/" + FormatCompact(pin.created) + "-" +
            HexEncode(RandomBytes(4)) + ".json";
  nlohmann::json doc = {{"label", label},
                        {"reason", reason},
                        {"created_at", FormatIso8601(pin.created)},
                        {"until", until ? nlohmann::json(FormatIso8601(*until)) : nullptr}};
  if (!WriteMetadataIfAbsent(repo.storage(), pin.key, doc)) {
    throw ConflictError(repo.storage().Describe() + "/" + pin.key + " already exists");
  }
  return pin;
}

std::size_t RemovePins(Repository& repo, const std::string& label) {
  std::vector<std::string> keys;
  for (const auto& o : storage::ListAll(repo.storage(), PinsPrefix(repo.stanza()) + label + "/")) {
    keys.push_back(o.key);
  }
  repo.storage().DeleteMany(keys);
  return keys.size();
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
