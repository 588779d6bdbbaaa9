// repo-sync: makes one repository (a second region) hold every backup of another and the WAL
// its backups and PITR window need, every object verified, each backup's manifest copied last
// (repo/replicate.h). --verify-only copies nothing and reports what the target lacks (for S3
// cross-region replication users); --dry-run prints what a sync would copy.

#include <spdlog/spdlog.h>

#include <sstream>

#include "commands/cli.h"
#include "commands/commands.h"
#include "commands/run_record.h"
#include "common/bytes.h"
#include "common/error.h"
#include "common/log.h"
#include "repo/catalog.h"
#include "repo/lock.h"
#include "repo/replicate.h"

namespace gravl::commands {

namespace {

struct RepoSyncOptions {
  std::string from, to;
  bool verify_only = false;
};

std::string Age(std::optional<SystemTime> t, SystemTime now) {
  if (!t) return "none";
  return FormatDuration(std::chrono::duration_cast<std::chrono::seconds>(now - *t)) + " old";
}

struct SyncOutcome {
  nlohmann::json json;
  std::string text;
  int code = 0;
};

SyncOutcome RunSync(const Context& ctx, const RepoSyncOptions& options) {
  if (options.from == options.to) {
    throw UsageError("--from and --to name the same repository '" + options.from + "'");
  }
  Context all = ctx;
  all.repo_name.reset();
  auto repos = all.OpenRepos();
  auto find = [&](const std::string& name, const char* flag) -> repo::Repository& {
    for (auto& r : repos) {
      if (r->config().name == name) return *r;
    }
    std::string names;
    for (auto& r : repos) names += (names.empty() ? "" : ", ") + r->config().name;
    throw ConfigError(std::string(flag) + " " + name + " is not a configured repository (" + names +
                      ")");
  };
  repo::Repository& from = find(options.from, "--from");
  repo::Repository& to = find(options.to, "--to");
  for (repo::Repository* r : {&from, &to}) {
    r->Stanza();
    r->Unlock(ctx.config.passphrase);
  }
  const bool write = !ctx.dry_run && !options.verify_only;
  std::unique_ptr<repo::StanzaLock> lock;
  if (write) lock = repo::StanzaLock::Acquire(to.storage(), to.stanza(), "backup", "repo-sync");
  if (ctx.run) ctx.run->repo = to.config().name;

  repo::SyncOptions sync;
  sync.dry_run = ctx.dry_run;
  sync.verify_only = options.verify_only;
  sync.parallel = std::max(2, ctx.config.parallel);
  sync.now = std::chrono::system_clock::now();
  if (ctx.config.retention.configured) sync.policy = RetentionPolicyOf(ctx.config);
  repo::Catalog a(from), b(to);
  repo::SyncResult r = repo::Sync(a, b, sync);

  std::ostringstream text;
  const char* mode = options.verify_only ? "verify-only" : ctx.dry_run ? "dry run" : "sync";
  text << "repo-sync " << from.config().name << " -> " << to.config().name << " (" << mode << ")\n";
  nlohmann::json backups = nlohmann::json::array();
  for (const auto& s : r.backups) {
    text << "  " << s.label << "  " << s.status;
    if (s.status == "missing" || s.status == "copied") {
      text << " (" << s.objects << " objects, " << FormatBytes(s.bytes) << ")";
    }
    text << "\n";
    backups.push_back(
        {{"label", s.label}, {"status", s.status}, {"objects", s.objects}, {"bytes", s.bytes}});
  }
  if (write) {
    text << "  WAL: " << r.wal_copied << " segment(s) copied; " << r.objects_copied << " objects, "
         << FormatBytes(r.bytes_copied) << " copied and verified\n";
  } else {
    text << "  missing in " << to.config().name << ": " << r.missing_objects << " objects ("
         << FormatBytes(r.missing_bytes) << "), WAL " << r.wal_missing
         << " segment(s); newest missing backup " << Age(r.newest_missing_backup, sync.now)
         << ", newest missing WAL " << Age(r.newest_missing_wal, sync.now) << "\n";
  }
  auto time_json = [](std::optional<SystemTime> t) {
    return t ? nlohmann::json(FormatIso8601(*t)) : nlohmann::json(nullptr);
  };
  nlohmann::json json = {{"from", from.config().name},
                         {"to", to.config().name},
                         {"mode", mode},
                         {"backups", backups},
                         {"wal_missing", r.wal_missing},
                         {"wal_copied", r.wal_copied},
                         {"objects_copied", r.objects_copied},
                         {"bytes_copied", r.bytes_copied},
                         {"missing_objects", r.missing_objects},
                         {"missing_bytes", r.missing_bytes},
                         {"newest_missing_backup", time_json(r.newest_missing_backup)},
                         {"newest_missing_wal", time_json(r.newest_missing_wal)}};
  if (ctx.run) {
    ctx.run->subject = from.config().name;
    ctx.run->bytes = r.bytes_copied;
    ctx.run->details = json;
  }
  return {json, text.str(),
          options.verify_only && !r.complete() ? ToInt(ExitCode::kCheckFailed) : 0};
}

int RepoSync(const Context& ctx, const RepoSyncOptions& options) {
  SyncOutcome o = RunSync(ctx, options);
  ctx.Emit(o.json, o.text);
  return o.code;
}

}  // namespace

int CopyAfterBackup(const Context& ctx, repo::Repository& repo, const std::string& label,
                    nlohmann::json& json, std::ostringstream& text) {
  int code = 0;
  for (const auto& target : ctx.config.backup_copy_to) {
    if (target == repo.config().name) continue;  // where the backup went
    try {
      // A recorded sync run of its own: the sync metrics and notifications cover it.
      RecordRun(ctx, repo::kSyncReports, repo.config().name, [&](const Context& run_ctx) {
        SyncOutcome o = RunSync(run_ctx, {repo.config().name, target, false});
        json["copies"].push_back(o.json);
        text << o.text;
        return o.code;
      });
    } catch (const Error& e) {
      std::string msg = "backup " + label + " is complete in " + repo.config().name +
                        ", but copying it to " + target + " failed: " + Redact(e.what()) +
                        " (run repo-sync --from " + repo.config().name + " --to " + target + ")";
      spdlog::error("{}", msg);
      json["copies"].push_back({{"to", target}, {"error", msg}});
      text << "  " << msg << "\n";
      if (code == 0) code = ToInt(e.code());
    }
  }
  return code;
}

void AddRepoSync(CLI::App& app, Invocation& inv) {
  auto options = std::make_shared<RepoSyncOptions>();
  auto* cmd = app.add_subcommand(
      "repo-sync",
      "Copy every backup of one repository, and the WAL it needs, into another (a second "
      "region), verifying every object; the manifest of each backup last");
  cmd->add_option("--from", options->from, "the repository to copy from")->required();
  cmd->add_option("--to", options->to, "the repository to copy into")->required();
  cmd->add_flag("--verify-only", options->verify_only,
                "copy nothing; report what the target lacks (exit 12 when it lacks something)");
  cmd->add_flag("--dry-run", inv.dry_run, "print what a sync would copy; copy nothing");
  cmd->callback([&inv, options] {
    inv.result =
        RecordRun(inv.MakeContext(), repo::kSyncReports, options->verify_only ? "verify-only" : "",
                  [&](const Context& ctx) { return RepoSync(ctx, *options); });
  });
}

}  // namespace gravl::commands
