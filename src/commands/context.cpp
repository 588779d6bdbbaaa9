#include "commands/context.h"

#include <iostream>

#include "commands/cli.h"
#include "commands/commands.h"
#include "common/error.h"
#include "common/log.h"
#include "repo/object_lock.h"
#include "storage/factory.h"
#include "version.h"

namespace gravl::commands {

std::vector<std::unique_ptr<repo::Repository>> Context::OpenRepos() const {
  std::vector<std::unique_ptr<repo::Repository>> repos;
  for (const auto& rc : config.SelectRepos(repo_name)) {
    std::unique_ptr<storage::Storage> storage = storage::OpenStorage(rc);
    if (rc.type == "s3" && !rc.s3.object_lock_mode.empty()) {
      storage = std::make_unique<repo::LockingStorage>(std::move(storage), config.stanza,
                                                       RetentionPolicyOf(config));
    }
    repos.push_back(std::make_unique<repo::Repository>(rc, std::move(storage), config.stanza));
  }
  return repos;
}

Context::WalTargets Context::OpenWalTargets() const {
  WalTargets t;
  t.owned = OpenRepos();
  for (auto& r : t.owned) {
    const repo::StanzaInfo& info = r->Stanza();
    if (!t.system_identifier.empty() && info.system_identifier != t.system_identifier) {
      throw ConflictError("the repositories disagree about stanza '" + config.stanza +
                          "': system identifiers " + t.system_identifier + " and " +
                          info.system_identifier);
    }
    t.system_identifier = info.system_identifier;
    t.segment_size = info.wal_segment_size;
    r->Unlock(config.passphrase);
    t.repos.push_back(r.get());
  }
  return t;
}

Context::BackupTarget Context::OpenBackupTarget() const {
  BackupTarget t;
  t.repos = OpenRepos();
  t.repo = t.repos.front().get();
  const repo::StanzaInfo& stanza = t.repo->Stanza();
  t.repo->Unlock(config.passphrase);
  t.sql = pg::Connection::Open(config.pg_conninfo);
  t.id = t.sql->Identify();
  if (t.id.system_identifier != stanza.system_identifier) {
    throw ConflictError("the server's system identifier " + t.id.system_identifier +
                        " is not stanza '" + stanza.stanza + "''s (" + stanza.system_identifier +
                        ") in " + t.repo->Describe() + "; check pg.conninfo and --stanza");
  }
  return t;
}

void Context::Emit(const nlohmann::json& json, const std::string& text) const {
  std::ostream& os = out ? *out : std::cout;
  if (output == OutputFormat::kJson) {
    os << json.dump(2) << std::endl;
  } else {
    os << text << std::flush;
  }
}

repo::BackupManifest Context::NewManifest(repo::Repository& repo, const std::string& label,
                                          const std::string& type, const pg::ClusterIdentity& id,
                                          SystemTime start) const {
  repo::BackupManifest m;
  m.format = type == "full" ? repo::kManifestFormat : 1;
  m.label = label;
  m.type = type;
  m.stanza = repo.stanza();
  m.system_identifier = id.system_identifier;
  m.pg_version_num = id.version_num;
  m.created_by = std::string("gravl-dr ") + kVersion;
  m.start_time = start;
  m.compression = config.compression;
  m.encrypted = repo.key() != nullptr;
  return m;
}

Context Invocation::MakeContext() const {
  ConfigInputs inputs;
  inputs.config_path = config_path;
  inputs.flags = flags;
  Context ctx;
  ctx.config = LoadConfig(inputs);
  ctx.output = output == "json" ? OutputFormat::kJson : OutputFormat::kText;
  ctx.dry_run = dry_run;
  ctx.repo_name = repo;
  InitLogging(ctx.config.log_level);
  return ctx;
}

void AddGlobalOptions(CLI::App& app, Invocation& inv) {
  app.add_option("--config", inv.config_path,
                 "configuration file (default: $GRAVL_DR_CONFIG or /etc/gravl-dr/gravl-dr.yaml)");
  app.add_option("--repo", inv.repo, "work on this configured repository only (by name)");
  app.add_option("--output", inv.output, "result format on stdout")
      ->check(CLI::IsMember({"text", "json"}))
      ->capture_default_str();
  for (const auto& spec : OptionSpecs()) {
    std::string key = spec.key;
    app.add_option_function<std::string>(
           spec.flag, [&inv, key](const std::string& v) { inv.flags[key] = v; },
           spec.help + " [env " + spec.env + "; default " + spec.default_text + "]")
        ->type_name(spec.type == OptionType::kInt ? "INT" : "TEXT");
  }
  app.add_option_function<std::string>(
      "--repo-path", [&inv](const std::string& v) { inv.flags["repo_path"] = v; },
      "use a single local-directory repository at this path instead of 'repos' "
      "[env GRAVL_DR_REPO_PATH]");
}

void AddVersion(CLI::App& app, Invocation& inv) {
  auto* cmd = app.add_subcommand("version", "Print the version");
  cmd->callback([&inv] {
    if (inv.output == "json") {
      std::cout << nlohmann::json{{"version", kVersion}}.dump() << std::endl;
    } else {
      std::cout << "gravl-dr " << kVersion << std::endl;
    }
  });
}

}  // namespace gravl::commands
