// verify: re-reads every object of the chosen backups and of the WAL archive, checks every
// SHA-256 (and, with --full or for older formats, decryption and content), each manifest's
// completeness, and WAL continuity per timeline (the catalog's WAL index, following .history
// files) from each backup's start to the newest archived segment. It reports each backup's
// recoverable window and any gap that cuts it short.

#include <spdlog/spdlog.h>

#include <algorithm>
#include <map>
#include <mutex>
#include <set>
#include <sstream>

#include "commands/cli.h"
#include "commands/commands.h"
#include "commands/run_record.h"
#include "common/error.h"
#include "common/log.h"
#include "common/time_util.h"
#include "io/workers.h"
#include "repo/catalog.h"
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

// Problems found, by whom they were found (several threads), and whether something is
// damaged (exit 6) or only missing (exit 4).
class Findings {
 public:
  void Add(const std::string& msg, bool is_corrupt) {
    std::lock_guard lock(mutex_);
    errors_.push_back(msg);
    (is_corrupt ? corrupt_ : missing_) = true;
  }
  void Add(const Error& e) { Add(Redact(e.what()), e.code() != ExitCode::kNotFound); }
  // Rethrows each error of a RunParallel result into Add (the `index` names the item).
  template <typename Describe>
  void AddAll(const std::vector<std::exception_ptr>& results, Describe&& describe) {
    for (std::size_t i = 0; i < results.size(); ++i) {
      if (!results[i]) continue;
      try {
        std::rethrow_exception(results[i]);
      } catch (const Error& e) {
        std::string msg = describe(i, e);
        Add(msg.empty() ? Redact(e.what()) : msg, e.code() != ExitCode::kNotFound);
      }
    }
  }
  const std::vector<std::string>& errors() const { return errors_; }
  bool corrupt() const { return corrupt_; }
  bool missing() const { return missing_; }

 private:
  std::mutex mutex_;
  std::vector<std::string> errors_;
  bool corrupt_ = false, missing_ = false;
};

// Every WAL object re-read and verified against the SHA-256 in its name; history files that
// cannot be read are reported too. Returns the number of objects read.
std::size_t VerifyWal(repo::Catalog& catalog, int parallel, Findings& findings) {
  repo::Repository& repo = catalog.repo();
  const repo::WalIndex& index = catalog.Wal();
  std::vector<repo::WalObject> objects;
  for (const auto& [tli, t] : index.timelines()) {
    if (t.history_object) objects.push_back(*t.history_object);
    for (const auto& [segno, s] : t.segments) objects.push_back(*index.Find(tli, segno));
  }
  for (const auto& o : index.others()) objects.push_back(o);
  auto results = io::RunParallel(objects.size(), parallel, [&](std::size_t i) {
    io::NullSink discard;
    repo::ReadObject(repo.storage(), objects[i].key, {objects[i].compression, 0, repo.key()},
                     {objects[i].sha256, std::nullopt}, discard);
  });
  findings.AddAll(results, [](std::size_t, const Error&) { return std::string(); });
  for (const auto& [tli, t] : index.timelines()) {
    if (t.history_object && !t.history && !t.history_problem.empty()) {
      bool already = false;  // a damaged object was reported by the read above
      for (std::size_t i = 0; i < objects.size(); ++i) {
        already |= objects[i].key == t.history_object->key && results[i] != nullptr;
      }
      if (!already) findings.Add(Redact(t.history_problem), true);
    }
  }
  for (const auto& key : index.conflicts()) {
    findings.Add(repo.storage().Describe() + "/" + key +
                     ": a second copy of an archived WAL file with other content",
                 true);
  }
  return objects.size();
}

struct Checked {
  std::uint64_t objects = 0, bytes = 0;
};

// Every object of a full backup: by the SHA-256 of its stored bytes (format 3, unless
// `full`), or decoded, with each file's content checked (bundled files one by one).
Checked VerifyFullBackup(repo::Repository& repo, const repo::BackupManifest& m, bool full,
                         int parallel, Findings& findings) {
  Checked c;
  std::string prefix = repo::BackupObjectPrefix(repo.stanza(), m.label);
  repo::ObjectFormat format = repo::BackupObjectFormat({m.compression, 0, repo.key()}, m.format);
  repo::FileList files;  // one backup's at a time
  try {
    files = repo::ReadFileList(repo, m);
  } catch (const Error& e) {
    findings.Add(e);
  }
  if (m.file_list) {
    ++c.objects;
    c.bytes += m.file_list->object.size;
  }
  std::vector<repo::ObjectToRead> items =
      repo::PlanObjects(files, m.bundles, [&](const repo::FileEntry& f) {
        findings.Add(m.label + ": manifest lists " + std::string(f.path) + " in bundle " +
                         f.ObjectName() + ", which it does not describe",
                     false);
      });
  repo::Expected pg_manifest = m.backup_manifest.expected(m.format);
  items.push_back({"backup_manifest",
                   *pg_manifest.size,
                   pg_manifest.sha256,
                   pg_manifest.stored_size,
                   "",
                   {},
                   nullptr});
  // Format 3 records the SHA-256 of every object's stored bytes: checking those proves the
  // bytes are the ones written, without decoding them (as pgBackRest's verify checks its
  // repository checksums). --full also decodes and checks every file's content.
  const bool stored_only = !full && m.format >= 3;
  auto results = io::RunParallel(items.size(), parallel, [&](std::size_t i) {
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
        parts.push_back({std::string(files[p].path), files[p].size, files.ContentHex(files[p])});
      }
      BundleVerifier sink(std::move(parts), files.content_digest(), what);
      repo::ReadObject(repo.storage(), prefix + item.object, format, item.expected(), sink);
    }
  });
  c.objects += items.size();
  for (const auto& item : items) c.bytes += item.size;
  findings.AddAll(results, [&](std::size_t i, const Error& e) {
    return e.code() == ExitCode::kNotFound
               ? m.label + ": object " + items[i].object + " is missing (" + Redact(e.what()) + ")"
               : std::string();
  });
  return c;
}

// The dumps of a logical backup, decoded and checked against their content's SHA-256.
Checked VerifyLogicalBackup(repo::Repository& repo, const repo::BackupManifest& m,
                            Findings& findings) {
  Checked c;
  std::string prefix = repo::BackupObjectPrefix(repo.stanza(), m.label);
  repo::ObjectFormat format{m.compression, 0, repo.key()};
  std::vector<repo::ObjectRecord> items;
  for (const auto& d : m.databases) items.push_back(d.object);
  items.push_back(m.globals);
  for (const auto& d : items) {
    ++c.objects;
    c.bytes += d.size;
    try {
      io::NullSink sink;
      repo::ReadObject(repo.storage(), prefix + d.object, format, {d.sha256, d.size}, sink);
    } catch (const Error& e) {
      findings.Add(e);
    }
  }
  return c;
}

// The recoverable window of a full backup along the latest timeline, its WAL gaps reported.
// `outside_window`: retention keeps only the backup's own WAL (a tier's or a pin's backup),
// so WAL missing after its consistency point is expected, not a finding.
nlohmann::json VerifyWindow(repo::Catalog& catalog, const repo::BackupManifest& m,
                            bool outside_window, Findings& findings, std::ostringstream& text) {
  repo::RecoverableWindow w = catalog.Window(m);
  std::uint64_t seg_size = catalog.Wal().segment_size();
  std::optional<std::string> gap;
  if (w.gap) gap = w.gap->Name(seg_size);
  if (!w.problem.empty()) {
    findings.Add(m.label + ": " + w.problem, false);
  } else if (!w.consistent) {
    std::string missing_segment =
        gap ? *gap : WalSegment::FromLsn(m.timeline, w.to_lsn, seg_size).Name(seg_size);
    gap = missing_segment;
    findings.Add(m.label + ": WAL segment " + missing_segment +
                     " needed to make the backup consistent is missing: the backup cannot be "
                     "restored",
                 false);
  } else if (gap && outside_window) {
    text << "  note: " << m.label << " is kept by retention for itself (not for the PITR window): "
         << "restorable to its consistency point; later WAL expired\n";
  } else if (gap) {
    findings.Add(m.label + ": WAL gap at " + *gap + ": recovery from this backup stops at " +
                     w.to_lsn.ToString() + " instead of the end of the archive",
                 false);
  }
  text << "  backup " << m.label << ": recoverable from " << FormatIso8601(m.stop_time) << " (LSN "
       << m.stop_lsn.ToString() << ") to LSN " << w.to_lsn.ToString()
       << (gap ? " -- cut short by missing WAL " + *gap : std::string("")) << "\n";
  return {{"earliest_time", FormatIso8601(m.stop_time)},
          {"earliest_lsn", m.stop_lsn.ToString()},
          {"latest_lsn", w.to_lsn.ToString()},
          {"latest_time", FormatIso8601(w.to_time)},
          {"timeline", w.reached_timeline},
          {"gap", gap ? nlohmann::json(*gap) : nlohmann::json(nullptr)}};
}

// Per timeline: its segments, and the first (up to 20) missing between its first and last.
nlohmann::json TimelinesJson(const repo::WalIndex& index, std::ostringstream& text) {
  nlohmann::json timelines = nlohmann::json::array();
  std::uint64_t seg_size = index.segment_size();
  for (const auto& [tli, t] : index.timelines()) {
    const auto& segs = t.segments;
    if (segs.empty()) continue;
    std::uint64_t span = segs.rbegin()->first - segs.begin()->first + 1;
    std::vector<std::string> holes;
    for (std::uint64_t s = segs.begin()->first; s <= segs.rbegin()->first && holes.size() < 20;
         ++s) {
      if (!segs.count(s)) holes.push_back(WalSegment{tli, s}.Name(seg_size));
    }
    std::string first = WalSegment{tli, segs.begin()->first}.Name(seg_size);
    std::string last = WalSegment{tli, segs.rbegin()->first}.Name(seg_size);
    timelines.push_back({{"timeline", tli},
                         {"first", first},
                         {"last", last},
                         {"segments", segs.size()},
                         {"missing", span - segs.size()},
                         {"missing_first", holes}});
    text << "  wal timeline " << tli << ": " << first << " .. " << last << ", " << segs.size()
         << " segments"
         << (span > segs.size() ? ", " + std::to_string(span - segs.size()) + " MISSING" : "")
         << "\n";
  }
  return timelines;
}

}  // namespace

int Verify(const Context& ctx, const VerifyOptions& options) {
  nlohmann::json report_repos = nlohmann::json::array();
  std::ostringstream text;
  bool corrupt = false, missing = false, window_short = false;

  for (auto& r : ctx.OpenRepos()) {
    repo::Repository& repo = *r;
    repo.Stanza();
    repo.Unlock(ctx.config.passphrase);
    repo::Catalog catalog(repo);
    text << repo.Describe() << "\n";
    Findings findings;
    std::size_t wal_objects = VerifyWal(catalog, ctx.config.parallel, findings);
    std::size_t wal_errors = findings.errors().size();

    // Under a retention policy: which backups the window needs, and whether it is as long as
    // asked.
    std::optional<repo::RetentionPlan> plan;
    const repo::RetentionPolicy policy = RetentionPolicyOf(ctx.config);
    const SystemTime now = std::chrono::system_clock::now();
    if (ctx.config.retention.configured) {
      plan = catalog.Plan(policy, now);
    }
    auto outside_window = [&](const std::string& label) {
      const repo::BackupDecision* d = plan ? plan->Find(label) : nullptr;
      return d != nullptr &&
             std::find(d->reasons.begin(), d->reasons.end(), "pitr") == d->reasons.end();
    };

    nlohmann::json backups_json = nlohmann::json::array();
    for (const auto& b : catalog.Backups()) {
      if (!options.set.empty() && b.label != options.set) continue;
      std::size_t before = findings.errors().size();
      nlohmann::json window = nullptr;
      Checked checked;
      if (!b.ok()) {
        // Its own problem: reported, and the other backups are still verified.
        findings.Add(Redact(b.problem), b.problem_code != ExitCode::kNotFound);
        text << "  backup " << b.label << ": manifest cannot be used\n";
      } else if (b.manifest->full()) {
        checked = VerifyFullBackup(repo, *b.manifest, options.full, ctx.config.parallel, findings);
        window = VerifyWindow(catalog, *b.manifest, outside_window(b.label), findings, text);
      } else {
        checked = VerifyLogicalBackup(repo, *b.manifest, findings);
        text << "  backup " << b.label << " (logical): restorable as of "
             << FormatIso8601(b.manifest->stop_time) << "\n";
      }
      nlohmann::json errs_json = nlohmann::json::array();
      for (std::size_t i = before; i < findings.errors().size(); ++i) {
        errs_json.push_back(findings.errors()[i]);
        text << "    ERROR " << findings.errors()[i] << "\n";
      }
      backups_json.push_back(
          {{"label", b.label},
           {"type", b.ok() ? nlohmann::json(b.manifest->type) : nlohmann::json(nullptr)},
           {"ok", errs_json.empty()},
           {"objects_checked", checked.objects},
           {"bytes_checked", checked.bytes},
           {"window", window},
           {"errors", errs_json}});
    }
    if (!options.set.empty() && backups_json.empty()) {
      throw NotFoundError("backup " + options.set + " is not in " + repo.Describe());
    }
    nlohmann::json pitr = nullptr;
    if (plan && policy.pitr_window.count() > 0 && options.set.empty()) {
      const SystemTime wanted = now - policy.pitr_window;
      bool young = false;  // created less than a window ago: the window cannot be full yet
      try {
        young = ParseIso8601(repo.Stanza().created_at) > wanted;
      } catch (const Error&) {
      }
      const bool short_window =
          !plan->window_start || *plan->window_start > wanted + std::chrono::minutes(1);
      std::string from = plan->window_start ? FormatIso8601(*plan->window_start) : "(none)";
      pitr = {{"window_start", from},
              {"asked_from", FormatIso8601(wanted)},
              {"ok", !short_window || young}};
      if (short_window && !young) {
        window_short = true;
        std::string msg = "the guaranteed PITR window starts at " + from + ", not at " +
                          FormatIso8601(wanted) + " (retention.pitr_window " +
                          FormatDuration(policy.pitr_window) +
                          "): no valid full backup is consistent by then";
        text << "  ERROR " << msg << "\n";
        pitr["error"] = msg;
      } else {
        text << "  PITR window: from " << from
             << (short_window ? " (the repository is younger than the window)" : "") << "\n";
      }
    }
    nlohmann::json timelines = TimelinesJson(catalog.Wal(), text);
    for (const auto& l : catalog.Incomplete()) {
      text << "  note: " << l << " is an incomplete backup (ignored)\n";
    }
    io::StaleTemporaries stale = repo.StaleTemporaries("", false);
    if (!stale.paths.empty()) {
      text << "  note: " << stale.paths.size() << " temporary file(s) (" << FormatBytes(stale.bytes)
           << ") of writers that are gone, e.g. " << stale.paths.front()
           << "; the next backup removes them\n";
    }
    nlohmann::json wal_errors_json = nlohmann::json::array();
    for (std::size_t i = 0; i < wal_errors; ++i) {
      wal_errors_json.push_back(findings.errors()[i]);
      text << "  ERROR " << findings.errors()[i] << "\n";
    }
    report_repos.push_back(
        {{"repo", repo.config().name},
         {"location", repo.storage().Describe()},
         {"backups", backups_json},
         {"wal",
          {{"objects_checked", wal_objects},
           {"timelines", timelines},
           {"errors", wal_errors_json}}},
         {"incomplete_backups", catalog.Incomplete()},
         {"pitr_window", pitr},
         {"stale_temporaries", {{"files", stale.paths.size()}, {"bytes", stale.bytes}}},
         {"ok", findings.errors().empty()}});
    corrupt |= findings.corrupt();
    missing |= findings.missing();
  }
  bool ok = !corrupt && !missing && !window_short;
  text << (ok ? "verify passed\n" : "verify FAILED\n");
  if (ctx.run) {
    ctx.run->details = {{"corrupt", corrupt}, {"missing", missing}, {"window_short", window_short}};
  }
  ctx.Emit({{"ok", ok}, {"repos", report_repos}}, text.str());
  if (corrupt) return ToInt(ExitCode::kIntegrity);
  if (missing) return ToInt(ExitCode::kNotFound);
  if (window_short) return ToInt(ExitCode::kCheckFailed);
  return 0;
}

void AddVerify(CLI::App& app, Invocation& inv) {
  auto options = std::make_shared<VerifyOptions>();
  auto* cmd = app.add_subcommand(
      "verify",
      "Re-read and check every object of the backups and the WAL archive (SHA-256, "
      "decryption, completeness, WAL continuity) and report each backup's recoverable window");
  cmd->add_option("--set", options->set, "only this backup (label)");
  cmd->add_flag("--full", options->full,
                "also decrypt and decompress every object and check every file's content "
                "(XXH128); by default the SHA-256 of every object's stored bytes is checked");
  cmd->callback([&inv, options] {
    inv.result = RecordRun(inv.MakeContext(), repo::kVerifyReports, options->full ? "full" : "",
                           [&](const Context& ctx) { return Verify(ctx, *options); });
  });
}

}  // namespace gravl::commands
