// restore: a backup into an empty data directory, configured to recover to a target through
// archive-get.
//
// Every file is verified against its SHA-256 before it is in place. pg_control and
// backup_label are written last, so an interrupted restore leaves a directory PostgreSQL
// refuses to start rather than one it would start inconsistently. The server's
// backup_manifest is kept, so pg_verifybackup can check the result.

#include <fcntl.h>
#include <signal.h>
#include <spdlog/spdlog.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <charconv>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <sstream>
#include <unordered_map>
#include <unordered_set>

#include "commands/cli.h"
#include "commands/commands.h"
#include "common/error.h"
#include "common/log.h"
#include "common/time_util.h"
#include "io/file.h"
#include "io/hash.h"
#include "io/workers.h"
#include "pg/connection.h"
#include "pg/instance.h"
#include "pg/recovery.h"
#include "pg/wal_records.h"
#include "repo/catalog.h"
#include "repo/file_list.h"
#include "repo/layout.h"
#include "repo/manifest.h"
#include "repo/wal.h"
#include "repo/wal_index.h"

namespace gravl::commands {
namespace fs = std::filesystem;
namespace {

bool IsHeldBack(std::string_view path) {
  return path == "global/pg_control" || path == "backup_label";
}

// Splits a bundle's content stream into its files, each verified on its own.
class BundleSplitter final : public io::Sink {
 public:
  struct Part {
    std::string path;  // absolute destination
    std::uint64_t size;
    std::string digest;  // of the content, of type `type`
    unsigned mode;
  };
  BundleSplitter(std::vector<Part> parts, io::DigestType type, std::string what)
      : parts_(std::move(parts)), type_(type), what_(std::move(what)) {
    Open();
  }
  void Write(ByteView data) override {
    while (!data.empty()) {
      if (index_ >= parts_.size())
        throw IntegrityError(what_ + ": bundle is longer than its files");
      std::size_t take = static_cast<std::size_t>(std::min<std::uint64_t>(data.size(), left_));
      chain_->head().Write(data.first(take));
      left_ -= take;
      data = data.subspan(take);
      if (left_ == 0) Next();
    }
  }
  void Finish() override {
    while (index_ < parts_.size() && parts_[index_].size == 0) Next();
    if (index_ != parts_.size()) throw IntegrityError(what_ + ": bundle is shorter than its files");
  }

 private:
  void Open() {
    while (index_ < parts_.size()) {
      const Part& p = parts_[index_];
      file_ = std::make_unique<io::AtomicFileSink>(
          p.path, io::AtomicFileOptions{.mode = p.mode, .durable = false});
      chain_ = std::make_unique<io::FilterChain>(*file_);
      chain_->Prepend<io::VerifySink>(p.digest, what_ + " (" + p.path + ")", type_);
      left_ = p.size;
      if (left_ > 0) return;
      chain_->head().Finish();
      ++index_;
    }
  }
  void Next() {
    chain_->head().Finish();
    ++index_;
    Open();
  }
  std::vector<Part> parts_;
  io::DigestType type_;
  std::string what_;
  std::size_t index_ = 0;
  std::uint64_t left_ = 0;
  std::unique_ptr<io::AtomicFileSink> file_;
  std::unique_ptr<io::FilterChain> chain_;
};

// `dir` without "." components, doubled or trailing slashes.
std::string NormalPath(const std::string& dir) {
  std::string n = fs::path(dir).lexically_normal().string();
  while (n.size() > 1 && n.back() == '/') n.pop_back();
  return n;
}

// A file list path as a path below its directory: without the leading "./" the server gives
// some ("./pg_wal/archive_status") and without a trailing slash.
std::string_view CanonicalEntryPath(std::string_view path) {
  while (path.starts_with("./")) path.remove_prefix(2);
  while (path.size() > 1 && path.back() == '/') path.remove_suffix(1);
  return path;
}

// The tablespace OID a data-directory link "pg_tblspc/<oid>" stands for; 0 for any other.
std::uint32_t TablespaceLinkOid(std::string_view path) {
  path = CanonicalEntryPath(path);
  if (!path.starts_with("pg_tblspc/")) return 0;
  path.remove_prefix(std::string_view("pg_tblspc/").size());
  std::uint32_t oid = 0;
  auto [end, ec] = std::from_chars(path.data(), path.data() + path.size(), oid);
  return ec == std::errc() && end == path.data() + path.size() ? oid : 0;
}

// What a repository's writer could otherwise choose: where a restore writes. Entries listed
// twice (or once as a directory and once as a link) and symbolic links anywhere but where
// PostgreSQL has them -- pg_tblspc/<oid>, pointing at that tablespace's recorded location --
// are refused before anything is written.
void CheckEntries(const repo::FileList& files,
                  const std::map<std::uint32_t, std::string>& locations, const std::string& what) {
  std::vector<std::uint32_t> order(files.size());
  for (std::uint32_t i = 0; i < order.size(); ++i) order[i] = i;
  auto key = [&](std::uint32_t i) {
    return std::make_pair(files[i].tablespace, CanonicalEntryPath(files[i].path));
  };
  std::sort(order.begin(), order.end(),
            [&](std::uint32_t a, std::uint32_t b) { return key(a) < key(b); });
  for (std::size_t i = 1; i < order.size(); ++i) {
    if (key(order[i]) == key(order[i - 1])) {
      throw IntegrityError(what + ": the file list has '" +
                           std::string(CanonicalEntryPath(files[order[i]].path)).substr(0, 200) +
                           "' twice: it is damaged or forged; nothing was written");
    }
  }
  for (const auto& f : files) {
    if (f.type != repo::FileEntry::Type::kLink) continue;
    std::uint32_t oid = f.tablespace == 0 ? TablespaceLinkOid(f.path) : 0;
    std::string path(f.path.substr(0, 200)), target(f.target.substr(0, 200));
    if (oid == 0) {
      throw IntegrityError(what + ": the file list has a symbolic link '" + path + "' -> '" +
                           target +
                           "'; PostgreSQL data directories have links only in pg_tblspc: the "
                           "list is damaged or forged; nothing was written");
    }
    auto it = locations.find(oid);
    if (it == locations.end() || it->second != f.target) {
      throw IntegrityError(
          what + ": the link '" + path + "' points to '" + target + "', but the manifest " +
          (it == locations.end()
               ? "has no tablespace " + std::to_string(oid)
               : "places tablespace " + std::to_string(oid) + " at '" + it->second + "'") +
          ": the backup is damaged or forged; nothing was written");
    }
  }
}

std::string SelfPath() {
  std::error_code ec;
  auto p = fs::read_symlink("/proc/self/exe", ec);
  return ec ? "gravl-dr" : p.string();
}

}  // namespace

std::string RestoreCommandFor(const Context& ctx, const std::string& repo_path, bool standby) {
  std::string cmd = SelfPath();
  if (ctx.config.source != "(no config file)") cmd += " --config " + ctx.config.source;
  if (ctx.config.source == "(no config file)") cmd += " --repo-path " + repo_path;
  // --repo: the restored server fetches WAL from that repository only -- the operator's choice
  // when another region is lost (otherwise a repository that cannot answer stops recovery
  // rather than let it end early at a file it may hold).
  if (ctx.repo_name) cmd += " --repo " + *ctx.repo_name;
  return cmd + " --stanza " + ctx.config.stanza + " archive-get" + (standby ? " --standby" : "") +
         " %f %p";
}

namespace {

void CheckTargetDirectory(const std::string& pgdata, bool delta) {
  std::error_code ec;
  if (fs::exists(pgdata + "/postmaster.pid", ec)) {
    std::ifstream pid_file(pgdata + "/postmaster.pid");
    long pid = 0;
    pid_file >> pid;
    if (pid > 0 && ::kill(static_cast<pid_t>(pid), 0) == 0) {
      throw ConflictError(pgdata + " belongs to a running PostgreSQL (pid " + std::to_string(pid) +
                          "); stop it first -- restore never writes under a running server");
    }
  }
  if (!fs::exists(pgdata, ec) || fs::is_empty(pgdata, ec)) return;
  if (!delta) {
    throw ConflictError(pgdata +
                        " is not empty; restore into an empty or new directory, or use --delta "
                        "to rewrite only what differs in an existing data directory");
  }
  if (!fs::exists(pgdata + "/PG_VERSION", ec)) {
    throw ConflictError(pgdata +
                        " is not empty and is not a PostgreSQL data directory (no "
                        "PG_VERSION); --delta only works on a data directory");
  }
}

struct TablespaceTarget {
  std::string name;  // empty for backups taken before names were recorded
  std::string dir;
  std::string Describe(std::uint32_t oid) const {
    return (name.empty() ? "tablespace " : "tablespace '" + name + "' (OID ") +
           std::to_string(oid) + (name.empty() ? "" : ")");
  }
};

// Where each tablespace of the backup goes: where it was, unless --tablespace-map or
// --tablespace-map-all say otherwise. Bad maps are usage errors, found before anything is
// written; so are a non-empty target directory (without --delta) and two tablespaces in one
// directory.
std::map<std::uint32_t, TablespaceTarget> TablespaceTargets(const repo::BackupManifest& manifest,
                                                            const RestoreOptions& options) {
  const std::string& label = manifest.label;
  std::map<std::uint32_t, TablespaceTarget> out;
  std::string known;
  for (const auto& t : manifest.tablespaces) {
    const std::string& location = t.location;
    if (location.empty() || location.front() != '/' || NormalPath(location) != location ||
        location == "/") {
      throw IntegrityError("backup " + label + ": tablespace " + std::to_string(t.oid) +
                           " has the location '" + location.substr(0, 200) +
                           "', which is not a normalised absolute path: the manifest is "
                           "damaged or forged; nothing was written");
    }
    std::uint32_t oid = t.oid;
    out[oid] = {t.name, location};
    known += (known.empty() ? "" : ", ") + out[oid].Describe(oid) + " at " + out[oid].dir;
  }
  if (known.empty()) known = "none";
  std::set<std::uint32_t> mapped;
  for (const auto& spec : options.tablespace_map) {
    auto eq = spec.find('=');
    if (eq == std::string::npos || eq == 0 || eq + 1 == spec.size()) {
      throw UsageError("--tablespace-map '" + spec + "': use NAME=DIR (NAME or OID)");
    }
    std::string key = spec.substr(0, eq), dir = spec.substr(eq + 1);
    if (dir.front() != '/') {
      throw UsageError("--tablespace-map " + spec + ": the directory must be an absolute path");
    }
    auto it = std::find_if(out.begin(), out.end(), [&](const auto& e) {
      return e.second.name == key || std::to_string(e.first) == key;
    });
    if (it == out.end()) {
      throw UsageError("--tablespace-map " + spec + ": backup " + label +
                       " has no tablespace named " + key + "; its tablespaces: " + known);
    }
    if (!mapped.insert(it->first).second) {
      throw UsageError("--tablespace-map: " + it->second.Describe(it->first) + " is mapped twice");
    }
    it->second.dir = dir;
  }
  if (!options.tablespace_map_all.empty()) {
    if (options.tablespace_map_all.front() != '/') {
      throw UsageError("--tablespace-map-all must be an absolute path");
    }
    for (auto& [oid, t] : out) {
      // Named after the tablespace, unless its name is no plain directory name.
      bool plain = !t.name.empty() && t.name != "." && t.name != ".." &&
                   t.name.find('/') == std::string::npos;
      if (!mapped.count(oid)) {
        t.dir = options.tablespace_map_all + "/" + (plain ? t.name : std::to_string(oid));
      }
    }
  }
  // No directory inside another (or the same): pgdata and every tablespace apart.
  auto normal = [](const std::string& dir) {
    std::string n = fs::path(dir).lexically_normal().string();
    while (n.size() > 1 && n.back() == '/') n.pop_back();
    return n;
  };
  auto within = [](const std::string& inner, const std::string& outer) {
    return inner == outer || inner.starts_with(outer == "/" ? outer : outer + "/");
  };
  std::vector<std::pair<std::string, std::string>> places = {
      {normal(options.pgdata), "the data directory " + options.pgdata}};
  for (auto& [oid, t] : out) {
    t.dir = normal(t.dir);
    for (const auto& [dir, desc] : places) {
      if (within(t.dir, dir) || within(dir, t.dir)) {
        throw UsageError(t.Describe(oid) + " would be restored into " + t.dir +
                         ", which overlaps " + desc + ": map it elsewhere with --tablespace-map");
      }
    }
    places.push_back({t.dir, t.Describe(oid) + " (" + t.dir + ")"});
  }
  for (const auto& [oid, t] : out) {
    std::error_code ec;
    if (!fs::exists(t.dir, ec) || fs::is_empty(t.dir, ec)) continue;
    std::string name = t.name.empty() ? std::to_string(oid) : t.name;
    // --delta rewrites a stopped data directory and its own tablespaces: the directory must
    // be where that data directory's link points, never a location in use by another server.
    std::string link = options.pgdata + "/pg_tblspc/" + std::to_string(oid);
    if (options.delta && fs::equivalent(link, t.dir, ec)) continue;
    throw ConflictError(
        t.Describe(oid) + " would be restored into " + t.dir + ", which is not empty" +
        (options.delta ? " and is not the tablespace of " + options.pgdata : "") +
        " (the tablespace is probably still in use there): restore it elsewhere with "
        "--tablespace-map " +
        name + "=DIR or --tablespace-map-all DIR, or empty the directory");
  }
  return out;
}

// Creates `dir` and its missing parents. Run as root, those it created go to PostgreSQL's
// user, which must be able to reach the directory (they are created with mode 0700).
void MakeServerDirs(const std::string& dir) {
  std::vector<std::string> created;
  std::error_code ec;
  for (fs::path d = dir; d.has_relative_path() && !fs::exists(d, ec); d = d.parent_path()) {
    created.push_back(d.string());
  }
  io::MakeDirs(dir);
  if (::geteuid() == 0) {
    for (const auto& d : created) pg::GiveToServerUser(d);
  }
}

// True when `path` already holds exactly this content (size, then digest).
bool SameContent(const std::string& path, std::uint64_t size, const std::string& digest,
                 io::DigestType type) {
  std::error_code ec;
  if (!fs::is_regular_file(path, ec) || fs::file_size(path, ec) != size || ec) return false;
  io::MappedFile mapped(path);
  return io::DigestHex(type, mapped.data()) == digest;
}

// syncfs() on the file system holding `path`; unlike sync(), it reports write-back errors.
void SyncFileSystem(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) throw StorageError(SysErrorText("cannot open " + path, errno));
  int rc = ::syncfs(fd);
  int err = errno;
  ::close(fd);
  if (rc != 0) {
    throw StorageError(
        SysErrorText("writing the restored files to disk failed (" + path + ")", err) +
        "; the restore is not complete");
  }
}

// ---- choosing the backup ----

// True when transaction `target` (as given: 32-bit, or a full xid8) is at or after the full
// transaction id `next` -- i.e. it was assigned after the point where `next` was read, so it
// committed later. 32-bit ids compare as PostgreSQL compares them (modulo 2^32).
bool XidAtOrAfter(std::uint64_t target, std::uint64_t next) {
  if (target > 0xFFFFFFFFu) return target >= next;
  auto diff = static_cast<std::int32_t>(static_cast<std::uint32_t>(target) -
                                        static_cast<std::uint32_t>(next));
  return diff >= 0;
}

TimelineId ResolveTimeline(const pg::TargetTimeline& choice, const repo::WalIndex& index,
                           const repo::BackupManifest& b) {
  switch (choice.kind) {
    case pg::TargetTimeline::Kind::kLatest:
      return index.LatestFrom(b.timeline);
    case pg::TargetTimeline::Kind::kCurrent:
      return b.timeline;
    case pg::TargetTimeline::Kind::kNumber:
      return choice.number;
  }
  return b.timeline;
}

// Restore points named `name` in the archived WAL recovery from `b` reads after its
// consistency point, in the order recovery meets them. Segments already read for another
// backup are not read again (`scanned`).
std::vector<pg::RestorePoint> RestorePointsAfter(
    repo::Repository& repo, const repo::WalIndex& index, const repo::BackupManifest& b,
    TimelineId target_tli, const std::string& name,
    std::map<std::string, std::vector<pg::RestorePoint>>& scanned) {
  std::uint64_t seg = index.segment_size();
  std::vector<repo::WalObject> segments =
      index.SegmentsFrom(b.timeline, Lsn{b.stop_lsn.value / seg * seg}, target_tli);
  std::size_t to_read = 0;
  for (const auto& s : segments) to_read += scanned.count(s.key) == 0 ? 1u : 0u;
  if (to_read > 0) {
    spdlog::info("looking for restore point '{}' in {} archived WAL segment(s) after backup {}",
                 name, to_read, b.label);
  }
  std::vector<pg::RestorePoint> out;
  pg::WalRecordScanner scanner(seg);
  for (const auto& s : segments) {
    auto known = scanned.find(s.key);
    if (known == scanned.end()) {
      io::BufferSink data;
      repo::ReadObject(repo.storage(), s.key, repo::ObjectFormat{s.compression, 0, repo.key()},
                       repo::Expected{s.sha256, std::nullopt}, data);
      std::size_t before = scanner.restore_points().size();
      scanner.AddSegment(*WalSegment::ParseName(s.name, seg), data.data());
      known =
          scanned
              .emplace(s.key, std::vector<pg::RestorePoint>(scanner.restore_points().begin() +
                                                                static_cast<std::ptrdiff_t>(before),
                                                            scanner.restore_points().end()))
              .first;
    } else {
      scanner = pg::WalRecordScanner(seg);  // a record continued from a skipped segment is lost
    }
    for (const auto& rp : known->second) {
      if (rp.name == name && rp.lsn >= b.stop_lsn) out.push_back(rp);
    }
  }
  return out;
}

struct Choice {
  repo::Repository* repo = nullptr;
  std::optional<repo::BackupManifest> backup;
  repo::RecoverableWindow window;
  std::string how;                 // why this backup, for the operator
  std::vector<std::string> notes;  // backups passed over and why
};

// Picks the newest backup in `repo` from which recovery reaches `target` (or the --set one,
// checked the same way). Returns a Choice without a backup, with notes, when none can;
// throws UsageError/NotFoundError for refusals that no other repository changes.
Choice ChooseIn(repo::Catalog& catalog, const RestoreOptions& options,
                const pg::RecoveryTarget& target, const pg::TargetTimeline& timeline) {
  using Kind = pg::RecoveryTarget::Kind;
  Choice c;
  c.repo = &catalog.repo();
  const std::vector<repo::BackupEntry>& backups = catalog.Backups();
  const repo::WalIndex& index = catalog.Wal();
  std::map<std::string, std::vector<pg::RestorePoint>> scanned;
  bool newest = true;
  for (auto it = backups.rbegin(); it != backups.rend(); ++it) {
    if (!options.set.empty() && it->label != options.set) continue;
    if (!it->ok()) {
      if (!options.set.empty()) {
        throw Error(it->problem_code,
                    "backup " + it->label + " cannot be restored: " + it->problem);
      }
      c.notes.push_back(it->label + " skipped: " + it->problem);
      newest = false;
      continue;
    }
    const repo::BackupManifest& b = *it->manifest;
    if (!b.full()) continue;  // logical dumps restore with --logical
    auto skip = [&](const std::string& why) {
      c.notes.push_back(b.label + " (consistent at " + FormatIso8601(b.stop_time) + ", LSN " +
                        b.stop_lsn.ToString() + "): " + why);
      newest = false;
    };
    TimelineId tli = ResolveTimeline(timeline, index, b);
    repo::RecoverableWindow reach = catalog.Window(b, tli);
    if (!reach.problem.empty()) {
      skip(reach.problem);
      continue;
    }
    if (!reach.consistent) {
      skip("the archived WAL it needs to become consistent is missing" +
           (reach.gap ? " (" + reach.gap->Name(index.segment_size()) + ")" : std::string("")));
      continue;
    }
    SystemTime window_end = reach.to_time;
    std::string window = FormatIso8601(b.stop_time) + " .. " + FormatIso8601(window_end) +
                         " (LSN " + b.stop_lsn.ToString() + " .. " + reach.to_lsn.ToString() + ")";
    switch (target.kind) {
      case Kind::kLatest:
      case Kind::kImmediate:
        break;
      case Kind::kTime:
        if (target.time < b.stop_time) {
          skip("finished after the target time; its recoverable window starts at " +
               FormatIso8601(b.stop_time));
          continue;
        }
        if (target.time > window_end) {
          skip(
              "the target time is after the newest WAL archived after it; its recoverable "
              "window is " +
              window);
          continue;
        }
        break;
      case Kind::kLsn:
        if (target.lsn < b.stop_lsn) {
          skip("consistent only after the target LSN");
          continue;
        }
        if (target.lsn > reach.to_lsn) {
          skip("the target LSN is beyond the archived WAL; its recoverable window is " + window +
               (reach.gap ? ", cut short by missing " + reach.gap->Name(index.segment_size())
                          : std::string("")));
          continue;
        }
        break;
      case Kind::kXid:
        if (!b.next_xid) {
          throw UsageError(
              "cannot tell whether backup " + b.label + " was taken before transaction " +
              std::to_string(target.xid) +
              " (it was taken by an older gravl-dr, which did not record transaction ids): "
              "choose the backup with --set LABEL");
        }
        if (!XidAtOrAfter(target.xid, *b.next_xid)) {
          skip("transaction " + std::to_string(target.xid) +
               " may have committed before it finished (its next transaction id was " +
               std::to_string(*b.next_xid) + ")");
          continue;
        }
        break;
      case Kind::kName: {
        auto points = RestorePointsAfter(catalog.repo(), index, b, tli, target.name, scanned);
        if (points.empty()) {
          skip("no restore point '" + target.name + "' in the archived WAL after it");
          continue;
        }
        c.how = "restore point '" + target.name + "' found at LSN " +
                points.front().lsn.ToString() + " (" + FormatIso8601(points.front().time) +
                ") on timeline " + std::to_string(points.front().timeline);
        break;
      }
    }
    c.backup = b;
    c.window = reach;
    std::string why = !options.set.empty() ? "--set"
                      : newest             ? "the newest backup"
                                           : "the newest backup that can reach the target";
    c.how = c.how.empty() ? why : why + "; " + c.how;
    return c;
  }
  return c;
}

// Chooses the backup across the configured repositories (both regions): the newest backup that
// reaches the target in any repository that can be read (the first repository's on a tie);
// a repository that cannot be read is reported and skipped. Throws when none reaches the
// target, saying why for each repository.
Choice ChooseBackup(std::vector<std::unique_ptr<repo::Repository>>& repos, const Context& ctx,
                    const RestoreOptions& options, const pg::RecoveryTarget& target,
                    const pg::TargetTimeline& timeline) {
  // Notes by repository: the chosen repository's are shown as they are, the others' named.
  std::vector<std::pair<const repo::Repository*, std::string>> notes;
  std::exception_ptr first_error;
  bool unread = false;  // a repository that failed part-way might hold the answer
  std::optional<Choice> best;
  for (auto& r : repos) {
    try {
      r->Stanza();
      r->Unlock(ctx.config.passphrase);
    } catch (const Error& e) {
      spdlog::warn("{}: {}", r->Describe(), Redact(e.what()));
      if (!first_error) first_error = std::current_exception();
      continue;
    }
    repo::Catalog catalog(*r);
    Choice c;
    try {
      c = ChooseIn(catalog, options, target, timeline);
    } catch (const StorageError& e) {
      // A region that fails part-way (timeouts, 5xx after the retries) is skipped like one
      // that cannot be opened.
      spdlog::warn("{}: {}", r->Describe(), Redact(e.what()));
      if (!first_error) first_error = std::current_exception();
      notes.emplace_back(r.get(), "cannot be read: " + Redact(e.what()));
      unread = true;
      continue;
    }
    for (const auto& n : c.notes) notes.emplace_back(r.get(), n);
    if (c.backup) {
      if (!best || c.backup->stop_time > best->backup->stop_time) {
        if (best) {
          notes.emplace_back(best->repo, best->backup->label + " is older than " + c.backup->label +
                                             " in " + r->Describe());
        }
        best = std::move(c);
      }
      continue;
    }
    if (c.notes.empty()) notes.emplace_back(r.get(), "no full backups");
  }
  auto text = [&](const std::pair<const repo::Repository*, std::string>& n) {
    return best && n.first == best->repo ? n.second : n.first->Describe() + ": " + n.second;
  };
  if (best) {
    best->notes.clear();
    for (const auto& n : notes) best->notes.push_back(text(n));
    return std::move(*best);
  }
  if (notes.empty() && first_error) {
    std::rethrow_exception(first_error);  // no repository could even be opened: say why
  }
  std::string why;
  for (const auto& n : notes) why += "\n  " + text(n);
  if (unread) {
    // Not "no backup": a repository could not be read, and a retry may find one (exit 8).
    throw StorageError("cannot choose a backup for the target " + target.Describe() +
                       " while a repository cannot be read; nothing was written; retry when "
                       "it is reachable:" +
                       why);
  }
  if (!options.set.empty()) {
    throw NotFoundError("backup '" + options.set + "' cannot reach the target " +
                        target.Describe() + "; nothing was written:" + why);
  }
  throw NotFoundError("no backup can reach the target " + target.Describe() +
                      "; nothing was written:" + why);
}

// The recovery configuration, decided before any file is written: nothing about it can fail
// after the files.
pg::RecoverySettings RecoverySettingsFor(const Context& ctx, const RestoreOptions& options,
                                         const repo::Repository& repo, const std::string& label,
                                         const pg::RecoveryTarget& target,
                                         const pg::TargetTimeline& timeline,
                                         const std::string& archive_mode) {
  pg::RecoverySettings settings;
  settings.restore_command = RestoreCommandFor(ctx, repo.config().path, options.standby);
  settings.primary_slot_name = options.primary_slot_name;
  settings.target = target;
  settings.timeline = timeline;
  settings.action = options.standby ? "" : options.target_action;
  settings.standby = options.standby;
  settings.primary_conninfo = options.primary_conninfo;
  settings.archive_off = archive_mode == "off";
  settings.comment =
      "restore of backup " + label + " at " + FormatIso8601(std::chrono::system_clock::now());
  return settings;
}

std::string WindowText(const repo::RecoverableWindow& window, std::uint64_t seg_size) {
  return FormatIso8601(window.from_time) + " .. " + FormatIso8601(window.to_time) + " (LSN " +
         window.from_lsn.ToString() + " .. " + window.to_lsn.ToString() + ", timeline " +
         std::to_string(window.target_timeline) +
         (window.gap ? ", cut short by missing WAL " + window.gap->Name(seg_size)
                     : std::string("")) +
         ")";
}

// Where each entry of the backup is written. pg_control and backup_label are restored under
// a pending name and put in place last, after everything else and the recovery settings:
// until then the directory cannot start.
struct Destinations {
  static constexpr const char* kPending = ".gravl-dr-pending";
  std::string pgdata;
  std::map<std::uint32_t, std::string> tablespace_dirs;  // by OID

  // Every entry's tablespace is checked before this is called.
  std::string Of(const repo::FileEntry& f) const {
    // "./pg_wal/archive_status" (so the server names it) is pg_wal/archive_status.
    std::string_view path = CanonicalEntryPath(f.path);
    if (f.tablespace == 0) return pgdata + "/" + std::string(path);
    return tablespace_dirs.at(f.tablespace) + "/" + std::string(path);
  }
  static bool HeldBack(const repo::FileEntry& f) {
    return f.type == repo::FileEntry::Type::kFile && f.tablespace == 0 && IsHeldBack(f.path);
  }
  std::string FileOf(const repo::FileEntry& f) const {
    return HeldBack(f) ? Of(f) + kPending : Of(f);
  }
};

// --delta: files already holding the right content stay; everything not in the backup goes
// (stale WAL, new relations), so the directory ends up exactly the backup. Anything of another
// type than the backup's entry goes too -- above all a symbolic link where the backup has a
// directory or a file: the restore never writes (or chmods) through a link the backup does
// not have. Runs before any directory is created.
void RemoveWhatTheBackupLacks(const repo::FileList& files, const Destinations& dest) {
  using Type = repo::FileEntry::Type;
  std::unordered_map<std::string, Type> wanted = {
      {dest.pgdata + "/backup_manifest", Type::kFile},
      {dest.pgdata + "/postgresql.auto.conf", Type::kFile}};
  for (const auto& f : files) {
    // pg_control and backup_label go too: until the pending copies are renamed at the end,
    // an interrupted delta restore must not leave a startable directory.
    if (!Destinations::HeldBack(f)) wanted.emplace(dest.Of(f), f.type);
  }
  // In tablespaces only what the backup has there (PG_<version>_<catalog version>): another
  // cluster may keep its own version directory in the same location.
  std::vector<std::string> roots = {dest.pgdata};
  for (const auto& f : files) {
    if (f.tablespace != 0 && f.type == Type::kDir &&
        CanonicalEntryPath(f.path).find('/') == std::string_view::npos) {
      roots.push_back(dest.Of(f));
    }
  }
  auto misplaced = [&](const fs::path& p) {
    auto it = wanted.find(p.string());
    if (it == wanted.end()) return true;
    std::error_code ec;
    fs::file_status st = fs::symlink_status(p, ec);
    switch (it->second) {
      case Type::kDir:
        return st.type() != fs::file_type::directory;
      case Type::kFile:
        return st.type() != fs::file_type::regular;
      case Type::kLink:
        return true;  // links are always made anew, pointing where this restore says
    }
    return true;
  };
  std::vector<fs::path> extra;
  for (const auto& root : roots) {
    std::error_code ec;
    if (root != dest.pgdata && fs::symlink_status(root, ec).type() == fs::file_type::symlink) {
      extra.push_back(root);
      continue;
    }
    if (!fs::exists(fs::symlink_status(root, ec))) continue;
    for (auto it = fs::recursive_directory_iterator(root); it != fs::recursive_directory_iterator();
         ++it) {
      if (misplaced(it->path())) {
        extra.push_back(it->path());
        it.disable_recursion_pending();
      } else if (it->is_symlink()) {
        it.disable_recursion_pending();
      }
    }
  }
  wanted = {};
  for (const auto& p : extra) {
    std::error_code ec;
    fs::remove_all(p, ec);  // a link is removed itself, never what it points to
    if (ec) throw StorageError("--delta: cannot remove " + p.string() + ": " + ec.message());
  }
  spdlog::info("--delta: removed {} entries that are not in the backup (or not as it has them)",
               extra.size());
}

// --delta: the jobs whose files do not already hold the backup's content; `skipped` counts
// the files left as they are.
std::vector<repo::ObjectToRead> JobsForChangedFiles(std::vector<repo::ObjectToRead> jobs,
                                                    const repo::FileList& files,
                                                    const Destinations& dest,
                                                    std::uint64_t& skipped) {
  std::vector<repo::ObjectToRead> needed;
  auto same_content = [&](const repo::FileEntry& f, std::uint64_t size) {
    return SameContent(dest.FileOf(f), size, files.ContentHex(f), files.content_digest());
  };
  for (auto& j : jobs) {
    bool same = true;
    if (j.file != nullptr) {
      same = same_content(*j.file, j.size);
    } else {
      for (auto i : j.parts) same = same && same_content(files[i], files[i].size);
    }
    if (same) {
      skipped += j.file != nullptr ? 1 : j.parts.size();
    } else {
      needed.push_back(std::move(j));
    }
  }
  return needed;
}

// Reads every planned object into place, in parallel, each verified as it is written.
void ReadObjects(const Context& ctx, repo::Repository& repo, const repo::BackupManifest& backup,
                 const repo::FileList& files, const Destinations& dest,
                 const std::vector<repo::ObjectToRead>& jobs) {
  const std::string prefix = repo::BackupObjectPrefix(repo.stanza(), backup.label);
  const repo::ObjectFormat format =
      repo::BackupObjectFormat({backup.compression, 0, repo.key()}, backup.format);
  auto run_job = [&](const repo::ObjectToRead& j) {
    std::string key = prefix + j.object;
    if (j.file != nullptr) {
      // Large files bypass the page cache: less CPU, and syncfs() at the end has little left.
      io::AtomicFileSink out(
          dest.FileOf(*j.file),
          io::AtomicFileOptions{.mode = j.file->mode & 0777, .durable = false, .direct_io = true});
      repo::ReadObject(repo.storage(), key, format, j.expected(), out);
    } else {
      std::vector<BundleSplitter::Part> parts;
      for (auto i : j.parts) {
        const repo::FileEntry& f = files[i];
        parts.push_back({dest.FileOf(f), f.size, files.ContentHex(f), f.mode & 0777});
      }
      BundleSplitter splitter(std::move(parts), files.content_digest(),
                              repo.storage().Describe() + "/" + key);
      repo::ReadObject(repo.storage(), key, format, j.expected(), splitter);
    }
  };
  auto errors =
      io::RunParallel(jobs.size(), ctx.config.parallel, [&](std::size_t i) { run_job(jobs[i]); });
  for (auto& e : errors) {
    if (e) std::rethrow_exception(e);
  }
  // PostgreSQL's own manifest, for pg_verifybackup.
  io::AtomicFileSink out(dest.pgdata + "/backup_manifest", io::AtomicFileOptions{.durable = false});
  repo::ReadObject(repo.storage(), prefix + "backup_manifest", format,
                   backup.backup_manifest.expected(backup.format), out);
}

// Everything is in place and verified: flush it all to disk, checking for write-back errors
// (syncfs reports them), and only then make the directory startable; as root, give it all to
// the server's user.
void MakeStartable(const Destinations& dest, const std::vector<std::string>& pending) {
  SyncFileSystem(dest.pgdata);
  for (const auto& [oid, dir] : dest.tablespace_dirs) SyncFileSystem(dir);
  for (const auto& p : pending) {
    std::string from = p + Destinations::kPending;
    if (::rename(from.c_str(), p.c_str()) != 0) {
      throw StorageError(SysErrorText("cannot rename " + from, errno));
    }
  }
  SyncFileSystem(dest.pgdata);
  if (::geteuid() != 0) return;
  auto give = [](const std::string& root) {
    pg::GiveToServerUser(root);
    for (const auto& e : fs::recursive_directory_iterator(root)) {
      if (!e.is_symlink()) pg::GiveToServerUser(e.path());
    }
  };
  give(dest.pgdata);
  for (const auto& [oid, dir] : dest.tablespace_dirs) give(dir);
}

}  // namespace

int Restore(const Context& ctx, const RestoreOptions& options, RestoreResult* result) {
  if (options.logical) return LogicalRestore(ctx, options);
  // Everything the operator asked for is checked before anything is read or written.
  if (!options.primary_conninfo.empty() && !options.standby) {
    throw UsageError("--primary-conninfo configures a streaming standby: add --standby");
  }
  if (options.pgdata.empty() || options.pgdata.front() != '/') {
    throw UsageError("--pgdata must be an absolute path");
  }
  const pg::RecoveryTarget target = pg::ParseRecoveryTarget(options.target);
  const pg::TargetTimeline timeline = pg::ParseTargetTimeline(options.target_timeline);
  std::string archive_mode =
      options.archive_mode.empty() ? (options.standby ? "preserve" : "off") : options.archive_mode;
  if (archive_mode != "off" && archive_mode != "preserve") {
    throw UsageError("--archive-mode must be 'off' or 'preserve'");
  }
  CheckTargetDirectory(options.pgdata, options.delta);

  auto repos = ctx.OpenRepos();
  const Choice chosen = ChooseBackup(repos, ctx, options, target, timeline);
  for (const auto& n : chosen.notes) spdlog::warn("passed over: {}", n);
  repo::Repository& repo = *chosen.repo;
  const repo::BackupManifest& backup = *chosen.backup;
  const std::string& label = backup.label;
  if (result != nullptr) {
    // Known from here on, also when the restore fails: a failed drill names its backup.
    result->label = label;
    result->repo = repo.config().name;
  }
  spdlog::info("restoring backup {} from {} into {} ({})", label, repo.Describe(), options.pgdata,
               chosen.how);
  const auto tablespaces = TablespaceTargets(backup, options);
  const pg::RecoverySettings settings =
      RecoverySettingsFor(ctx, options, repo, label, target, timeline, archive_mode);
  pg::RecoverySettings written = settings;
  if (options.pause_at_consistency) {
    written.target = pg::RecoveryTarget{};
    written.target.kind = pg::RecoveryTarget::Kind::kImmediate;
    written.action = "pause";
  }
  const repo::RecoverableWindow& window = chosen.window;
  const std::string window_text = WindowText(window, repo.Stanza().wal_segment_size);
  if (ctx.dry_run) {
    nlohmann::json ts = nlohmann::json::array();
    std::string ts_text;
    for (const auto& [oid, t] : tablespaces) {
      ts.push_back({{"oid", std::to_string(oid)}, {"name", t.name}, {"directory", t.dir}});
      ts_text += "  " + t.Describe(oid) + " into " + t.dir + "\n";
    }
    ctx.Emit({{"label", label},
              {"repo", repo.config().name},
              {"dry_run", true},
              {"chosen", chosen.how},
              {"passed_over", chosen.notes},
              {"target", target.Describe()},
              {"target_timeline", window.target_timeline},
              {"window", window_text},
              {"tablespaces", ts}},
             "would restore backup " + label + " from " + repo.Describe() +
                 "\n  chosen: " + chosen.how + "\n  target: " + target.Describe() +
                 "\n  recoverable: " + window_text + "\n" + ts_text);
    return 0;
  }

  auto started = std::chrono::steady_clock::now();
  repo::FileList files = repo::ReadFileList(repo, backup);  // verified
  const std::string what = repo.Describe() + ": backup " + label;
  Destinations dest{NormalPath(options.pgdata), {}};
  for (const auto& [oid, t] : tablespaces) dest.tablespace_dirs[oid] = t.dir;

  // The plan, checked whole before anything is written: one job per object. Destinations are
  // computed when a job runs, so the plan stays small.
  std::vector<repo::ObjectToRead> jobs =
      repo::PlanObjects(files, backup.bundles, [&](const repo::FileEntry& f) {
        throw IntegrityError(what + ": " + std::string(f.path) + " is in bundle " + f.ObjectName() +
                             ", which the manifest does not describe; nothing was written");
      });
  std::uint64_t total = 0;
  std::vector<std::string> pending;
  for (const auto& f : files) {
    if (f.tablespace != 0 && !dest.tablespace_dirs.count(f.tablespace)) {
      throw IntegrityError(what + ": " + std::string(f.path) + " is in tablespace " +
                           std::to_string(f.tablespace) +
                           ", which the manifest does not describe; nothing was written");
    }
    if (Destinations::HeldBack(f)) pending.push_back(dest.Of(f));
    if (f.type == repo::FileEntry::Type::kFile) total += f.size;
  }
  {
    std::map<std::uint32_t, std::string> recorded;  // where the backup found each tablespace
    for (const auto& t : backup.tablespaces) recorded[t.oid] = t.location;
    CheckEntries(files, recorded, what);
  }
  if (options.delta) RemoveWhatTheBackupLacks(files, dest);

  // Directories first, then files (held-back ones last), then symlinks.
  MakeServerDirs(options.pgdata);
  ::chmod(options.pgdata.c_str(), 0700);
  for (const auto& [oid, dir] : dest.tablespace_dirs) MakeServerDirs(dir);  // empty (or --delta)
  for (const auto& f : files) {
    if (f.type == repo::FileEntry::Type::kDir) {
      std::string d = dest.Of(f);
      io::MakeDirs(d);
      ::chmod(d.c_str(), static_cast<mode_t>(f.mode & 07777));
    }
  }
  std::uint64_t skipped = 0;
  if (options.delta) jobs = JobsForChangedFiles(std::move(jobs), files, dest, skipped);
  ReadObjects(ctx, repo, backup, files, dest, jobs);
  for (const auto& f : files) {
    if (f.type != repo::FileEntry::Type::kLink) continue;
    std::string link = dest.Of(f);
    // Only tablespace links get here (CheckEntries): to where the tablespace is restored.
    std::string link_target = dest.tablespace_dirs.at(TablespaceLinkOid(f.path));
    std::error_code ec;
    fs::remove(link, ec);
    fs::create_symlink(link_target, link);
  }
  files = {};

  // Recovery settings: every earlier one commented out, ours written whole.
  pg::RecoveryConfigResult conf = pg::WriteRecoveryConfig(options.pgdata, written);
  for (const auto& line : conf.replaced) {
    spdlog::info("postgresql.auto.conf: replaced earlier recovery setting: {}", Redact(line));
  }
  for (const auto& line : conf.overridden) {
    spdlog::info("postgresql.conf sets {}; overridden by the restore's settings", Redact(line));
  }
  MakeStartable(dest, pending);

  double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
  std::string target_text = target.Describe();
  spdlog::info("restored {} ({}) in {:.1f}s; start PostgreSQL to recover to {}", label,
               FormatBytes(total), seconds, target_text);
  std::ostringstream text;
  text << "restored backup " << label << " from " << repo.Describe() << " into " << options.pgdata
       << "\n  chosen: " << chosen.how;
  for (const auto& n : chosen.notes) text << "\n  passed over: " << n;
  text << "\n  target: " << target_text << " on timeline "
       << (timeline.kind == pg::TargetTimeline::Kind::kLatest
               ? "latest (now " + std::to_string(window.target_timeline) + ")"
               : timeline.Setting())
       << "\n  recoverable with the archived WAL: " << window_text;
  for (const auto& line : conf.replaced) {
    text << "\n  replaced earlier recovery setting: " << Redact(line);
  }
  for (const auto& line : conf.overridden) {
    text << "\n  overrides postgresql.conf: " << Redact(line);
  }
  text << "\n  archiving in the restored cluster: "
       << (settings.archive_off ? "off (--archive-mode preserve keeps the backup's setting)"
                                : "as in the backup")
       << "\n  " << FormatBytes(total) << " in " << seconds
       << " s\n  start PostgreSQL on it to recover (pg_ctl -D " << options.pgdata << " start)\n";
  if (result != nullptr) {
    // Drills compare row counts: the full manifest has them.
    *result = RestoreResult{label,   repo.config().name, repo::ReadManifest(repo, label),
                            seconds, settings,           window.to_lsn};
    return 0;
  }
  nlohmann::json replaced = nlohmann::json::array();
  for (const auto& line : conf.replaced) replaced.push_back(Redact(line));
  ctx.Emit({{"label", label},
            {"repo", repo.config().name},
            {"pgdata", options.pgdata},
            {"chosen", chosen.how},
            {"passed_over", chosen.notes},
            {"files_unchanged", skipped},
            {"target", target_text},
            {"target_timeline", timeline.Setting()},
            {"window", window_text},
            {"archive_mode", settings.archive_off ? "off" : "preserve"},
            {"replaced_settings", replaced},
            {"size", total},
            {"seconds", seconds}},
           text.str());
  return 0;
}

void AddTargetOptions(CLI::App* cmd, RestoreOptions& o) {
  // Values are kept as given: an empty --target-name is refused, not taken as no target.
  auto set = [](std::optional<std::string>& field) {
    return [&field](const std::string& v) { field = v; };
  };
  cmd->add_option_function<std::string>("--target", set(o.target.target),
                                        "'immediate' (the backup's consistency point) or 'latest' "
                                        "(the end of the archived WAL; the default)");
  cmd->add_option_function<std::string>(
      "--target-time", set(o.target.time),
      "recover to this time; a zone is required: '2026-03-04 02:00:00+00', "
      "'2026-03-04 02:00:00Z' or '2026-03-04 03:00:00 Europe/Berlin'");
  cmd->add_option_function<std::string>("--target-lsn", set(o.target.lsn),
                                        "recover to this LSN, e.g. 16/B374D848");
  cmd->add_option_function<std::string>(
      "--target-xid", set(o.target.xid),
      "recover to the commit of this transaction (txid_current() or pg_current_xact_id())");
  cmd->add_option_function<std::string>("--target-name", set(o.target.name),
                                        "recover to this restore point (pg_create_restore_point)");
  cmd->add_flag("--target-exclusive", o.target.exclusive,
                "stop just before the target instead of just after it "
                "(recovery_target_inclusive = off)");
  cmd->add_option("--target-timeline", o.target_timeline,
                  "timeline to recover along: 'latest' (default), 'current' (the backup's) or a "
                  "number");
}

void AddRestore(CLI::App& app, Invocation& inv) {
  auto options = std::make_shared<RestoreOptions>();
  RestoreOptions& o = *options;
  auto* cmd = app.add_subcommand(
      "restore",
      "Restore a backup into an empty data directory and configure recovery to a target "
      "through archive-get");
  cmd->add_option("--pgdata", o.pgdata, "data directory to create");
  cmd->add_flag("--logical", o.logical,
                "restore a logical backup (--set, --db, --target-db, optional --table)");
  cmd->add_option("--db", o.db, "logical: the database dump to restore");
  cmd->add_option("--table", o.tables, "logical: restore only this table (repeatable)");
  cmd->add_option("--target-db", o.target_db,
                  "logical: libpq connection string of the database to restore into");
  cmd->add_option("--set", o.set,
                  "backup label (default: the newest backup that can reach the target)");
  AddTargetOptions(cmd, o);
  cmd->add_option("--target-action", o.target_action, "what the server does at the target")
      ->check(CLI::IsMember({"promote", "pause", "shutdown"}))
      ->capture_default_str();
  cmd->add_option("--archive-mode", o.archive_mode,
                  "archiving in the restored cluster: 'off' (default; a copy must not "
                  "archive into the production repository) or 'preserve' (default with "
                  "--standby)")
      ->check(CLI::IsMember({"off", "preserve"}));
  cmd->add_flag("--standby", o.standby,
                "configure as a standby fed from the archive (standby.signal)");
  cmd->add_flag("--delta", o.delta,
                "restore over an existing (stopped) data directory, rewriting only files "
                "whose content differs and removing what the backup does not have");
  cmd->add_option("--tablespace-map", o.tablespace_map,
                  "NAME=DIR: restore tablespace NAME (or OID) into DIR instead of where it "
                  "was (repeatable)");
  cmd->add_option("--tablespace-map-all", o.tablespace_map_all,
                  "restore every tablespace not in --tablespace-map into DIR/<name>");
  cmd->add_option("--primary-conninfo", o.primary_conninfo,
                  "with --standby: also stream from this primary (primary_conninfo)");
  cmd->add_flag("--dry-run", inv.dry_run, "choose the backup and check the target only");
  cmd->callback([&inv, options] { inv.result = Restore(inv.MakeContext(), *options); });
}

}  // namespace gravl::commands
