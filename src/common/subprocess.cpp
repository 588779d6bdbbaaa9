#include "common/subprocess.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <map>
#include <mutex>
#include <sstream>
#include <thread>

#include "common/error.h"

extern char** environ;

namespace gravl {
namespace {

class Fd {
 public:
  Fd() = default;
  explicit Fd(int fd) : fd_(fd) {}
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  ~Fd() { Close(); }
  int get() const { return fd_; }
  void Close() {
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
  }
  void Reset(int fd) {
    Close();
    fd_ = fd;
  }

 private:
  int fd_ = -1;
};

void MakePipe(Fd& read_end, Fd& write_end) {
  int fds[2];
  if (::pipe2(fds, O_CLOEXEC) != 0) throw Error(ExitCode::kError, SysErrorText("pipe", errno));
  read_end.Reset(fds[0]);
  write_end.Reset(fds[1]);
}

void AppendBounded(std::string& buf, const char* data, std::size_t n, std::size_t limit) {
  buf.append(data, n);
  if (buf.size() > limit) buf.erase(0, buf.size() - limit);
}

// Spawns argv[0] (PATH lookup) with the parent's environment overridden by `env`, the
// given file actions, an empty signal mask (the parent may block signals for its cleanup
// thread) and, with `new_group`, its own process group. Throws when it cannot start.
pid_t SpawnProcess(const std::vector<std::string>& argv, const std::vector<std::string>& env,
                   posix_spawn_file_actions_t* actions, bool new_group) {
  std::map<std::string, std::string> env_map;
  for (char** e = environ; *e != nullptr; ++e) {
    std::string entry(*e);
    env_map[entry.substr(0, entry.find('='))] = entry;
  }
  for (const auto& entry : env) env_map[entry.substr(0, entry.find('='))] = entry;
  std::vector<std::string> env_strings;
  for (auto& [k, v] : env_map) env_strings.push_back(v);
  std::vector<char*> envp;
  for (auto& e : env_strings) envp.push_back(e.data());
  envp.push_back(nullptr);
  std::vector<std::string> args = argv;
  std::vector<char*> c_argv;
  for (auto& a : args) c_argv.push_back(a.data());
  c_argv.push_back(nullptr);

  posix_spawnattr_t attr;
  posix_spawnattr_init(&attr);
  short flags = POSIX_SPAWN_SETSIGMASK;
  if (new_group) flags = static_cast<short>(flags | POSIX_SPAWN_SETPGROUP);
  posix_spawnattr_setflags(&attr, flags);
  if (new_group) posix_spawnattr_setpgroup(&attr, 0);
  sigset_t empty;
  sigemptyset(&empty);
  posix_spawnattr_setsigmask(&attr, &empty);
  pid_t pid = -1;
  int rc = posix_spawnp(&pid, c_argv[0], actions, &attr, c_argv.data(), envp.data());
  posix_spawn_file_actions_destroy(actions);
  posix_spawnattr_destroy(&attr);
  if (rc != 0) {
    throw Error(ExitCode::kError, "cannot start " + argv[0] + ": " + std::strerror(rc) +
                                      " (is it installed and in PATH?)");
  }
  return pid;
}

}  // namespace

std::string FormatCommand(const std::vector<std::string>& argv) {
  std::string out;
  for (const auto& a : argv) {
    if (!out.empty()) out += ' ';
    if (a.find_first_of(" \t'\"") != std::string::npos) {
      out += "'" + a + "'";
    } else {
      out += a;
    }
  }
  return out;
}

RunResult Run(const std::vector<std::string>& argv, const RunOptions& options) {
  if (argv.empty()) throw Error(ExitCode::kError, "Run: empty argv");

  Fd out_r, out_w, err_r, err_w, in_r, in_w;
  MakePipe(out_r, out_w);
  MakePipe(err_r, err_w);
  if (options.input) MakePipe(in_r, in_w);

  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  if (options.input) {
    posix_spawn_file_actions_adddup2(&actions, in_r.get(), 0);
  } else {
    posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0);
  }
  posix_spawn_file_actions_adddup2(&actions, out_w.get(), 1);
  posix_spawn_file_actions_adddup2(&actions, err_w.get(), 2);
  if (options.cwd) posix_spawn_file_actions_addchdir_np(&actions, options.cwd->c_str());

  // The child starts its own process group so a timeout can kill everything it started.
  pid_t pid = SpawnProcess(argv, options.env, &actions, true);
  out_w.Close();
  err_w.Close();
  in_r.Close();

  RunResult result;
  std::size_t input_pos = 0;
  auto deadline = options.timeout
                      ? std::optional(std::chrono::steady_clock::now() + *options.timeout)
                      : std::nullopt;
  bool timed_out = false;
  if (options.input && options.input->empty()) in_w.Close();
  while (out_r.get() >= 0 || err_r.get() >= 0) {
    pollfd fds[3];
    nfds_t n = 0;
    if (out_r.get() >= 0) fds[n++] = {out_r.get(), POLLIN, 0};
    if (err_r.get() >= 0) fds[n++] = {err_r.get(), POLLIN, 0};
    if (in_w.get() >= 0) fds[n++] = {in_w.get(), POLLOUT, 0};
    int wait_ms = -1;
    if (deadline) {
      auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
          *deadline - std::chrono::steady_clock::now());
      if (left.count() <= 0) {
        timed_out = true;
        break;
      }
      wait_ms = static_cast<int>(left.count());
    }
    int pr = ::poll(fds, n, wait_ms);
    if (pr < 0) {
      if (errno == EINTR) continue;
      break;
    }
    for (nfds_t i = 0; i < n; ++i) {
      if (fds[i].revents == 0) continue;
      if (fds[i].fd == in_w.get()) {
        const std::string& in = *options.input;
        ssize_t w = ::write(in_w.get(), in.data() + input_pos, in.size() - input_pos);
        if (w > 0) input_pos += static_cast<std::size_t>(w);
        if (w < 0 || input_pos >= in.size()) in_w.Close();
        continue;
      }
      char buf[65536];
      ssize_t r = ::read(fds[i].fd, buf, sizeof buf);
      bool is_out = fds[i].fd == out_r.get();
      if (r <= 0) {
        if (r < 0 && errno == EINTR) continue;
        (is_out ? out_r : err_r).Close();
      } else {
        AppendBounded(is_out ? result.out : result.err, buf, static_cast<std::size_t>(r),
                      options.capture_limit);
      }
    }
  }
  if (timed_out) ::kill(-pid, SIGKILL);
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  if (timed_out) {
    throw Error(ExitCode::kError, FormatCommand(argv) + " did not finish within " +
                                      std::to_string(options.timeout->count()) + " ms");
  }
  if (WIFEXITED(status)) {
    result.exit_code = WEXITSTATUS(status);
  } else if (WIFSIGNALED(status)) {
    result.exit_code = 128 + WTERMSIG(status);
  }
  return result;
}

std::string RunChecked(const std::vector<std::string>& argv, const RunOptions& options) {
  RunResult r = Run(argv, options);
  if (!r.ok()) {
    std::string tail = r.err.size() > 2000 ? r.err.substr(r.err.size() - 2000) : r.err;
    while (!tail.empty() && (tail.back() == '\n' || tail.back() == ' ')) tail.pop_back();
    throw Error(ExitCode::kError, FormatCommand(argv) + " failed with exit code " +
                                      std::to_string(r.exit_code) +
                                      (tail.empty() ? "" : ": " + tail));
  }
  return r.out;
}

struct Child::Impl {
  int stderr_fd = -1;
  std::thread reader;
  mutable std::mutex mutex;
  std::string err;
};

std::unique_ptr<Child> Child::Spawn(const std::vector<std::string>& argv, const Options& options) {
  if (argv.empty()) throw Error(ExitCode::kError, "Child::Spawn: empty argv");
  Fd in_r, in_w, out_r, out_w, err_r, err_w;
  if (options.pipe_stdin) MakePipe(in_r, in_w);
  if (options.pipe_stdout) MakePipe(out_r, out_w);
  MakePipe(err_r, err_w);
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  if (options.pipe_stdin) {
    posix_spawn_file_actions_adddup2(&actions, in_r.get(), 0);
  } else {
    posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0);
  }
  if (options.pipe_stdout) {
    posix_spawn_file_actions_adddup2(&actions, out_w.get(), 1);
  } else {
    posix_spawn_file_actions_addopen(&actions, 1, "/dev/null", O_WRONLY, 0);
  }
  posix_spawn_file_actions_adddup2(&actions, err_w.get(), 2);
  pid_t pid = SpawnProcess(argv, options.env, &actions, false);
  std::unique_ptr<Child> child(new Child());
  child->argv_ = argv;
  child->pid_ = pid;
  child->impl_ = std::make_unique<Impl>();
  if (options.pipe_stdin) {
    child->stdin_fd_ = ::fcntl(in_w.get(), F_DUPFD_CLOEXEC, 0);
  }
  if (options.pipe_stdout) child->stdout_fd_ = ::fcntl(out_r.get(), F_DUPFD_CLOEXEC, 0);
  child->impl_->stderr_fd = ::fcntl(err_r.get(), F_DUPFD_CLOEXEC, 0);
  Impl* impl = child->impl_.get();
  impl->reader = std::thread([impl] {
    char buf[4096];
    for (;;) {
      ssize_t n = ::read(impl->stderr_fd, buf, sizeof buf);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) break;
      std::lock_guard lock(impl->mutex);
      AppendBounded(impl->err, buf, static_cast<std::size_t>(n), 64 * 1024);
    }
  });
  return child;
}

Child::~Child() {
  CloseStdin();
  if (stdout_fd_ >= 0) ::close(stdout_fd_);
  if (!waited_ && pid_ > 0) {
    ::kill(pid_, SIGKILL);
    Wait();
  }
  if (impl_ && impl_->reader.joinable()) impl_->reader.join();
  if (impl_ && impl_->stderr_fd >= 0) ::close(impl_->stderr_fd);
}

void Child::CloseStdin() {
  if (stdin_fd_ >= 0) ::close(stdin_fd_);
  stdin_fd_ = -1;
}

int Child::Wait() {
  if (waited_) return exit_code_;
  CloseStdin();
  int status = 0;
  while (::waitpid(pid_, &status, 0) < 0 && errno == EINTR) {
  }
  waited_ = true;
  if (impl_->reader.joinable()) impl_->reader.join();
  exit_code_ = WIFEXITED(status)     ? WEXITSTATUS(status)
               : WIFSIGNALED(status) ? 128 + WTERMSIG(status)
                                     : -1;
  return exit_code_;
}

void Child::WaitChecked() {
  int rc = Wait();
  if (rc != 0) {
    std::string tail = StderrTail();
    if (tail.size() > 2000) tail = tail.substr(tail.size() - 2000);
    while (!tail.empty() && (tail.back() == '\n' || tail.back() == ' ')) tail.pop_back();
    throw Error(ExitCode::kError, FormatCommand(argv_) + " failed with exit code " +
                                      std::to_string(rc) + (tail.empty() ? "" : ": " + tail));
  }
}

std::string Child::StderrTail() const {
  std::lock_guard lock(impl_->mutex);
  return impl_->err;
}

std::optional<ProcessStat> ReadProcessStat(long pid) {
  std::ifstream stat("/proc/" + std::to_string(pid) + "/stat");
  std::string line;
  if (pid <= 0 || !std::getline(stat, line)) return std::nullopt;
  // "pid (comm) state ppid ...": comm may hold spaces and parentheses.
  auto paren = line.rfind(')');
  if (paren == std::string::npos || paren + 2 >= line.size()) return std::nullopt;
  std::istringstream rest(line.substr(paren + 2));
  ProcessStat ps;
  rest >> ps.state >> ps.ppid;
  if (!rest) return std::nullopt;
  return ps;
}

}  // namespace gravl
