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
void RemoveCleanup(int id);

}  // namespace gravl
