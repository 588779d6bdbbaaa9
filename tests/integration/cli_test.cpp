// The command line itself: help, version, output formats, and one-line errors with the
// documented exit codes for bad configuration.

#include "support/cli.h"

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "support/test_util.h"

namespace gravl {
namespace {

void ExpectOneLineError(const RunResult& r, int code, const std::string& fragment) {
  EXPECT_EQ(r.exit_code, code) << r.err;
  std::string err = r.err;
  while (!err.empty() && err.back() == '\n') err.pop_back();
  EXPECT_EQ(err.find('\n'), std::string::npos) << "not one line: " << r.err;
  EXPECT_EQ(err.rfind("gravl-dr: error: ", 0), 0u) << r.err;
  EXPECT_NE(err.find(fragment), std::string::npos) << r.err;
}

TEST(Cli, HelpForEveryCommand) {
  RunResult top = test::Cli({"--help"});
  EXPECT_EQ(top.exit_code, 0);
  // Every subcommand the top-level help lists has help of its own.
  std::vector<std::string> commands = {"stanza-create", "info",    "archive-push",   "archive-get",
                                       "check",         "backup",  "restore",        "verify",
                                       "test-restore",  "version", "standby-create", "failover",
                                       "switchover",    "failback"};
  for (const auto& c : commands) {
    EXPECT_NE(top.out.find("  " + c), std::string::npos) << c << " missing from --help";
    RunResult r = test::Cli({c, "--help"});
    EXPECT_EQ(r.exit_code, 0) << c;
    EXPECT_NE(r.out.find("Usage"), std::string::npos) << c << ": " << r.out;
  }
  EXPECT_NE(test::Cli({"stanza-create", "--help"}).out.find("--dry-run"), std::string::npos);
  std::string restore = test::Cli({"restore", "--help"}).out;
  for (const char* option : {"--target-time", "--target-timeline", "--target-exclusive",
                             "--archive-mode", "Europe/Berlin"}) {
    EXPECT_NE(restore.find(option), std::string::npos) << option;
  }
}

TEST(Cli, CommandLineErrorsAreOneLineWithExitTwo) {
  ExpectOneLineError(test::Cli({"info", "--bogus"}), 2, "--bogus");
  ExpectOneLineError(test::Cli({"restore", "--target-xid"}), 2, "--target-xid");
  ExpectOneLineError(test::Cli({"no-such-command"}), 2, "no-such-command");
  RunResult json = test::Cli({"--output", "json", "info", "--bogus"});
  EXPECT_EQ(nlohmann::json::parse(json.out)["error"]["exit_code"], 2) << json.out;
}

TEST(Cli, VersionAndUsageErrors) {
  RunResult r = test::Cli({"--version"});
  EXPECT_EQ(r.exit_code, 0);
  EXPECT_NE(r.out.find("gravl-dr 0."), std::string::npos);
  r = test::Cli({"version", "--output", "json"});
  EXPECT_TRUE(nlohmann::json::parse(r.out).contains("version"));
  EXPECT_EQ(test::Cli({}).exit_code, 2);
  EXPECT_EQ(test::Cli({"no-such-command"}).exit_code, 2);
  EXPECT_EQ(test::Cli({"info", "--output", "xml"}).exit_code, 2);
}

class BadConfig : public ::testing::Test {
 protected:
  RunResult InfoWith(const std::string& yaml) {
    test::WriteFile(dir_ / "c.yaml", yaml);
    return test::Cli({"--config", dir_ / "c.yaml", "info"});
  }
  test::TempDir dir_;
};

TEST_F(BadConfig, UnknownKey) {
  ExpectOneLineError(InfoWith("stanzaa: main\n"), 3, "unknown key 'stanzaa'");
}

TEST_F(BadConfig, WrongType) {
  ExpectOneLineError(InfoWith("repos:\n  - {name: l, type: posix, path: /tmp/x}\nparallel: lots\n"),
                     3, "'parallel' must be an integer");
}

TEST_F(BadConfig, MissingFile) {
  ExpectOneLineError(test::Cli({"--config", dir_ / "absent.yaml", "info"}), 3,
                     "cannot read config file");
  ExpectOneLineError(test::Cli({"info"}, {"GRAVL_DR_CONFIG=" + (dir_ / "absent.yaml")}), 3,
                     "absent.yaml");
}

TEST_F(BadConfig, UnreadableSecret) {
  ExpectOneLineError(InfoWith("repos:\n  - {name: l, type: posix, path: /tmp/x}\n"
                              "encryption: {passphrase_file: " +
                              (dir_ / "missing-pass") + "}\n"),
                     3, "cannot read encryption.passphrase_file");
}

TEST_F(BadConfig, FilesThatAreNotSmallRegularFiles) {
  ExpectOneLineError(test::Cli({"--config", "/dev/zero", "info"}), 3, "larger than 1 MiB");
  ExpectOneLineError(test::Cli({"--config", dir_.path(), "info"}), 3, "is a directory");
  std::string big(2 << 20, '#');
  test::WriteFile(dir_ / "big.yaml", big);
  ExpectOneLineError(test::Cli({"--config", dir_ / "big.yaml", "info"}), 3, "larger than 1 MiB");
  ExpectOneLineError(InfoWith("repos:\n  - {name: l, type: posix, path: /tmp/x}\n"
                              "encryption: {passphrase_file: " +
                              dir_.path() + "}\n"),
                     3, "is a directory");
}

TEST_F(BadConfig, LongValuesAreNotEchoedWhole) {
  RunResult r = test::Cli({"--repo-path", "/tmp/x", "--stanza", std::string(100000, 's'), "info"});
  ExpectOneLineError(r, 3, "(100000 bytes)");
  EXPECT_LT(r.err.size(), 400u);
}

TEST_F(BadConfig, MissingRepository) {
  ExpectOneLineError(InfoWith("stanza: main\n"), 3, "no repository configured");
}

TEST_F(BadConfig, JsonModeAlsoReportsTheErrorOnStdout) {
  test::WriteFile(dir_ / "c.yaml", "bogus: 1\n");
  RunResult r = test::Cli({"--config", dir_ / "c.yaml", "--output", "json", "info"});
  EXPECT_EQ(r.exit_code, 3);
  auto j = nlohmann::json::parse(r.out);
  EXPECT_EQ(j["error"]["exit_code"], 3);
  EXPECT_EQ(j["error"]["kind"], "config");
}

TEST(Cli, FlagsOverrideEnvironment) {
  test::TempDir dir;
  RunResult r =
      test::Cli({"--repo-path", dir / "flag-repo", "--stanza", "s1", "info", "--output", "json"},
                {"GRAVL_DR_REPO_PATH=" + (dir / "env-repo"), "GRAVL_DR_STANZA=s2"});
  EXPECT_EQ(r.exit_code, 4);  // stanza missing, but the right one in the right place
  auto j = nlohmann::json::parse(r.out);
  EXPECT_EQ(j["repos"][0]["location"], "posix:" + (dir / "flag-repo"));
  EXPECT_EQ(j["repos"][0]["stanzas"][0]["stanza"], "s1");
}

}  // namespace
}  // namespace gravl
