#pragma once
// Run reports: what every command that changes or checks a repository leaves behind about
// its run -- a small write-once object per run under <stanza>/reports/<kind>/, named
// <start, compact UTC>-<random id>.json, checksummed like every metadata object. Metrics are
// derived from them (src/metrics/), so a CronJob pod that exits leaves its numbers behind
// and every replica of the exporter sees the same thing.
//
// A report is typed here once: the common part (RunReport) every kind has, and the
// kind-specific figures in `details` (drills: checks and timings). Readers tolerate reports
// written by older versions (missing members take their defaults).

#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "common/time_util.h"
#include "storage/storage.h"

namespace gravl::repo {

class Repository;

// The report kinds, which are also the folder names under reports/.
inline constexpr const char* kBackupReports = "backups";
inline constexpr const char* kExpireReports = "expires";
inline constexpr const char* kVerifyReports = "verifies";
inline constexpr const char* kDrillReports = "restore-tests";
inline constexpr const char* kNotificationReports = "notifications";
inline constexpr const char* kSyncReports = "syncs";
// failover, switchover, failback and standby-create runs (the subject says which).
inline constexpr const char* kFailoverReports = "failovers";

struct RunReport {
  std::string kind;  // one of the k*Reports
  std::string stanza;
  std::string repo;     // the repository's configured name
  std::string subject;  // backup type for backups ("full", "logical"), event for notifications
  std::string label;    // the backup concerned, if any
  SystemTime started{};
  SystemTime finished{};
  bool ok = false;
  int exit_code = 0;
  std::string error_class;  // ExitCodeName of the failure ("storage", "postgres", ...)
  std::string error;        // the failure's message, secrets redacted
  std::uint64_t bytes = 0;  // bytes the run read from the database or wrote (kind-specific)
  std::map<std::string, double> phases;  // seconds per phase
  nlohmann::json details = nlohmann::json::object();
  std::string key;  // where it is stored (set by Write/Read)

  double seconds() const;
  nlohmann::json ToJson() const;
  // Throws IntegrityError naming `what` when a member has the wrong type.
  static RunReport FromJson(const nlohmann::json& doc, const std::string& what);
};

// Stores `report` (write-once) in `repo`; returns its key.
std::string WriteReport(Repository& repo, RunReport& report);

// The keys of every report of `kind`, oldest first (keys sort by start time).
std::vector<std::string> ListReportKeys(storage::Storage& storage, const std::string& stanza,
                                        const std::string& kind);
// Reads and verifies one report (IntegrityError when damaged).
RunReport ReadReport(storage::Storage& storage, const std::string& key);

}  // namespace gravl::repo
