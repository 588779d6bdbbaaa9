#include "repo/lock.h"

#include <fcntl.h>
#include <signal.h>
#include <spdlog/spdlog.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <fstream>
#include <nlohmann/json.hpp>

#include "common/cleanup.h"
#include "common/error.h"
#include "common/time_util.h"
#include "io/hash.h"
#include "repo/layout.h"

namespace gravl::repo {
namespace {

constexpr const char* kLocalLockDir = "/tmp/gravl-dr-locks";

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

int LockLocal(const std::string& id, const std::string& what) {
  // World-writable sticky directory so that root (backups) and postgres (archive_command)
  // share the same lock files. Because it is shared, nothing in it is trusted blindly: the
  // directory must belong to root or to us (not to another user who could swap files in
  // it), and lock files are opened without following symlinks and must be plain files
  // with a single link -- otherwise a planted symlink could make us chmod any file.
  if (::mkdir(kLocalLockDir, 01777) == 0) ::chmod(kLocalLockDir, 01777);
  struct stat dir {};
  if (::lstat(kLocalLockDir, &dir) != 0 || !S_ISDIR(dir.st_mode) ||
      (dir.st_uid != 0 && dir.st_uid != ::geteuid()) ||
      ((dir.st_mode & S_IWOTH) && !(dir.st_mode & S_ISVTX))) {
    throw LockError(std::string(kLocalLockDir) +
                    " is not a directory owned by root (or this user) with the sticky bit; "
                    "remove it and run again");
  }
  std::string path = std::string(kLocalLockDir) + "/" + id + ".lock";
  int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0666);
  if (fd >= 0) {
    ::fchmod(fd, 0666);  // ours, just created: let the other user (root/postgres) lock it too
  } else if (errno == EEXIST) {
    fd = ::open(path.c_str(), O_RDWR | O_NOFOLLOW | O_CLOEXEC);
  }
  if (fd < 0) throw LockError(SysErrorText("cannot open lock file " + path, errno));
  struct stat st {};
  if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) || st.st_nlink != 1) {
    ::close(fd);
    throw LockError("lock file " + path + " is not a plain file; remove it and run again");
  }
  if (::flock(fd, LOCK_EX | LOCK_NB) != 0) {
    int err = errno;
    ::close(fd);
    if (err == EWOULDBLOCK) {
      throw LockError(what +
                      " is locked by another gravl-dr process on this host; wait for "
                      "it to finish");
    }
    throw LockError(SysErrorText("cannot lock " + path, err));
  }
  return fd;
}

}  // namespace

std::unique_ptr<StanzaLock> StanzaLock::Acquire(storage::Storage& storage,
                                                const std::string& stanza, const std::string& kind,
                                                const std::string& command) {
  std::string key = LockKey(stanza, kind);
  std::string what = "stanza '" + stanza + "' (" + kind + ") in " + storage.Describe();
  std::string id = io::Sha256Hex(AsBytes(storage.Describe() + "\n" + key)).substr(0, 24);
  int fd = LockLocal(id, what);
  try {
    std::string host = HostName();
    std::string token = HexEncode(RandomBytes(16));
    nlohmann::json lease = {{"host", host},
                            {"boot_id", BootId()},
                            {"pid_namespace", PidNamespace()},
                            {"pid", ::getpid()},
                            {"command", command},
                            {"token", token},
                            {"acquired_at", FormatIso8601(std::chrono::system_clock::now())}};
    std::string text = lease.dump();
    for (int attempt = 0; attempt < 2; ++attempt) {
      try {
        storage::PutBytes(storage, key, AsBytes(text), storage::PutOptions{.if_absent = true});
        return std::unique_ptr<StanzaLock>(new StanzaLock(storage, key, fd, token));
      } catch (const ConflictError&) {
      }
      nlohmann::json holder;
      try {
        holder = nlohmann::json::parse(AsChars(storage::GetBytes(storage, key)));
      } catch (const NotFoundError&) {
        continue;  // released meanwhile
      } catch (const nlohmann::json::exception&) {
        holder = nlohmann::json::object();
      }
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
                       holder.value("pid_namespace", "") == PidNamespace();
      bool dead = same_pids && holder_pid > 0 && ::kill(static_cast<pid_t>(holder_pid), 0) != 0 &&
                  errno == ESRCH;
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
  } catch (...) {
    ::close(fd);
    throw;
  }
}

namespace {
// Deletes the lease if it is still ours.
void ReleaseLease(storage::Storage& storage, const std::string& key, const std::string& token) {
  try {
    auto holder = nlohmann::json::parse(AsChars(storage::GetBytes(storage, key)));
    if (holder.value("token", "") == token) storage.DeleteMany({key});
  } catch (const std::exception& e) {
    spdlog::warn("could not release lock {}: {}", key, e.what());
  }
}
}  // namespace

StanzaLock::StanzaLock(storage::Storage& storage, std::string key, int fd, std::string token)
    : storage_(storage), key_(std::move(key)), fd_(fd), token_(std::move(token)) {
  // Stopped by SIGINT/SIGTERM, the process releases its lease before it exits, so that a
  // host that never comes back (a deleted pod) does not leave the stanza locked.
  cleanup_id_ = AddCleanup(
      [&storage = storage_, key = key_, token = token_] { ReleaseLease(storage, key, token); });
}

StanzaLock::~StanzaLock() {
  RemoveCleanup(cleanup_id_);
  ReleaseLease(storage_, key_, token_);
  ::close(fd_);
}

}  // namespace gravl::repo
