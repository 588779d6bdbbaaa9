#include "commands/context.h"

#include <iostream>

#include "common/error.h"
#include "storage/factory.h"

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

}  // namespace gravl::commands
