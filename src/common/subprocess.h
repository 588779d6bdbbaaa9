#pragma once
// Child processes without a shell: argv is passed as-is to posix_spawnp, so no quoting or
// injection issues. Output is captured (bounded) for error messages.

#include <chrono>
#include <optional>
#include <string>
#include <vector>

namespace gravl {

struct RunOptions {
  // Extra environment entries "NAME=value" added to (or overriding) the parent's.
  std::vector<std::string> env;
  std::optional<std::string> cwd;
  // Kill the child (SIGKILL) and throw after this long; nullopt waits forever.
  std::optional<std::chrono::milliseconds> timeout;
  // When set, stdin receives this text and is then closed; otherwise /dev/null.
  std::optional<std::string> input;
  // Keep at most this many bytes of each output stream (the tail is kept).
  std::size_t capture_limit = 1 << 20;
};

struct RunResult {
  int exit_code = -1;  // exit status, or 128 + signal number
  std::string out;
  std::string err;
  bool ok() const { return exit_code == 0; }
};

// Runs argv[0] (looked up in PATH if it has no '/'). Throws Error(kError) when the
// program cannot be started or times out; a non-zero exit is returned, not thrown.
RunResult Run(const std::vector<std::string>& argv, const RunOptions& options = {});

// Runs and throws Error(kError) naming the command and its stderr tail on non-zero exit.
std::string RunChecked(const std::vector<std::string>& argv, const RunOptions& options = {});

// Joins argv for messages (arguments with spaces are single-quoted).
std::string FormatCommand(const std::vector<std::string>& argv);

}  // namespace gravl
