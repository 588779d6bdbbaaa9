#include "commands/context.h"

#include <iostream>

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

void Context::Emit(const nlohmann::json& json, const std::string& text) const {
  if (output == OutputFormat::kJson) {
    std::cout << json.dump(2) << std::endl;
  } else {
    std::cout << text << std::flush;
  }
}

}  // namespace gravl::commands
