#include "commands/context.h"

#include <iostream>

#include "common/error.h"
#include "storage/factory.h"
#include "version.h"

namespace gravl::commands {

std::vector<std::unique_ptr<repo::Repository>> Context::OpenRepos() const {
  std::vector<std::unique_ptr<repo::Repository>> repos;
  for (const auto& rc : config.SelectRepos(repo_name)) {
    repos.push_back(
        std::make_unique<repo::Repository>(rc, storage::OpenStorage(rc), config.stanza));
  }
  return repos;
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
  if (output == OutputFormat::kJson) {
    std::cout << json.dump(2) << std::endl;
  } else {
    std::cout << text << std::flush;
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

}  // namespace gravl::commands
