// expire: carries out the retention policy (docs/retention.md) on every selected repository:
// plans with repo/retention, prints what goes and what stays and why, then deletes in the
// crash-safe order of repo/expire. pin/unpin: keep a backup whatever the policy says.

#include "repo/expire.h"

#include <spdlog/spdlog.h>

#include <sstream>

#include "commands/cli.h"
#include "commands/commands.h"
#include "commands/run_record.h"
#include "common/bytes.h"
#include "common/error.h"
#include "common/log.h"
#include "common/time_util.h"
#include "repo/catalog.h"
#include "repo/lock.h"
#include "repo/retention.h"

namespace gravl::commands {
namespace {

std::string Join(const std::vector<std::string>& v, const char* sep = ",") {
  std::string s;
  for (const auto& x : v) s += (s.empty() ? "" : sep) + x;
  return s;
}

std::string DescribePolicy(const repo::RetentionPolicy& p) {
  std::ostringstream s;
  s << "daily " << p.full.daily << ", weekly " << p.full.weekly << ", monthly " << p.full.monthly
    << ", yearly " << p.full.yearly << ", pitr_window "
    << (p.pitr_window.count() ? FormatDuration(p.pitr_window) : std::string("none"))
    << ", min_full " << p.min_full;
  if (p.logical.any()) {
    s << "; logical: daily " << p.logical.daily << ", weekly " << p.logical.weekly << ", monthly "
      << p.logical.monthly << ", yearly " << p.logical.yearly;
  }
  return s.str();
}

nlohmann::json PolicyJson(const repo::RetentionPolicy& p) {
  auto tiers = [](const repo::TierCounts& t) {
    return nlohmann::json{
        {"daily", t.daily}, {"weekly", t.weekly}, {"monthly", t.monthly}, {"yearly", t.yearly}};
  };
  return {{"full", tiers(p.full)},
          {"logical", tiers(p.logical)},
          {"pitr_window_s", p.pitr_window.count()},
          {"min_full", p.min_full}};
}

}  // namespace

repo::RetentionPolicy RetentionPolicyOf(const Config& config) {
  const RetentionConfig& r = config.retention;
  repo::RetentionPolicy p;
  p.full = {r.daily, r.weekly, r.monthly, r.yearly};
  p.logical = {r.logical_daily, r.logical_weekly, r.logical_monthly, r.logical_yearly};
  p.pitr_window = std::chrono::seconds(r.pitr_window_s);
  p.min_full = r.min_full;
  return p;
}

ExpireReport ExpireRepository(const Context& ctx, repo::Repository& repo, bool dry_run) {
  ExpireReport report;
  const repo::RetentionPolicy policy = RetentionPolicyOf(ctx.config);
  repo::Catalog catalog(repo);
  const auto facts = catalog.RetentionFacts();
  const repo::RetentionPlan plan = repo::PlanRetention(
      facts, policy, std::chrono::system_clock::now(), repo.Stanza().wal_segment_size);
  const repo::WalDeletion wal = repo::WalToDelete(catalog, plan);
  report.refused = !plan.refusal.empty();

  std::ostringstream text;
  text << repo.Describe() << ": " << DescribePolicy(policy) << "\n";
  if (plan.window_start) {
    text << "  PITR window from " << FormatIso8601(*plan.window_start) << " (anchor "
         << *plan.anchor << ") to the newest archived WAL\n";
  }
  nlohmann::json backups = nlohmann::json::array();
  std::uint64_t delete_bytes = 0;
  std::size_t to_delete = 0;
  for (std::size_t i = 0; i < facts.size(); ++i) {
    const repo::BackupFacts& f = facts[i];
    const repo::BackupDecision& d = plan.backups[i];
    if (!d.keep) {
      delete_bytes += f.stored_size;
      ++to_delete;
    }
    std::string expires = d.expires ? FormatIso8601(*d.expires) : std::string("-");
    text << (d.keep ? "  keep    " : "  DELETE  ") << f.label << "  "
         << (d.keep ? Join(d.reasons) : std::string("in no tier")) << "  "
         << (d.keep ? "until " + expires : std::string("")) << "  " << FormatBytes(f.stored_size)
         << "\n";
    backups.push_back({{"label", f.label},
                       {"type", f.full ? "full" : "logical"},
                       {"keep", d.keep},
                       {"reasons", d.reasons},
                       {"expires", d.expires ? nlohmann::json(expires) : nlohmann::json(nullptr)},
                       {"stored_size", f.stored_size}});
  }
  if (!wal.keys.empty()) {
    text << "  WAL: DELETE " << wal.keys.size() << " objects (" << wal.first << " .. " << wal.last
         << "), " << FormatBytes(wal.bytes) << "\n";
  } else {
    text << "  WAL: nothing to delete" << (plan.keep_all_wal ? " (no valid full backup)" : "")
         << "\n";
  }
  for (const auto& w : plan.warnings) {
    spdlog::warn("{}: {}", repo.Describe(), w);
    text << "  warning: " << w << "\n";
  }
  nlohmann::json json = {
      {"repo", repo.config().name},
      {"policy", PolicyJson(policy)},
      {"dry_run", dry_run},
      {"anchor", plan.anchor ? nlohmann::json(*plan.anchor) : nullptr},
      {"window_start", plan.window_start ? nlohmann::json(FormatIso8601(*plan.window_start))
                                         : nlohmann::json(nullptr)},
      {"backups", backups},
      {"wal",
       {{"delete", wal.keys.size()},
        {"bytes", wal.bytes},
        {"first", wal.first},
        {"last", wal.last}}},
      {"warnings", plan.warnings},
      {"refusal", plan.refusal}};
  if (report.refused) {
    spdlog::error("{}: expire refused: {}", repo.Describe(), plan.refusal);
    text << "  REFUSED, nothing deleted: " << plan.refusal << "\n";
  } else if (dry_run) {
    text << "  would free " << FormatBytes(delete_bytes + wal.bytes) << " (" << to_delete
         << " backups, " << wal.keys.size() << " WAL objects); nothing was deleted (--dry-run)\n";
  } else {
    repo::ExpireOutcome out = repo::CarryOut(catalog, plan, [&](const std::string& step) {
      spdlog::info("{}: expiring {}", repo.Describe(), step);
    });
    for (const auto& l : out.archived) {
      spdlog::info("{}: moved to the archive storage class: {}", repo.Describe(), l);
      text << "  archived: " << l << "\n";
    }
    for (const auto& l : out.extended) {
      spdlog::info("{}: Object Lock extended: {}", repo.Describe(), l);
      text << "  Object Lock extended: " << l << "\n";
    }
    for (const auto& l : out.locked) {
      spdlog::info("{}: not expired yet, Object Lock: {}", repo.Describe(), l);
      text << "  kept by Object Lock: " << l << "\n";
    }
    text << "  freed " << FormatBytes(out.backup_bytes + out.wal_bytes) << ": "
         << out.backups_deleted.size() << " backups (" << FormatBytes(out.backup_bytes) << "), "
         << out.wal_deleted << " WAL objects (" << FormatBytes(out.wal_bytes) << ")";
    if (!out.incomplete_removed.empty()) {
      text << ", " << out.incomplete_removed.size() << " interrupted backups";
    }
    text << "\n";
    json["deleted"] = {{"backups", out.backups_deleted},
                       {"backup_bytes", out.backup_bytes},
                       {"interrupted_backups", out.incomplete_removed},
                       {"wal_objects", out.wal_deleted},
                       {"wal_bytes", out.wal_bytes},
                       {"locked", out.locked},
                       {"lock_extended", out.extended},
                       {"archived", out.archived}};
    spdlog::info("{}: expired {} backups and {} WAL objects, {} freed", repo.Describe(),
                 out.backups_deleted.size(), out.wal_deleted,
                 FormatBytes(out.backup_bytes + out.wal_bytes));
  }
  report.json = std::move(json);
  report.text = text.str();
  return report;
}

int ExpireAfterBackup(const Context& ctx, repo::Repository& repo, const std::string& label,
                      nlohmann::json& json, std::ostringstream& text) {
  if (!ctx.config.retention.configured || !ctx.config.retention.auto_expire) return 0;
  try {
    // A run of its own: the expire metrics and notifications cover automatic runs too.
    return RecordRun(ctx, repo::kExpireReports, "after backup", [&](const Context& run_ctx) {
      run_ctx.run->repo = repo.config().name;
      ExpireReport report = ExpireRepository(run_ctx, repo, false);
      run_ctx.run->details = report.json;
      json["expire"] = std::move(report.json);
      text << report.text;
      return report.refused ? ToInt(ExitCode::kRefused) : 0;
    });
  } catch (const Error& e) {
    std::string msg = "backup " + label + " is complete, but expire failed: " + Redact(e.what());
    spdlog::error("{}", msg);
    json["expire"] = {{"error", msg}};
    text << "  " << msg << "\n";
    return ToInt(e.code());
  }
}

int Expire(const Context& ctx) {
  if (!ctx.config.retention.configured) {
    throw ConfigError(
        "no retention policy configured: set retention.daily (and .weekly, .monthly, .yearly, "
        ".pitr_window) in " +
        ctx.config.source + "; without one nothing is ever expired (docs/retention.md)");
  }
  nlohmann::json results = nlohmann::json::array();
  std::string text;
  bool refused = false;
  for (auto& r : ctx.OpenRepos()) {
    r->Stanza();
    r->Unlock(ctx.config.passphrase);
    std::unique_ptr<repo::StanzaLock> lock;
    if (!ctx.dry_run) {
      lock = repo::StanzaLock::Acquire(r->storage(), r->stanza(), "backup", "expire");
    }
    ExpireReport report = ExpireRepository(ctx, *r, ctx.dry_run);
    if (ctx.run) ctx.run->details[r->config().name] = report.json;
    refused = refused || report.refused;
    results.push_back(std::move(report.json));
    text += report.text;
  }
  ctx.Emit({{"stanza", ctx.config.stanza}, {"repos", results}}, text);
  return refused ? ToInt(ExitCode::kRefused) : 0;
}

int Pin(const Context& ctx, const PinOptions& options) {
  std::optional<SystemTime> until;
  if (!options.until.empty()) {
    until = ParseTargetTime(options.until);
    if (*until <= std::chrono::system_clock::now()) {
      throw UsageError("--until " + options.until + " is in the past");
    }
  }
  if (options.reason.empty()) throw UsageError("--reason must not be empty");
  nlohmann::json pins = nlohmann::json::array();
  std::string text;
  for (auto& r : ctx.OpenRepos()) {
    r->Stanza();
    r->Unlock(ctx.config.passphrase);
    repo::Catalog catalog(*r);
    if (catalog.Find(options.set) == nullptr) continue;  // pinned where it is
    if (options.unpin) {
      std::size_t n = repo::RemovePins(*r, options.set);
      pins.push_back({{"repo", r->config().name}, {"removed", n}});
      text += r->Describe() + ": removed " + std::to_string(n) + " pin(s) of " + options.set + "\n";
      continue;
    }
    repo::Pin pin = repo::WritePin(*r, options.set, until, options.reason);
    pins.push_back({{"repo", r->config().name},
                    {"pin", pin.key},
                    {"until", until ? nlohmann::json(FormatIso8601(*until)) : nullptr}});
    text += r->Describe() + ": pinned " + options.set + " " +
            (until ? "until " + FormatIso8601(*until) : std::string("without end")) + " (" +
            options.reason + ")\n";
  }
  if (pins.empty()) {
    throw NotFoundError("no selected repository has a backup '" + options.set +
                        "'; 'gravl-dr info' lists the backups");
  }
  ctx.Emit({{"label", options.set}, {"repos", pins}}, text);
  return 0;
}

void AddExpire(CLI::App& app, Invocation& inv) {
  auto* cmd = app.add_subcommand(
      "expire",
      "Apply the retention policy (retention.*): delete the backups in no tier and outside "
      "the PITR window, then the WAL nothing kept needs; prints what stays and why");
  cmd->add_flag("--dry-run", inv.dry_run, "print the plan; delete nothing");
  cmd->callback([&inv] {
    inv.result = RecordRun(inv.MakeContext(), repo::kExpireReports, "",
                           [](const Context& ctx) { return Expire(ctx); });
  });
}

void AddPin(CLI::App& app, Invocation& inv) {
  for (bool unpin : {false, true}) {
    auto options = std::make_shared<PinOptions>();
    options->unpin = unpin;
    auto* cmd = app.add_subcommand(
        unpin ? "unpin" : "pin",
        unpin ? "Remove every pin of a backup: it expires again under the retention policy"
              : "Keep a backup (and the WAL it needs) whatever the retention policy says: a "
                "legal hold, a pre-migration snapshot");
    cmd->add_option("--set", options->set, "the backup's label")->required();
    if (!unpin) {
      cmd->add_option("--until", options->until,
                      "keep it until this time (with a zone: '2027-01-01 00:00:00Z'); default: "
                      "until unpinned");
      cmd->add_option("--reason", options->reason, "why, for the record")->capture_default_str();
    }
    cmd->callback([&inv, options] { inv.result = Pin(inv.MakeContext(), *options); });
  }
}

}  // namespace gravl::commands
