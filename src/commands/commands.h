#pragma once
// Subcommands. Each returns the process exit code for a completed run (0, or a code from
// common/error.h for a result that is a failure but was fully reported) and throws Error for
// failures that end it early.

#include "commands/context.h"

namespace gravl::commands {

int StanzaCreate(const Context& ctx);

struct InfoOptions {
  bool all_stanzas = false;
};
int Info(const Context& ctx, const InfoOptions& options);

}  // namespace gravl::commands
