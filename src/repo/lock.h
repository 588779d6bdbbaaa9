#pragma once
// Cross-process stanza lock.
//
// Two layers, so that neither a second process on this host nor one on another host (a
// CronJob pod, a second region) can write the same stanza concurrently:
//  1. a host lock (HostLock): a listening Unix socket in the abstract namespace named after
//     the stanza, repository and kind. Only one process can bind a name; the kernel releases
//     it when the process dies, so a crash never leaves a stale host lock; and there is no
//     file or directory whose owner could lock other users out -- root, the server's user
//     and cron jobs share it whoever ran first. A process that finds it taken learns the
//     holder's pid and user (SO_PEERCRED) and reports them (exit 10). A name held by a user
//     other than root, postgres or ourselves (a stranger squatting it) blocks nothing: the
//     lease below still excludes every writer, only stale leases are then not taken over;
//  2. a lease object <stanza>/locks/<kind>.lock in the repository, created with
//     if_absent (atomic create), naming host, pid and start time. A lease left by a dead
//     process on this host is detected (we hold the host lock, and its pid is gone, in the
//     same boot, PID and network namespace) and taken over; a lease of a live process or
//     another host is reported with LockError (exit 10).
// Different kinds ("archive", "backup", "stanza") do not exclude each other. A process stopped
// by SIGINT/SIGTERM releases its lease (common/cleanup.h) before it exits with code 11.

#include <sys/types.h>

#include <memory>
#include <string>

#include "storage/storage.h"

namespace gravl::repo {

// Host-wide mutual exclusion by name (see above). Linux abstract sockets are per network
// namespace: processes in one pod (which shares it) exclude each other.
class HostLock {
 public:
  struct Holder {
    bool known = false;
    pid_t pid = 0;
    uid_t uid = 0;
    std::string user, command;
    std::string Describe() const;  // "pid 42 (user postgres: gravl-dr backup) on this host"
  };
  struct Result {
    std::unique_ptr<HostLock> lock;  // null when taken
    Holder holder;                   // then: who holds it
  };
  static Result Acquire(const std::string& name);
  ~HostLock();
  HostLock(const HostLock&) = delete;
  HostLock& operator=(const HostLock&) = delete;

 private:
  explicit HostLock(int fd) : fd_(fd) {}
  int fd_;
};

// Root, this process's user and the server's user (postgres): whose host locks count.
bool HostLockUserTrusted(uid_t uid);

class StanzaLock {
 public:
  // Throws LockError naming the holder when the lock is taken.
  static std::unique_ptr<StanzaLock> Acquire(storage::Storage& storage, const std::string& stanza,
                                             const std::string& kind, const std::string& command);
  ~StanzaLock();
  StanzaLock(const StanzaLock&) = delete;
  StanzaLock& operator=(const StanzaLock&) = delete;

 private:
  StanzaLock(storage::Storage& storage, std::string key, std::unique_ptr<HostLock> host_lock,
             std::string token);
  storage::Storage& storage_;
  std::string key_;
  std::unique_ptr<HostLock> host_lock_;  // null when a stranger held the name
  std::string token_;
  int cleanup_id_ = 0;
};

}  // namespace gravl::repo
