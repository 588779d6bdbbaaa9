#pragma once
// A long-running gravl-dr process for a test (wal-receive, ...): stdout and stderr appended to
// a log file, killed with the test process (PR_SET_PDEATHSIG) and when destroyed.

#include <fcntl.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <string>
#include <thread>
#include <vector>

#include "support/test_util.h"

namespace gravl::test {

class Daemon {
 public:
  Daemon(std::vector<std::string> argv, std::string log) : log_(std::move(log)) {
    pid_ = ::fork();
    if (pid_ == 0) {
      ::prctl(PR_SET_PDEATHSIG, SIGKILL);
      std::vector<char*> args;
      for (auto& a : argv) args.push_back(a.data());
      args.push_back(nullptr);
      int out = ::open(log_.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
      ::dup2(out, 1);
      ::dup2(out, 2);
      ::execv(args[0], args.data());
      ::_exit(127);
    }
  }
  ~Daemon() { Kill(); }
  Daemon(const Daemon&) = delete;
  Daemon& operator=(const Daemon&) = delete;

  // kill -9, reaped.
  void Kill() {
    if (pid_ > 0) {
      ::kill(pid_, SIGKILL);
      ::waitpid(pid_, nullptr, 0);
      pid_ = -1;
    }
  }
  // SIGTERM; the exit code (negative: the signal), or -1000 after `timeout_s` (then killed).
  int Term(int timeout_s = 20) {
    if (pid_ <= 0) return -1000;
    ::kill(pid_, SIGTERM);
    int status = 0;
    for (int i = 0; i < timeout_s * 10; ++i) {
      if (::waitpid(pid_, &status, WNOHANG) == pid_) {
        pid_ = -1;
        return WIFEXITED(status) ? WEXITSTATUS(status) : -WTERMSIG(status);
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    Kill();
    return -1000;
  }
  // True while the process runs.
  bool Running() {
    if (pid_ <= 0) return false;
    int status = 0;
    if (::waitpid(pid_, &status, WNOHANG) == pid_) {
      pid_ = -1;
      return false;
    }
    return true;
  }
  std::string Log() const { return ReadFileOrEmpty(log_); }

 private:
  std::string log_;
  pid_t pid_ = -1;
};

}  // namespace gravl::test
