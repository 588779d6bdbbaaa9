// backup --type full: a physical base backup over the replication protocol.
//
// BASE_BACKUP's tar streams are parsed on the fly. Files of at least kBundleThreshold bytes
// become one object each (files/<n>); smaller files are appended to a bundle (bundles/<n>,
// closed at kBundleLimit), so 100,000 small files do not mean 100,000 objects. Every file's
// content is checksummed as it arrives (XXH128 for the file list, CRC-32C for PostgreSQL's
// backup_manifest); every object goes through the pipeline (compression -> encryption ->
// SHA-256 of the stored bytes, manifest format 3). PostgreSQL's own
// backup_manifest is stored too. The manifest is written last, after the WAL from the start
// to the stop LSN is known to be in the repository (or was included in the backup): a
// backup without a manifest is not a backup, and `info`/`restore` ignore it.

#include <spdlog/spdlog.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <deque>
#include <future>
#include <map>
#include <sstream>
#include <thread>
#include <unordered_map>

#include "commands/cli.h"
#include "commands/commands.h"
#include "commands/run_record.h"
#include "common/error.h"
#include "common/log.h"
#include "common/time_util.h"
#include "io/crc32c.h"
#include "io/serial_worker.h"
#include "pg/backup_manifest.h"
#include "pg/base_backup.h"
#include "pg/connection.h"
#include "pg/queries.h"
#include "pg/tar.h"
#include "repo/catalog.h"
#include "repo/file_list.h"
#include "repo/layout.h"
#include "repo/lock.h"
#include "repo/manifest.h"
#include "repo/wal.h"

namespace gravl::commands {
namespace {

constexpr std::uint64_t kBundleThreshold = 64 * 1024;
constexpr std::uint64_t kBundleLimit = 32 * 1024 * 1024;
constexpr std::uint64_t kParallelThreshold = 4 * 1024 * 1024;

// Progress on a terminal: bytes, rate, ETA. Silent when stderr is not a terminal or in JSON
// mode.
class Progress {
 public:
  explicit Progress(bool enabled) : enabled_(enabled && ::isatty(2)) {}
  void SetTotal(std::uint64_t total) { total_ = total; }
  void Update(std::uint64_t done) {
    if (!enabled_) return;
    auto now = std::chrono::steady_clock::now();
    if (now - last_ < std::chrono::milliseconds(250)) return;
    last_ = now;
    double secs = std::chrono::duration<double>(now - start_).count();
    double rate = secs > 0 ? static_cast<double>(done) / secs : 0;
    std::string eta = "?";
    if (rate > 0 && total_ > done) {
      eta = std::to_string(static_cast<long>(static_cast<double>(total_ - done) / rate)) + "s";
    }
    std::fprintf(stderr, "\r  %s / %s  %s/s  ETA %s   ", FormatBytes(done).c_str(),
                 FormatBytes(total_).c_str(), FormatBytes(static_cast<std::uint64_t>(rate)).c_str(),
                 eta.c_str());
  }
  void Done() {
    if (enabled_) std::fprintf(stderr, "\r%80s\r", "");
  }

 private:
  bool enabled_;
  std::uint64_t total_ = 0;
  std::chrono::steady_clock::time_point start_ = std::chrono::steady_clock::now();
  std::chrono::steady_clock::time_point last_{};
};

// One repository object written on the backup's worker thread: created by its first task
// (so creating directories and files does not hold up the parser), finished by its last.
class WorkerObject final : public io::Sink {
 public:
  WorkerObject(storage::Storage& storage, std::string key, const repo::ObjectFormat& format)
      : storage_(storage), key_(std::move(key)), format_(format) {}
  void Write(ByteView data) override { Open().Write(data); }
  void Finish() override {
    Open().Finish();
    result_ = writer_->result();
    writer_.reset();  // frees the compression context now, not at the end of the backup
  }
  // Valid once the worker ran Finish().
  const repo::StoredObject& result() const { return result_; }

 private:
  repo::ObjectWriter& Open() {
    if (!writer_) {
      writer_ = std::make_unique<repo::ObjectWriter>(storage_, key_, format_);
    }
    return *writer_;
  }
  storage::Storage& storage_;
  std::string key_;
  repo::ObjectFormat format_;
  std::unique_ptr<repo::ObjectWriter> writer_;
  repo::StoredObject result_;
};

// With `parallel: 2` (the default) two threads share the work: this one receives and parses
// the stream and checksums every file (XXH128 and CRC-32C, about 14 GB/s each), a store
// worker compresses, encrypts, hashes (SHA-256 of the stored bytes) and writes the objects.
// Above 2, large files are also compressed by parallel - 2 more threads. Large files' data
// goes from libpq's buffers to the worker without a copy; its queue is bounded (kQueueBytes).
// A file's end does not wait for its object: objects' SHA-256s and stored sizes are collected
// in Close(). The server sends its backup_manifest without checksums of its own; gravl-dr's
// CRC-32Cs go into it.
class BackupWriter final : public pg::BaseBackupReceiver, public pg::TarHandler {
 public:
  BackupWriter(repo::Repository& repo, std::string label, const Config& config, Progress& progress)
      : repo_(repo),
        prefix_(repo::BackupObjectPrefix(repo.stanza(), label)),
        format_(repo::BackupObjectFormat(repo.Format(config.compression, config.compression_level),
                                         repo::kManifestFormat)),
        compress_workers_(std::max(0, config.parallel - 2)),
        progress_(progress) {}
  // Unfinished (an error, the server gone): the worker gives up its queued writes.
  ~BackupWriter() override { worker_.Cancel(); }

  // ---- BaseBackupReceiver ----
  void OnStart(const pg::BaseBackupResult& start) override {
    spdlog::debug("backup started at {} on timeline {}", start.start_lsn.ToString(),
                  start.start_tli);
    std::uint64_t total = 0;
    for (const auto& t : start.tablespaces) total += t.size_bytes;
    progress_.SetTotal(total);
  }
  void OnArchiveStart(const std::string& name, const std::string& tablespace_path) override {
    spdlog::debug("receiving {}", name);
    if (!tablespace_path.empty()) {
      tablespace_oid_ = static_cast<std::uint32_t>(std::stoul(name.substr(0, name.find('.'))));
      tablespaces_.push_back({tablespace_oid_, tablespace_path, ""});
    } else {
      tablespace_oid_ = 0;
    }
    tar_ = std::make_unique<pg::TarReader>(*this);
  }
  void OnArchiveData(ByteView data, const std::shared_ptr<const void>& owner) override {
    owner_ = &owner;  // the file data OnData() gets lies in this buffer
    struct Reset {
      const std::shared_ptr<const void>** p;
      ~Reset() { *p = nullptr; }
    } reset{&owner_};
    tar_->Write(data);
  }
  void OnArchiveEnd() override {
    tar_->Finish();
    tar_.reset();
  }
  // PostgreSQL's backup_manifest comes last: every file's CRC-32C is known and goes into it.
  void OnManifestData(ByteView data) override {
    if (!pg_manifest_sink_) {
      pg_manifest_ = NewObject("backup_manifest", format_);
      pg_manifest_sink_ = std::make_unique<io::QueuedSink>(*pg_manifest_, worker_);
      pg_manifest_filter_ = std::make_unique<pg::ManifestChecksumFilter>(
          *pg_manifest_sink_, "CRC32C",
          [this](const std::string& path) -> std::optional<std::string> {
            const repo::FileEntry* f = manifest_paths_.Find(path);
            if (f == nullptr) return std::nullopt;
            return io::Crc32cManifestHex(f->crc32c);
          });
    }
    pg_manifest_filter_->Write(data);
  }
  void OnProgress(std::uint64_t done) override { progress_.Update(done); }

  // ---- TarHandler ----
  void OnEntry(const pg::TarEntry& e) override {
    repo::FileEntry entry;
    entry.path = e.path;
    entry.mode = e.mode;
    entry.mtime = e.mtime;
    entry.tablespace = tablespace_oid_;
    size_ += e.size;
    switch (e.type) {
      case pg::TarEntryType::kDirectory:
        entry.type = repo::FileEntry::Type::kDir;
        break;
      case pg::TarEntryType::kSymlink:
        entry.type = repo::FileEntry::Type::kLink;
        entry.target = e.link_target;
        break;
      case pg::TarEntryType::kFile:
        entry.type = repo::FileEntry::Type::kFile;
        entry.size = e.size;
        break;
    }
    std::size_t index = files_.size();
    current_ = &files_.Add(entry);  // the list keeps copies of the names
    if (entry.type != repo::FileEntry::Type::kFile) return;
    crc_ = io::Crc32c();
    xxh_ = std::make_unique<io::Xxh128>();
    if (e.size >= kBundleThreshold) {
      current_->object = ++file_count_;
      repo::ObjectFormat format = format_;
      if (e.size >= kParallelThreshold) format.workers = compress_workers_;
      WorkerObject* object = NewObject(current_->ObjectName(), format);
      file_sink_ = std::make_unique<io::QueuedSink>(*object, worker_);
      file_results_.push_back({index, object});
    } else {
      if (bundle_sink_ && bundle_size_ + e.size > kBundleLimit) CloseBundle();
      if (!bundle_sink_) {
        bundle_name_ = repo::ObjectName(true, ++bundle_count_);
        bundle_object_ = NewObject(bundle_name_, format_);
        bundle_sink_ = std::make_unique<io::QueuedSink>(*bundle_object_, worker_);
        bundle_size_ = 0;
      }
      current_->bundled = true;
      current_->object = bundle_count_;
      current_->offset = bundle_size_;
      bundle_size_ += e.size;
    }
  }
  void OnData(ByteView data) override {
    crc_.Update(data);
    xxh_->Update(data);
    if (file_sink_) {
      file_sink_->Write(data, owner_ != nullptr ? *owner_ : nullptr);  // shared, not copied
    } else {
      bundle_sink_->Write(data);
    }
  }
  void OnEntryEnd() override {
    if (current_->type != repo::FileEntry::Type::kFile) return;
    if (file_sink_) {
      file_sink_->Finish();  // posted; SHA-256 and stored size are collected in Close()
      file_sink_.reset();
    }
    current_->crc32c = crc_.value();
    current_->SetXxh128Hex(xxh_->FinalHex());
    xxh_.reset();
  }

  // Waits for the worker and collects the objects' results.
  void Close() {
    spdlog::debug("data received; closing");
    CloseBundle();
    if (!pg_manifest_sink_) throw PgError("the server sent no backup manifest");
    pg_manifest_filter_->Finish();
    spdlog::debug("CRC-32C of {} files added to backup_manifest{}", pg_manifest_filter_->files(),
                  manifest_paths_.indexed() ? " (out of order: all paths indexed)" : "");
    worker_.Wait();
    for (const auto& [index, object] : file_results_) {
      files_[index].stored_size = object->result().stored_size;
      files_[index].SetSha256Hex(object->result().sha256);
      stored_size_ += object->result().stored_size;
    }
    for (const auto& [name, object] : bundle_results_) {
      const auto& r = object->result();
      bundles_.push_back({name, r.sha256, r.size, r.stored_size});
      stored_size_ += r.stored_size;
    }
    stored_size_ += pg_manifest_->result().stored_size;
  }

  const repo::StoredObject& pg_manifest() const { return pg_manifest_->result(); }

  repo::FileList files_;
  std::vector<repo::ObjectRecord> bundles_;
  std::vector<repo::TablespaceRecord> tablespaces_;
  std::uint64_t size_ = 0;
  std::uint64_t stored_size_ = 0;

 private:
  // Queued work, a bound on memory. Small enough that the worker reads what the parser wrote
  // while it is still in the CPU's cache; large enough to ride out a slow write.
  static constexpr std::size_t kQueueBytes = 8 * 1024 * 1024;

  WorkerObject* NewObject(const std::string& name, const repo::ObjectFormat& format) {
    objects_.push_back(std::make_unique<WorkerObject>(repo_.storage(), prefix_ + name, format));
    return objects_.back().get();
  }
  void CloseBundle() {
    if (!bundle_sink_) return;
    bundle_sink_->Finish();
    bundle_sink_.reset();
    bundle_results_.push_back({bundle_name_, bundle_object_});
  }

  repo::Repository& repo_;
  std::string prefix_;
  repo::ObjectFormat format_;
  int compress_workers_;
  Progress& progress_;
  std::unique_ptr<pg::TarReader> tar_;
  std::uint32_t tablespace_oid_ = 0;
  repo::FileEntry* current_ = nullptr;                  // in files_
  io::Crc32c crc_;                                      // of the current file
  std::unique_ptr<io::Xxh128> xxh_;                     // of the current file
  const std::shared_ptr<const void>* owner_ = nullptr;  // of the data being parsed
  // Objects outlive the worker's tasks: declared before worker_, destroyed after it.
  std::deque<std::unique_ptr<WorkerObject>> objects_;
  io::SerialWorker worker_{kQueueBytes};
  std::unique_ptr<io::QueuedSink> file_sink_;
  WorkerObject* bundle_object_ = nullptr;
  std::unique_ptr<io::QueuedSink> bundle_sink_;
  std::string bundle_name_;
  std::uint64_t bundle_size_ = 0;
  WorkerObject* pg_manifest_ = nullptr;
  std::unique_ptr<io::QueuedSink> pg_manifest_sink_;
  std::unique_ptr<pg::ManifestChecksumFilter> pg_manifest_filter_;
  repo::ManifestPathLookup manifest_paths_{files_};
  std::vector<std::pair<std::size_t, WorkerObject*>> file_results_;
  std::vector<std::pair<std::string, WorkerObject*>> bundle_results_;
  std::uint32_t file_count_ = 0;
  std::uint32_t bundle_count_ = 0;
};

// Row counts of every user table in every database, for restore drills: exact for tables
// under kExactCountLimit rows (by the planner's estimate), estimated above that.
constexpr double kExactCountLimit = 2e6;

// Plain records (a JSON tree of 50,000 tables would be 20 MB).
std::vector<repo::TableRecord> RowCountsForDrills(const std::string& conninfo,
                                                  pg::Connection& sql) {
  std::vector<repo::TableRecord> tables;
  for (const auto& db : pg::Databases(sql)) {
    auto conn = pg::Connection::Open(pg::ConninfoWithDbname(conninfo, db));
    std::vector<pg::UserTable> found = pg::UserTables(*conn);
    std::vector<pg::RowCountRequest> exact;  // tables counted exactly
    std::vector<std::size_t> exact_index;
    for (std::size_t i = 0; i < found.size(); ++i) {
      if (found[i].estimate < kExactCountLimit) {
        exact.push_back({found[i].quoted, false});
        exact_index.push_back(i);
      }
    }
    std::vector<std::uint64_t> counts = pg::CountRows(*conn, exact);
    std::size_t next_exact = 0;
    for (std::size_t i = 0; i < found.size(); ++i) {
      bool is_exact = next_exact < exact_index.size() && exact_index[next_exact] == i;
      std::uint64_t rows = is_exact                ? counts[next_exact++]
                           : found[i].estimate < 0 ? 0
                                                   : static_cast<std::uint64_t>(found[i].estimate);
      tables.push_back({db, found[i].schema, found[i].table, rows, is_exact});
    }
  }
  return tables;
}

}  // namespace

int Backup(const Context& ctx, const BackupOptions& options) {
  if (options.type == "logical") return LogicalBackup(ctx, options);
  if (options.type != "full") {
    throw UsageError("backup type '" + options.type + "' is not supported: use full or logical");
  }
  auto target = ctx.OpenBackupTarget();
  repo::Repository& repo = *target.repo;
  const repo::StanzaInfo& stanza = repo.Stanza();
  auto& sql = target.sql;
  const pg::ClusterIdentity& id = target.id;
  pg::ArchiveSettings settings = pg::GetArchiveSettings(*sql);
  bool archived = !id.in_recovery && settings.archive_mode != "off" &&
                  settings.archive_command.find("archive-push") != std::string::npos;
  // Without gravl-dr archiving (or from a standby, which cannot switch WAL), the backup
  // carries the WAL it needs itself, so it restores to a consistent state on its own.
  bool include_wal = !archived;

  auto now = std::chrono::system_clock::now();
  std::string label = FormatCompact(now) + "-full";
  if (ctx.dry_run) {
    ctx.Emit({{"label", label}, {"dry_run", true}, {"wal_included", include_wal}},
             "would take full backup " + label + " into " + repo.Describe() + "\n");
    return 0;
  }
  auto lock = repo::StanzaLock::Acquire(repo.storage(), repo.stanza(), "backup", "backup");

  // Folders of interrupted backups (no manifest) are removed: nothing refers to them (with
  // any temporary files in them); so are temporary files that killed archive-pushes left.
  for (const auto& old : repo::ListIncompleteBackups(repo)) {
    spdlog::info("removing interrupted backup {}", old);
    repo.storage().DeletePrefix(repo::BackupObjectPrefix(repo.stanza(), old));
  }
  repo.StaleTemporaries("wal", true);
  if (repo.storage().Stat(repo::ManifestKey(repo.stanza(), label))) {
    throw ConflictError("a backup labelled " + label + " already exists; try again in a second");
  }

  spdlog::info("starting full backup {} of {} into {}{}", label,
               RedactConninfo(ctx.config.pg_conninfo), repo.Describe(),
               include_wal ? " (WAL included)" : "");
  auto start_clock = std::chrono::steady_clock::now();
  // Row counts for drills, on connections of their own while the data streams (a database
  // with tens of thousands of tables takes seconds to count).
  std::future<std::vector<repo::TableRecord>> table_counts = std::async(std::launch::async, [&ctx] {
    auto conn = pg::Connection::Open(ctx.config.pg_conninfo);
    return RowCountsForDrills(ctx.config.pg_conninfo, *conn);
  });
  // Tablespace names, for restores that put tablespaces elsewhere (--tablespace-map NAME=DIR):
  // asked now, as this connection may not survive hours of streaming.
  std::map<std::string, std::string> tablespace_names = pg::TablespaceNames(*sql);  // by OID
  Progress progress(ctx.output == OutputFormat::kText);
  BackupWriter writer(repo, label, ctx.config, progress);
  auto replication = pg::Connection::Open(ctx.config.pg_conninfo, true);
  pg::BaseBackupOptions bb;
  bb.label = "gravl-dr " + label;
  bb.fast_checkpoint = options.fast_checkpoint;
  bb.include_wal = include_wal;
  pg::BaseBackupResult result = pg::RunBaseBackup(*replication, bb, writer);
  // Transactions with an id from here on committed after the stop LSN: restores to an xid
  // choose a backup by it. On a connection of its own (the first may not survive hours of
  // streaming); a backup whose server cannot answer is still a backup, without it.
  std::optional<std::uint64_t> next_xid;
  try {
    next_xid = pg::NextTransactionId(*sql);
  } catch (const PgError&) {
  }
  try {
    if (!next_xid) next_xid = pg::NextTransactionId(*pg::Connection::Open(ctx.config.pg_conninfo));
  } catch (const PgError& e) {
    spdlog::warn(
        "cannot record the next transaction id ({}): restores to an xid will need "
        "--set for this backup",
        Redact(e.what()));
  }
  writer.Close();
  progress.Done();
  for (auto& t : writer.tablespaces_) {
    auto it = tablespace_names.find(std::to_string(t.oid));
    if (it != tablespace_names.end()) t.name = it->second;
  }
  auto stop_time = std::chrono::system_clock::now();

  std::uint64_t seg_size = stanza.wal_segment_size;
  WalSegment first = WalSegment::FromLsn(result.start_tli, result.start_lsn, seg_size);
  WalSegment last = WalSegment::FromLsn(result.stop_tli, Lsn{result.stop_lsn.value - 1}, seg_size);
  if (!include_wal) {
    spdlog::info("waiting for WAL {} .. {} in {}", first.Name(seg_size), last.Name(seg_size),
                 repo.Describe());
    try {
      repo::Catalog(repo).WaitForWal(result.stop_tli, result.start_lsn, result.stop_lsn,
                                     std::chrono::seconds(ctx.config.archive_timeout));
    } catch (const StorageError& e) {
      throw StorageError(std::string(e.what()) +
                         " (the backup needs it; it is not complete and is not listed)");
    }
  }

  std::size_t file_count = writer.files_.size();
  repo::StoredObject file_list = repo::WriteFileList(repo, label, writer.files_);
  writer.stored_size_ += file_list.stored_size;
  writer.files_ = {};  // its memory goes back before the manifest is built
  repo::BackupManifest manifest = ctx.NewManifest(repo, label, "full", id, now);
  manifest.stop_time = stop_time;
  manifest.start_lsn = result.start_lsn;
  manifest.stop_lsn = result.stop_lsn;
  manifest.timeline = result.start_tli;
  manifest.stop_timeline = result.stop_tli;
  manifest.from_standby = id.in_recovery;
  manifest.wal_included = include_wal;
  manifest.wal_start_segment = first.Name(seg_size);
  manifest.wal_stop_segment = last.Name(seg_size);
  manifest.next_xid = next_xid;
  manifest.size = writer.size_;
  manifest.stored_size = writer.stored_size_;
  manifest.file_count = file_count;
  manifest.tablespaces = std::move(writer.tablespaces_);
  manifest.bundles = writer.bundles_;
  manifest.backup_manifest = {"backup_manifest", writer.pg_manifest().sha256,
                              writer.pg_manifest().size, writer.pg_manifest().stored_size};
  manifest.file_list = repo::MakeFileListRecord(file_list, file_count);
  manifest.tables = table_counts.get();
  repo::WriteManifest(repo, manifest);
  double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start_clock).count();
  spdlog::info("backup {} complete: {} in {} files, {} stored, {:.1f}s", label,
               FormatBytes(writer.size_), file_count, FormatBytes(writer.stored_size_), seconds);

  std::ostringstream text;
  text << "backup " << label << " complete\n"
       << "  size " << FormatBytes(writer.size_) << ", stored " << FormatBytes(writer.stored_size_)
       << ", " << file_count << " entries, " << writer.bundles_.size() << " bundles\n"
       << "  LSN " << result.start_lsn.ToString() << " .. " << result.stop_lsn.ToString()
       << " (timeline " << result.stop_tli << "), WAL " << (include_wal ? "included" : "archived")
       << "\n  " << seconds << " s\n";
  nlohmann::json json = {{"label", label},
                         {"type", "full"},
                         {"repo", repo.config().name},
                         {"size", writer.size_},
                         {"stored_size", writer.stored_size_},
                         {"files", file_count},
                         {"start_lsn", result.start_lsn.ToString()},
                         {"stop_lsn", result.stop_lsn.ToString()},
                         {"wal_included", include_wal},
                         {"seconds", seconds}};
  if (ctx.run) {
    // The backup is complete: its run succeeded whatever the expire after it returns.
    ctx.run->ok = true;
    ctx.run->label = label;
    ctx.run->repo = repo.config().name;
    ctx.run->bytes = writer.size_;
    ctx.run->phases["total"] = seconds;
    ctx.run->details = {{"stored_bytes", writer.stored_size_}, {"files", file_count}};
  }
  int code = ExpireAfterBackup(ctx, repo, label, json, text);
  // Then the other region: copied after expire, so that what expire let go is not copied.
  if (int copied = CopyAfterBackup(ctx, repo, label, json, text); code == 0) code = copied;
  ctx.Emit(json, text.str());
  return code;
}

void AddBackup(CLI::App& app, Invocation& inv) {
  auto options = std::make_shared<BackupOptions>();
  auto* cmd = app.add_subcommand(
      "backup",
      "Take a physical base backup over the replication protocol (no agent on the database "
      "host) into the first repository (or --repo)");
  cmd->add_option("--type", options->type, "backup type")
      ->check(CLI::IsMember({"full", "logical"}))
      ->capture_default_str();
  cmd->add_option("--db", options->databases,
                  "logical: dump only these databases (repeatable; default: all)");
  cmd->add_flag("!--spread-checkpoint", options->fast_checkpoint,
                "let the server spread the starting checkpoint (default: fast)");
  cmd->add_flag("--dry-run", inv.dry_run, "check and print the plan; take no backup");
  cmd->callback([&inv, options] {
    inv.result = RecordRun(inv.MakeContext(), repo::kBackupReports, options->type,
                           [&](const Context& ctx) { return Backup(ctx, *options); });
  });
}

}  // namespace gravl::commands
