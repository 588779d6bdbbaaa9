#pragma once
// The command line. main() builds the application, the global options and the one top-level
// error handler; each command registers its own subcommand and options -- in its own file,
// next to the code that uses them -- with Add<Command>(app, invocation). A subcommand's
// callback runs the command and leaves its exit code in the Invocation.

#include <CLI/CLI.hpp>
#include <map>
#include <optional>
#include <string>

#include "commands/commands.h"
#include "commands/context.h"

namespace gravl::commands {

// What parsing collects for the command that runs: the global options and the result.
struct Invocation {
  std::optional<std::string> config_path;
  std::optional<std::string> repo;
  std::string output = "text";
  bool dry_run = false;
  std::map<std::string, std::string> flags;  // configuration overrides by option key
  int result = 0;

  // Loads the configuration (file < environment < flags) and starts logging.
  Context MakeContext() const;
};

// The global options (--config, --repo, --output, every configuration flag).
void AddGlobalOptions(CLI::App& app, Invocation& inv);

void AddStanzaCreate(CLI::App& app, Invocation& inv);
void AddInfo(CLI::App& app, Invocation& inv);
void AddArchivePush(CLI::App& app, Invocation& inv);
void AddArchiveGet(CLI::App& app, Invocation& inv);
void AddCheck(CLI::App& app, Invocation& inv);
void AddBackup(CLI::App& app, Invocation& inv);
void AddRestore(CLI::App& app, Invocation& inv);
void AddVerify(CLI::App& app, Invocation& inv);
void AddTestRestore(CLI::App& app, Invocation& inv);
void AddExpire(CLI::App& app, Invocation& inv);
void AddPin(CLI::App& app, Invocation& inv);  // pin and unpin
void AddExporter(CLI::App& app, Invocation& inv);
void AddRepoSync(CLI::App& app, Invocation& inv);
void AddStandbyCreate(CLI::App& app, Invocation& inv);
void AddFailover(CLI::App& app, Invocation& inv);
void AddWatch(CLI::App& app, Invocation& inv);
void AddWalReceive(CLI::App& app, Invocation& inv);
void AddSwitchover(CLI::App& app, Invocation& inv);
void AddFailback(CLI::App& app, Invocation& inv);
void AddVersion(CLI::App& app, Invocation& inv);

// The recovery target options restore and test-restore share.
void AddTargetOptions(CLI::App* cmd, RestoreOptions& options);

}  // namespace gravl::commands
