// info: what each repository holds for the stanza (or every stanza): cluster identity,
// backups, and the archived WAL range per timeline.

#include <algorithm>
#include <cstdio>
#include <iostream>
#include <sstream>

#include "commands/cli.h"
#include "commands/commands.h"
#include "common/error.h"
#include "common/log.h"
#include "ha/ha.h"
#include "ha/store.h"
#include "repo/catalog.h"
#include "repo/fence.h"
#include "repo/replicate.h"
#include "repo/reports.h"
#include "storage/factory.h"

namespace gravl::commands {
namespace {

// What the retention policy says of a backup: kept (why, until when) or expired next time.
std::string RetentionText(const repo::BackupDecision& d) {
  if (!d.keep) return "expires at the next 'expire'";
  std::string reasons;
  for (const auto& r : d.reasons) reasons += (reasons.empty() ? "" : ",") + r;
  return "kept: " + reasons + (d.expires ? ", until " + FormatIso8601(*d.expires) : "");
}

nlohmann::json StanzaJson(const repo::StanzaSummary& s, const repo::RetentionPlan* plan) {
  nlohmann::json backups = nlohmann::json::array();
  for (const auto& b : s.backups) {
    nlohmann::json entry = b.manifest ? b.manifest->ToJson() : nlohmann::json::object();
    entry.erase("tables");  // summaries carry no row counts
    entry.erase("files");
    entry["label"] = b.label;
    if (b.locked) entry["locked"] = true;
    if (!b.problem.empty()) entry["problem"] = Redact(b.problem);
    if (const repo::BackupDecision* d = plan ? plan->Find(b.label) : nullptr) {
      entry["retention"] = {
          {"keep", d->keep},
          {"reasons", d->reasons},
          {"expires", d->expires ? nlohmann::json(FormatIso8601(*d->expires)) : nullptr}};
    }
    backups.push_back(entry);
  }
  nlohmann::json wal = nlohmann::json::array();
  for (const auto& t : s.wal) {
    wal.push_back({{"timeline", t.timeline},
                   {"first", t.first},
                   {"last", t.last},
                   {"segments", t.segments},
                   {"missing", t.missing},
                   {"history_files", t.history_files},
                   {"stored_bytes", t.bytes}});
  }
  nlohmann::json enc = nullptr;
  if (s.info.encryption) {
    enc = {{"cipher", s.info.encryption->cipher}, {"kdf", s.info.encryption->kdf.algorithm}};
  }
  nlohmann::json drill = nullptr;
  if (s.last_restore_test) {
    const auto& d = *s.last_restore_test;
    auto rto = d.phases.find("rto");
    drill = {{"finished_at", FormatIso8601(d.finished)},
             {"label", d.label},
             {"ok", d.ok},
             {"rto_s", rto == d.phases.end() ? 0.0 : rto->second}};
  }
  nlohmann::json retention = nullptr;
  if (plan != nullptr) {
    retention = {
        {"pitr_window_start",
         plan->window_start ? nlohmann::json(FormatIso8601(*plan->window_start)) : nullptr},
        {"anchor", plan->anchor ? nlohmann::json(*plan->anchor) : nullptr},
        {"warnings", plan->warnings},
        {"refusal", plan->refusal}};
  }
  return {{"stanza", s.info.stanza},
          {"retention", retention},
          {"last_restore_test", drill},
          {"status", "ok"},
          {"system_identifier", s.info.system_identifier},
          {"pg_version_num", s.info.pg_version_num},
          {"pg_major", s.info.pg_major},
          {"wal_segment_size", s.info.wal_segment_size},
          {"created_at", s.info.created_at},
          {"encryption", enc},
          {"backups", backups},
          {"incomplete_backups", s.incomplete_labels},
          {"wal", wal}};
}

void StanzaText(const repo::StanzaSummary& s, const repo::RetentionPlan* plan,
                std::ostringstream& out) {
  out << "    cluster: system identifier " << s.info.system_identifier << ", PostgreSQL "
      << s.info.pg_major << " (" << s.info.pg_version_num << "), WAL segment "
      << FormatBytes(s.info.wal_segment_size) << "\n";
  out << "    encryption: "
      << (s.info.encryption
              ? s.info.encryption->cipher + " (key from " + s.info.encryption->kdf.algorithm + ")"
              : std::string("none"))
      << "\n";
  if (s.backups.empty()) {
    out << "    backups: none\n";
  } else {
    out << "    backups (" << s.backups.size() << "):\n";
    for (const auto& b : s.backups) {
      out << "      " << b.label;
      if (!b.problem.empty()) out << "  DAMAGED: " << Redact(b.problem);
      if (b.locked) out << "  (encrypted: details need the passphrase)";
      if (b.manifest)
        out << "  " << b.manifest->type << "  stopped " << FormatIso8601(b.manifest->stop_time);
      if (const repo::BackupDecision* d = plan ? plan->Find(b.label) : nullptr) {
        out << "  " << RetentionText(*d);
      }
      out << "\n";
    }
  }
  for (const auto& label : s.incomplete_labels) {
    out << "      " << label << "  INCOMPLETE (no manifest; not restorable)\n";
  }
  if (plan != nullptr) {
    out << "    guaranteed PITR window: "
        << (plan->window_start ? "from " + FormatIso8601(*plan->window_start) + " (backup " +
                                     *plan->anchor + ") to the newest archived WAL"
                               : std::string("none (no valid full backup)"))
        << "\n";
    for (const auto& w : plan->warnings) out << "    retention warning: " << w << "\n";
    if (!plan->refusal.empty()) out << "    retention REFUSES to expire: " << plan->refusal << "\n";
  } else {
    out << "    retention: none configured (nothing is ever expired)\n";
  }
  if (s.last_restore_test) {
    const auto& d = *s.last_restore_test;
    char rto[32];
    auto phase = d.phases.find("rto");
    std::snprintf(rto, sizeof rto, "%.1f", phase == d.phases.end() ? 0.0 : phase->second);
    out << "    last restore drill: " << FormatIso8601(d.finished) << " "
        << (d.ok ? "passed" : "FAILED") << ", RTO " << rto << " s (backup "
        << (d.label.empty() ? std::string("none") : d.label) << ")\n";
  } else {
    out << "    last restore drill: never -- run 'gravl-dr test-restore'\n";
  }
  if (s.wal.empty()) {
    out << "    wal archive: empty\n";
  } else {
    out << "    wal archive:\n";
    for (const auto& t : s.wal) {
      out << "      timeline " << t.timeline << ": ";
      if (t.segments == 0) {
        out << "no segments";
      } else {
        out << t.first << " .. " << t.last << " (" << t.segments << " segments";
        if (t.missing > 0) out << ", " << t.missing << " MISSING";
        out << ")";
      }
      if (t.history_files > 0) out << ", " << t.history_files << " history file(s)";
      out << ", " << FormatBytes(t.bytes) << " stored\n";
    }
  }
}

}  // namespace

// Two regions: how far each configured repository is behind the first (repo::LagOf). A
// repository that cannot be read is said so; it is reported above too.
nlohmann::json SyncLagSection(const Context& ctx, std::ostringstream& text) {
  nlohmann::json out = nlohmann::json::array();
  auto repos = ctx.OpenRepos();
  if (repos.size() < 2) return out;
  auto now = std::chrono::system_clock::now();
  auto age = [&](std::optional<SystemTime> t) -> std::string {
    if (!t) return "none";
    return FormatDuration(std::chrono::duration_cast<std::chrono::seconds>(now - *t)) + " old";
  };
  try {
    repos[0]->Stanza();
    repos[0]->Unlock(ctx.config.passphrase);
    repo::Catalog a(*repos[0]);
    for (std::size_t i = 1; i < repos.size(); ++i) {
      std::string pair = repos[0]->config().name + " -> " + repos[i]->config().name;
      try {
        repos[i]->Stanza();
        repos[i]->Unlock(ctx.config.passphrase);
        repo::Catalog b(*repos[i]);
        repo::SyncLag lag = repo::LagOf(a.Backups(), a.Wal(), b.Backups(), b.Wal());
        text << "sync lag " << pair << ": " << lag.missing_backups << " backup(s), "
             << lag.missing_wal << " WAL segment(s) missing (" << FormatBytes(lag.missing_bytes)
             << "); newest missing backup " << age(lag.newest_missing_backup)
             << ", newest missing WAL " << age(lag.newest_missing_wal) << "\n";
        auto at = [](std::optional<SystemTime> t) {
          return t ? nlohmann::json(FormatIso8601(*t)) : nlohmann::json(nullptr);
        };
        out.push_back({{"from", repos[0]->config().name},
                       {"to", repos[i]->config().name},
                       {"missing_backups", lag.missing_backups},
                       {"missing_wal_segments", lag.missing_wal},
                       {"missing_bytes", lag.missing_bytes},
                       {"newest_missing_backup", at(lag.newest_missing_backup)},
                       {"newest_missing_wal", at(lag.newest_missing_wal)}});
      } catch (const Error& e) {
        text << "sync lag " << pair << ": unknown (" << Redact(e.what()) << ")\n";
      }
    }
  } catch (const Error& e) {
    text << "sync lag: unknown (" << Redact(e.what()) << ")\n";
  }
  return out;
}

// The regions (docs/failover.md): each server's role, timeline and replication lag, the newest
// failover, switchover or failback, and WAL an old primary archived after its fence.
nlohmann::json RegionsSection(const Context& ctx, std::ostringstream& text) {
  nlohmann::json out = {{"regions", nlohmann::json::array()}};
  if (ctx.config.regions.empty()) return out;
  text << "regions\n";
  const std::vector<ha::RegionView> views = ha::ViewRegions(ctx.config.regions);
  std::vector<const ha::RegionView*> writable;
  for (const auto& v : views) {
    if (v.role == "primary") writable.push_back(&v);
  }
  for (const auto& v : views) {
    nlohmann::json r = {{"region", v.name}, {"role", v.role}};
    text << "  " << v.name << ": " << v.probe.Describe();
    if (v.probe.reachable) {
      r["timeline"] = v.probe.role.timeline;
      r["lsn"] = v.probe.role.current.ToString();
      r["streaming"] = v.probe.role.streaming;
    } else {
      r["error"] = v.probe.error;
    }
    if (v.lag_bytes) {
      r["lag_bytes"] = *v.lag_bytes;
      text << ", " << FormatBytes(*v.lag_bytes) << " behind the primary";
    }
    text << "\n";
    out["regions"].push_back(r);
  }
  if (writable.size() > 1) {
    // GravlTwoPrimaries: the real one is on the newest timeline (the last promotion's).
    const ha::RegionView* real = writable.front();
    std::string names;
    for (const auto* v : writable) {
      if (v->probe.role.timeline > real->probe.role.timeline) real = v;
      names += (names.empty() ? "" : ", ") + v->name;
    }
    std::string warning = std::to_string(writable.size()) + " writable primaries (" + names +
                          "): keep " + real->name + " (timeline " +
                          std::to_string(real->probe.role.timeline) +
                          "), stop the others now -- docs/runbooks/region-outage.md, case E";
    out["two_primaries"] = warning;
    text << "  WARNING: " << warning << "\n";
  }
  std::optional<repo::RunReport> newest;
  std::map<std::string, std::size_t> quarantined;
  for (const auto& rc : ctx.config.repos) {
    try {
      auto storage = storage::OpenStorage(rc);
      auto keys = repo::ListReportKeys(*storage, ctx.config.stanza, repo::kFailoverReports);
      // By end time (keys sort by start to the second only); role changes are few.
      for (const auto& key : keys) {
        repo::RunReport r = repo::ReadReport(*storage, key);
        if (r.subject == "standby-create") continue;
        if (!newest || r.finished > newest->finished) newest = r;
      }
      quarantined[rc.name] = repo::ListQuarantine(*storage, ctx.config.stanza).size();
    } catch (const Error& e) {
      text << "  " << rc.name << ": cannot read its failover reports: " << Redact(e.what()) << "\n";
    }
  }
  if (newest) {
    out["last_role_change"] = {
        {"kind", newest->subject}, {"to", newest->label},
        {"ok", newest->ok},        {"finished", FormatIso8601(newest->finished)},
        {"repo", newest->repo},    {"report", newest->key}};
    text << "  last role change: " << newest->subject << " to " << newest->label << " "
         << (newest->ok ? "succeeded" : "FAILED") << " at " << FormatIso8601(newest->finished);
    if (newest->details.contains("decision_to_writable_seconds")) {
      char took[64];
      std::snprintf(took, sizeof took, " (writable after %.1f s)",
                    newest->details["decision_to_writable_seconds"].get<double>());
      text << took;
    }
    text << "\n";
  }
  if (ctx.config.ha.configured()) {
    // Automatic failover (docs/automatic-failover.md): the leader key and the primary record.
    nlohmann::json ha = {{"etcd", nullptr}};
    auto store = ha::MakeEtcdStore(ctx.config.ha);
    try {
      ha::ClusterView v = store->Read();
      ha["etcd"] = store->Describe();
      text << "  automatic failover (" << store->Describe() << "): ";
      if (v.leader) {
        ha["leader"] = {
            {"region", v.leader->region}, {"token", v.leader->token}, {"since", v.leader->since}};
        text << "leader key held by " << v.leader->region << " (fencing token " << v.leader->token
             << ", since " << v.leader->since << ")";
      } else {
        ha["leader"] = nullptr;
        text << "leader key GONE (no primary agent renews it)";
      }
      if (v.record) {
        ha["primary_record"] = {{"region", v.record->region},     {"state", v.record->state},
                                {"token", v.record->token},       {"previous", v.record->previous},
                                {"timeline", v.record->timeline}, {"since", v.record->since}};
        text << "; primary of record " << v.record->region << " (" << v.record->state << ", since "
             << v.record->since << ")";
      }
      text << "\n";
    } catch (const Error& e) {
      ha["error"] = Redact(e.what());
      text << "  automatic failover: etcd cannot be read: " << Redact(e.what()) << "\n";
    }
    out["automatic_failover"] = ha;
  }
  out["quarantined_wal"] = quarantined;
  for (const auto& [repo_name, n] : quarantined) {
    if (n > 0) {
      text << "  WARNING: " << n << " WAL file(s) in " << repo_name
           << " quarantine: an old primary archived after its timeline ended (fence it; see "
              "docs/failover.md)\n";
    }
  }
  return out;
}

int Info(const Context& ctx, const InfoOptions& options) {
  nlohmann::json repos = nlohmann::json::array();
  std::ostringstream text;
  ExitCode worst = ExitCode::kSuccess;
  for (const auto& rc : ctx.config.SelectRepos(ctx.repo_name)) {
    nlohmann::json rj = {{"repo", rc.name}, {"type", rc.type}};
    auto storage = storage::OpenStorage(rc);
    rj["location"] = storage->Describe();
    text << "repository '" << rc.name << "' (" << storage->Describe() << ")\n";
    nlohmann::json stanzas = nlohmann::json::array();
    try {
      std::vector<std::string> names = {ctx.config.stanza};
      if (options.all_stanzas) names = repo::ListStanzas(*storage);
      if (names.empty()) text << "  no stanzas\n";
      for (const auto& name : names) {
        text << "  stanza '" << name << "'\n";
        repo::Repository repo(rc, storage::OpenStorage(rc), name);
        if (!repo.FindStanza()) {
          stanzas.push_back({{"stanza", name},
                             {"status", "missing"},
                             {"message", "run 'gravl-dr stanza-create'"}});
          text << "    status: MISSING -- run 'gravl-dr stanza-create'\n";
          if (worst == ExitCode::kSuccess) worst = ExitCode::kNotFound;
          continue;
        }
        // Encrypted manifests need the key; without a passphrase info lists labels only.
        std::string key_problem;
        if (ctx.config.passphrase) {
          try {
            repo.Unlock(ctx.config.passphrase);
          } catch (const Error& e) {  // a wrong passphrase, or one for an unencrypted stanza
            key_problem = Redact(e.what());
            if (worst == ExitCode::kSuccess) worst = e.code();
          }
        }
        repo::Catalog catalog(repo);
        repo::StanzaSummary summary = repo::Summarize(catalog);
        std::optional<repo::RetentionPlan> plan;
        bool readable = key_problem.empty() && (!summary.info.encryption || repo.key() != nullptr);
        if (ctx.config.retention.configured && readable && name == ctx.config.stanza) {
          plan = catalog.Plan(RetentionPolicyOf(ctx.config), std::chrono::system_clock::now());
        }
        const repo::RetentionPlan* plan_ptr = plan ? &*plan : nullptr;
        stanzas.push_back(StanzaJson(summary, plan_ptr));
        if (!key_problem.empty()) {
          stanzas.back()["warning"] = key_problem;
          text << "    WARNING: " << key_problem
               << (repo.Stanza().encryption ? " -- backup details are not shown\n" : "\n");
          std::cerr << "gravl-dr: error: " << key_problem << std::endl;
        }
        bool damaged = std::any_of(summary.backups.begin(), summary.backups.end(),
                                   [](const repo::BackupSummary& b) { return !b.problem.empty(); });
        if (damaged) {
          stanzas.back()["status"] = "damaged";
          if (worst == ExitCode::kSuccess) worst = ExitCode::kIntegrity;
        }
        text << (damaged ? "    status: DAMAGED backup manifests (run 'gravl-dr verify')\n"
                         : "    status: ok\n");
        StanzaText(summary, plan_ptr, text);
      }
      rj["status"] = "ok";
    } catch (const Error& e) {
      // Report what could not be read, keep going with the other repositories, and exit
      // non-zero: info never reports success for a repository it could not read.
      rj["status"] = "error";
      rj["error"] = Redact(e.what());
      text << "  ERROR: " << Redact(e.what()) << "\n";
      std::cerr << "gravl-dr: error: repository '" << rc.name << "': " << Redact(e.what())
                << std::endl;
      if (worst == ExitCode::kSuccess || worst == ExitCode::kNotFound) worst = e.code();
    }
    rj["stanzas"] = stanzas;
    repos.push_back(rj);
  }
  nlohmann::json sync = nlohmann::json::array();
  if (!options.all_stanzas && !ctx.repo_name) sync = SyncLagSection(ctx, text);
  nlohmann::json doc = {{"repos", repos}, {"sync", sync}};
  if (!options.all_stanzas && !ctx.repo_name && !ctx.config.regions.empty()) {
    nlohmann::json regions = RegionsSection(ctx, text);
    for (auto& [k, v] : regions.items()) doc[k] = v;
  }
  ctx.Emit(doc, text.str());
  return ToInt(worst);
}

void AddInfo(CLI::App& app, Invocation& inv) {
  auto options = std::make_shared<InfoOptions>();
  auto* cmd = app.add_subcommand("info", "Show stanzas, backups and the archived WAL range");
  cmd->add_flag("--all", options->all_stanzas, "every stanza in the repositories");
  cmd->callback([&inv, options] { inv.result = Info(inv.MakeContext(), *options); });
}

}  // namespace gravl::commands
