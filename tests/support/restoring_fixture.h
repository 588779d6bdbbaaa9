#pragma once
// An archiving cluster whose backups the test restores and starts: the helpers shared by the
// backup/restore and recovery-target tests.

#include <gtest/gtest.h>

#include <chrono>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "pg/instance.h"
#include "support/archiving_fixture.h"

namespace gravl::test {

class RestoringFixture : public ArchivingFixture {
 protected:
  std::string ConfigBody() const override { return OneRepositoryConfig(); }
  void SetUp() override {
    ArchivingFixture::SetUp();
    EnableArchiving();
  }
  using ArchivingFixture::Query;
  std::string Query(const pg::Instance& pg, const std::string& sql) {
    std::string s = pg.Psql(sql);
    while (!s.empty() && s.back() == '\n') s.pop_back();
    return s;
  }
  // Restores with the given extra arguments and starts the result; returns the instance.
  std::unique_ptr<pg::Instance> RestoreAndStart(const std::string& name,
                                                std::vector<std::string> args,
                                                std::vector<std::string> server_options = {}) {
    std::string pgdata = dir_ / name;
    args.insert(args.begin(), {"restore", "--pgdata", pgdata});
    RunResult r = Cli(args);
    EXPECT_EQ(r.exit_code, 0) << r.err << r.out;
    if (r.exit_code != 0) return nullptr;
    last_restore_output_ = r.out;
    return StartRestored(pgdata, name + "-run", std::move(server_options));
  }
  // Starts a server on a restored data directory and waits until recovery has finished.
  std::unique_ptr<pg::Instance> StartRestored(const std::string& pgdata, const std::string& run,
                                              std::vector<std::string> server_options = {}) {
    pg::InstanceOptions o;
    o.base_dir = dir_ / run;
    o.server_options = std::move(server_options);
    auto inst = pg::Instance::Adopt(o, pgdata);
    for (int i = 0; i < 600 && Query(*inst, "SELECT pg_is_in_recovery()") != "f"; ++i) {
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    return inst;
  }
  std::string last_restore_output_;
};

}  // namespace gravl::test
