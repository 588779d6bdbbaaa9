// stanza-create and info through the real binary, against real PostgreSQL clusters.

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "support/cli.h"
#include "support/pg_fixture.h"
#include "support/test_util.h"

namespace gravl {
namespace {

class StanzaIntegration : public ::testing::Test {
 protected:
  // Per test (ctest runs each test in a process of its own anyway): a failure to start a
  // cluster fails the test, where one in SetUpTestSuite would only skip it.
  void SetUp() override {
    a_ = test::StartCluster();
    b_ = test::StartCluster();
    cluster_a_ = a_.get();
    cluster_b_ = b_.get();
  }
  std::vector<std::string> Env(const pg::Instance& pg) {
    return {"GRAVL_DR_PG_CONNINFO=" + pg.conninfo(), "GRAVL_DR_REPO_PATH=" + (dir_ / "repo")};
  }
  std::string SystemId(const pg::Instance& pg) {
    std::string s = pg.Psql("SELECT system_identifier FROM pg_control_system()");
    return s.substr(0, s.find('\n'));
  }
  test::TempDir dir_;
  std::unique_ptr<pg::Instance> a_, b_;
  pg::Instance* cluster_a_ = nullptr;
  pg::Instance* cluster_b_ = nullptr;
};

TEST_F(StanzaIntegration, CreateThenInfoJson) {
  RunResult r = test::Cli({"stanza-create", "--output", "json"}, Env(*cluster_a_));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  auto created = nlohmann::json::parse(r.out);
  EXPECT_EQ(created["repos"][0]["status"], "created");
  EXPECT_EQ(created["system_identifier"], SystemId(*cluster_a_));

  r = test::Cli({"info", "--output", "json"}, Env(*cluster_a_));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  auto info = nlohmann::json::parse(r.out);
  const auto& stanza = info["repos"][0]["stanzas"][0];
  EXPECT_EQ(stanza["stanza"], "main");
  EXPECT_EQ(stanza["status"], "ok");
  EXPECT_EQ(stanza["system_identifier"], SystemId(*cluster_a_));
  EXPECT_EQ(stanza["pg_major"], 15);
  EXPECT_EQ(stanza["wal_segment_size"], 16 * 1024 * 1024);
  EXPECT_TRUE(stanza["backups"].empty());
  EXPECT_TRUE(stanza["encryption"].is_null());

  // Idempotent for the same cluster.
  r = test::Cli({"stanza-create", "--output", "json"}, Env(*cluster_a_));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(nlohmann::json::parse(r.out)["repos"][0]["status"], "exists");

  // Text output is for people.
  r = test::Cli({"info"}, Env(*cluster_a_));
  ASSERT_EQ(r.exit_code, 0);
  EXPECT_NE(r.out.find("system identifier " + SystemId(*cluster_a_)), std::string::npos);
}

TEST_F(StanzaIntegration, AnotherClusterIsRefusedOnTheSameRepository) {
  ASSERT_EQ(test::Cli({"stanza-create"}, Env(*cluster_a_)).exit_code, 0);
  RunResult r = test::Cli({"stanza-create"}, Env(*cluster_b_));
  EXPECT_EQ(r.exit_code, 5) << r.err;  // conflict
  EXPECT_NE(r.err.find("another cluster"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find(SystemId(*cluster_a_)), std::string::npos) << r.err;
  EXPECT_NE(r.err.find(SystemId(*cluster_b_)), std::string::npos) << r.err;
  // The original stanza is untouched.
  auto info = nlohmann::json::parse(test::Cli({"info", "--output", "json"}, Env(*cluster_a_)).out);
  EXPECT_EQ(info["repos"][0]["stanzas"][0]["system_identifier"], SystemId(*cluster_a_));
  // The other cluster can use its own stanza in the same repository.
  auto env = Env(*cluster_b_);
  env.push_back("GRAVL_DR_STANZA=other");
  EXPECT_EQ(test::Cli({"stanza-create"}, env).exit_code, 0);
  auto all = nlohmann::json::parse(test::Cli({"info", "--all", "--output", "json"}, env).out);
  EXPECT_EQ(all["repos"][0]["stanzas"].size(), 2u);
}

TEST_F(StanzaIntegration, EncryptedStanzaNeedsTheRightPassphrase) {
  std::string pass = dir_ / "pass";
  test::WriteFile(pass, "correct-horse-battery\n");
  auto env = Env(*cluster_a_);
  env.push_back("GRAVL_DR_ENCRYPTION_PASSPHRASE_FILE=" + pass);
  RunResult r = test::Cli({"stanza-create", "--output", "json"}, env);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(nlohmann::json::parse(r.out)["encrypted"], true);
  EXPECT_EQ(test::ReadFile(dir_ / "repo/main/stanza.json").find("correct-horse"),
            std::string::npos);

  test::WriteFile(pass, "wrong-horse-battery\n");
  r = test::Cli({"stanza-create"}, env);
  EXPECT_EQ(r.exit_code, 7) << r.err;  // crypto
  EXPECT_NE(r.err.find("wrong passphrase"), std::string::npos) << r.err;
  EXPECT_EQ(r.err.find("wrong-horse"), std::string::npos) << "secret leaked: " << r.err;

  r = test::Cli({"stanza-create"}, Env(*cluster_a_));  // no passphrase at all
  EXPECT_EQ(r.exit_code, 3) << r.err;
  EXPECT_NE(r.err.find("is encrypted"), std::string::npos) << r.err;

  r = test::Cli({"info", "--output", "json"}, env);
  EXPECT_EQ(nlohmann::json::parse(r.out)["repos"][0]["stanzas"][0]["encryption"]["cipher"],
            "aes-256-gcm");
}

// A passphrase configured for a stanza that is not encrypted is a configuration error in
// info as in every other command (it would otherwise be silently ignored there); info still
// shows what it can and prints the error on stderr too.
TEST_F(StanzaIntegration, InfoRefusesAPassphraseForAnUnencryptedStanza) {
  ASSERT_EQ(test::Cli({"stanza-create"}, Env(*cluster_a_)).exit_code, 0);
  std::string pass = dir_ / "pass";
  test::WriteFile(pass, "not-needed\n");
  auto env = Env(*cluster_a_);
  env.push_back("GRAVL_DR_ENCRYPTION_PASSPHRASE_FILE=" + pass);
  RunResult r = test::Cli({"info"}, env);
  EXPECT_EQ(r.exit_code, 3) << r.out << r.err;
  EXPECT_NE(r.out.find("is not encrypted, but a passphrase is configured"), std::string::npos)
      << r.out;
  EXPECT_NE(r.err.find("gravl-dr: error: "), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("is not encrypted"), std::string::npos) << r.err;
}

TEST_F(StanzaIntegration, EveryConfiguredRepositoryGetsTheStanza) {
  std::string cfg = dir_ / "gravl-dr.yaml";
  test::WriteFile(cfg, "pg:\n  conninfo: \"" + cluster_a_->conninfo() +
                           "\"\nrepos:\n  - {name: eu, type: posix, path: " + (dir_ / "eu") +
                           "}\n  - {name: us, type: posix, path: " + (dir_ / "us") + "}\n");
  RunResult r = test::Cli({"--config", cfg, "stanza-create", "--output", "json"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  auto out = nlohmann::json::parse(r.out);
  ASSERT_EQ(out["repos"].size(), 2u);
  EXPECT_EQ(out["repos"][1]["repo"], "us");
  r = test::Cli({"--config", cfg, "--repo", "us", "info", "--output", "json"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(nlohmann::json::parse(r.out)["repos"].size(), 1u);
}

TEST_F(StanzaIntegration, DryRunCreatesNothing) {
  RunResult r = test::Cli({"stanza-create", "--dry-run", "--output", "json"}, Env(*cluster_a_));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(nlohmann::json::parse(r.out)["repos"][0]["status"], "would-create");
  r = test::Cli({"info"}, Env(*cluster_a_));
  EXPECT_EQ(r.exit_code, 4) << r.out;  // stanza missing
  EXPECT_NE(r.out.find("stanza-create"), std::string::npos);
}

TEST_F(StanzaIntegration, UnreachableServerIsAPostgresError) {
  RunResult r =
      test::Cli({"stanza-create"}, {"GRAVL_DR_PG_CONNINFO=host=127.0.0.1 port=1 user=postgres "
                                    "password=do-not-print-me",
                                    "GRAVL_DR_REPO_PATH=" + (dir_ / "repo")});
  EXPECT_EQ(r.exit_code, 9) << r.err;
  EXPECT_NE(r.err.find("cannot connect to PostgreSQL"), std::string::npos) << r.err;
  EXPECT_EQ(r.err.find("do-not-print-me"), std::string::npos) << r.err;
}

}  // namespace
}  // namespace gravl
