#pragma once
// Cross-process stanza lock.
//
// Two layers, so that neither a second process on this host nor one on another host (a
// CronJob pod, a second region) can write the same stanza concurrently:
//  1. a local flock() on /tmp/gravl-dr-locks/<id>.lock -- released by the kernel if the
//     holder dies, so a crash never leaves a stale local lock;
//  2. a lease object <stanza>/locks/<kind>.lock in the repository, created with
//     if_absent (atomic create), naming host, pid and start time. A lease left by a dead
//     process on this host is detected (we hold the flock, and its pid is gone) and taken
//     over; a lease of a live process or another host is reported with LockError (exit 10).
// Different kinds ("archive", "backup", "stanza") do not exclude each other. A process stopped
// by SIGINT/SIGTERM releases its lease (common/cleanup.h) before it exits with code 11.

#include <memory>
#include <string>

#include "storage/storage.h"

namespace gravl::repo {

class StanzaLock {
 public:
  // Throws LockError naming the holder when the lock is taken.
  static std::unique_ptr<StanzaLock> Acquire(storage::Storage& storage, const std::string& stanza,
                                             const std::string& kind, const std::string& command);
  ~StanzaLock();
  StanzaLock(const StanzaLock&) = delete;
  StanzaLock& operator=(const StanzaLock&) = delete;

 private:
  StanzaLock(storage::Storage& storage, std::string key, int fd, std::string token);
  storage::Storage& storage_;
  std::string key_;
  int fd_;
  std::string token_;
  int cleanup_id_ = 0;
};

}  // namespace gravl::repo
