// verify: re-reads every object of the chosen backups and of the WAL archive, checks every
// SHA-256 (and decryption), each manifest's completeness, and WAL continuity per timeline
// (following .history files) from each backup's start to the newest archived segment. It
// reports each backup's recoverable window and any gap that cuts it short.

#include <spdlog/spdlog.h>

#include <map>
#include <mutex>
#include <set>
#include <sstream>

#include "commands/commands.h"
#include "common/error.h"
#include "common/log.h"
#include "io/workers.h"
#include "repo/file_list.h"
#include "repo/layout.h"
#include "repo/manifest.h"
#include "repo/wal.h"

namespace gravl::commands {
namespace {

// Verifies each file of a bundle on its own while discarding the bytes.
class BundleVerifier final : public io::Sink {
 public:
  struct Part {
    std::string path;
    std::uint64_t size;
    std::string digest;  // of the content, of type `type`
  };
  BundleVerifier(std::vector<Part> parts, io::DigestType type, std::string what)
      : parts_(std::move(parts)),
        type_(type),
        what_(std::move(what)),
        digest_(std::make_unique<io::Digest>(type)) {}
  void Write(ByteView data) override {
    while (!data.empty()) {
      while (index_ < parts_.size() && parts_[index_].size == consumed_) Close();
      if (index_ >= parts_.size()) throw IntegrityError(what_ + ": longer than its files");
      std::size_t take = static_cast<std::size_t>(
          std::min<std::uint64_t>(data.size(), parts_[index_].size - consumed_));
      digest_->Update(data.first(take));
      consumed_ += take;
      data = data.subspan(take);
    }
  }
  void Finish() override {
    while (index_ < parts_.size() && parts_[index_].size == consumed_) Close();
    if (index_ != parts_.size()) throw IntegrityError(what_ + ": shorter than its files");
  }

 private:
  void Close() {
    std::string got = digest_->FinalHex();
    if (got != parts_[index_].digest) {
      throw IntegrityError(what_ + ": file " + parts_[index_].path + " has " +
                           io::DigestName(type_) + " " + got + ", the manifest says " +
                           parts_[index_].digest);
    }
    ++index_;
    consumed_ = 0;
    digest_ = std::make_unique<io::Digest>(type_);
  }
  std::vector<Part> parts_;
  io::DigestType type_;
  std::string what_;
  std::size_t index_ = 0;
  std::uint64_t consumed_ = 0;
  std::unique_ptr<io::Digest> digest_;
};

struct HistoryEntry {
  TimelineId parent;
  Lsn switch_lsn;  // the new timeline starts here
};

// Parses a timeline history file: "parentTLI<TAB>switchpoint<TAB>reason" lines.
std::vector<HistoryEntry> ParseHistory(const std::string& text) {
  std::vector<HistoryEntry> out;
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line)) {
    if (line.empty() || line[0] == '#') continue;
    std::istringstream fields(line);
    std::string tli, lsn;
    if (!(fields >> tli >> lsn)) continue;
    out.push_back({static_cast<TimelineId>(std::stoul(tli)), Lsn::Parse(lsn)});
  }
  return out;
}

}  // namespace

int Verify(const Context& ctx, const VerifyOptions& options) {
  nlohmann::json report_repos = nlohmann::json::array();
  std::ostringstream text;
  bool corrupt = false, missing = false;

  for (auto& r : ctx.OpenRepos()) {
    repo::Repository& repo = *r;
    repo.Stanza();
    repo.Unlock(ctx.config.passphrase);
    std::uint64_t seg_size = repo.Stanza().wal_segment_size;
    text << repo.Describe() << "\n";
    std::mutex mutex;
    std::vector<std::string> errors;
    auto fail = [&](const std::string& msg, bool is_corrupt) {
      std::lock_guard lock(mutex);
      errors.push_back(msg);
      (is_corrupt ? corrupt : missing) = true;
    };

    // ---- WAL: every object re-read and verified ----
    std::map<TimelineId, std::map<std::uint64_t, repo::WalObject>> segments;
    std::map<TimelineId, std::vector<HistoryEntry>> histories;
    std::vector<repo::WalObject> wal_objects;
    for (const auto& info : storage::ListAll(repo.storage(), repo::WalPrefix(repo.stanza()))) {
      auto obj = repo::ParseWalObjectKey(info.key);
      if (obj) wal_objects.push_back(*obj);
    }
    auto wal_errors = io::RunParallel(wal_objects.size(), ctx.config.parallel, [&](std::size_t i) {
      const auto& obj = wal_objects[i];
      io::BufferSink keep;
      io::NullSink discard;
      auto file = repo::ParseWalFileName(obj.name);
      bool history = file->kind == repo::WalFileKind::kHistory;
      repo::ReadObject(repo.storage(), obj.key, {obj.compression, 0, repo.key()},
                       {obj.sha256, std::nullopt},
                       history ? static_cast<io::Sink&>(keep) : discard);
      std::lock_guard lock(mutex);
      if (history) {
        histories[file->timeline] = ParseHistory(std::string(AsChars(keep.data())));
      } else if (file->kind == repo::WalFileKind::kSegment) {
        segments[file->timeline][WalSegment::ParseName(obj.name, seg_size)->segno] = obj;
      }
    });
    for (std::size_t i = 0; i < wal_errors.size(); ++i) {
      if (!wal_errors[i]) continue;
      try {
        std::rethrow_exception(wal_errors[i]);
      } catch (const Error& e) {
        fail(Redact(e.what()), e.code() != ExitCode::kNotFound);
      }
    }

    // Newest timeline and its chain of parents (from its history file).
    TimelineId newest_tli = segments.empty() ? 0 : segments.rbegin()->first;
    std::map<TimelineId, Lsn> switch_of;  // timeline -> LSN where its child begins
    if (histories.count(newest_tli)) {
      const auto& h = histories[newest_tli];
      for (std::size_t i = 0; i < h.size(); ++i) switch_of[h[i].parent] = h[i].switch_lsn;
    }

    // ---- backups ----
    std::vector<std::string> incomplete;
    auto backups = repo::ListBackups(repo, &incomplete);
    nlohmann::json backups_json = nlohmann::json::array();
    for (const auto& b : backups) {
      if (!options.set.empty() && b.label != options.set) continue;
      if (!b.ok()) {
        // Its own problem: reported, and the other backups are still verified.
        fail(Redact(b.problem), b.problem_code != ExitCode::kNotFound);
        text << "  backup " << b.label << ": manifest cannot be used\n    ERROR " << errors.back()
             << "\n";
        backups_json.push_back({{"label", b.label},
                                {"type", nullptr},
                                {"ok", false},
                                {"objects_checked", 0},
                                {"bytes_checked", 0},
                                {"window", nullptr},
                                {"errors", {errors.back()}}});
        continue;
      }
      const nlohmann::json& m = b.manifest->raw;  // a summary; the file list is read on its own
      std::string prefix = repo::BackupObjectPrefix(repo.stanza(), b.label);
      std::size_t before = errors.size();
      std::uint64_t objects = 0, bytes = 0;
      if (m["type"] == "full") {
        const int manifest_format = repo::ManifestFormat(m);
        repo::ObjectFormat format = repo::BackupObjectFormat(
            {ParseCompression(m["compression"]), 0, repo.key()}, manifest_format);
        repo::FileList files;  // one backup's at a time
        try {
          files = repo::ReadFileList(repo, b.label, m);
        } catch (const Error& e) {
          fail(Redact(e.what()), e.code() != ExitCode::kNotFound);
        }
        if (m.contains("file_list")) {
          ++objects;
          bytes += m["file_list"].value("size", std::uint64_t{0});
        }
        std::vector<repo::ObjectToRead> items =
            repo::PlanObjects(files, m["bundles"], [&](const repo::FileEntry& f) {
              fail(b.label + ": manifest lists " + std::string(f.path) + " in bundle " +
                       f.ObjectName() + ", which it does not describe",
                   false);
            });
        repo::Expected pg_manifest = repo::RecordExpected(m.at("backup_manifest"), manifest_format);
        items.push_back({"backup_manifest",
                         *pg_manifest.size,
                         pg_manifest.sha256,
                         pg_manifest.stored_size,
                         "",
                         {},
                         nullptr});
        // Format 3 records the SHA-256 of every object's stored bytes: checking those proves
        // the bytes are the ones written, without decoding them (as pgBackRest's verify checks
        // its repository checksums). --full also decodes and checks every file's content.
        const bool stored_only = !options.full && manifest_format >= 3;
        auto errs = io::RunParallel(items.size(), ctx.config.parallel, [&](std::size_t i) {
          const repo::ObjectToRead& item = items[i];
          std::string what = repo.storage().Describe() + "/" + prefix + item.object;
          if (stored_only) {
            repo::CheckStoredObject(repo.storage(), prefix + item.object, item.expected());
          } else if (item.parts.empty()) {
            io::NullSink sink;
            repo::ReadObject(repo.storage(), prefix + item.object, format, item.expected(), sink);
          } else {
            std::vector<BundleVerifier::Part> parts;
            for (auto p : item.parts) {
              parts.push_back(
                  {std::string(files[p].path), files[p].size, files.ContentHex(files[p])});
            }
            BundleVerifier sink(std::move(parts), files.content_digest(), what);
            repo::ReadObject(repo.storage(), prefix + item.object, format, item.expected(), sink);
          }
        });
        for (std::size_t i = 0; i < errs.size(); ++i) {
          ++objects;
          bytes += items[i].size;
          if (!errs[i]) continue;
          try {
            std::rethrow_exception(errs[i]);
          } catch (const Error& e) {
            std::string msg = Redact(e.what());
            if (e.code() == ExitCode::kNotFound)
              msg = b.label + ": object " + items[i].object + " is missing (" + msg + ")";
            fail(msg, e.code() != ExitCode::kNotFound);
          }
        }
      } else {
        repo::ObjectFormat format{ParseCompression(m["compression"]), 0, repo.key()};
        std::vector<nlohmann::json> items(m["databases"].begin(), m["databases"].end());
        items.push_back(m["globals"]);
        for (const auto& d : items) {
          ++objects;
          bytes += d["size"].get<std::uint64_t>();
          try {
            io::NullSink sink;
            repo::ReadObject(repo.storage(), prefix + d["object"].get<std::string>(), format,
                             {d["sha256"], d.value("size", std::uint64_t{0})}, sink);
          } catch (const Error& e) {
            fail(Redact(e.what()), e.code() != ExitCode::kNotFound);
          }
        }
      }

      // Recoverable window: consistent at the stop LSN; then as far as WAL is contiguous.
      nlohmann::json window = nullptr;
      if (m["type"] == "full") {
        TimelineId tli = m["timeline"];
        Lsn start = Lsn::Parse(m["start_lsn"].get<std::string>());
        Lsn stop = Lsn::Parse(m["stop_lsn"].get<std::string>());
        bool included = m["wal"]["included"];
        std::uint64_t segno = WalSegment::FromLsn(tli, start, seg_size).segno;
        std::uint64_t stop_segno = WalSegment::FromLsn(tli, Lsn{stop.value - 1}, seg_size).segno;
        std::optional<std::string> gap;
        Lsn reach = stop;
        std::optional<SystemTime> reach_time;
        TimelineId cur = tli;
        if (included) segno = stop_segno + 1;
        for (;;) {
          auto& segs = segments[cur];
          std::uint64_t last_on_tli = segs.empty() ? 0 : segs.rbegin()->first;
          std::optional<std::uint64_t> switch_segno;
          if (cur != newest_tli && switch_of.count(cur)) {
            switch_segno = WalSegment::FromLsn(cur, switch_of[cur], seg_size).segno;
          }
          std::uint64_t end = switch_segno ? *switch_segno : last_on_tli;
          bool broken = false;
          for (; segno <= end; ++segno) {
            if (!segs.count(segno)) {
              // The switch segment may exist only on the child timeline.
              if (switch_segno && segno == *switch_segno) break;
              gap = WalSegment{cur, segno}.Name(seg_size);
              broken = true;
              break;
            }
            reach = Lsn{(segno + 1) * seg_size};
          }
          if (broken || !switch_segno) break;
          cur = cur + 1;
          while (cur < newest_tli && !switch_of.count(cur) && segments[cur].empty()) ++cur;
          segno = *switch_segno;
        }
        if (gap && WalSegment::ParseName(*gap, seg_size)->segno <= stop_segno && !included) {
          fail(b.label + ": WAL segment " + *gap +
                   " needed to make the backup consistent is "
                   "missing: the backup cannot be restored",
               false);
        } else if (gap) {
          fail(b.label + ": WAL gap at " + *gap + ": recovery from this backup stops at " +
                   reach.ToString() + " instead of the end of the archive",
               false);
        }
        window = {{"earliest_time", m["stop_time"]},
                  {"earliest_lsn", m["stop_lsn"]},
                  {"latest_lsn", reach.ToString()},
                  {"timeline", cur},
                  {"gap", gap ? nlohmann::json(*gap) : nlohmann::json(nullptr)}};
        text << "  backup " << b.label << ": recoverable from " << m["stop_time"].get<std::string>()
             << " (LSN " << m["stop_lsn"].get<std::string>() << ") to LSN " << reach.ToString()
             << (gap ? " -- cut short by missing WAL " + *gap : std::string("")) << "\n";
      } else {
        text << "  backup " << b.label << " (logical): restorable as of "
             << m["stop_time"].get<std::string>() << "\n";
      }
      nlohmann::json errs_json = nlohmann::json::array();
      for (std::size_t i = before; i < errors.size(); ++i) {
        errs_json.push_back(errors[i]);
        text << "    ERROR " << errors[i] << "\n";
      }
      backups_json.push_back({{"label", b.label},
                              {"type", m["type"]},
                              {"ok", errs_json.empty()},
                              {"objects_checked", objects},
                              {"bytes_checked", bytes},
                              {"window", window},
                              {"errors", errs_json}});
    }
    if (!options.set.empty() && backups_json.empty()) {
      throw NotFoundError("backup " + options.set + " is not in " + repo.Describe());
    }
    nlohmann::json timelines = nlohmann::json::array();
    for (const auto& [tli, segs] : segments) {
      if (segs.empty()) continue;
      std::uint64_t span = segs.rbegin()->first - segs.begin()->first + 1;
      std::vector<std::string> holes;
      for (std::uint64_t s = segs.begin()->first; s <= segs.rbegin()->first && holes.size() < 20;
           ++s) {
        if (!segs.count(s)) holes.push_back(WalSegment{tli, s}.Name(seg_size));
      }
      timelines.push_back({{"timeline", tli},
                           {"first", segs.begin()->second.name},
                           {"last", segs.rbegin()->second.name},
                           {"segments", segs.size()},
                           {"missing", span - segs.size()},
                           {"missing_first", holes}});
      text << "  wal timeline " << tli << ": " << segs.begin()->second.name << " .. "
           << segs.rbegin()->second.name << ", " << segs.size() << " segments"
           << (span > segs.size() ? ", " + std::to_string(span - segs.size()) + " MISSING" : "")
           << "\n";
    }
    for (const auto& l : incomplete)
      text << "  note: " << l << " is an incomplete backup (ignored)\n";
    io::StaleTemporaries stale = repo.StaleTemporaries("", false);
    if (!stale.paths.empty()) {
      text << "  note: " << stale.paths.size() << " temporary file(s) (" << FormatBytes(stale.bytes)
           << ") of writers that are gone, e.g. " << stale.paths.front()
           << "; the next backup removes them\n";
    }
    nlohmann::json wal_errors_json = nlohmann::json::array();
    for (const auto& e : errors) {
      if (e.find("/wal/") != std::string::npos) {
        wal_errors_json.push_back(e);
        text << "  ERROR " << e << "\n";
      }
    }
    report_repos.push_back(
        {{"repo", repo.config().name},
         {"location", repo.storage().Describe()},
         {"backups", backups_json},
         {"wal",
          {{"objects_checked", wal_objects.size()},
           {"timelines", timelines},
           {"errors", wal_errors_json}}},
         {"incomplete_backups", incomplete},
         {"stale_temporaries", {{"files", stale.paths.size()}, {"bytes", stale.bytes}}},
         {"ok", errors.empty()}});
  }
  bool ok = !corrupt && !missing;
  text << (ok ? "verify passed\n" : "verify FAILED\n");
  ctx.Emit({{"ok", ok}, {"repos", report_repos}}, text.str());
  if (corrupt) return ToInt(ExitCode::kIntegrity);
  if (missing) return ToInt(ExitCode::kNotFound);
  return 0;
}

}  // namespace gravl::commands
