#include "commands/run_record.h"

#include <chrono>

#include "common/error.h"
#include "common/log.h"
#include "notify/notify.h"

namespace gravl::commands {

namespace {

// The event kind of a report kind: "backups" -> "backup", "restore-tests" -> "drill".
std::string EventKind(const std::string& kind, const std::string& subject = "") {
  if (kind == repo::kFailoverReports) return subject.empty() ? "failover" : subject;
  if (kind == repo::kBackupReports) return "backup";
  if (kind == repo::kExpireReports) return "expire";
  if (kind == repo::kVerifyReports) return "verify";
  if (kind == repo::kDrillReports) return "drill";
  if (kind == repo::kSyncReports) return "sync";
  return kind;
}

std::string Summary(const repo::RunReport& r) {
  std::string s = EventKind(r.kind, r.subject);
  if (!r.subject.empty()) s += " (" + r.subject + ")";
  if (!r.label.empty()) s += " of " + r.label;
  char took[64];
  std::snprintf(took, sizeof took, " in %.1f s", r.seconds());
  s += r.ok ? std::string(" succeeded") + took
            : std::string(" failed") + took + ": " +
                  (r.error.empty() ? "exit code " + std::to_string(r.exit_code) : r.error);
  return s;
}

// Stores `report` where it belongs; returns false (logged) when it could not be stored
// anywhere it should.
bool Store(repo::RunReport& report, std::vector<std::unique_ptr<repo::Repository>>& repos) {
  bool stored_all = true;
  bool matched = false;
  for (auto& r : repos) {
    if (!report.repo.empty() && r->config().name != report.repo) continue;
    matched = true;
    repo::RunReport copy = report;
    try {
      repo::WriteReport(*r, copy);
      if (report.key.empty()) report.key = copy.key;
      spdlog::debug("run report stored as {}/{}", r->Describe(), copy.key);
    } catch (const Error& e) {
      spdlog::error("cannot store the {} report in {}: {}", EventKind(report.kind), r->Describe(),
                    Redact(e.what()));
      stored_all = false;
    }
  }
  if (!matched && !report.repo.empty()) {
    spdlog::error(
        "the {} report belongs in repository '{}', which --repo did not select: it "
        "was not stored",
        EventKind(report.kind, report.subject), report.repo);
    return false;
  }
  return stored_all;
}

void Notify(const Context& ctx, const repo::RunReport& report,
            std::vector<std::unique_ptr<repo::Repository>>& repos) {
  if (ctx.config.notify.targets.empty()) return;
  notify::Event event;
  event.kind = EventKind(report.kind, report.subject);
  event.ok = report.ok;
  event.stanza = ctx.config.stanza;
  event.repo = report.repo;
  event.summary = Summary(report);
  event.report = report.ToJson();
  auto outcomes = notify::Send(ctx.config.notify, event);
  if (outcomes.empty()) return;
  // One notification report per target, in the repository of the run (or the first one).
  for (auto& r : repos) {
    if (!report.repo.empty() && r->config().name != report.repo) continue;
    for (const auto& o : outcomes) {
      repo::RunReport n;
      n.kind = repo::kNotificationReports;
      n.subject = event.name();
      n.label = o.target;
      n.started = n.finished = std::chrono::system_clock::now();
      n.ok = o.delivered;
      n.error = o.error;
      n.details = {{"target", o.target}, {"attempts", o.attempts}, {"http_status", o.http_status}};
      try {
        repo::WriteReport(*r, n);
      } catch (const Error& e) {
        spdlog::warn("cannot record the notification outcome in {}: {}", r->Describe(),
                     Redact(e.what()));
      }
    }
    break;
  }
}

}  // namespace

int RecordRun(Context ctx, const std::string& kind, const std::string& subject,
              const std::function<int(const Context&)>& body) {
  if (ctx.dry_run) return body(ctx);
  auto run = std::make_shared<repo::RunReport>();
  run->kind = kind;
  run->subject = subject;
  run->started = std::chrono::system_clock::now();
  ctx.run = run;
  int code = 0;
  std::exception_ptr failure;
  try {
    code = body(ctx);
    run->exit_code = code;
    run->ok = code == 0 || run->ok;
    if (code != 0) run->error_class = ExitCodeName(static_cast<ExitCode>(code));
  } catch (const Error& e) {
    run->exit_code = ToInt(e.code());
    run->error_class = ExitCodeName(e.code());
    run->error = Redact(e.what());
    failure = std::current_exception();
  } catch (const std::exception& e) {
    run->exit_code = ToInt(ExitCode::kError);
    run->error_class = ExitCodeName(ExitCode::kError);
    run->error = Redact(e.what());
    failure = std::current_exception();
  }
  run->finished = std::chrono::system_clock::now();
  // Backups go to one repository: the one named, or the first selected.
  if (run->repo.empty() && kind == repo::kBackupReports) {
    auto selected = ctx.config.SelectRepos(ctx.repo_name);
    if (!selected.empty()) run->repo = selected.front().name;
  }
  bool stored = true;
  std::vector<std::unique_ptr<repo::Repository>> repos;
  try {
    // The repository the report belongs in, even when --repo selected another one (a sync
    // after `backup --repo A --copy-to B` is reported in B).
    Context store_ctx = ctx;
    if (!run->repo.empty()) store_ctx.repo_name = run->repo;
    repos = store_ctx.OpenRepos();
    if (run->key.empty()) stored = Store(*run, repos);
  } catch (const Error& e) {
    spdlog::error("cannot store the {} report: {}", EventKind(kind), Redact(e.what()));
    stored = false;
  }
  Notify(ctx, *run, repos);
  if (failure) std::rethrow_exception(failure);
  if (!stored && code == 0) {
    throw StorageError(EventKind(kind) +
                       " completed, but its run report could not be stored (see the log above); "
                       "the exporter will not count this run");
  }
  return code;
}

}  // namespace gravl::commands
