// The whole product on an S3 repository (s3rver behind the verifying gateway), next to a
// local one: WAL archived to both, a backup and a point-in-time restore from S3, verify and
// info; and a repository that keeps failing makes commands fail in bounded time, with no
// secret in any output.

#include <gtest/gtest.h>

#include <chrono>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <thread>

#include "pg/instance.h"
#include "storage/s3/s3_storage.h"
#include "support/archiving_fixture.h"
#include "support/s3_gateway.h"
#include "support/test_util.h"

namespace gravl {
namespace {

class S3Repository : public test::ArchivingFixture {
 protected:
  void SetUp() override {
    gw_ = std::make_unique<test::S3Gateway>();
    ArchivingFixture::SetUp();
  }
  std::string ConfigBody() const override {
    return "repos:\n  - name: s3\n" + gw_->RepoYaml("db1", dir_ / "s3-secret") +
           "    retry_timeout: 5\n    part_size_mib: 5\n"
           "  - {name: local, type: posix, path: " +
           (dir_ / "repo") + "}\narchive: {async: true, spool_path: " + (dir_ / "spool") +
           "}\nparallel: 2\n";
  }
  std::vector<std::string> Objects() {
    auto s = storage::s3::MakeS3Storage("check", gw_->Repo("db1"));
    std::vector<std::string> keys;
    for (const auto& o : storage::ListAll(*s, "")) keys.push_back(o.key);
    return keys;
  }
  void ExpectNoSecret(const RunResult& r) {
    EXPECT_EQ(r.err.find(test::S3Gateway::kSecretAccessKey), std::string::npos) << r.err;
    EXPECT_EQ(r.out.find(test::S3Gateway::kSecretAccessKey), std::string::npos) << r.out;
  }
  std::unique_ptr<test::S3Gateway> gw_;
};

TEST_F(S3Repository, PointInTimeRestoreFromS3WorksLikeFromALocalRepository) {
  EnableArchiving();
  Query("CREATE TABLE accounts(id int primary key, balance int)");
  Query("INSERT INTO accounts SELECT g, 100 FROM generate_series(1, 1000) g");
  Query("CREATE TABLE big AS SELECT g, md5(g::text) FROM generate_series(1, 300000) g");
  RunResult b =
      Cli({"backup", "--repo", "s3", "--type", "full", "--output", "json", "--log-level", "debug"});
  ASSERT_EQ(b.exit_code, 0) << b.err;
  ExpectNoSecret(b);
  Query("INSERT INTO accounts SELECT g, 200 FROM generate_series(1001, 1100) g");
  Query("SELECT pg_create_restore_point('before-accident')");
  Query("DELETE FROM accounts WHERE id <= 500");
  SwitchAndWait();

  // WAL reached both repositories.
  RunResult info = Cli({"info", "--output", "json"});
  ASSERT_EQ(info.exit_code, 0) << info.err;
  auto repos = nlohmann::json::parse(info.out);
  EXPECT_NE(info.out.find("\"s3\""), std::string::npos);
  RunResult c = Cli({"check"});  // a switched segment reaches both repositories
  EXPECT_EQ(c.exit_code, 0) << c.err << c.out;
  RunResult v = Cli({"verify", "--repo", "s3"});
  EXPECT_EQ(v.exit_code, 0) << v.err << v.out;

  std::string pgdata = dir_ / "restored";
  RunResult r =
      Cli({"restore", "--repo", "s3", "--pgdata", pgdata, "--target-name", "before-accident"});
  ASSERT_EQ(r.exit_code, 0) << r.err << r.out;
  ExpectNoSecret(r);
  // The restored server fetches WAL from S3 through archive-get.
  pg::InstanceOptions o;
  o.base_dir = dir_ / "restored-run";
  auto restored = pg::Instance::Adopt(o, pgdata);
  std::string state;
  for (int i = 0; i < 600; ++i) {
    state = restored->Psql("SELECT pg_is_in_recovery()");
    if (state == "f\n") break;
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  EXPECT_EQ(restored->Psql("SELECT count(*), sum(balance) FROM accounts"), "1100|120000\n");
  EXPECT_EQ(restored->Psql("SELECT count(*) FROM big"), "300000\n");

  auto st = nlohmann::json::parse(gw_->Stats());
  EXPECT_GT(st["by_method"]["GET"].get<int>(), 20) << st.dump();  // the restore read S3
  EXPECT_TRUE(!st.contains("rejected") || st["rejected"].empty()) << st.dump();
}

TEST_F(S3Repository, AFailingRepositoryFailsTheCommandInBoundedTimeLeavingNothing) {
  auto before = Objects();
  gw_->SetFaults(R"({"error_rate":1.0})");
  auto start = std::chrono::steady_clock::now();
  RunResult b = Cli({"backup", "--repo", "s3", "--type", "full", "--log-level", "debug"});
  auto elapsed = std::chrono::steady_clock::now() - start;
  EXPECT_EQ(b.exit_code, 8) << b.err;  // storage failure
  EXPECT_NE(b.err.find("retry_timeout"), std::string::npos) << b.err;
  EXPECT_LT(elapsed, std::chrono::seconds(60)) << b.err;
  ExpectNoSecret(b);
  gw_->SetFaults("{}");
  EXPECT_EQ(Objects(), before);
  RunResult info = Cli({"info", "--repo", "s3", "--output", "json"});
  ASSERT_EQ(info.exit_code, 0) << info.err;
  EXPECT_EQ(info.out.find("\"label\""), std::string::npos) << info.out;  // no backup listed
}

}  // namespace
}  // namespace gravl
