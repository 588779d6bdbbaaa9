// test-restore: the restore drill. Restores a backup into a temporary directory, starts an
// ephemeral PostgreSQL on it (free port, 127.0.0.1 only, archiving off, as `postgres` when
// run as root), lets it recover to the target, validates the result, stores a JSON report in
// the repository (reports/restore-tests/) and measures the RTO by phase. It always cleans up
// -- server stopped, directory removed -- also on failure, SIGINT or SIGTERM.

#include <spdlog/spdlog.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <functional>
#include <map>
#include <sstream>
#include <thread>

#include "commands/cli.h"
#include "commands/commands.h"
#include "commands/run_record.h"
#include "common/cleanup.h"
#include "common/error.h"
#include "common/log.h"
#include "common/subprocess.h"
#include "common/time_util.h"
#include "pg/connection.h"
#include "pg/instance.h"
#include "pg/queries.h"
#include "pg/recovery.h"
#include "repo/layout.h"
#include "repo/metadata.h"
#include "repo/reports.h"
#include "repo/wal.h"

namespace gravl::commands {
namespace fs = std::filesystem;
namespace {

using Clock = std::chrono::steady_clock;

double Since(Clock::time_point t) {
  return std::chrono::duration<double>(Clock::now() - t).count();
}

struct DrillCheckResult {
  std::string name;
  bool ok;
  std::string detail;
  nlohmann::json failures = nlohmann::json::array();
  nlohmann::json notes = nlohmann::json::array();  // information, not failures
};

// Per database: which recorded tables exist (one catalog query), then their rows in batches
// (pg::CountRows) -- a database with 50,000 tables takes 100 round trips, not 150,000.

// A recorded table and what the restored server holds of it.
struct CountedTable {
  const repo::TableRecord* recorded;  // the manifest's entry
  std::string database;
  bool present = false;
  std::uint64_t rows = 0;  // exact, or (for tables estimated at backup time) 0/1: any row
};

std::vector<CountedTable> CountRestoredTables(const pg::Instance& pg,
                                              const repo::BackupManifest& manifest) {
  std::vector<CountedTable> out;
  if (!manifest.tables) return out;
  std::map<std::string, std::vector<const repo::TableRecord*>> by_database;
  for (const auto& t : *manifest.tables) by_database[t.database].push_back(&t);
  for (const auto& [db, tables] : by_database) {
    auto conn = pg::Connection::Open(pg.conninfo(db));
    auto existing = pg::ExistingTables(*conn);
    std::vector<pg::RowCountRequest> requests;
    std::vector<std::size_t> index;  // into out
    for (const auto* t : tables) {
      out.push_back({t, db, false, 0});
      auto it = existing.find({t->schema, t->table});
      if (it == existing.end()) continue;
      out.back().present = true;
      // Tables counted exactly at backup time are counted again; for the others (estimated,
      // millions of rows) only whether they have any row is asked.
      requests.push_back({it->second, !t->exact});
      index.push_back(out.size() - 1);
    }
    std::vector<std::uint64_t> counts = pg::CountRows(*conn, requests);
    for (std::size_t k = 0; k < index.size(); ++k) out[index[k]].rows = counts[k];
  }
  return out;
}

std::string TableName(const CountedTable& t) {
  return t.database + ": table " + t.recorded->schema + "." + t.recorded->table;
}

// At the backup's consistency point the restored tables must hold what the backup counted
// (within the tolerance: rows may change while a backup streams).
DrillCheckResult CompareTableCounts(const std::vector<CountedTable>& counted, bool recorded,
                                    int tolerance_pct) {
  DrillCheckResult c{"table counts", true, "", nlohmann::json::array()};
  if (!recorded) {
    c.detail = "skipped: the backup recorded no row counts";
    return c;
  }
  for (const auto& t : counted) {
    std::uint64_t at_backup = t.recorded->rows;
    if (!t.present) {
      c.failures.push_back(TableName(t) + " is missing (it had " + std::to_string(at_backup) +
                           " rows at backup time)");
      continue;
    }
    if (t.rows == 0 && at_backup > 0) {
      c.failures.push_back(TableName(t) + " is empty (it had " + std::to_string(at_backup) +
                           " rows at backup time)");
      continue;
    }
    double allowed = static_cast<double>(at_backup) * tolerance_pct / 100.0 + 10.0;
    double diff = std::abs(static_cast<double>(t.rows) - static_cast<double>(at_backup));
    if (t.recorded->exact && diff > allowed) {
      c.failures.push_back(TableName(t) + " has " + std::to_string(t.rows) + " rows, " +
                           std::to_string(at_backup) + " at backup time (more than " +
                           std::to_string(tolerance_pct) + "% + 10 apart)");
    }
  }
  c.ok = c.failures.empty();
  c.detail = std::to_string(counted.size()) +
             " tables at the backup's consistency point compared with its row counts "
             "(tolerance " +
             std::to_string(tolerance_pct) + "% + 10 rows)";
  return c;
}

// Between the consistency point and the drill's target the data may change legitimately (a
// queue drained, a table dropped): reported as information, never as a failure.
DrillCheckResult ChangesAfterBackup(const std::vector<CountedTable>& at_consistency,
                                    const std::vector<CountedTable>& at_target,
                                    const std::string& target) {
  DrillCheckResult c{"changes after the backup", true, "", nlohmann::json::array()};
  std::size_t changed = 0;
  for (std::size_t i = 0; i < at_target.size() && i < at_consistency.size(); ++i) {
    const CountedTable& before = at_consistency[i];
    const CountedTable& now = at_target[i];
    std::string note;
    if (before.present && !now.present) {
      note = TableName(now) + " was dropped";
    } else if (!before.present && now.present) {
      note = TableName(now) + " was created";
    } else if (before.rows != now.rows) {
      bool exact = now.recorded->exact;
      note = exact ? TableName(now) + ": " + std::to_string(before.rows) + " -> " +
                         std::to_string(now.rows) + " rows"
                   : TableName(now) + (now.rows == 0 ? " was emptied" : " got rows");
    }
    if (note.empty()) continue;
    ++changed;
    if (c.notes.size() < 50) c.notes.push_back(note);
  }
  c.detail = std::to_string(changed) + " of " + std::to_string(at_target.size()) +
             " recorded tables changed between the backup and the target (" + target +
             "); information only";
  return c;
}

DrillCheckResult ForeignKeys(const pg::Instance& pg, const std::vector<std::string>& dbs) {
  DrillCheckResult c{"referential integrity", true, "", nlohmann::json::array()};
  std::size_t checked = 0;
  for (const auto& db : dbs) {
    auto conn = pg::Connection::Open(pg.conninfo(db));
    for (const auto& fk : pg::ForeignKeys(*conn)) {
      std::uint64_t orphans = pg::CountOrphans(*conn, fk);
      ++checked;
      if (orphans != 0) {
        c.failures.push_back(db + ": " + std::to_string(orphans) + " row(s) of " + fk.table +
                             " violate foreign key " + fk.name + " (no matching row in " +
                             fk.referenced + ")");
      }
    }
  }
  c.ok = c.failures.empty();
  c.detail = std::to_string(checked) + " foreign keys checked for orphans";
  return c;
}

// Runs a check over `items` pg::kAmcheckBatch at a time: `batch` checks a whole batch in one
// query and says whether it is sound (it may also throw); only when it is not is each item of
// that batch checked on its own by `one`, which names what is wrong. A database with 100,000
// indexes takes 500 round trips.
void CheckInBatches(const std::vector<pg::Relation>& items,
                    const std::function<bool(const std::vector<pg::Relation>&)>& batch,
                    const std::function<void(const pg::Relation&)>& one) {
  for (std::size_t start = 0; start < items.size(); start += pg::kAmcheckBatch) {
    std::vector<pg::Relation> part(items.begin() + static_cast<std::ptrdiff_t>(start),
                                   items.begin() + static_cast<std::ptrdiff_t>(std::min(
                                                       items.size(), start + pg::kAmcheckBatch)));
    bool sound = false;
    try {
      sound = batch(part);
    } catch (const PgError&) {
      // Some item of the batch is damaged: each is checked on its own below.
    }
    if (sound) continue;
    for (const auto& item : part) one(item);
  }
}

DrillCheckResult IndexesAndHeap(const pg::Instance& pg, const std::vector<std::string>& dbs) {
  DrillCheckResult c{"index and heap validity", true, "", nlohmann::json::array()};
  std::size_t indexes = 0, tables = 0;
  bool reindexed = false;
  for (const auto& db : dbs) {
    auto conn = pg::Connection::Open(pg.conninfo(db));
    if (!pg::EnsureAmcheck(*conn)) {
      // amcheck unavailable: REINDEX rebuilds every index, failing on unreadable data.
      try {
        pg::ReindexDatabase(*conn);
        reindexed = true;
      } catch (const PgError& re) {
        c.failures.push_back(db + ": REINDEX failed: " + std::string(re.what()));
      }
      continue;
    }
    auto indexes_here = pg::BtreeIndexes(*conn);
    indexes += indexes_here.size();
    CheckInBatches(
        indexes_here, [&](const auto& batch) { return pg::IndexesSound(*conn, batch); },
        [&](const pg::Relation& idx) {
          try {
            pg::CheckIndex(*conn, idx);
          } catch (const PgError& e) {
            c.failures.push_back(db + ": index " + idx.name + ": " + e.what());
          }
        });
    auto tables_here = pg::HeapRelations(*conn);
    tables += tables_here.size();
    CheckInBatches(
        tables_here, [&](const auto& batch) { return pg::HeapsSound(*conn, batch); },
        [&](const pg::Relation& rel) {
          try {
            for (const auto& p : pg::HeapProblems(*conn, rel)) {
              c.failures.push_back(db + ": table " + rel.name + " block " + p.block + " item " +
                                   p.offset + ": " + p.message);
            }
          } catch (const PgError& e) {
            c.failures.push_back(db + ": table " + rel.name + ": " + e.what());
          }
        });
  }
  c.ok = c.failures.empty();
  c.detail = reindexed ? "amcheck unavailable: REINDEX of every database"
                       : "amcheck: " + std::to_string(indexes) +
                             " btree indexes (bt_index_check with heapallindexed), " +
                             std::to_string(tables) + " tables (verify_heapam)";
  return c;
}

DrillCheckResult WalPosition(pg::Connection& conn, const repo::BackupManifest& manifest,
                             const RestoreResult& restored, std::uint64_t seg_size) {
  DrillCheckResult c{"wal position", true, "", nlohmann::json::array()};
  pg::ReplayState state = pg::GetReplayState(conn);
  Lsn stop = manifest.stop_lsn;
  std::ostringstream detail;
  detail << "replayed to " << state.replayed.ToString() << ", now on timeline " << state.timeline
         << " (backup consistent at " << stop.ToString() << ")";
  if (state.in_recovery) c.failures.push_back("the server is still in recovery");
  if (state.replayed < stop) {
    c.failures.push_back("recovery stopped at " + state.replayed.ToString() +
                         ", before the backup's consistency point " + stop.ToString());
  }
  const pg::RecoveryTarget& target = restored.settings.target;
  if (target.kind == pg::RecoveryTarget::Kind::kLsn && target.inclusive &&
      state.replayed < target.lsn) {
    c.failures.push_back("recovery stopped at " + state.replayed.ToString() +
                         ", before the target " + target.lsn.ToString());
  }
  if (target.kind == pg::RecoveryTarget::Kind::kLatest && restored.archive_end &&
      !manifest.wal_included) {
    // The end of the archive: the last archived segment must have been reached.
    Lsn last_segment{restored.archive_end->value - seg_size};
    if (state.replayed < last_segment) {
      c.failures.push_back("recovery stopped at " + state.replayed.ToString() +
                           ", before the newest archived segment (from " + last_segment.ToString() +
                           ")");
    }
    detail << "; archived WAL ends at " << restored.archive_end->ToString();
  }
  c.ok = c.failures.empty();
  c.detail = detail.str();
  return c;
}

DrillCheckResult CustomChecks(const pg::Instance& pg, const std::vector<DrillCheck>& checks) {
  DrillCheckResult c{"custom checks", true, "", nlohmann::json::array()};
  for (const auto& chk : checks) {
    try {
      auto conn = pg::Connection::Open(pg.conninfo(chk.database));
      auto v = pg::RunCustomCheck(*conn, chk.sql);
      if (v != "t") {
        c.failures.push_back(chk.name + ": returned " + (v ? "'" + *v + "'" : "no row") +
                             ", expected true");
      }
    } catch (const Error& e) {
      c.failures.push_back(chk.name + ": " + Redact(e.what()));
    }
  }
  c.ok = c.failures.empty();
  c.detail = checks.empty() ? "none configured (drill.checks)"
                            : std::to_string(checks.size()) + " SQL assertions";
  return c;
}

// Removes the drill's directory. Processes of the stopped server (a restore_command child
// finishing its write) may still create a file in it for a moment: try a few times.
void RemoveTree(const std::string& dir) {
  for (int attempt = 0; attempt < 20; ++attempt) {
    std::error_code ec;
    fs::remove_all(dir, ec);
    if (!fs::exists(dir, ec)) return;
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  spdlog::warn("could not remove {} completely", dir);
}

// The drill's report: printed (or emitted as JSON) and stored in the repository of the
// backup (or the first one). Returns the exit code: `failure`, a failed check's, or why the
// report could not be stored.
int ReportDrill(const Context& ctx, const std::vector<DrillCheckResult>& checks,
                const nlohmann::json& timings, const std::string& label,
                const std::string& repo_name, std::chrono::system_clock::time_point started_at,
                ExitCode failure) {
  bool ok =
      std::all_of(checks.begin(), checks.end(), [](const DrillCheckResult& c) { return c.ok; });
  if (!ok && failure == ExitCode::kSuccess) failure = ExitCode::kCheckFailed;
  nlohmann::json checks_json = nlohmann::json::array();
  std::ostringstream text;
  text << "restore drill of " << (label.empty() ? std::string("(no backup)") : label) << "\n";
  for (const auto& c : checks) {
    checks_json.push_back({{"check", c.name},
                           {"ok", c.ok},
                           {"detail", c.detail},
                           {"failures", c.failures},
                           {"notes", c.notes}});
    text << (c.ok ? "  [ok]   " : "  [FAIL] ") << c.name << ": " << c.detail << "\n";
    for (const auto& f : c.failures) text << "           " << f.get<std::string>() << "\n";
    for (const auto& n : c.notes) text << "           note: " << n.get<std::string>() << "\n";
  }
  double rto = timings.value("download_s", 0.0) + timings.value("recovery_s", 0.0);
  char rto_text[128];
  std::snprintf(
      rto_text, sizeof rto_text,
      "measured RTO %.1fs (download %.1fs + recovery %.1fs); validation %.1fs; total %.1fs", rto,
      timings.value("download_s", 0.0), timings.value("recovery_s", 0.0),
      timings.value("validation_s", 0.0), timings.value("total_s", 0.0));
  text << "  " << rto_text << "\n" << (ok ? "drill passed\n" : "drill FAILED\n");
  nlohmann::json report = {{"kind", "restore-test"},
                           {"stanza", ctx.config.stanza},
                           {"label", label},
                           {"repo", repo_name},
                           {"started_at", FormatIso8601(started_at)},
                           {"finished_at", FormatIso8601(std::chrono::system_clock::now())},
                           {"ok", ok},
                           {"checks", checks_json},
                           {"timings", timings},
                           {"rto_s", rto},
                           {"row_count_tolerance_pct", ctx.config.drill_row_tolerance_pct}};
  // The run report (repo/reports.h) goes into the repository of the backup (or the first
  // one): the RTO by phase, and the checks.
  repo::RunReport run;
  run.kind = repo::kDrillReports;
  run.label = label;
  run.started = started_at;
  run.finished = std::chrono::system_clock::now();
  run.ok = ok;
  run.exit_code = ToInt(failure);
  if (failure != ExitCode::kSuccess) run.error_class = ExitCodeName(failure);
  for (const auto& [name, value] : timings.items()) {
    if (value.is_number() && name.ends_with("_s")) {
      run.phases[name.substr(0, name.size() - 2)] = value.get<double>();
    }
  }
  run.phases["rto"] = rto;
  run.details = {{"checks", checks_json},
                 {"timings", timings},
                 {"row_count_tolerance_pct", ctx.config.drill_row_tolerance_pct}};
  for (const auto& c : checks) {
    if (!c.ok && run.error.empty()) run.error = "check " + c.name + " failed: " + c.detail;
  }
  try {
    auto repos = ctx.OpenRepos();
    repo::Repository* target = repos.front().get();
    for (auto& r : repos) {
      if (r->config().name == repo_name) target = r.get();
    }
    std::string key = repo::WriteReport(*target, run);
    report["report"] = target->storage().Describe() + "/" + key;
    text << "  report: " << report["report"].get<std::string>() << "\n";
    if (ctx.run) *ctx.run = run;  // stored: the recorder only notifies
  } catch (const Error& e) {
    spdlog::error("cannot store the drill report: {}", Redact(e.what()));
    if (ok) failure = e.code();
    if (ctx.run) {
      *ctx.run = run;
      ctx.run->key.clear();
    }
  }
  ctx.Emit(report, text.str());
  return ToInt(failure);
}

}  // namespace

// --dry-run: the programs and the scratch directory checked, the backup chosen and the
// target checked against what the repository holds (restore's dry run); nothing restored.
int DrillDryRun(const Context& ctx, const TestRestoreOptions& options) {
  const std::string bin_dir = pg::ResolveBinDir(ctx.config.pg_bin_dir);
  for (const char* program : {"pg_ctl", "postgres"}) {
    if (::access((bin_dir + "/" + program).c_str(), X_OK) != 0) {
      throw ConfigError(bin_dir + "/" + program +
                        " is not an executable program: a drill starts a PostgreSQL server "
                        "(set pg_bin_dir / --pg-bin-dir to the PostgreSQL " +
                        "programs' directory)");
    }
  }
  const char* tmp = std::getenv("TMPDIR");
  const std::string scratch = tmp && *tmp ? tmp : "/tmp";
  if (::access(scratch.c_str(), W_OK | X_OK) != 0) {
    throw ConfigError(SysErrorText(
        "the drill's scratch directory " + scratch + " (TMPDIR) is not writable", errno));
  }
  RestoreOptions ro = options.restore;
  ro.pgdata = scratch + "/gravl-drill-XXXXXX/data";
  ro.set = options.set;
  ro.target_action = "promote";
  ro.standby = false;
  return Restore(ctx, ro, nullptr);
}

int TestRestore(const Context& ctx, const TestRestoreOptions& options) {
  if (ctx.dry_run) return DrillDryRun(ctx, options);
  InstallSignalCleanup();
  auto started_at = std::chrono::system_clock::now();
  auto t0 = Clock::now();
  const char* tmp = std::getenv("TMPDIR");
  std::string base = std::string(tmp && *tmp ? tmp : "/tmp") + "/gravl-drill-XXXXXX";
  if (::mkdtemp(base.data()) == nullptr) {
    throw StorageError(SysErrorText("cannot create a temporary directory", errno));
  }
  ::chmod(base.c_str(), 0755);
  pg::GiveToServerUser(base);
  std::string pgdata = base + "/data";
  std::string bin_dir = pg::ResolveBinDir(ctx.config.pg_bin_dir);
  int cleanup_id = AddCleanup([pgdata, base, bin_dir, keep = options.keep] {
    Run(pg::AsServerUser({bin_dir + "/pg_ctl", "-D", pgdata, "-m", "immediate", "stop"}));
    if (!keep) RemoveTree(base);
  });

  std::vector<DrillCheckResult> checks;
  nlohmann::json timings = nlohmann::json::object();
  RestoreResult restored;
  std::unique_ptr<pg::Instance> instance;
  ExitCode failure = ExitCode::kSuccess;
  std::string repo_name;
  try {
    RestoreOptions ro = options.restore;
    ro.pgdata = pgdata;
    // Tablespaces go under the drill's directory too: on the database's own host their
    // locations are in use, and this way they are removed with it.
    if (ro.tablespace_map.empty() && ro.tablespace_map_all.empty()) {
      ro.tablespace_map_all = base + "/tablespaces";
    }
    ro.set = options.set;
    ro.target_action = "promote";
    ro.standby = false;
    // Recovery pauses at the backup's consistency point first, where the recorded row counts
    // are compared like with like; then it continues to the drill's target.
    ro.pause_at_consistency = true;
    auto t_download = Clock::now();
    Restore(ctx, ro, &restored);
    repo_name = restored.repo;
    timings["download_s"] = Since(t_download);
    checks.push_back({"restore",
                      true,
                      "backup " + restored.label + " restored and verified (" +
                          FormatBytes(restored.manifest.size) + ")",
                      {}});

    auto t_recovery = Clock::now();
    pg::InstanceOptions io_opts;
    io_opts.bin_dir = bin_dir;
    io_opts.base_dir = base + "/run";
    io_opts.keep_files = true;  // base is removed as a whole below
    // Connections while paused need hot_standby (without it 'pause' acts as 'shutdown').
    io_opts.server_options = {"archive_mode=off", "hot_standby=on"};
    instance = pg::Instance::Adopt(io_opts, pgdata);
    auto deadline = Clock::now() + std::chrono::seconds(ctx.config.drill_timeout);
    auto wait_until = [&](const std::function<bool(const pg::ReplayState&)>& done,
                          const std::string& what) {
      for (;;) {
        auto conn = pg::Connection::Open(instance->conninfo());
        if (done(pg::GetReplayState(*conn))) return;
        if (Clock::now() > deadline) {
          throw Error(ExitCode::kCheckFailed, "recovery did not " + what + " within " +
                                                  std::to_string(ctx.config.drill_timeout) +
                                                  "s (drill.timeout)");
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(200));
      }
    };
    wait_until([](const pg::ReplayState& s) { return s.paused || !s.in_recovery; },
               "reach the backup's consistency point");
    double consistency_s = Since(t_recovery);
    auto t_counts = Clock::now();
    std::vector<CountedTable> at_consistency = CountRestoredTables(*instance, restored.manifest);
    checks.push_back(CompareTableCounts(at_consistency, restored.manifest.tables.has_value(),
                                        ctx.config.drill_row_tolerance_pct));
    double counts_s = Since(t_counts);

    auto t_continue = Clock::now();
    instance->Stop();
    pg::WriteRecoveryConfig(pgdata, restored.settings);
    instance->Start();
    wait_until([](const pg::ReplayState& s) { return !s.in_recovery; },
               "reach the target and promote");
    timings["consistency_s"] = consistency_s;
    timings["recovery_s"] = consistency_s + Since(t_continue);
    checks.push_back({"recovery",
                      true,
                      "consistent at the backup's end after " +
                          std::to_string(std::lround(consistency_s)) + " s, then recovered to " +
                          restored.settings.target.Describe() + " and promoted",
                      {}});

    auto t_validate = Clock::now();
    auto conn = pg::Connection::Open(instance->conninfo());
    std::vector<std::string> dbs = pg::Databases(*conn);
    checks.push_back(ChangesAfterBackup(at_consistency,
                                        CountRestoredTables(*instance, restored.manifest),
                                        restored.settings.target.Describe()));
    checks.push_back(ForeignKeys(*instance, dbs));
    checks.push_back(IndexesAndHeap(*instance, dbs));
    std::uint64_t seg_size = 0;
    for (auto& r : ctx.OpenRepos()) {
      if (r->config().name == restored.repo) seg_size = r->Stanza().wal_segment_size;
    }
    checks.push_back(WalPosition(*conn, restored.manifest, restored,
                                 seg_size ? seg_size : kDefaultWalSegmentSize));
    checks.push_back(CustomChecks(*instance, ctx.config.drill_checks));
    timings["validation_s"] = counts_s + Since(t_validate);
  } catch (const Error& e) {
    std::string step = !timings.contains("download_s")   ? "restore"
                       : !timings.contains("recovery_s") ? "recovery"
                                                         : "validation";
    std::string msg = Redact(e.what());
    if (step == "recovery" && instance == nullptr) {
      msg += " -- the server did not start; see the log above";
    }
    checks.push_back({step, false, msg, nlohmann::json::array({msg})});
    failure = e.code() == ExitCode::kSuccess ? ExitCode::kCheckFailed : e.code();
  }
  if (repo_name.empty()) repo_name = restored.repo;  // the restore failed: what it tried
  if (instance) {
    try {
      instance->Stop(true);
    } catch (const std::exception& e) {
      spdlog::warn("stopping the drill's server: {}", e.what());
    }
    instance.reset();
  }
  if (!options.keep) RemoveTree(base);
  RemoveCleanup(cleanup_id);
  timings["total_s"] = Since(t0);

  return ReportDrill(ctx, checks, timings, restored.label, repo_name, started_at, failure);
}

void AddTestRestore(CLI::App& app, Invocation& inv) {
  auto options = std::make_shared<TestRestoreOptions>();
  auto* cmd = app.add_subcommand(
      "test-restore",
      "Restore drill: restore into a temporary directory, start an ephemeral PostgreSQL, "
      "recover, validate (row counts, foreign keys, amcheck, WAL position, custom checks), "
      "store a JSON report with the measured RTO, clean up");
  cmd->add_option("--set", options->set, "backup label (default: the newest)");
  AddTargetOptions(cmd, options->restore);
  cmd->add_flag("--keep", options->keep, "keep the restored directory for inspection");
  cmd->add_flag("--dry-run", inv.dry_run,
                "check the programs and the scratch directory, choose the backup and check the "
                "target; restore nothing");
  cmd->callback([&inv, options] {
    inv.result = RecordRun(inv.MakeContext(), repo::kDrillReports, "",
                           [&](const Context& ctx) { return TestRestore(ctx, *options); });
  });
}

}  // namespace gravl::commands
