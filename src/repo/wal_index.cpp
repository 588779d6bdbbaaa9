#include "repo/wal_index.h"

#include <algorithm>
#include <sstream>

#include "common/bytes.h"
#include "common/error.h"
#include "io/stream.h"
#include "repo/layout.h"
#include "repo/object_io.h"
#include "repo/repository.h"

namespace gravl::repo {

std::vector<HistoryEntry> ParseHistory(std::string_view text, const std::string& what) {
  std::vector<HistoryEntry> out;
  std::istringstream in{std::string(text)};
  std::string line;
  int number = 0;
  while (std::getline(in, line)) {
    ++number;
    std::size_t b = line.find_first_not_of(" \t\r");
    if (b == std::string::npos || line[b] == '#') continue;
    std::istringstream fields(line);
    std::string tli, lsn;
    fields >> tli >> lsn;
    HistoryEntry e;
    bool ok = !tli.empty() && tli.size() <= 10 &&
              std::all_of(tli.begin(), tli.end(), [](char c) { return c >= '0' && c <= '9'; });
    if (ok) {
      std::uint64_t v = std::stoull(tli);
      ok = v > 0 && v <= 0xFFFFFFFFu;
      e.parent = static_cast<TimelineId>(v);
    }
    if (ok) {
      try {
        e.switch_lsn = Lsn::Parse(lsn);
      } catch (const Error&) {
        ok = false;
      }
    }
    if (!ok ||
        (!out.empty() && (e.parent <= out.back().parent || e.switch_lsn < out.back().switch_lsn))) {
      throw IntegrityError(what + ": line " + std::to_string(number) +
                           " is not '<parent timeline> <switch LSN>' in increasing order: the "
                           "timeline history is damaged");
    }
    out.push_back(e);
  }
  return out;
}

WalIndex::WalIndex(std::string stanza, std::uint64_t segment_size)
    : stanza_(std::move(stanza)),
      segment_size_(segment_size ? segment_size : kDefaultWalSegmentSize) {}

WalIndex WalIndex::Build(Repository& repo, std::string* last_key) {
  const StanzaInfo& info = repo.Stanza();
  WalIndex index(repo.stanza(), info.wal_segment_size);
  index.AddNewer(repo, last_key);
  return index;
}

std::size_t WalIndex::AddNewer(Repository& repo, std::string* last_key) {
  std::size_t added = 0;
  std::optional<std::string> after;
  if (last_key != nullptr && !last_key->empty()) after = *last_key;
  storage::ForEachObject(
      repo.storage(), WalPrefix(repo.stanza()),
      [&](storage::ObjectInfo&& obj) {
        if (last_key != nullptr && obj.key > *last_key) *last_key = obj.key;
        Add(obj);
        ++added;
      },
      100000, after);
  ReadHistories(repo);
  return added;
}

void WalIndex::ReadHistories(Repository& repo) {
  for (auto& [tli, t] : timelines_) {
    if (!t.history_object || t.history || !t.history_problem.empty()) continue;
    const WalObject& h = *t.history_object;
    std::string what = repo.storage().Describe() + "/" + h.key;
    try {
      io::BufferSink text;
      ReadObject(repo.storage(), h.key, ObjectFormat{h.compression, 0, repo.key()},
                 Expected{h.sha256, std::nullopt}, text);
      t.history = ParseHistory(std::string_view(AsChars(text.data())), what);
    } catch (const StorageError&) {
      throw;  // the store failed to answer: that says nothing of the file
    } catch (const Error& e) {
      t.history_problem = e.what();
    }
  }
}

void WalIndex::Add(const storage::ObjectInfo& info) {
  auto obj = ParseWalObjectKey(info.key);
  if (!obj) return;
  obj->stored_size = info.size;
  auto file = ParseWalFileName(obj->name);
  Timeline& t = timelines_[file->timeline];
  if (file->kind == WalFileKind::kHistory) {
    if (t.history_object) {
      conflicts_.push_back(info.key);
    } else {
      t.history_object = *obj;
    }
    return;
  }
  if (file->kind != WalFileKind::kSegment) {
    others_.push_back(*obj);
    return;
  }
  auto seg = WalSegment::ParseName(obj->name, segment_size_);
  if (!seg) {  // a name beyond this segment size's range
    others_.push_back(*obj);
    return;
  }
  Segment s;
  Bytes sha = HexDecode(obj->sha256);
  std::copy_n(sha.begin(), std::min<std::size_t>(sha.size(), 32), s.sha256.begin());
  s.compression = obj->compression;
  s.stored_size = info.size;
  if (info.modified) {
    s.modified =
        std::chrono::duration_cast<std::chrono::seconds>(info.modified->time_since_epoch()).count();
  }
  if (!t.segments.emplace(seg->segno, s).second) conflicts_.push_back(info.key);
}

void WalIndex::SetHistory(TimelineId tli, std::vector<HistoryEntry> history) {
  Timeline& t = timelines_[tli];
  t.history = std::move(history);
  if (!t.history_object) {
    WalFileName name{TimelineHex(tli) + ".history", WalFileKind::kHistory, tli};
    t.history_object =
        WalObject{WalObjectKey(stanza_, name, std::string(64, '0'), CompressionType::kNone),
                  name.name, std::string(64, '0'), CompressionType::kNone, 0};
  }
}

std::uint64_t WalIndex::segment_count() const {
  std::uint64_t n = 0;
  for (const auto& [tli, t] : timelines_) n += t.segments.size();
  return n;
}

WalObject WalIndex::ObjectOf(TimelineId tli, std::uint64_t segno, const Segment& s) const {
  WalObject o;
  o.name = WalSegment{tli, segno}.Name(segment_size_);
  o.sha256 = HexEncode(ByteView(s.sha256.data(), s.sha256.size()));
  o.compression = s.compression;
  o.stored_size = s.stored_size;
  o.key = WalObjectKey(stanza_, WalFileName{o.name, WalFileKind::kSegment, tli}, o.sha256,
                       s.compression);
  return o;
}

std::optional<WalObject> WalIndex::Find(TimelineId tli, std::uint64_t segno) const {
  auto t = timelines_.find(tli);
  if (t == timelines_.end()) return std::nullopt;
  auto s = t->second.segments.find(segno);
  if (s == t->second.segments.end()) return std::nullopt;
  return ObjectOf(tli, segno, s->second);
}

std::optional<WalSegment> WalIndex::Newest() const {
  for (auto it = timelines_.rbegin(); it != timelines_.rend(); ++it) {
    if (!it->second.segments.empty()) {
      return WalSegment{it->first, it->second.segments.rbegin()->first};
    }
  }
  return std::nullopt;
}

TimelineId WalIndex::LatestFrom(TimelineId start) const {
  TimelineId t = start;
  for (;;) {
    auto next = timelines_.find(t + 1);
    if (next == timelines_.end() || !next->second.history_object) return t;
    ++t;
  }
}

std::vector<TimelineStep> WalIndex::Path(TimelineId target) const {
  auto it = timelines_.find(target);
  // Without a history file PostgreSQL assumes the timeline has no parents; so do we.
  if (target == 1 || it == timelines_.end() || !it->second.history_object) {
    return {TimelineStep{target, Lsn{0}, std::nullopt}};
  }
  const Timeline& t = it->second;
  if (!t.history) {
    throw IntegrityError("the history file of timeline " + std::to_string(target) +
                         " cannot be read: " + t.history_problem);
  }
  std::vector<TimelineStep> path;
  Lsn begin{0};
  for (const auto& e : *t.history) {
    path.push_back({e.parent, begin, e.switch_lsn});
    begin = e.switch_lsn;
  }
  path.push_back({target, begin, std::nullopt});
  return path;
}

std::optional<std::string> WalIndex::PathProblem(TimelineId start_tli, Lsn from,
                                                 TimelineId target) const {
  std::vector<TimelineStep> path = Path(target);
  auto k = std::find_if(path.begin(), path.end(),
                        [&](const TimelineStep& s) { return s.timeline == start_tli; });
  if (k != path.end() && (!k->end || *k->end > from)) return std::nullopt;
  std::string why = k == path.end()
                        ? "timeline " + std::to_string(target) +
                              " does not descend from timeline " + std::to_string(start_tli)
                        : "timeline " + std::to_string(start_tli) + " ended at " +
                              k->end->ToString() + ", before " + from.ToString();
  return why + ": recovery from there cannot reach timeline " + std::to_string(target);
}

std::uint64_t WalIndex::RunEnd(TimelineId tli, std::uint64_t segno) const {
  auto& runs = runs_[tli];
  if (runs.empty()) {
    auto t = timelines_.find(tli);
    if (t != timelines_.end()) {
      for (auto it = t->second.segments.begin(); it != t->second.segments.end();) {
        std::uint64_t first = it->first, last = it->first;
        for (++it; it != t->second.segments.end() && it->first == last + 1; ++it) last = it->first;
        runs.emplace(first, last);
      }
    }
  }
  auto run = runs.upper_bound(segno);
  if (run == runs.begin()) return segno;
  --run;
  return run->second >= segno ? run->second : segno;
}

template <typename Visit>
WalReach WalIndex::Walk(TimelineId start_tli, Lsn from, TimelineId target, Visit* visit) const {
  if (auto problem = PathProblem(start_tli, from, target)) throw ConflictError(*problem);
  std::vector<TimelineStep> path = Path(target);
  auto k = std::find_if(path.begin(), path.end(),
                        [&](const TimelineStep& s) { return s.timeline == start_tli; });
  std::vector<Candidate> candidates;  // newest first
  for (auto s = path.end(); s != k;) {
    --s;
    Candidate c{s->timeline, (s == k ? from : s->begin).value / segment_size_, std::nullopt};
    if (s->end) c.last_segno = (s->end->value - 1) / segment_size_;
    candidates.push_back(c);
  }
  auto segments_of = [&](TimelineId tli) -> const std::map<std::uint64_t, Segment>* {
    auto t = timelines_.find(tli);
    return t == timelines_.end() ? nullptr : &t->second.segments;
  };
  WalReach reach;
  reach.end = from;
  reach.timeline = start_tli;
  for (std::uint64_t segno = from.value / segment_size_;; ++segno) {
    bool any = false;
    const Segment* found = nullptr;
    TimelineId found_tli = 0;
    for (const auto& c : candidates) {
      if (segno < c.first_segno || (c.last_segno && segno > *c.last_segno)) continue;
      any = true;
      const auto* segs = segments_of(c.timeline);
      if (segs == nullptr) continue;
      auto s = segs->find(segno);
      if (s != segs->end()) {
        found = &s->second;
        found_tli = c.timeline;
        break;
      }
    }
    if (!any) break;
    if (found == nullptr) {
      // A gap when WAL of the path exists beyond it; otherwise the end of the archive.
      for (const auto& c : candidates) {
        const auto* segs = segments_of(c.timeline);
        if (segs == nullptr) continue;
        auto after = segs->upper_bound(segno);
        if (after != segs->end() && (!c.last_segno || after->first <= *c.last_segno)) {
          reach.gap = WalSegment{candidates.front().timeline, segno};
          for (const auto& cc : candidates) {  // named on the timeline recovery looks at first
            if (segno >= cc.first_segno && (!cc.last_segno || segno <= *cc.last_segno)) {
              reach.gap = WalSegment{cc.timeline, segno};
              break;
            }
          }
          break;
        }
      }
      break;
    }
    std::uint64_t last = segno;
    if (visit != nullptr) {
      (*visit)(found_tli, segno, *found);
    } else {
      // Jump to the end of the contiguous run on this timeline -- but not past where the
      // path leaves it, nor past where a newer timeline of the path begins.
      last = RunEnd(found_tli, segno);
      for (const auto& c : candidates) {
        if (c.timeline == found_tli && c.last_segno) last = std::min(last, *c.last_segno);
        if (c.first_segno > segno) last = std::min(last, c.first_segno - 1);
      }
      found = &timelines_.at(found_tli).segments.at(last);  // archived last: the newest time
    }
    reach.end = Lsn{(last + 1) * segment_size_};
    reach.timeline = found_tli;
    reach.segments += last - segno + 1;
    if (found->modified != 0) {
      SystemTime t = std::chrono::system_clock::time_point(std::chrono::seconds(found->modified));
      if (!reach.newest_time || t > *reach.newest_time) reach.newest_time = t;
    }
    segno = last;
  }
  return reach;
}

std::vector<WalObject> WalIndex::SegmentsFrom(TimelineId start_tli, Lsn from,
                                              TimelineId target) const {
  std::vector<WalObject> out;
  auto visit = [&](TimelineId tli, std::uint64_t segno, const Segment& s) {
    out.push_back(ObjectOf(tli, segno, s));
  };
  Walk(start_tli, from, target, &visit);
  return out;
}

WalReach WalIndex::ReachFrom(TimelineId start_tli, Lsn from, TimelineId target) const {
  using NoVisit = void (*)(TimelineId, std::uint64_t, const Segment&);
  if (std::optional<std::string> problem = PathProblem(start_tli, from, target)) {
    WalReach r;
    r.end = from;
    r.timeline = start_tli;
    r.problem = *problem;
    return r;
  }
  return Walk<NoVisit>(start_tli, from, target, nullptr);
}

}  // namespace gravl::repo
