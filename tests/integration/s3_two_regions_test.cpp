// Two S3 "regions" (two gateway instances over their own s3rver, each with its own fault
// controls) and a real cluster archiving to both: a backup with --copy-to under 10 % injected
// S3 faults on either side leaves identical backup objects in both; then the primary region's
// store is stopped, and a restore to the latest archived moment from the second region alone
// gives exactly the primary's data (pg_dumpall compared).

#include <gtest/gtest.h>

#include <map>
#include <nlohmann/json.hpp>
#include <thread>

#include "common/subprocess.h"
#include "io/hash.h"
#include "pg/instance.h"
#include "storage/s3/s3_storage.h"
#include "support/archiving_fixture.h"
#include "support/pg_fixture.h"
#include "support/s3_gateway.h"
#include "support/test_util.h"

namespace gravl {
namespace {

class S3TwoRegions : public test::ArchivingFixture {
 protected:
  void SetUp() override {
    eu_ = std::make_unique<test::S3Gateway>();
    us_ = std::make_unique<test::S3Gateway>();
    ArchivingFixture::SetUp();
  }
  std::string ConfigBody() const override {
    return "repos:\n  - name: eu-north-1\n" + eu_->RepoYaml("db1", dir_ / "eu-secret") +
           "    retry_timeout: 10\n  - name: us-east-1\n" +
           us_->RepoYaml("db1", dir_ / "us-secret") +
           "    retry_timeout: 10\narchive: {async: true, spool_path: " + (dir_ / "spool") +
           "}\nparallel: 2\n";
  }
  // Every object under backups/ of a region: its SHA-256.
  std::map<std::string, std::string> Backups(const test::S3Gateway& gw) {
    auto s = storage::s3::MakeS3Storage("check", gw.Repo("db1"));
    std::map<std::string, std::string> out;
    for (const auto& o : storage::ListAll(*s, "main/backups/")) {
      out[o.key] = io::Sha256Hex(storage::GetBytes(*s, o.key));
    }
    return out;
  }
  std::unique_ptr<test::S3Gateway> eu_, us_;
};

TEST_F(S3TwoRegions, CopiedUnderFaultsAndRestoredFromTheSecondRegionAlone) {
  EnableArchiving();
  Query(
      "CREATE TABLE orders(id int primary key, note text); "
      "INSERT INTO orders SELECT g, md5(g::text) FROM generate_series(1, 100000) g");
  eu_->SetFaults(R"({"error_rate":0.1})");
  us_->SetFaults(R"({"error_rate":0.1})");
  RunResult b =
      Cli({"--repo", "eu-north-1", "backup", "--copy-to", "us-east-1", "--output", "json"});
  ASSERT_EQ(b.exit_code, 0) << b.out << b.err;
  auto j = nlohmann::json::parse(b.out);
  ASSERT_EQ(j["copies"][0]["backups"][0]["status"], "copied") << b.out;
  Query(
      "INSERT INTO orders SELECT g, 'after' FROM generate_series(100001, 120000) g; "
      "UPDATE orders SET note = 'changed' WHERE id % 11 = 0");
  SwitchAndWait();
  // Faults were injected, and the content is identical anyway.
  for (auto* gw : {eu_.get(), us_.get()}) {
    auto stats = nlohmann::json::parse(gw->Stats());
    int injected = 0;
    for (const auto& [kind, n] : stats["injected"].items()) injected += n.get<int>();
    EXPECT_GT(injected, 0) << stats.dump();
  }
  eu_->SetFaults("{}");
  us_->SetFaults("{}");
  auto eu = Backups(*eu_);
  EXPECT_GT(eu.size(), 3u);
  EXPECT_TRUE(eu == Backups(*us_)) << "backup objects differ between the regions";
  RunResult check = Cli({"repo-sync", "--from", "eu-north-1", "--to", "us-east-1", "--verify-only",
                         "--output", "json"});
  EXPECT_EQ(check.exit_code, 0) << check.out << check.err;

  // The primary region answers only errors (5xx): without --repo, restore reports it and
  // takes the second region's backup, within the bounded retries (retry_timeout 10 s).
  eu_->SetFaults(R"({"error_rate":1})");
  auto t0 = std::chrono::steady_clock::now();
  RunResult plan = Cli({"restore", "--pgdata", dir_ / "plan", "--dry-run", "--output", "json"});
  EXPECT_EQ(plan.exit_code, 0) << plan.err;
  if (plan.exit_code == 0) {
    EXPECT_EQ(nlohmann::json::parse(plan.out)["repo"], "us-east-1");
  }
  EXPECT_NE(plan.err.find("eu-north-1"), std::string::npos) << plan.err;
  EXPECT_LT(std::chrono::steady_clock::now() - t0, std::chrono::seconds(60));

  // The primary region's store is gone.
  std::string primary = test::DumpAll(*cluster_);
  eu_.reset();
  std::string pgdata = dir_ / "from-us";
  RunResult r = Cli({"--repo", "us-east-1", "restore", "--pgdata", pgdata});
  ASSERT_EQ(r.exit_code, 0) << r.err << r.out;
  pg::InstanceOptions o;
  o.base_dir = dir_ / "from-us-run";
  auto restored = pg::Instance::Adopt(o, pgdata);
  for (int i = 0; i < 600 && restored->Psql("SELECT pg_is_in_recovery()") != "f\n"; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  std::string got = test::DumpAll(*restored);
  EXPECT_GT(primary.size(), 1000000u);
  EXPECT_TRUE(got == primary) << "pg_dumpall differs: " << got.size() << " bytes restored, "
                              << primary.size() << " on the primary";
}

}  // namespace
}  // namespace gravl
