#pragma once
// A real etcd cluster on 127.0.0.1 for the tests of the etcd client and of what builds on it:
// N members (3 by default) of the installed etcd (3.4+), each a child process on free ports with
// its data directory work_dir/etcd-<i> and its log work_dir/etcd-<i>.log, with fast elections.
// A member can be killed (-9) and restarted on its data, or frozen (SIGSTOP: its port still
// accepts connections but nothing answers -- a partition that hangs rather than refuses). Every
// member is killed and reaped when the cluster is destroyed, and dies with the thread that
// started it if the test process crashes (PR_SET_PDEATHSIG): construct the cluster and call
// Start from the test's own thread, not from a short-lived one. Not thread-safe.

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <nlohmann/json.hpp>
#include <set>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "pg/instance.h"
#include "support/http.h"
#include "support/test_util.h"

namespace gravl::test {

class EtcdCluster {
 public:
  // The etcd program (first in PATH, else /usr/bin/etcd), or "" when there is none: tests
  // fail on that, naming dev/install-deps.sh (never skip: CI installs etcd).
  static std::string Binary() {
    namespace fs = std::filesystem;
    std::vector<std::string> candidates;
    const char* path = std::getenv("PATH");
    std::string dirs = path != nullptr ? path : "";
    for (std::size_t start = 0; start <= dirs.size();) {
      std::size_t end = dirs.find(':', start);
      if (end == std::string::npos) end = dirs.size();
      if (end > start) candidates.push_back(dirs.substr(start, end - start) + "/etcd");
      start = end + 1;
    }
    candidates.push_back("/usr/bin/etcd");
    for (const auto& c : candidates) {
      std::error_code ec;
      if (fs::is_regular_file(c, ec) && ::access(c.c_str(), X_OK) == 0) return c;
    }
    return "";
  }

  // Starts `members` members and waits (up to 30 s) until each answers a linearizable range
  // request. Previous data directories of the same names are removed and the logs truncated.
  // Throws std::runtime_error with the logs' tails when the cluster does not come up.
  explicit EtcdCluster(const std::string& work_dir, int members = 3) : binary_(Binary()) {
    namespace fs = std::filesystem;
    if (binary_.empty()) throw std::runtime_error("etcd is not installed (no etcd in PATH)");
    if (members < 1) throw std::invalid_argument("an etcd cluster needs at least one member");
    fs::create_directories(work_dir);
    static std::atomic<unsigned> clusters{0};
    token_ = "gravl-test-" + std::to_string(::getpid()) + "-" + std::to_string(clusters++) + "-" +
             std::to_string(std::chrono::steady_clock::now().time_since_epoch().count());
    for (int i = 0; i < members; ++i) {
      Member m;
      m.name = "etcd-" + std::to_string(i);
      m.data_dir = (fs::path(work_dir) / m.name).string();
      m.log_file = m.data_dir + ".log";
      members_.push_back(m);
    }
    try {
      for (int attempt = 1;; ++attempt) {
        PickPorts();
        for (auto& m : members_) {
          fs::remove_all(m.data_dir);
          std::ofstream(m.log_file, std::ios::trunc).flush();
          Launch(m, false);
        }
        std::string failure = WaitForAll(std::chrono::seconds(30));
        if (failure.empty()) return;
        // A port taken between FindFreePort and etcd's bind: try others.
        bool port_taken = false;
        for (int i = 0; i < size(); ++i) {
          if (LogTail(i).find("address already in use") != std::string::npos) port_taken = true;
        }
        std::string logs;
        for (int i = 0; i < size(); ++i) {
          logs += "\n--- " + At(i).name + ".log:\n" + LogTail(i);
        }
        KillAll();
        if (port_taken && attempt < 3) continue;
        throw std::runtime_error(failure + logs);
      }
    } catch (...) {
      KillAll();
      throw;
    }
  }

  // Kills (-9) and reaps every member still running, frozen ones included. Data is kept.
  ~EtcdCluster() { KillAll(); }
  EtcdCluster(const EtcdCluster&) = delete;
  EtcdCluster& operator=(const EtcdCluster&) = delete;

  int size() const { return static_cast<int>(members_.size()); }
  // "http://127.0.0.1:PORT" of member i.
  std::string ClientUrl(int i) const {
    return "http://127.0.0.1:" + std::to_string(At(i).client_port);
  }
  std::vector<std::string> ClientUrls() const {
    std::vector<std::string> urls;
    for (int i = 0; i < size(); ++i) urls.push_back(ClientUrl(i));
    return urls;
  }
  const std::string& DataDir(int i) const { return At(i).data_dir; }
  // The end of member i's log (stdout and stderr of every start), for failure messages.
  std::string LogTail(int i, std::size_t bytes = 4096) const {
    std::string text = ReadFileOrEmpty(At(i).log_file);
    return text.size() > bytes ? text.substr(text.size() - bytes) : text;
  }

  // Kills member i (-9) and reaps it; its data directory is kept. No-op when not running.
  void Stop(int i) {
    Member& m = At(i);
    if (m.pid == 0) return;
    ::kill(m.pid, SIGKILL);
    Reap(m.pid);
    m.pid = 0;
    m.frozen = false;
  }

  // Restarts a stopped member on its data directory, with the same ports and flags
  // (--initial-cluster-state existing), and waits up to 30 s: until it answers a linearizable
  // range request when a majority of the members is running and not frozen (it has rejoined
  // the cluster); otherwise only until it listens on its client port -- without a quorum etcd
  // accepts connections but answers nothing, not even serializable reads.
  void Start(int i) {
    Member& m = At(i);
    if (m.pid != 0) throw std::logic_error(m.name + " is already running");
    Launch(m, true);
    int available = 0;
    for (const auto& other : members_) available += other.pid != 0 && !other.frozen ? 1 : 0;
    bool quorum = 2 * available > size();
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
    while (quorum ? !Healthy(i) : !Listening(m.client_port)) {
      std::string exit = Exited(m);
      if (!exit.empty()) {
        throw std::runtime_error(m.name + " " + exit + " after a restart:\n" + LogTail(i));
      }
      if (std::chrono::steady_clock::now() > deadline) {
        throw std::runtime_error(m.name + " did not answer within 30 s of a restart:\n" +
                                 LogTail(i));
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
  }

  // SIGSTOP: member i keeps its port open (connections are accepted by the kernel) but answers
  // nothing, neither clients nor peers. Returns once the process is stopped.
  void Freeze(int i) {
    Member& m = At(i);
    if (m.pid == 0) throw std::logic_error(m.name + " is not running");
    ::kill(m.pid, SIGSTOP);
    m.frozen = true;
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
    while (ProcState(m.pid) != 'T' && std::chrono::steady_clock::now() < deadline) {
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
  }
  // SIGCONT: member i carries on where it stopped.
  void Thaw(int i) {
    Member& m = At(i);
    if (m.pid != 0) ::kill(m.pid, SIGCONT);
    m.frozen = false;
  }

  // Whether member i's process is alive (frozen or not).
  bool Running(int i) const {
    const Member& m = At(i);
    if (m.pid == 0) return false;
    siginfo_t info;
    std::memset(&info, 0, sizeof info);
    // Looks without reaping: si_pid stays 0 while the child has not exited.
    if (::waitid(P_PID, static_cast<id_t>(m.pid), &info, WEXITED | WNOHANG | WNOWAIT) != 0) {
      return false;
    }
    return info.si_pid == 0;
  }
  bool Frozen(int i) const { return At(i).frozen; }

  // Whether a linearizable range request on member i answers 200 within about `timeout_s`,
  // retried while etcd refuses it (as during the election after the leader is lost): false
  // while the member is down or frozen, or the cluster has lost its majority. A longer timeout
  // waits, e.g. for a new leader.
  bool Healthy(int i, int timeout_s = 2) const {
    using Clock = std::chrono::steady_clock;
    auto deadline = Clock::now() + std::chrono::seconds(timeout_s);
    for (;;) {
      auto left = std::chrono::ceil<std::chrono::seconds>(deadline - Clock::now()).count();
      // The key "health" (base64, as the gateway carries keys); it need not exist.
      HttpAnswer a = HttpPost(ClientUrl(i) + "/v3/kv/range", R"({"key":"aGVhbHRo"})",
                              static_cast<int>(std::max<decltype(left)>(left, 1)));
      if (a.status == 200) {
        auto json = nlohmann::json::parse(a.body, nullptr, false);
        if (json.is_object() && json.contains("header")) return true;
      }
      if (Clock::now() + std::chrono::milliseconds(100) >= deadline) return false;
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
  }

 private:
  struct Member {
    std::string name;
    std::string data_dir;
    std::string log_file;
    int client_port = 0;
    int peer_port = 0;
    pid_t pid = 0;  // 0: not running
    bool frozen = false;
  };

  std::size_t Index(int i) const {
    if (i < 0 || i >= size()) {
      throw std::out_of_range("etcd member " + std::to_string(i) + " of " + std::to_string(size()));
    }
    return static_cast<std::size_t>(i);
  }
  Member& At(int i) { return members_[Index(i)]; }
  const Member& At(int i) const { return members_[Index(i)]; }

  static std::string Url(int port) { return "http://127.0.0.1:" + std::to_string(port); }

  // Two distinct free ports per member.
  void PickPorts() {
    std::set<int> taken;
    auto pick = [&taken] {
      for (;;) {
        int port = pg::FindFreePort();
        if (taken.insert(port).second) return port;
      }
    };
    for (auto& m : members_) {
      m.client_port = pick();
      m.peer_port = pick();
    }
  }

  // fork/exec of etcd for member m, stdout and stderr appended to its log.
  void Launch(Member& m, bool existing) {
    std::string cluster;
    for (const auto& other : members_) {
      cluster += (cluster.empty() ? "" : ",") + other.name + "=" + Url(other.peer_port);
    }
    std::vector<std::string> args = {
        binary_,
        "--name=" + m.name,
        "--data-dir=" + m.data_dir,
        "--listen-client-urls=" + Url(m.client_port),
        "--advertise-client-urls=" + Url(m.client_port),
        "--listen-peer-urls=" + Url(m.peer_port),
        "--initial-advertise-peer-urls=" + Url(m.peer_port),
        "--initial-cluster=" + cluster,
        "--initial-cluster-token=" + token_,
        std::string("--initial-cluster-state=") + (existing ? "existing" : "new"),
        "--heartbeat-interval=100",
        "--election-timeout=1000",
        "--logger=zap",
        "--log-outputs=stderr"};
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    long open_max = ::sysconf(_SC_OPEN_MAX);
    int max_fd = open_max > 0 && open_max < 65536 ? static_cast<int>(open_max) : 65536;

    int log = ::open(m.log_file.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (log < 0) {
      throw std::runtime_error("cannot open " + m.log_file + ": " + std::strerror(errno));
    }
    int null = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
    if (null < 0) {
      int err = errno;
      ::close(log);
      throw std::runtime_error(std::string("cannot open /dev/null: ") + std::strerror(err));
    }
    pid_t parent = ::getpid();
    pid_t pid = ::fork();
    if (pid == 0) {
      // The child: async-signal-safe calls only until exec.
      ::prctl(PR_SET_PDEATHSIG, static_cast<unsigned long>(SIGKILL));
      if (::getppid() != parent) ::_exit(127);
      sigset_t none;
      ::sigemptyset(&none);
      ::sigprocmask(SIG_SETMASK, &none, nullptr);
      ::dup2(null, STDIN_FILENO);
      ::dup2(log, STDOUT_FILENO);
      ::dup2(log, STDERR_FILENO);
      bool closed = false;
#if defined(__GLIBC__) && (__GLIBC__ > 2 || (__GLIBC__ == 2 && __GLIBC_MINOR__ >= 34))
      closed = ::close_range(3, ~0U, 0) == 0;
#endif
      for (int fd = 3; !closed && fd < max_fd; ++fd) ::close(fd);
      ::execv(argv[0], argv.data());
      ::_exit(127);
    }
    int err = errno;
    ::close(log);
    ::close(null);
    if (pid < 0) throw std::runtime_error(std::string("fork: ") + std::strerror(err));
    m.pid = pid;
    m.frozen = false;
  }

  // Whether something accepts TCP connections on 127.0.0.1:port.
  static bool Listening(int port) {
    int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return false;
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(static_cast<std::uint16_t>(port));
    ::inet_pton(AF_INET, "127.0.0.1", &addr.sin_addr);
    bool ok = ::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0;
    ::close(fd);
    return ok;
  }

  // Every member healthy, or what went wrong.
  std::string WaitForAll(std::chrono::seconds timeout) {
    auto deadline = std::chrono::steady_clock::now() + timeout;
    std::vector<bool> up(members_.size(), false);
    for (;;) {
      bool all = true;
      for (int i = 0; i < size(); ++i) {
        Member& m = At(i);
        if (up[Index(i)]) continue;
        std::string exit = Exited(m);
        if (!exit.empty()) return "etcd member " + m.name + " " + exit + " while starting";
        up[Index(i)] = Healthy(i);
        all = all && up[Index(i)];
      }
      if (all) return "";
      if (std::chrono::steady_clock::now() > deadline) {
        return "the etcd cluster did not become healthy within " + std::to_string(timeout.count()) +
               " s";
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
  }

  // "" while member m runs; once it exited, reaps it and says how it ended.
  static std::string Exited(Member& m) {
    if (m.pid == 0) return "is not running";
    int status = 0;
    pid_t w = ::waitpid(m.pid, &status, WNOHANG);
    if (w == 0) return "";
    m.pid = 0;
    m.frozen = false;
    if (w < 0) return "vanished (" + std::string(std::strerror(errno)) + ")";
    if (WIFSIGNALED(status)) return "was killed by signal " + std::to_string(WTERMSIG(status));
    return "exited with status " + std::to_string(WEXITSTATUS(status));
  }

  static void Reap(pid_t pid) {
    int status = 0;
    while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
  }

  // The state letter of /proc/<pid>/stat ('T' when stopped), or '\0'.
  static char ProcState(pid_t pid) {
    std::ifstream stat("/proc/" + std::to_string(pid) + "/stat");
    std::string line;
    if (!std::getline(stat, line)) return '\0';
    auto paren = line.rfind(')');
    return paren != std::string::npos && paren + 2 < line.size() ? line[paren + 2] : '\0';
  }

  void KillAll() noexcept {
    for (auto& m : members_) {
      if (m.pid != 0) ::kill(m.pid, SIGKILL);
    }
    for (auto& m : members_) {
      if (m.pid != 0) Reap(m.pid);
      m.pid = 0;
      m.frozen = false;
    }
  }

  std::string binary_;
  std::string token_;
  std::vector<Member> members_;
};

}  // namespace gravl::test
