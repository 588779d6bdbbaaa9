// gravl-dr: command-line wiring only. Maps argv to a command and its result to an exit code
// (docs/exit-codes.md). Errors are printed as one line on stderr, secrets redacted.

#include <malloc.h>

#include <CLI/CLI.hpp>
#include <csignal>
#include <iostream>
#include <nlohmann/json.hpp>

#include "commands/commands.h"
#include "common/cleanup.h"
#include "common/error.h"
#include "common/log.h"
#include "version.h"

namespace {

using gravl::ExitCode;

struct Globals {
  std::optional<std::string> config_path;
  std::optional<std::string> repo;
  std::string output = "text";
  bool dry_run = false;
  std::map<std::string, std::string> flags;
};

void PrintError(const std::string& message, ExitCode code, bool json) {
  std::string msg = gravl::Redact(message);
  if (json) {
    nlohmann::json err = {{"error",
                           {{"message", msg},
                            {"exit_code", gravl::ToInt(code)},
                            {"kind", gravl::ExitCodeName(code)}}}};
    std::cout << err.dump(2) << std::endl;
  }
  std::cerr << "gravl-dr: error: " << msg << std::endl;
}

gravl::commands::Context MakeContext(const Globals& g) {
  gravl::ConfigInputs inputs;
  inputs.config_path = g.config_path;
  inputs.flags = g.flags;
  gravl::commands::Context ctx;
  ctx.config = gravl::LoadConfig(inputs);
  ctx.output = g.output == "json" ? gravl::commands::OutputFormat::kJson
                                  : gravl::commands::OutputFormat::kText;
  ctx.dry_run = g.dry_run;
  ctx.repo_name = g.repo;
  gravl::InitLogging(ctx.config.log_level);
  return ctx;
}

// The recovery target options shared by restore and test-restore. Values are kept as given
// (an empty --target-name is refused by the restore, not taken as "no target").
void AddTargetOptions(CLI::App* cmd, gravl::commands::RestoreOptions& o) {
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

}  // namespace

int main(int argc, char** argv) {
  // Transfer buffers (multipart parts, download chunks: megabytes, allocated and freed by
  // worker threads) always come from mmap, so freeing them returns the memory at once
  // instead of leaving it in per-thread heap arenas.
  mallopt(M_MMAP_THRESHOLD, 4 << 20);
  // One heap for all threads. Per-thread arenas each keep what their thread freed: with a
  // database of 200,000 files that was 40 MB more peak RSS (125 MB against 83 MB) for the
  // same allocations. The threads allocate little on their hot paths (buffers are large and
  // reused), so sharing the heap's lock costs no measurable time.
  mallopt(M_ARENA_MAX, 1);
  Globals g;
  bool json_output = false;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--output=json" ||
        (a == "--output" && i + 1 < argc && std::string(argv[i + 1]) == "json")) {
      json_output = true;
    }
  }
  gravl::InitLogging("info");
  // SIGINT/SIGTERM end every command with exit 11 (interrupted) after its cleanups (drill
  // servers stopped, lock leases released); nothing partial is visible. Not archive-get:
  // PostgreSQL must see its restore_command die by SIGTERM during a shutdown, as an exit
  // status from 1 to 125 would end recovery early.
  bool restore_command = false;
  for (int i = 1; i < argc; ++i) restore_command |= std::string(argv[i]) == "archive-get";
  if (!restore_command) gravl::InstallSignalCleanup();
  // A child that exits early (pg_restore on an error) must surface as EPIPE and a clear
  // error, not kill us with SIGPIPE.
  std::signal(SIGPIPE, SIG_IGN);

  CLI::App app{
      "gravl-dr: PostgreSQL backup, point-in-time recovery, restore drills and "
      "failover.\nExit codes: docs/exit-codes.md. Configuration: "
      "docs/configuration.md."};
  app.set_version_flag("--version", std::string("gravl-dr ") + gravl::kVersion);
  app.require_subcommand(1);
  app.fallthrough();
  app.add_option("--config", g.config_path,
                 "configuration file (default: $GRAVL_DR_CONFIG or /etc/gravl-dr/gravl-dr.yaml)");
  app.add_option("--repo", g.repo, "work on this configured repository only (by name)");
  app.add_option("--output", g.output, "result format on stdout")
      ->check(CLI::IsMember({"text", "json"}))
      ->capture_default_str();
  for (const auto& spec : gravl::OptionSpecs()) {
    std::string key = spec.key;
    app.add_option_function<std::string>(
           spec.flag, [&g, key](const std::string& v) { g.flags[key] = v; },
           spec.help + " [env " + spec.env + "; default " + spec.default_text + "]")
        ->type_name(spec.type == gravl::OptionType::kInt ? "INT" : "TEXT");
  }
  app.add_option_function<std::string>(
      "--repo-path", [&g](const std::string& v) { g.flags["repo_path"] = v; },
      "use a single local-directory repository at this path instead of 'repos' "
      "[env GRAVL_DR_REPO_PATH]");

  int result = 0;
  auto* stanza_create = app.add_subcommand(
      "stanza-create",
      "Record the PostgreSQL cluster (system identifier, version) in every repository; "
      "refuses a repository that belongs to another cluster");
  stanza_create->add_flag("--dry-run", g.dry_run, "connect and check, but create nothing");
  stanza_create->callback([&] { result = gravl::commands::StanzaCreate(MakeContext(g)); });

  gravl::commands::InfoOptions info_options;
  auto* info = app.add_subcommand("info", "Show stanzas, backups and the archived WAL range");
  info->add_flag("--all", info_options.all_stanzas, "every stanza in the repositories");
  info->callback([&] { result = gravl::commands::Info(MakeContext(g), info_options); });

  gravl::commands::ArchivePushOptions push_options;
  auto* push =
      app.add_subcommand("archive-push",
                         "archive_command: store a WAL file in every repository (archive_command = "
                         "'gravl-dr archive-push %p')");
  push->add_option("path", push_options.path, "the file (%p)")->required();
  push->add_flag("--dry-run", g.dry_run, "check the file and configuration, store nothing");
  push->callback([&] { result = gravl::commands::ArchivePush(MakeContext(g), push_options); });

  gravl::commands::ArchiveGetOptions get_options;
  auto* get = app.add_subcommand(
      "archive-get",
      "restore_command: fetch a WAL file from the first repository that has it "
      "(restore_command = 'gravl-dr archive-get %f %p'). Exit 0 found, 4 not archived, "
      "126 error (recovery stops)");
  get->add_option("name", get_options.name, "the file name (%f)")->required();
  get->add_option("destination", get_options.destination, "where to write it (%p)")->required();
  get->add_flag("--standby", get_options.standby,
                "on errors exit with the error's code (so a standby retries) instead of 126");
  get->callback([&] { result = gravl::commands::ArchiveGet(MakeContext(g), get_options); });

  auto* check = app.add_subcommand(
      "check",
      "Check the server settings for archiving and backups, then switch WAL and wait until "
      "the segment is in every repository");
  check->add_flag("--dry-run", g.dry_run, "check the settings only; do not switch WAL");
  check->callback([&] { result = gravl::commands::Check(MakeContext(g)); });

  gravl::commands::BackupOptions backup_options;
  auto* backup = app.add_subcommand(
      "backup",
      "Take a physical base backup over the replication protocol (no agent on the database "
      "host) into the first repository (or --repo)");
  backup->add_option("--type", backup_options.type, "backup type")
      ->check(CLI::IsMember({"full", "logical"}))
      ->capture_default_str();
  backup->add_option("--db", backup_options.databases,
                     "logical: dump only these databases (repeatable; default: all)");
  backup->add_flag("!--spread-checkpoint", backup_options.fast_checkpoint,
                   "let the server spread the starting checkpoint (default: fast)");
  backup->add_flag("--dry-run", g.dry_run, "check and print the plan; take no backup");
  backup->callback([&] { result = gravl::commands::Backup(MakeContext(g), backup_options); });

  gravl::commands::RestoreOptions restore_options;
  auto* restore = app.add_subcommand(
      "restore",
      "Restore a backup into an empty data directory and configure recovery to a target "
      "through archive-get");
  restore->add_option("--pgdata", restore_options.pgdata, "data directory to create");
  restore->add_flag("--logical", restore_options.logical,
                    "restore a logical backup (--set, --db, --target-db, optional --table)");
  restore->add_option("--db", restore_options.db, "logical: the database dump to restore");
  restore->add_option("--table", restore_options.tables,
                      "logical: restore only this table (repeatable)");
  restore->add_option("--target-db", restore_options.target_db,
                      "logical: libpq connection string of the database to restore into");
  restore->add_option("--set", restore_options.set,
                      "backup label (default: the newest backup that can reach the target)");
  AddTargetOptions(restore, restore_options);
  restore
      ->add_option("--target-action", restore_options.target_action,
                   "what the server does at the target")
      ->check(CLI::IsMember({"promote", "pause", "shutdown"}))
      ->capture_default_str();
  restore
      ->add_option("--archive-mode", restore_options.archive_mode,
                   "archiving in the restored cluster: 'off' (default; a copy must not "
                   "archive into the production repository) or 'preserve' (default with "
                   "--standby)")
      ->check(CLI::IsMember({"off", "preserve"}));
  restore->add_flag("--standby", restore_options.standby,
                    "configure as a standby fed from the archive (standby.signal)");
  restore->add_flag("--delta", restore_options.delta,
                    "restore over an existing (stopped) data directory, rewriting only files "
                    "whose content differs and removing what the backup does not have");
  restore->add_option("--tablespace-map", restore_options.tablespace_map,
                      "NAME=DIR: restore tablespace NAME (or OID) into DIR instead of where it "
                      "was (repeatable)");
  restore->add_option("--tablespace-map-all", restore_options.tablespace_map_all,
                      "restore every tablespace not in --tablespace-map into DIR/<name>");
  restore->add_option("--primary-conninfo", restore_options.primary_conninfo,
                      "with --standby: also stream from this primary (primary_conninfo)");
  restore->add_flag("--dry-run", g.dry_run, "choose the backup and check the target only");
  restore->callback([&] { result = gravl::commands::Restore(MakeContext(g), restore_options); });

  gravl::commands::VerifyOptions verify_options;
  auto* verify = app.add_subcommand(
      "verify",
      "Re-read and check every object of the backups and the WAL archive (SHA-256, "
      "decryption, completeness, WAL continuity) and report each backup's recoverable window");
  verify->add_option("--set", verify_options.set, "only this backup (label)");
  verify->add_flag("--full", verify_options.full,
                   "also decrypt and decompress every object and check every file's content "
                   "(XXH128); by default the SHA-256 of every object's stored bytes is checked");
  verify->callback([&] { result = gravl::commands::Verify(MakeContext(g), verify_options); });

  gravl::commands::TestRestoreOptions drill_options;
  auto* drill = app.add_subcommand(
      "test-restore",
      "Restore drill: restore into a temporary directory, start an ephemeral PostgreSQL, "
      "recover, validate (row counts, foreign keys, amcheck, WAL position, custom checks), "
      "store a JSON report with the measured RTO, clean up");
  drill->add_option("--set", drill_options.set, "backup label (default: the newest)");
  AddTargetOptions(drill, drill_options.restore);
  drill->add_flag("--keep", drill_options.keep, "keep the restored directory for inspection");
  drill->callback([&] { result = gravl::commands::TestRestore(MakeContext(g), drill_options); });

  auto* version = app.add_subcommand("version", "Print the version");
  version->callback([&] {
    if (g.output == "json") {
      std::cout << nlohmann::json{{"version", gravl::kVersion}}.dump() << std::endl;
    } else {
      std::cout << "gravl-dr " << gravl::kVersion << std::endl;
    }
  });

  try {
    app.parse(argc, argv);
  } catch (const CLI::Success& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    if (e.get_exit_code() == 0) return app.exit(e);  // --help, --version
    // One line, like every other error, naming where to look.
    std::string what = e.what();
    if (dynamic_cast<const CLI::RequiredError*>(&e) != nullptr && !app.remaining().empty() &&
        app.get_subcommands().empty()) {
      std::string names;
      for (const auto* sub : app.get_subcommands({})) {
        names += (names.empty() ? "" : ", ") + sub->get_name();
      }
      what = "unknown command '" + app.remaining().front() + "'; the commands are " + names;
    }
    if (what.size() > 300) what = what.substr(0, 300) + "...";
    PrintError(what + " (see gravl-dr --help, or gravl-dr COMMAND --help)", ExitCode::kUsage,
               json_output);
    return gravl::ToInt(ExitCode::kUsage);
  } catch (const gravl::Error& e) {
    PrintError(e.what(), e.code(), json_output);
    return gravl::ToInt(e.code());
  } catch (const std::exception& e) {
    PrintError(std::string("unexpected error: ") + e.what(), ExitCode::kError, json_output);
    return gravl::ToInt(ExitCode::kError);
  }
  return result;
}
