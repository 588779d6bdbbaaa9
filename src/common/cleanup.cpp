#include "common/cleanup.h"

#include <pthread.h>
#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <mutex>
#include <thread>
#include <utility>

#include "common/error.h"
#include "common/log.h"

namespace gravl {
namespace {

std::mutex& Mutex() {
  static std::mutex m;
  return m;
}
std::map<int, std::function<void()>>& Actions() {
  static std::map<int, std::function<void()>> a;
  return a;
}
int next_id = 0;
std::function<void(int)>& StopHandler() {
  static std::function<void(int)> h;
  return h;
}

// Set when a signal arrived; the signal thread then holds RunMutex() until it _exit()s, so a
// main thread that fails meanwhile (its server went away) cannot exit before cleanup ends.
std::atomic<bool> terminating{false};
std::mutex& RunMutex() {
  static std::mutex m;
  return m;
}

}  // namespace

void InstallSignalCleanup() {
  static std::once_flag once;
  std::call_once(once, [] {
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &set, nullptr);
    std::atexit([] {
      if (terminating) std::lock_guard wait_for_cleanup(RunMutex());
    });
    std::thread([set] {
      int sig = 0;
      sigwait(&set, &sig);
      // A daemon stops on its own: the first signal asks it to; a second one ends it here.
      std::function<void(int)> stop;
      {
        std::lock_guard lock(Mutex());
        stop = std::exchange(StopHandler(), nullptr);
      }
      if (stop) {
        stop(sig);
        sigwait(&set, &sig);
      }
      std::unique_lock run(RunMutex());
      terminating = true;
      std::fprintf(stderr, "gravl-dr: stopped by signal %d; cleaning up\n", sig);
      std::map<int, std::function<void()>> actions;
      {
        std::lock_guard lock(Mutex());
        actions = Actions();
      }
      for (auto it = actions.rbegin(); it != actions.rend(); ++it) {
        // One failed cleanup must not stop the others: said, then the next one runs.
        try {
          it->second();
        } catch (const std::exception& e) {
          std::fprintf(stderr, "gravl-dr: cleanup after the signal failed: %s\n",
                       Redact(e.what()).c_str());
        } catch (...) {
          std::fprintf(stderr, "gravl-dr: cleanup after the signal failed\n");
        }
      }
      _exit(ToInt(ExitCode::kInterrupted));
    }).detach();
  });
}

void SetStopHandler(std::function<void(int)> handler) {
  std::lock_guard lock(Mutex());
  StopHandler() = std::move(handler);
}

int AddCleanup(std::function<void()> action) {
  std::lock_guard lock(Mutex());
  int id = ++next_id;
  Actions()[id] = std::move(action);
  return id;
}

void RemoveCleanup(int id) {
  std::lock_guard lock(Mutex());
  Actions().erase(id);
}

}  // namespace gravl
