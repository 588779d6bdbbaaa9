#pragma once
// Base fixture for integration tests that need a real cluster archiving into gravl-dr
// repositories: a work directory, a cluster (archive_mode on, archive_command empty until
// EnableArchiving), a config file, and the stanza. Everything the archive_command touches
// (it runs as the server's OS user) is handed to that user: the work directory, the config
// file, the repositories and the spool.

#include <gtest/gtest.h>

#include <memory>
#include <string>
#include <vector>

#include "common/subprocess.h"
#include "pg/instance.h"
#include "support/test_util.h"

namespace gravl::test {

class ArchivingFixture : public ::testing::Test {
 protected:
  void SetUp() override;

  // The config file's body after pg.conninfo (repos, archive, drill, ...). `dir` is the work
  // directory.
  virtual std::string ConfigBody() const = 0;
  // The common body: one posix repository "local" and async archiving.
  std::string OneRepositoryConfig() const;
  // Extra postgresql.conf lines for the cluster.
  virtual std::vector<std::string> ClusterSettings() const { return {}; }

  // (Re)writes the config; call again after the cluster restarted on another port.
  void WriteConfig();
  void EnableArchiving();
  RunResult Cli(std::vector<std::string> args);
  std::string Query(const std::string& sql, const std::string& db = "postgres");
  // Switches WAL and waits until the archiver has processed that segment; returns it.
  std::string SwitchAndWait(int timeout_s = 120);
  // Hands every file under `root` to the server user (the tests may run as root).
  static void Chown(const std::string& root);

  TempDir dir_;
  std::unique_ptr<pg::Instance> cluster_;
  std::string config_;
};

}  // namespace gravl::test
