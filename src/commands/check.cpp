// check: is archiving set up and working? Validates the server settings backups and WAL
// archiving need, then forces a WAL switch and waits until that segment is in every
// repository.

#include <pwd.h>
#include <spdlog/spdlog.h>
#include <sys/stat.h>

#include <algorithm>
#include <chrono>
#include <sstream>
#include <thread>

#include "commands/cli.h"
#include "commands/commands.h"
#include "common/error.h"
#include "common/log.h"
#include "common/time_util.h"
#include "pg/connection.h"
#include "pg/queries.h"
#include "repo/catalog.h"
#include "repo/wal.h"
#include "storage/posix.h"

namespace gravl::commands {
namespace {

struct CheckResult {
  std::string name;
  bool ok;
  std::string detail;
  ExitCode code = ExitCode::kConfig;
};

}  // namespace

namespace {

// A PITR window shorter than the interval between full backups is a warning: right before
// each backup the anchor is older than the window asks, so WAL is kept for longer than it
// says -- or, if backups stop, the window is not what the operator believes.
void CheckRetention(const Context& ctx, repo::Repository& repo) {
  const RetentionConfig& r = ctx.config.retention;
  if (!r.configured || r.pitr_window_s <= 0) return;
  repo::Catalog catalog(repo);
  std::vector<SystemTime> stops;
  for (const auto& b : catalog.Backups()) {
    if (b.ok() && b.manifest->full()) stops.push_back(b.manifest->stop_time);
  }
  std::sort(stops.begin(), stops.end());
  if (stops.size() < 2) return;
  const SystemTime last = stops.back(), before = stops[stops.size() - 2];
  auto gap = std::chrono::duration_cast<std::chrono::seconds>(last - before);
  if (gap.count() > r.pitr_window_s) {
    spdlog::warn(
        "{}: retention.pitr_window ({}) is shorter than the {} between the last two full "
        "backups ({} and {}): take a full backup at least once per window",
        repo.Describe(), FormatDuration(std::chrono::seconds(r.pitr_window_s)),
        FormatDuration(std::chrono::floor<std::chrono::hours>(gap)), FormatIso8601(before),
        FormatIso8601(last));
  }
}

}  // namespace

int Check(const Context& ctx) {
  std::vector<CheckResult> results;
  auto add = [&](std::string name, bool ok, std::string detail, ExitCode code = ExitCode::kConfig) {
    results.push_back({std::move(name), ok, std::move(detail), code});
  };

  auto conn = pg::Connection::Open(ctx.config.pg_conninfo);
  pg::ClusterIdentity id = conn->Identify();
  pg::ArchiveSettings settings = pg::GetArchiveSettings(*conn);

  // Repositories: the stanza exists for this cluster, the passphrase fits.
  auto repos = ctx.OpenRepos();
  for (auto& r : repos) {
    try {
      const repo::StanzaInfo& info = r->Stanza();
      r->Unlock(ctx.config.passphrase);
      bool same = info.system_identifier == id.system_identifier;
      add("stanza in " + r->config().name, same,
          same ? "stanza '" + ctx.config.stanza + "' matches system identifier " +
                     id.system_identifier
               : "stanza '" + ctx.config.stanza + "' belongs to system identifier " +
                     info.system_identifier + ", the server is " + id.system_identifier,
          ExitCode::kConflict);
      CheckRetention(ctx, *r);
    } catch (const Error& e) {
      add("stanza in " + r->config().name, false, Redact(e.what()), e.code());
    }
  }

  // Local repositories: the server's OS user (archive_command runs as it) must be able to
  // write every folder, whoever created them.
  std::optional<std::pair<unsigned, unsigned>> server_user;
  struct stat data_dir {};
  if (!id.data_directory.empty() && ::stat(id.data_directory.c_str(), &data_dir) == 0) {
    server_user = {data_dir.st_uid, data_dir.st_gid};
  } else if (struct passwd* pw = ::getpwnam("postgres")) {
    server_user = {pw->pw_uid, pw->pw_gid};
  }
  for (const auto& rc : ctx.config.SelectRepos(ctx.repo_name)) {
    if (rc.type != "posix" || !server_user) continue;
    auto denied =
        storage::DirectoriesNotWritableBy(rc.path, server_user->first, server_user->second);
    std::string list;
    for (const auto& d : denied) list += (list.empty() ? "" : ", ") + d;
    std::string who = "uid " + std::to_string(server_user->first);
    if (struct passwd* pw = ::getpwuid(server_user->first)) who = pw->pw_name;
    add("repository " + rc.name + " writable by " + who, denied.empty(),
        denied.empty() ? rc.path + " and its folders are writable by " + who
                       : who + " (the server's user, which runs archive_command) cannot write " +
                             list + ": chown -R " + who + ": " + rc.path,
        ExitCode::kStorage);
  }

  const std::string& wal_level = settings.wal_level;
  add("wal_level", wal_level == "replica" || wal_level == "logical",
      "wal_level = " + wal_level +
          (wal_level == "minimal" ? ": set wal_level = replica and restart" : ""));
  const std::string& mode = settings.archive_mode;
  bool mode_ok = mode == "always" || (mode == "on" && !id.in_recovery);
  add("archive_mode", mode_ok,
      "archive_mode = " + mode +
          (mode_ok          ? ""
           : id.in_recovery ? ": a standby archives only with archive_mode = always"
                            : ": set archive_mode = on and restart"));
  const std::string& command = settings.archive_command;
  bool command_ok = command.find("archive-push") != std::string::npos;
  add("archive_command", command_ok,
      "archive_command = '" + command + "'" +
          (command_ok ? "" : ": set archive_command = 'gravl-dr archive-push %p'"));
  int senders = settings.max_wal_senders;
  add("max_wal_senders", senders > 0,
      "max_wal_senders = " + std::to_string(senders) +
          (senders > 0 ? "" : ": base backups need at least 1 (2 or more recommended)"));

  bool ready = std::all_of(results.begin(), results.end(), [](const auto& r) { return r.ok; });
  if (ready && id.in_recovery) {
    add("wal switch", true, "skipped: the server is a standby (it cannot switch WAL)");
  } else if (ready && !ctx.dry_run) {
    pg::CreateRestorePoint(*conn, "gravl-dr check");
    std::string segment = pg::SwitchWal(*conn);
    spdlog::info("switched WAL; waiting up to {}s for {} in every repository",
                 ctx.config.archive_timeout, segment);
    auto deadline =
        std::chrono::steady_clock::now() + std::chrono::seconds(ctx.config.archive_timeout);
    std::vector<std::string> missing;
    auto start = std::chrono::steady_clock::now();
    for (auto& r : repos) {
      std::uint64_t seg_size = r->Stanza().wal_segment_size;
      auto seg = WalSegment::ParseName(segment, seg_size ? seg_size : kDefaultWalSegmentSize);
      auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
          deadline - std::chrono::steady_clock::now());
      try {
        repo::Catalog(*r).WaitForWal(seg->timeline, seg->StartLsn(seg_size),
                                     Lsn{seg->StartLsn(seg_size).value + seg_size},
                                     std::max(left, std::chrono::milliseconds(0)));
      } catch (const StorageError&) {
        missing.push_back(r->config().name);
      }
    }
    double waited = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    if (missing.empty()) {
      char buf[64];
      std::snprintf(buf, sizeof buf, "%.1f", waited);
      add("wal archived", true, segment + " reached every repository in " + buf + "s");
    } else {
      std::string names;
      for (const auto& m : missing) names += (names.empty() ? "" : ", ") + m;
      std::string failure;
      pg::ArchiverStatus archiver = pg::GetArchiverStatus(*conn);
      if (!archiver.last_failed_wal.empty()) {
        failure = "; pg_stat_archiver: " + std::to_string(archiver.failed_count) +
                  " failures, last " + archiver.last_failed_wal + " at " +
                  archiver.last_failed_time + " (see the server log)";
      }
      add("wal archived", false,
          segment + " did not reach " + names + " within " +
              std::to_string(ctx.config.archive_timeout) + "s" + failure,
          ExitCode::kStorage);
    }
  }

  nlohmann::json checks = nlohmann::json::array();
  std::ostringstream text;
  ExitCode first_failure = ExitCode::kSuccess;
  for (const auto& r : results) {
    checks.push_back({{"check", r.name}, {"ok", r.ok}, {"detail", r.detail}});
    text << (r.ok ? "  [ok]   " : "  [FAIL] ") << r.name << ": " << r.detail << "\n";
    if (!r.ok && first_failure == ExitCode::kSuccess) first_failure = r.code;
  }
  bool ok = first_failure == ExitCode::kSuccess;
  text << (ok ? "check passed\n" : "check FAILED\n");
  ctx.Emit({{"ok", ok}, {"stanza", ctx.config.stanza}, {"checks", checks}}, text.str());
  return ToInt(first_failure);
}

void AddCheck(CLI::App& app, Invocation& inv) {
  auto* cmd = app.add_subcommand(
      "check",
      "Check the server settings for archiving and backups, then switch WAL and wait until "
      "the segment is in every repository");
  cmd->add_flag("--dry-run", inv.dry_run, "check the settings only; do not switch WAL");
  cmd->callback([&inv] { inv.result = Check(inv.MakeContext()); });
}

}  // namespace gravl::commands
