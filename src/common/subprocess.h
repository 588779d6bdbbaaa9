#pragma once
// Child processes without a shell: argv is passed as-is to posix_spawnp, so no quoting or
// injection issues. Output is captured (bounded) for error messages.

#include <chrono>
#include <memory>
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

// A running child whose stdin and/or stdout are pipes the caller streams through (pg_dump
// into the pipeline, the pipeline into pg_restore). stderr is collected (the last 64 KiB)
// by a background thread for error messages. Destroying a Child that was not waited for
// kills it (SIGKILL) and reaps it, so no process outlives an error.
class Child {
 public:
  struct Options {
    std::vector<std::string> env;
    bool pipe_stdin = false;   // otherwise /dev/null
    bool pipe_stdout = false;  // otherwise /dev/null
  };
  static std::unique_ptr<Child> Spawn(const std::vector<std::string>& argv, const Options& options);
  ~Child();
  Child(const Child&) = delete;
  Child& operator=(const Child&) = delete;

  int pid() const { return pid_; }
  int stdin_fd() const { return stdin_fd_; }
  int stdout_fd() const { return stdout_fd_; }
  void CloseStdin();
  // Waits for exit; returns the exit code (128 + signal when killed).
  int Wait();
  // Throws Error naming the command and its stderr unless it exited 0.
  void WaitChecked();
  std::string StderrTail() const;

 private:
  Child() = default;
  struct Impl;
  std::unique_ptr<Impl> impl_;
  std::vector<std::string> argv_;
  int pid_ = -1;
  int stdin_fd_ = -1;
  int stdout_fd_ = -1;
  bool waited_ = false;
  int exit_code_ = -1;
};

// A process of this host as /proc/<pid>/stat shows it; nullopt when there is none (gone, or
// in another PID namespace).
struct ProcessStat {
  char state = '?';  // 'R', 'S', 'Z' (zombie), ...
  long ppid = 0;
};
std::optional<ProcessStat> ReadProcessStat(long pid);

// Joins argv for messages (arguments with spaces are single-quoted).
std::string FormatCommand(const std::vector<std::string>& argv);

}  // namespace gravl
