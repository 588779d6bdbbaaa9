#include "repo/lock.h"

#include <fcntl.h>
#include <pwd.h>
#include <signal.h>
#include <spdlog/spdlog.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstddef>
#include <cstring>
#include <fstream>
#include <nlohmann/json.hpp>

#include "common/cleanup.h"
#include "common/error.h"
#include "common/log.h"
#include "common/time_util.h"
#include "io/hash.h"
#include "repo/layout.h"

namespace gravl::repo {
namespace {

std::string HostName() {
  char buf[256] = {};
  if (::gethostname(buf, sizeof buf - 1) != 0) return "unknown";
  return buf;
}

std::string ReadFirstLine(const std::string& path) {
  std::ifstream in(path);
  std::string line;
  std::getline(in, line);
  return line;
}

std::string BootId() {
  static const std::string id = ReadFirstLine("/proc/sys/kernel/random/boot_id");
  return id;
}

std::string PidNamespace() {
  char buf[128] = {};
  ssize_t n = ::readlink("/proc/self/ns/pid", buf, sizeof buf - 1);
  return n > 0 ? std::string(buf, static_cast<std::size_t>(n)) : "";
}

std::string NetNamespace() {
  char buf[128] = {};
  ssize_t n = ::readlink("/proc/self/ns/net", buf, sizeof buf - 1);
  return n > 0 ? std::string(buf, static_cast<std::size_t>(n)) : "";
}

std::string UserName(uid_t uid) {
  struct passwd pw {};
  struct passwd* found = nullptr;
  char buf[1024];
  if (::getpwuid_r(uid, &pw, buf, sizeof buf, &found) == 0 && found != nullptr) {
    return found->pw_name;
  }
  return "uid " + std::to_string(uid);
}

std::string CommandOf(pid_t pid) {
  std::string path = "/proc/" + std::to_string(pid) + "/cmdline";
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return "";
  char buf[256];
  ssize_t n = ::read(fd, buf, sizeof buf);
  ::close(fd);
  std::string raw(buf, n > 0 ? static_cast<std::size_t>(n) : 0);
  for (auto& c : raw) {
    if (c == '\0') c = ' ';
  }
  while (!raw.empty() && raw.back() == ' ') raw.pop_back();
  return raw.size() > 120 ? raw.substr(0, 120) + "..." : raw;
}

}  // namespace

bool HostLockUserTrusted(uid_t uid) {
  if (uid == 0 || uid == ::geteuid()) return true;
  struct passwd pw {};
  struct passwd* found = nullptr;
  char buf[1024];
  return ::getpwnam_r("postgres", &pw, buf, sizeof buf, &found) == 0 && found != nullptr &&
         found->pw_uid == uid;
}

HostLock::Result HostLock::Acquire(const std::string& name) {
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::string path = "gravl-dr/" + name;  // in the abstract namespace: sun_path[0] = '\0'
  if (path.size() + 1 > sizeof addr.sun_path) path.resize(sizeof addr.sun_path - 1);
  std::memcpy(addr.sun_path + 1, path.data(), path.size());
  auto len = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + 1 + path.size());
  Result result;
  int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) throw LockError(SysErrorText("cannot create a socket for the host lock", errno));
  if (::bind(fd, reinterpret_cast<sockaddr*>(&addr), len) == 0) {
    ::listen(fd, 64);
    result.lock = std::unique_ptr<HostLock>(new HostLock(fd));
    return result;
  }
  int err = errno;
  ::close(fd);
  if (err != EADDRINUSE) throw LockError(SysErrorText("cannot take the host lock " + path, err));
  // Taken: the holder's credentials, from a connection to its socket.
  Holder holder;
  int c = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (c >= 0) {
    if (::connect(c, reinterpret_cast<sockaddr*>(&addr), len) == 0 || errno == EAGAIN) {
      ucred cred{};
      socklen_t size = sizeof cred;
      if (::getsockopt(c, SOL_SOCKET, SO_PEERCRED, &cred, &size) == 0 && cred.pid > 0) {
        holder.pid = cred.pid;
        holder.uid = cred.uid;
        holder.user = UserName(cred.uid);
        holder.command = CommandOf(cred.pid);
        holder.known = true;
      }
    }
    ::close(c);
  }
  result.holder = holder;
  return result;
}

HostLock::~HostLock() { ::close(fd_); }

std::string HostLock::Holder::Describe() const {
  if (!known) return "another process on this host";
  return "pid " + std::to_string(pid) + " (user " + user +
         (command.empty() ? std::string("") : ": " + command) + ") on this host";
}

std::unique_ptr<StanzaLock> StanzaLock::Acquire(storage::Storage& storage,
                                                const std::string& stanza, const std::string& kind,
                                                const std::string& command) {
  std::string key = LockKey(stanza, kind);
  std::string what = "stanza '" + stanza + "' (" + kind + ") in " + storage.Describe();
  std::string id = io::Sha256Hex(AsBytes(storage.Describe() + "\n" + key)).substr(0, 24);
  HostLock::Result local = HostLock::Acquire(id);
  if (!local.lock && (!local.holder.known || HostLockUserTrusted(local.holder.uid))) {
    throw LockError(what + " is locked by " + local.holder.Describe() + "; wait for it to finish");
  }
  if (!local.lock) {
    // A process of another user holds the name (to block us?): the repository lease still
    // excludes everyone; only a stale lease is not taken over without the host lock.
    spdlog::warn(
        "the host lock of {} is held by {}, which is not root, postgres or this user; "
        "going on with the repository lease alone",
        what, local.holder.Describe());
  }
  std::string host = HostName();
  std::string token = HexEncode(RandomBytes(16));
  nlohmann::json lease = {{"host", host},
                          {"boot_id", BootId()},
                          {"pid_namespace", PidNamespace()},
                          {"net_namespace", NetNamespace()},
                          {"pid", ::getpid()},
                          {"command", command},
                          {"token", token},
                          {"acquired_at", FormatIso8601(std::chrono::system_clock::now())}};
  std::string text = lease.dump();
  for (int attempt = 0; attempt < 2; ++attempt) {
    if (storage::PutBytesIfAbsent(storage, key, AsBytes(text))) {
      return std::unique_ptr<StanzaLock>(
          new StanzaLock(storage, key, std::move(local.lock), token));
    }
    std::optional<Bytes> held = storage::TryGetBytes(storage, key);
    if (!held) continue;  // released meanwhile
    nlohmann::json holder = nlohmann::json::parse(AsChars(*held), nullptr, false);
    if (!holder.is_object()) holder = nlohmann::json::object();
    std::string holder_host = holder.value("host", "?");
    long holder_pid = holder.value("pid", 0L);
    // A lease is stale only when its holder provably ran on this very machine and is
    // gone: same host name, and either a different boot (the machine restarted), or the
    // same boot and PID namespace with that pid no longer running. Containers sharing a
    // host name but not PIDs (two in one pod) never take each other's lease.
    std::string holder_boot = holder.value("boot_id", "");
    bool same_host = holder_host == host;
    bool rebooted = same_host && !holder_boot.empty() && holder_boot != BootId();
    bool same_pids = same_host && holder_boot == BootId() &&
                     holder.value("pid_namespace", "") == PidNamespace() &&
                     holder.value("net_namespace", NetNamespace()) == NetNamespace();
    bool dead = same_pids && holder_pid > 0 && ::kill(static_cast<pid_t>(holder_pid), 0) != 0 &&
                errno == ESRCH;
    if ((rebooted || dead) && !local.lock) {
      throw LockError(what + ": the lease of pid " + std::to_string(holder_pid) +
                      " is stale, but the host lock is held by " + local.holder.Describe() +
                      ", so it is not taken over; stop that process, or delete " +
                      storage.Describe() + "/" + key);
    }
    if (rebooted || dead) {
      spdlog::warn("removing stale lock {} left by pid {} (no longer running)", key, holder_pid);
      storage.DeleteMany({key});
      continue;
    }
    throw LockError(what + " is locked by pid " + std::to_string(holder_pid) + " on host " +
                    holder_host + " (" + holder.value("command", "?") + ") since " +
                    holder.value("acquired_at", "?") +
                    "; wait for it to finish, or if that process is gone, delete " +
                    storage.Describe() + "/" + key);
  }
  throw LockError("cannot acquire the lock for " + what + ": it keeps changing hands");
}

namespace {
// Deletes the lease if it is still ours.
void ReleaseLease(storage::Storage& storage, const std::string& key, const std::string& token) {
  try {
    std::optional<Bytes> held = storage::TryGetBytes(storage, key);
    if (!held) return;  // gone already (taken over as stale, or deleted by hand)
    auto holder = nlohmann::json::parse(AsChars(*held), nullptr, false);
    if (holder.is_object() && holder.value("token", "") == token) storage.DeleteMany({key});
  } catch (const Error& e) {
    // Releasing runs in destructors and on signals: a repository that is unreachable now
    // leaves the lease, which a later run on this host takes over (and names otherwise).
    spdlog::warn("could not release lock {}: {}", key, Redact(e.what()));
  }
}
}  // namespace

StanzaLock::StanzaLock(storage::Storage& storage, std::string key,
                       std::unique_ptr<HostLock> host_lock, std::string token)
    : storage_(storage),
      key_(std::move(key)),
      host_lock_(std::move(host_lock)),
      token_(std::move(token)) {
  // Stopped by SIGINT/SIGTERM, the process releases its lease before it exits, so that a
  // host that never comes back (a deleted pod) does not leave the stanza locked.
  cleanup_id_ = AddCleanup(
      [&storage = storage_, key = key_, token = token_] { ReleaseLease(storage, key, token); });
}

StanzaLock::~StanzaLock() {
  RemoveCleanup(cleanup_id_);
  ReleaseLease(storage_, key_, token_);
}

}  // namespace gravl::repo
