#pragma once
// Recorded runs: backup, expire, verify and test-restore leave a run report in the repository
// (repo/reports.h) -- also when they fail -- and notify the configured webhooks
// (notify/notify.h). The exporter's backup, expire, verify and drill metrics come from these
// reports.

#include <functional>
#include <string>

#include "commands/context.h"

namespace gravl::commands {

// Runs `body` (the command; returns its exit code or throws) as a recorded run of report kind
// `kind` (repo::kBackupReports, ...) about `subject` (the backup type for backups). The body
// fills ctx.run with what only it knows, and may set ctx.run->ok before returning a non-zero
// code that belongs to a follow-up step (a complete backup whose expire failed); a body that stores
// the report itself (drills, which print its key) sets ctx.run->key. Dry runs are not recorded.
// Then every wanted notification is sent, and its outcome recorded in reports/notifications/. The
// report is stored in the repository the body named (ctx.run->repo, selected by --repo or not),
// or else in every selected
// repository that can be reached; a report that cannot be stored is logged and never changes the
// exit code of a failed run (a successful run that cannot record itself exits with that storage
// error: nothing reports success for partial work). Returns the body's exit code; rethrows its
// error.
int RecordRun(Context ctx, const std::string& kind, const std::string& subject,
              const std::function<int(const Context&)>& body);

}  // namespace gravl::commands
