#pragma once
// What every command receives: the loaded configuration, the global flags, and the output
// channel (text or JSON on stdout; logs go to stderr).

#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "common/config.h"
#include "pg/connection.h"
#include "repo/manifest.h"
#include "repo/reports.h"
#include "repo/repository.h"

namespace gravl::commands {

enum class OutputFormat { kText, kJson };

struct Context {
  Config config;
  OutputFormat output = OutputFormat::kText;
  bool dry_run = false;
  std::optional<std::string> repo_name;  // --repo
  // The report of the run, when the command is recorded (commands/run_record.h): the command
  // adds what only it knows (label, bytes, phases, repository, details).
  std::shared_ptr<repo::RunReport> run;
  // Where Emit prints; nullptr: stdout. A command run inside another (failover's backup)
  // prints into its caller's capture.
  std::ostream* out = nullptr;

  // The selected repositories, opened, for the configured stanza.
  std::vector<std::unique_ptr<repo::Repository>> OpenRepos() const;

  // For WAL (archive-push, wal-receive): every selected repository opened, its stanza read and
  // unlocked, and what they agree on. Throws ConflictError when two name different clusters.
  struct WalTargets {
    std::vector<std::unique_ptr<repo::Repository>> owned;
    std::vector<repo::Repository*> repos;
    std::string system_identifier;
    std::uint64_t segment_size = 0;
  };
  WalTargets OpenWalTargets() const;

  // For backups: the target repository (the first selected, i.e. --repo or the first
  // configured), opened and unlocked, and a connection to the server, whose system
  // identifier is checked against the stanza. Throws ConflictError on a mismatch.
  struct BackupTarget {
    std::vector<std::unique_ptr<repo::Repository>> repos;
    repo::Repository* repo = nullptr;
    std::unique_ptr<pg::Connection> sql;
    pg::ClusterIdentity id;
  };
  BackupTarget OpenBackupTarget() const;

  // A new backup's manifest with the fields every backup records about itself: what it is,
  // of which cluster, by which version, started when, stored how. The format is the newest
  // for full backups and 1 for logical ones.
  repo::BackupManifest NewManifest(repo::Repository& repo, const std::string& label,
                                   const std::string& type, const pg::ClusterIdentity& id,
                                   SystemTime start) const;

  // Prints the result: `json` in JSON mode, otherwise `text` (which should end in '\n').
  void Emit(const nlohmann::json& json, const std::string& text) const;
};

}  // namespace gravl::commands
