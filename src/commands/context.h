#pragma once
// What every command receives: the loaded configuration, the global flags, and the output
// channel (text or JSON on stdout; logs go to stderr).

#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "common/config.h"
#include "repo/repository.h"

namespace gravl::commands {

enum class OutputFormat { kText, kJson };

struct Context {
  Config config;
  OutputFormat output = OutputFormat::kText;
  bool dry_run = false;
  std::optional<std::string> repo_name;  // --repo

  // The selected repositories, opened, for the configured stanza.
  std::vector<std::unique_ptr<repo::Repository>> OpenRepos() const;

  // Prints the result: `json` in JSON mode, otherwise `text` (which should end in '\n').
  void Emit(const nlohmann::json& json, const std::string& text) const;
};

}  // namespace gravl::commands
