#include "support/archiving_fixture.h"

#include <sys/stat.h>

#include <chrono>
#include <filesystem>
#include <thread>

#include "support/cli.h"
#include "support/pg_fixture.h"

namespace gravl::test {

void ArchivingFixture::SetUp() {
  pg::GiveToServerUser(dir_.path());
  ::chmod(dir_.path().c_str(), 0755);
  std::vector<std::string> settings = {"archive_mode = on", "archive_command = ''"};
  for (const auto& s : ClusterSettings()) settings.push_back(s);
  cluster_ = StartCluster(settings);
  WriteConfig();
  RunResult created = Cli({"stanza-create"});
  ASSERT_EQ(created.exit_code, 0) << created.out << created.err << "\nconfiguration:\n"
                                  << ReadFile(config_);
  Chown(dir_.path());
}

std::string ArchivingFixture::OneRepositoryConfig() const {
  return "repos:\n  - {name: local, type: posix, path: " + (dir_ / "repo") +
         "}\narchive: {async: true, spool_path: " + (dir_ / "spool") + "}\nparallel: 2\n";
}

void ArchivingFixture::WriteConfig() {
  config_ = dir_ / "gravl-dr.yaml";
  WriteFile(config_, "pg:\n  conninfo: \"" + cluster_->conninfo() + "\"\n" + ConfigBody());
  ::chmod(config_.c_str(), 0644);
  pg::GiveToServerUser(config_);
}

void ArchivingFixture::EnableArchiving() {
  cluster_->Psql("ALTER SYSTEM SET archive_command = '" + std::string(GravlBinary()) +
                 " --config " + config_ + " archive-push %p'");
  cluster_->Psql("SELECT pg_reload_conf()");
}

RunResult ArchivingFixture::Cli(std::vector<std::string> args) {
  args.insert(args.begin(), {"--config", config_});
  return test::Cli(args);
}

std::string ArchivingFixture::Query(const std::string& sql, const std::string& db) {
  std::string s = cluster_->Psql(sql, db);
  while (!s.empty() && s.back() == '\n') s.pop_back();
  return s;
}

std::string ArchivingFixture::SwitchAndWait(int timeout_s) {
  std::string seg = Query("SELECT pg_walfile_name(pg_switch_wal())");
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(timeout_s);
  while (std::chrono::steady_clock::now() < deadline) {
    std::string last = Query("SELECT coalesce(last_archived_wal, '') FROM pg_stat_archiver");
    if (!last.empty() && last >= seg) return seg;
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  ADD_FAILURE() << "the archiver did not reach " << seg << "; server log:\n" << cluster_->LogTail();
  return seg;
}

void ArchivingFixture::Chown(const std::string& root) {
  pg::GiveToServerUser(root);
  for (const auto& e : std::filesystem::recursive_directory_iterator(root)) {
    pg::GiveToServerUser(e.path());
  }
}

}  // namespace gravl::test
