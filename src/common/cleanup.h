#pragma once
// Cleanup that must also happen when the process is stopped by SIGINT or SIGTERM (an
// ephemeral server to stop, a temporary directory to remove).
//
// InstallSignalCleanup() blocks SIGINT/SIGTERM in the calling thread (call it before other
// threads start, so they inherit the mask) and starts a thread that waits for them; on a
// signal it runs every registered action (newest first) and exits with code 11
// (interrupted). Owners remove their action when they clean up normally.

#include <functional>

namespace gravl {

void InstallSignalCleanup();
int AddCleanup(std::function<void()> action);  // returns an id for RemoveCleanup
// Daemons (the exporter): the first SIGINT/SIGTERM calls `handler` (on the signal thread)
// instead of the cleanup and exit, so the daemon stops cleanly and exits 0; a second signal
// then does the cleanup and exit 11.
void SetStopHandler(std::function<void(int)> handler);
void RemoveCleanup(int id);

}  // namespace gravl
