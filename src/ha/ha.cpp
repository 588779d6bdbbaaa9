#include "ha/ha.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <cctype>
#include <fstream>
#include <sstream>
#include <thread>

#include "common/error.h"
#include "common/log.h"
#include "common/subprocess.h"
#include "common/time_util.h"
#include "io/stream.h"
#include "pg/connection.h"
#include "pg/wal_records.h"
#include "repo/layout.h"
#include "repo/object_io.h"
#include "repo/partial.h"
#include "repo/wal.h"

namespace gravl::ha {

std::string Probe::Describe() const {
  if (!reachable) return "unreachable: " + error;
  std::string s = role.in_recovery ? "standby" : (role.read_only ? "read-only primary" : "primary");
  s += " on timeline " + std::to_string(role.timeline);
  if (role.in_recovery) {
    s += ", received " + role.received.ToString() + ", replayed " + role.replayed.ToString();
    if (role.pause_state != "not paused") s += " (replay " + role.pause_state + ")";
    s += role.streaming ? ", streaming from " + role.sender : ", not streaming";
  } else {
    s += " at " + role.current.ToString();
  }
  return s;
}

Probe ProbeRegion(const RegionConfig& region, int connect_timeout_s) {
  Probe p;
  p.region = region.name;
  std::string conninfo = region.conninfo;
  if (conninfo.find("connect_timeout") == std::string::npos) {
    conninfo += " connect_timeout=" + std::to_string(connect_timeout_s);
  }
  try {
    auto conn = pg::Connection::Open(conninfo);
    p.role = pg::GetServerRole(*conn);
    p.reachable = true;
  } catch (const std::exception& e) {
    p.error = Redact(e.what());
    if (auto nl = p.error.find('\n'); nl != std::string::npos) p.error.resize(nl);
  }
  return p;
}

std::vector<RegionView> ViewRegions(const std::vector<RegionConfig>& regions,
                                    int connect_timeout_s) {
  std::vector<RegionView> views;
  const Probe* primary = nullptr;
  for (const auto& r : regions) {
    RegionView v;
    v.name = r.name;
    v.probe = ProbeRegion(r, connect_timeout_s);
    v.role = !v.probe.reachable         ? "unreachable"
             : v.probe.role.in_recovery ? "standby"
             : v.probe.role.read_only   ? "read-only primary"
                                        : "primary";
    views.push_back(std::move(v));
  }
  for (const auto& v : views) {
    if (v.probe.writable()) primary = &v.probe;
  }
  for (auto& v : views) {
    if (primary && v.probe.reachable && v.probe.role.in_recovery) {
      v.lag_bytes = primary->role.current > v.probe.role.replayed
                        ? primary->role.current.value - v.probe.role.replayed.value
                        : 0;
    }
  }
  return views;
}

Sameness SameServer(const std::string& conninfo, const std::string& data_dir) {
  if (data_dir.empty()) return Sameness::kNo;
  std::ifstream pid_file(data_dir + "/postmaster.pid");
  long postmaster = 0;
  if (!(pid_file >> postmaster) || postmaster <= 0) return Sameness::kNo;
  // The connection stays open while its backend's parent is read (closing it ends the
  // backend).
  std::unique_ptr<pg::Connection> conn;
  std::string backend;
  try {
    std::string ci = conninfo;
    if (ci.find("connect_timeout") == std::string::npos) ci += " connect_timeout=5";
    conn = pg::Connection::Open(ci);
    backend = pg::BackendPid(*conn);
  } catch (const std::exception&) {
    return Sameness::kUnknown;
  }
  auto ps = ReadProcessStat(std::stol(backend));
  if (!ps) return Sameness::kUnknown;  // not visible from here
  return ps->ppid == postmaster ? Sameness::kYes : Sameness::kNo;
}

Address AddressOf(const std::string& conninfo) {
  Address a{"localhost", "5432"};
  auto params = pg::ConninfoParams(conninfo);
  if (auto it = params.find("host"); it != params.end() && !it->second.empty()) a.host = it->second;
  if (auto it = params.find("hostaddr");
      it != params.end() && !it->second.empty() && params.count("host") == 0) {
    a.host = it->second;
  }
  if (auto it = params.find("port"); it != params.end() && !it->second.empty()) a.port = it->second;
  return a;
}

std::optional<std::uint64_t> ParseByteSize(const std::string& text) {
  std::size_t i = 0;
  while (i < text.size() && std::isdigit(static_cast<unsigned char>(text[i]))) ++i;
  if (i == 0 || i > 18) return std::nullopt;
  std::uint64_t n = std::stoull(text.substr(0, i));
  std::string unit = text.substr(i);
  while (!unit.empty() && unit.front() == ' ') unit.erase(0, 1);
  static const std::map<std::string, std::uint64_t> kUnits = {{"", 1},
                                                              {"B", 1},
                                                              {"kB", 1ULL << 10},
                                                              {"KB", 1ULL << 10},
                                                              {"MB", 1ULL << 20},
                                                              {"GB", 1ULL << 30},
                                                              {"TB", 1ULL << 40}};
  auto it = kUnits.find(unit);
  if (it == kUnits.end()) return std::nullopt;
  return n * it->second;
}

LossLimit ParseLossLimit(const std::string& text, const std::string& what) {
  LossLimit limit;
  limit.text = text;
  if (auto bytes = ParseByteSize(text)) {
    limit.bytes = *bytes;
    return limit;
  }
  try {
    limit.duration = ParseDuration(text, what);
    return limit;
  } catch (const Error&) {
  }
  throw UsageError(what + ": '" + text +
                   "' is neither a size (16MB, 512kB, 0) nor a duration (30s, 5m): give the "
                   "most WAL, or the most time of commits, a failover may lose");
}

std::optional<ArchivedEnd> NewestArchivedWal(const std::vector<repo::Repository*>& repos,
                                             TimelineId timeline, std::uint64_t segment_size,
                                             std::vector<std::string>* problems) {
  std::optional<ArchivedEnd> best;
  for (repo::Repository* r : repos) {
    try {
      // The newest segments of the timeline, by one listing of its folder.
      std::optional<repo::WalObject> newest;
      std::optional<WalSegment> newest_seg;
      for (const auto& o : storage::ListAll(
               r->storage(), repo::WalPrefix(r->stanza()) + TimelineHex(timeline) + "/")) {
        auto obj = repo::ParseWalObjectKey(o.key);
        if (!obj) continue;
        auto seg = WalSegment::ParseName(obj->name, segment_size);
        if (!seg || seg->timeline != timeline) continue;
        if (!newest_seg || seg->segno > newest_seg->segno) {
          newest_seg = seg;
          newest = obj;
        }
      }
      // The streaming receiver's partial segment after it (repo/partial.h): WAL whose commits
      // were acknowledged but that is not in a complete segment yet. archive-get serves it, so
      // a standby can replay it too.
      std::optional<WalSegment> partial_seg;
      for (const auto& o : storage::ListAll(
               r->storage(), repo::PartialPrefix(r->stanza()) + TimelineHex(timeline) + "/")) {
        auto c = repo::ParsePartialChunkKey(o.key, segment_size);
        if (!c || c->segment.timeline != timeline) continue;
        if (newest_seg && c->segment.segno != newest_seg->segno + 1) continue;
        if (!partial_seg || c->segment.segno > partial_seg->segno) partial_seg = c->segment;
      }
      if (!newest && !partial_seg) continue;
      pg::WalRecordScanner scanner(segment_size);
      std::string name;
      if (newest) {
        io::BufferSink sink;
        repo::ReadObject(r->storage(), newest->key,
                         repo::ObjectFormat{newest->compression, 0, r->key()},
                         repo::Expected{newest->sha256, std::nullopt}, sink);
        scanner.AddSegment(*newest_seg, sink.data());
        name = newest->name;
      }
      if (partial_seg) {
        if (auto p = repo::FindPartialSegment({r}, *partial_seg, segment_size)) {
          io::BufferSink sink;
          repo::ReadPartialSegment(*p, segment_size, sink);
          scanner.AddSegment(*partial_seg, sink.data());
          name = partial_seg->Name(segment_size) + " (partial, " + std::to_string(p->bytes) +
                 " bytes from wal-receive)";
        }
      }
      // A segment whose last record continues into the next one ends at its own end.
      Lsn end = scanner.end();
      if (!best || end > best->end) best = ArchivedEnd{end, r->config().name, name};
    } catch (const std::exception& e) {
      if (problems) problems->push_back(r->Describe() + ": " + Redact(e.what()));
    }
  }
  return best;
}

std::vector<repo::Repository*> Reachable(
    const std::vector<std::unique_ptr<repo::Repository>>& repos,
    const std::optional<std::string>& passphrase, std::vector<std::string>* problems) {
  std::vector<repo::Repository*> out;
  for (const auto& r : repos) {
    try {
      r->Stanza();
      r->Unlock(passphrase);
      out.push_back(r.get());
    } catch (const std::exception& e) {
      spdlog::warn("{} cannot be used: {}", r->Describe(), Redact(e.what()));
      if (problems) problems->push_back(r->Describe() + ": " + Redact(e.what()));
    }
  }
  return out;
}

repo::Repository* Named(const std::vector<repo::Repository*>& repos, const std::string& name) {
  for (auto* r : repos) {
    if (r->config().name == name) return r;
  }
  return nullptr;
}

bool WaitFor(std::chrono::seconds timeout, const std::function<bool()>& done) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  while (true) {
    if (done()) return true;
    if (std::chrono::steady_clock::now() >= deadline) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
  }
}

std::optional<repo::HistoryEntry> ArchivedSwitchPoint(repo::Repository& repo, TimelineId timeline) {
  repo::WalFileName file{TimelineHex(timeline) + ".history", repo::WalFileKind::kHistory, timeline};
  auto objects = repo::FindWalObjects(repo.storage(), repo.stanza(), file);
  if (objects.empty()) return std::nullopt;
  const auto& obj = objects.front();
  io::BufferSink sink;
  repo::ReadObject(repo.storage(), obj.key, repo::ObjectFormat{obj.compression, 0, repo.key()},
                   repo::Expected{obj.sha256, std::nullopt}, sink);
  auto entries = repo::ParseHistory(AsChars(sink.data()), repo.Describe() + "/" + obj.key);
  if (entries.empty()) {
    throw IntegrityError(repo.Describe() + "/" + obj.key + " is an empty timeline history");
  }
  return entries.back();
}

}  // namespace gravl::ha
