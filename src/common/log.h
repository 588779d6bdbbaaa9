#pragma once
// Logging to stderr through spdlog, with secret redaction.
//
// Every secret the process learns (passphrases, keys, tokens, passwords) is registered with
// RegisterSecret(); the log sink and the top-level error printer pass all text through
// Redact(), so a secret that leaks into a message is replaced by "******".
// Thread safety: all functions may be called from any thread.

#include <spdlog/spdlog.h>

#include <string>
#include <string_view>

namespace gravl {

// Levels: trace, debug, info, warn, error, off. Throws UsageError on an unknown name.
void InitLogging(std::string_view level);

void RegisterSecret(std::string_view secret);
std::string Redact(std::string_view text);

// Replaces the value of password=... in a libpq conninfo string or URI password.
std::string RedactConninfo(std::string_view conninfo);

}  // namespace gravl
