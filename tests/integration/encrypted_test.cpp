// The whole cycle on an encrypted stanza: archiving, backup, verify, restore, drill -- and
// nothing readable in the repository without the passphrase.

#include <gtest/gtest.h>
#include <sys/stat.h>

#include <filesystem>
#include <nlohmann/json.hpp>
#include <thread>

#include "pg/instance.h"
#include "support/cli.h"
#include "support/pg_fixture.h"
#include "support/test_util.h"

namespace gravl {
namespace {

namespace fs = std::filesystem;

TEST(Encrypted, ArchiveBackupVerifyRestoreAndDrillWithAPassphrase) {
  test::TempDir dir;
  pg::GiveToServerUser(dir.path());
  ::chmod(dir.path().c_str(), 0755);
  auto cluster = test::StartCluster({"archive_mode = on", "archive_command = ''"});
  std::string pass = dir / "passphrase";
  test::WriteFile(pass, "a long and secret passphrase 1234\n");
  ::chmod(pass.c_str(), 0600);
  pg::GiveToServerUser(pass);
  std::string config = dir / "gravl-dr.yaml";
  test::WriteFile(config, "pg:\n  conninfo: \"" + cluster->conninfo() +
                              "\"\nrepos:\n  - {name: local, type: posix, path: " + (dir / "repo") +
                              "}\nencryption: {passphrase_file: " + pass + "}\n");
  ::chmod(config.c_str(), 0644);
  pg::GiveToServerUser(config);
  auto cli = [&](std::vector<std::string> args) {
    args.insert(args.begin(), {"--config", config});
    return test::Cli(args);
  };
  ASSERT_EQ(cli({"stanza-create"}).exit_code, 0);
  for (const auto& e : fs::recursive_directory_iterator(dir / "repo"))
    pg::GiveToServerUser(e.path());
  pg::GiveToServerUser(dir / "repo");
  cluster->Psql("ALTER SYSTEM SET archive_command = '" + std::string(test::GravlBinary()) +
                " --config " + config + " archive-push %p'");
  cluster->Psql("SELECT pg_reload_conf()");
  cluster->Psql(
      "CREATE TABLE secret_table AS SELECT g, 'visible-marker-' || g AS v "
      "FROM generate_series(1, 20000) g");
  RunResult b = cli({"backup", "--output", "json"});
  ASSERT_EQ(b.exit_code, 0) << b.err;
  cluster->Psql("INSERT INTO secret_table VALUES (0, 'after-backup')");
  std::string seg = cluster->Psql("SELECT pg_walfile_name(pg_switch_wal())");
  seg.resize(24);
  for (int i = 0; i < 300; ++i) {
    std::string last = cluster->Psql("SELECT coalesce(last_archived_wal,'') FROM pg_stat_archiver");
    if (last.size() >= 24 && last.substr(0, 24) >= seg) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  EXPECT_EQ(cluster->Psql("SELECT failed_count FROM pg_stat_archiver"), "0\n");

  // Nothing in the repository shows the data, the table name or the passphrase.
  for (const auto& e : fs::recursive_directory_iterator(dir / "repo")) {
    if (!e.is_regular_file()) continue;
    std::string content = test::ReadFile(e.path());
    EXPECT_EQ(content.find("visible-marker-"), std::string::npos) << e.path();
    EXPECT_EQ(content.find("secret passphrase"), std::string::npos) << e.path();
    if (e.path().filename() != "stanza.json" &&
        e.path().string().find("/locks/") == std::string::npos) {
      EXPECT_EQ(content.find("secret_table"), std::string::npos) << e.path();
    }
  }

  // Info without the passphrase still works and says what it cannot show.
  RunResult locked = test::Cli({"--repo-path", dir / "repo", "info", "--output", "json"});
  EXPECT_EQ(locked.exit_code, 0) << locked.err;
  EXPECT_EQ(nlohmann::json::parse(locked.out)["repos"][0]["stanzas"][0]["backups"].size(), 1u);

  EXPECT_EQ(cli({"verify"}).exit_code, 0);
  std::string pgdata = dir / "restored";
  RunResult r = cli({"restore", "--pgdata", pgdata});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  pg::InstanceOptions o;
  o.base_dir = dir / "run";
  auto restored = pg::Instance::Adopt(o, pgdata);
  for (int i = 0; i < 300 && restored->Psql("SELECT pg_is_in_recovery()") != "f\n"; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  EXPECT_EQ(restored->Psql("SELECT count(*) FROM secret_table"), "20001\n");
  restored.reset();
  RunResult drill = cli({"test-restore"});
  EXPECT_EQ(drill.exit_code, 0) << drill.out << drill.err;

  // The wrong passphrase is refused, and never printed.
  test::WriteFile(pass, "wrong passphrase 5678\n");
  RunResult wrong = cli({"restore", "--pgdata", dir / "nope"});
  EXPECT_EQ(wrong.exit_code, 7) << wrong.err;
  EXPECT_EQ(wrong.err.find("wrong passphrase 5678"), std::string::npos);
}

}  // namespace
}  // namespace gravl
