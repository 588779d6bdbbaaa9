// backup --type logical: pg_dump -Fc of each database (or --db), plus the cluster's globals
// (roles, tablespaces) from pg_dumpall --globals-only, streamed through the same pipeline.
// Portable across major versions, and restorable table by table (restore --logical).

#include <spdlog/spdlog.h>

#include <chrono>
#include <sstream>

#include "commands/commands.h"
#include "common/error.h"
#include "common/log.h"
#include "common/subprocess.h"
#include "common/time_util.h"
#include "pg/connection.h"
#include "pg/instance.h"
#include "pg/queries.h"
#include "repo/catalog.h"
#include "repo/layout.h"
#include "repo/lock.h"
#include "repo/manifest.h"

namespace gravl::commands {
namespace {

// Streams a child's stdout into one object; fails if the child fails.
repo::StoredObject DumpInto(repo::Repository& repo, const std::string& key,
                            const repo::ObjectFormat& format, const std::vector<std::string>& argv,
                            const std::vector<std::string>& env) {
  auto child =
      Child::Spawn(argv, Child::Options{.env = env, .pipe_stdin = false, .pipe_stdout = true});
  repo::ObjectWriter writer(repo.storage(), key, format, storage::PutOptions{.if_absent = true});
  io::FdSource out(child->stdout_fd(), argv[0]);
  Bytes buf(io::kChunkSize);
  for (;;) {
    std::size_t n = out.Read(buf);
    if (n == 0) break;
    writer.Write(ByteView(buf.data(), n));
  }
  child->WaitChecked();  // before Finish: a failed dump never becomes an object
  writer.Finish();
  return writer.result();
}

}  // namespace

int LogicalBackup(const Context& ctx, const BackupOptions& options) {
  auto target = ctx.OpenBackupTarget();
  repo::Repository& repo = *target.repo;
  auto& sql = target.sql;
  const pg::ClusterIdentity& id = target.id;
  std::vector<std::string> databases = options.databases;
  if (databases.empty()) {
    databases = pg::Databases(*sql);
  } else {
    for (const auto& db : databases) {
      if (!pg::DatabaseExists(*sql, db)) {
        throw NotFoundError("database '" + db + "' does not exist on the server");
      }
    }
  }
  auto now = std::chrono::system_clock::now();
  std::string label = FormatCompact(now) + "-logical";
  if (ctx.dry_run) {
    ctx.Emit({{"label", label}, {"dry_run", true}, {"databases", databases}},
             "would dump " + std::to_string(databases.size()) + " database(s) into " +
                 repo.Describe() + "\n");
    return 0;
  }
  auto lock =
      repo::StanzaLock::Acquire(repo.storage(), repo.stanza(), "backup", "backup --type logical");
  std::string bin = pg::ResolveBinDir(ctx.config.pg_bin_dir);
  std::string prefix = repo::BackupObjectPrefix(repo.stanza(), label);
  repo::ObjectFormat format = repo.Format(ctx.config.compression, ctx.config.compression_level);
  auto started = std::chrono::steady_clock::now();

  nlohmann::json dbs = nlohmann::json::array();
  std::uint64_t size = 0, stored = 0;
  std::vector<repo::DumpRecord> dumps;
  std::ostringstream text;
  text << "logical backup " << label << " complete\n";
  // The password (if pg.conninfo has one) reaches the programs in a passfile, never argv.
  pg::ChildCredentials credentials(ctx.config.pg_conninfo);
  for (std::size_t i = 0; i < databases.size(); ++i) {
    std::string object = "dumps/" + std::to_string(i + 1) + ".dump";
    spdlog::info("dumping database {}", databases[i]);
    // -Z 0: the pipeline compresses (zstd by default), faster and smaller than pg_dump's zlib.
    auto r = DumpInto(repo, prefix + object, format,
                      {bin + "/pg_dump", "-Fc", "-Z", "0", "--no-password", "-d",
                       pg::ConninfoWithDbname(credentials.conninfo(), databases[i])},
                      credentials.env());
    dumps.push_back({databases[i], {object, r.sha256, r.size, r.stored_size}});
    dbs.push_back({{"name", databases[i]},
                   {"object", object},
                   {"sha256", r.sha256},
                   {"size", r.size},
                   {"stored_size", r.stored_size}});
    size += r.size;
    stored += r.stored_size;
    text << "  " << databases[i] << ": " << FormatBytes(r.size) << " ("
         << FormatBytes(r.stored_size) << " stored)\n";
  }
  auto globals =
      DumpInto(repo, prefix + "globals.sql", format,
               {bin + "/pg_dumpall", "--globals-only", "--no-password", "-d",
                credentials.conninfo().empty() ? "dbname=postgres" : credentials.conninfo()},
               credentials.env());
  repo::BackupManifest manifest = ctx.NewManifest(repo, label, "logical", id, now);
  manifest.stop_time = std::chrono::system_clock::now();
  manifest.size = size + globals.size;
  manifest.stored_size = stored + globals.stored_size;
  manifest.databases = std::move(dumps);
  manifest.globals = {"globals.sql", globals.sha256, globals.size, std::nullopt};
  repo::WriteManifest(repo, manifest);
  double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
  text << "  " << seconds << " s\n";
  nlohmann::json json = {{"label", label},    {"type", "logical"}, {"repo", repo.config().name},
                         {"databases", dbs},  {"size", size},      {"stored_size", stored},
                         {"seconds", seconds}};
  if (ctx.run) {
    ctx.run->ok = true;
    ctx.run->label = label;
    ctx.run->repo = repo.config().name;
    ctx.run->bytes = size;
    ctx.run->phases["total"] = seconds;
    ctx.run->details = {{"stored_bytes", stored}, {"databases", dbs}};
  }
  int code = ExpireAfterBackup(ctx, repo, label, json, text);
  // Then the other region: copied after expire, so that what expire let go is not copied.
  if (int copied = CopyAfterBackup(ctx, repo, label, json, text); code == 0) code = copied;
  ctx.Emit(json, text.str());
  return code;
}

int LogicalRestore(const Context& ctx, const RestoreOptions& options) {
  if (options.set.empty() || options.db.empty() || options.target_db.empty()) {
    throw UsageError("restore --logical needs --set LABEL, --db NAME and --target-db CONNINFO");
  }
  auto repos = ctx.OpenRepos();
  for (auto& r : repos) {
    r->Stanza();
    r->Unlock(ctx.config.passphrase);
    repo::Catalog catalog(*r);
    const repo::BackupEntry* found = catalog.Find(options.set);
    if (found == nullptr) continue;  // not in this repository
    if (!found->ok()) {
      throw Error(found->problem_code,
                  "backup " + options.set + " cannot be restored: " + found->problem);
    }
    const std::optional<repo::BackupManifest>& m = found->manifest;
    if (m->full()) {
      throw UsageError("backup " + options.set + " is a " + m->type +
                       " backup; --logical restores logical backups");
    }
    const repo::DumpRecord* entry = nullptr;
    for (const auto& d : m->databases) {
      if (d.name == options.db) entry = &d;
    }
    if (entry == nullptr) {
      throw NotFoundError("backup " + options.set + " has no dump of database '" + options.db +
                          "'");
    }
    if (ctx.dry_run) {
      ctx.Emit({{"label", options.set}, {"db", options.db}, {"dry_run", true}},
               "would restore " + options.db + " from " + options.set + "\n");
      return 0;
    }
    std::string bin = pg::ResolveBinDir(ctx.config.pg_bin_dir);
    pg::ChildCredentials credentials(options.target_db);  // its password: a passfile, not argv
    std::vector<std::string> argv = {
        bin + "/pg_restore",   "--no-password", "--exit-on-error", "--no-owner", "-d",
        credentials.conninfo()};
    for (const auto& t : options.tables) {
      argv.push_back("-t");
      argv.push_back(t);
    }
    auto started = std::chrono::steady_clock::now();
    auto child = Child::Spawn(
        argv, Child::Options{.env = credentials.env(), .pipe_stdin = true, .pipe_stdout = false});
    io::FdSink sink(child->stdin_fd(), "pg_restore");
    std::string key = repo::BackupObjectPrefix(r->stanza(), options.set) + entry->object.object;
    try {
      // Dumps' SHA-256 is of their content: checked after decryption and decompression.
      repo::ReadObject(r->storage(), key, repo::ObjectFormat{m->compression, 0, r->key()},
                       {entry->object.sha256, entry->object.size}, sink);
    } catch (const StorageError& e) {
      // pg_restore stopped reading (it failed): its own message says why.
      child->CloseStdin();
      child->WaitChecked();
      throw;
    }
    child->CloseStdin();
    child->WaitChecked();
    double seconds =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
    ctx.Emit({{"label", options.set},
              {"db", options.db},
              {"tables", options.tables},
              {"seconds", seconds}},
             "restored database " + options.db +
                 (options.tables.empty() ? "" : " (selected tables)") + " from " + options.set +
                 " into " + RedactConninfo(options.target_db) + "\n");
    return 0;
  }
  throw NotFoundError("backup " + options.set + " is not in any repository");
}

}  // namespace gravl::commands
