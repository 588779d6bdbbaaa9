// stanza-create: records the cluster's identity in every configured repository.
//
// Idempotent for the same cluster; refuses a repository whose stanza belongs to another
// cluster (system identifier) or another major version, and checks that the configured
// passphrase matches an existing encrypted stanza.

#include <spdlog/spdlog.h>

#include <sstream>

#include "commands/cli.h"
#include "commands/commands.h"
#include "common/error.h"
#include "common/log.h"
#include "common/time_util.h"
#include "pg/connection.h"
#include "repo/layout.h"
#include "repo/lock.h"
#include "repo/metadata.h"
#include "version.h"

namespace gravl::commands {

int StanzaCreate(const Context& ctx) {
  auto conn = pg::Connection::Open(ctx.config.pg_conninfo);
  pg::ClusterIdentity id = conn->Identify();
  conn.reset();
  int major = id.version_num / 10000;
  spdlog::info("connected: system identifier {}, PostgreSQL {}", id.system_identifier,
               id.version_num);

  nlohmann::json results = nlohmann::json::array();
  std::ostringstream text;
  text << "stanza '" << ctx.config.stanza << "' for cluster " << id.system_identifier
       << " (PostgreSQL " << major << ")\n";

  // One set of key parameters for every repository of the stanza: those of a configured
  // repository that already has it (the passphrase must unlock it), or new ones shared by all
  // created now -- so that repo-sync can copy stored bytes between them (docs/multi-region.md).
  std::optional<repo::EncryptionInfo> shared_encryption;
  if (ctx.config.passphrase) {
    Context all = ctx;
    all.repo_name.reset();
    for (auto& other : all.OpenRepos()) {
      try {
        auto existing = other->FindStanza();
        if (!existing || !existing->encryption) continue;
        other->Unlock(ctx.config.passphrase);
        shared_encryption = existing->encryption;
        break;
      } catch (const StorageError& e) {
        spdlog::warn("{} cannot be read to share its key parameters: {}", other->Describe(),
                     Redact(e.what()));
      }
    }
    if (!shared_encryption) {
      io::Key key;
      shared_encryption = repo::NewEncryption(*ctx.config.passphrase, key);
    }
  }
  for (auto& repo : ctx.OpenRepos()) {
    std::string status;
    auto lock = ctx.dry_run ? nullptr
                            : repo::StanzaLock::Acquire(repo->storage(), ctx.config.stanza,
                                                        "stanza", "stanza-create");
    if (auto existing = repo->FindStanza()) {
      if (existing->system_identifier != id.system_identifier) {
        throw ConflictError(repo->Describe() + " already holds stanza '" + ctx.config.stanza +
                            "' for another cluster (system identifier " +
                            existing->system_identifier + ", this cluster is " +
                            id.system_identifier +
                            "); use another --stanza or repository -- never mix clusters");
      }
      if (existing->pg_major != major) {
        throw ConflictError(repo->Describe() + " holds stanza '" + ctx.config.stanza +
                            "' for PostgreSQL " + std::to_string(existing->pg_major) +
                            ", but the cluster runs PostgreSQL " + std::to_string(major) +
                            "; after a major upgrade, create a new stanza");
      }
      repo->Unlock(ctx.config.passphrase);  // the configured passphrase must still fit
      status = "exists";
    } else if (ctx.dry_run) {
      status = "would-create";
    } else {
      repo::StanzaInfo info;
      info.format = repo::kRepoFormat;
      info.stanza = ctx.config.stanza;
      info.system_identifier = id.system_identifier;
      info.pg_version_num = id.version_num;
      info.pg_major = major;
      info.wal_segment_size = id.wal_segment_size;
      info.created_at = FormatIso8601(std::chrono::system_clock::now());
      info.created_by = std::string("gravl-dr ") + kVersion;
      info.encryption = shared_encryption;
      if (!repo::WriteMetadataIfAbsent(repo->storage(), repo::StanzaKey(ctx.config.stanza),
                                       info.ToJson())) {
        throw ConflictError(repo->Describe() + ": stanza '" + ctx.config.stanza +
                            "' was created concurrently by another process; run "
                            "stanza-create again to check it");
      }
      status = "created";
    }
    spdlog::info("{}: stanza '{}' {}", repo->Describe(), ctx.config.stanza, status);
    results.push_back({{"repo", repo->config().name},
                       {"location", repo->storage().Describe()},
                       {"status", status}});
    text << "  " << repo->Describe() << ": " << status << "\n";
  }

  nlohmann::json out = {
      {"stanza", ctx.config.stanza},      {"system_identifier", id.system_identifier},
      {"pg_version_num", id.version_num}, {"encrypted", ctx.config.passphrase.has_value()},
      {"dry_run", ctx.dry_run},           {"repos", results}};
  ctx.Emit(out, text.str());
  return 0;
}

void AddStanzaCreate(CLI::App& app, Invocation& inv) {
  auto* cmd = app.add_subcommand(
      "stanza-create",
      "Record the PostgreSQL cluster (system identifier, version) in every repository; "
      "refuses a repository that belongs to another cluster");
  cmd->add_flag("--dry-run", inv.dry_run, "connect and check, but create nothing");
  cmd->callback([&inv] { inv.result = StanzaCreate(inv.MakeContext()); });
}

}  // namespace gravl::commands
