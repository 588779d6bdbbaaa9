// Every gravl-dr command the Kubernetes manifests run (k8s/backup and both overlays, as
// tests/k8s/extract-commands.js renders them), run through the real binary with --dry-run
// appended and the ConfigMap's own gravl-dr.yaml -- against a real cluster with a backup, the
// S3 repositories swapped for local directories of the same names (the only change to the
// configuration besides addresses and the passphrase file's path). A flag the binary does not
// have, a misspelled configuration key, a repository name the config does not define: the
// suite fails and names the manifest. A planted mistake (an option misspelled in the backup
// CronJob of a copy of k8s/) shows that it does.

#include <gtest/gtest.h>
#include <yaml-cpp/yaml.h>

#include <cstdlib>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <thread>

#include "common/subprocess.h"
#include "pg/instance.h"
#include "support/archiving_fixture.h"
#include "support/cli.h"
#include "support/etcd_cluster.h"
#include "support/test_util.h"

namespace gravl {
namespace {

namespace fs = std::filesystem;

// The manifests' commands, or a failure saying why they cannot be read.
nlohmann::json Extract(const std::string& k8s_dir) {
  const std::string tools = std::string(GRAVL_SOURCE_DIR) + "/tests/k8s";
  if (!fs::exists(tools + "/node_modules")) {
    ADD_FAILURE() << tools << "/node_modules is missing: run tests/k8s/check.sh (npm ci)";
    return {};
  }
  RunOptions o;
  o.timeout = std::chrono::minutes(2);
  RunResult r = Run({"node", tools + "/extract-commands.js", "--k8s", k8s_dir}, o);
  EXPECT_EQ(r.exit_code, 0) << r.err;
  auto j = nlohmann::json::parse(r.out, nullptr, false);
  EXPECT_FALSE(j.is_discarded()) << r.out;
  return j.is_discarded() ? nlohmann::json{} : j;
}

class ManifestCommands : public test::ArchivingFixture {
 protected:
  void SetUp() override {
    manifests_ = Extract(std::string(GRAVL_SOURCE_DIR) + "/k8s");
    ASSERT_TRUE(manifests_.contains("config")) << manifests_.dump();
    source_ = "k8s/backup";
    test::WriteFile(dir_ / "passphrase", "a test passphrase of some length\n");
    // The watch agents' etcd (ha.etcd.endpoints): a real cluster here.
    ASSERT_FALSE(test::EtcdCluster::Binary().empty()) << "etcd is not installed";
    etcd_ = std::make_unique<test::EtcdCluster>(dir_ / "etcd", 1);
    // The ConfigMap's notification target reads its URL from the environment (a Secret in
    // the pods); every command here, and the server's archive_command, get a closed port.
    ::setenv("SLACK_WEBHOOK_URL", "http://127.0.0.1:9/hook", 1);
    ArchivingFixture::SetUp();
    if (HasFatalFailure()) return;
    EnableArchiving();
    Query("CREATE TABLE t AS SELECT g FROM generate_series(1, 1000) g");
    ASSERT_EQ(Cli({"backup"}).exit_code, 0);
    // A moment the archived WAL reaches: the restore template's target.
    std::this_thread::sleep_for(std::chrono::milliseconds(1100));
    target_time_ =
        Query("SELECT to_char(now() AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS.US') || '+00'");
    std::this_thread::sleep_for(std::chrono::milliseconds(1100));
    Query("INSERT INTO t VALUES (0)");
    SwitchAndWait();
    Chown(dir_.path());
  }

  // The ConfigMap's gravl-dr.yaml of `source_`, for this machine: repositories in local
  // directories under their own names, every server the local cluster, the exporter on
  // 127.0.0.1, the passphrase file here. Everything else as the manifest has it.
  std::string ConfigBody() const override {
    YAML::Node c = YAML::Load(manifests_["config"][source_].get<std::string>());
    c.remove("pg");  // the fixture's pg.conninfo comes first
    YAML::Node repos(YAML::NodeType::Sequence);
    for (const auto& r : c["repos"]) {
      YAML::Node local;
      local["name"] = r["name"].as<std::string>();
      local["type"] = "posix";
      local["path"] = dir_ / ("repo-" + r["name"].as<std::string>());
      repos.push_back(local);
    }
    c["repos"] = repos;
    if (c["encryption"]) c["encryption"]["passphrase_file"] = dir_ / "passphrase";
    if (c["regions"]) {
      for (auto region : c["regions"]) region["pg"]["conninfo"] = cluster_->conninfo();
    }
    if (c["archive"] && c["archive"]["spool_path"]) c["archive"]["spool_path"] = dir_ / "spool";
    if (c["ha"] && c["ha"]["etcd"]) {
      YAML::Node endpoints(YAML::NodeType::Sequence);
      endpoints.push_back(etcd_->ClientUrl(0));
      c["ha"]["etcd"]["endpoints"] = endpoints;
    }
    YAML::Emitter out;
    out << c;
    return std::string(out.c_str()) + "\n";
  }

  // Runs every gravl-dr container of `manifests` with --dry-run; returns the failures.
  std::vector<std::string> RunAll(const nlohmann::json& manifests, const std::string& target_time) {
    std::vector<std::string> failures;
    int ran = 0;
    for (const auto& w : manifests["workloads"]) {
      const std::string what = w["file"].get<std::string>() + " " + w["kind"].get<std::string>() +
                               "/" + w["name"].get<std::string>() + " container " +
                               w["container"].get<std::string>();
      if (w["command"].empty() || w["command"][0] != "gravl-dr") continue;
      source_ = w["source"];
      WriteConfig();
      std::vector<std::string> argv = {test::GravlBinary()};
      auto args = w["args"].get<std::vector<std::string>>();
      for (std::size_t i = 0; i < args.size(); ++i) {
        std::string a = args[i];
        if (i > 0 && args[i - 1] == "--config") {
          a = config_;  // where the pod sees the ConfigMap
        } else if (i > 0 && args[i - 1] == "--target-time" && !w["template"].is_null()) {
          a = target_time;  // the restore template's parameter, filled in as an operator would
        } else {
          for (const auto& [mount, m] : w["mounts"].items()) {
            if (m.contains("persistentVolumeClaim") && a.rfind(mount, 0) == 0) {
              a = dir_ / ("volume" + a);  // the claim's mount, here
            }
          }
        }
        argv.push_back(a);
      }
      argv.push_back("--dry-run");
      std::vector<std::string> env;
      for (const auto& [name, value] : w["env"].items()) {
        if (name == "GRAVL_DR_EXPORTER_LISTEN" || name == "GRAVL_DR_HA_LISTEN" ||
            name == "GRAVL_DR_WAL_RECEIVE_LISTEN") {
          env.push_back(name + "=127.0.0.1:" + std::to_string(pg::FindFreePort()));
        } else if (name == "TMPDIR") {
          env.push_back(name + "=" + (dir_ / "tmp"));
        } else if (value.is_string()) {
          env.push_back(name + "=" + value.get<std::string>());
        } else if (value.contains("secret")) {
          env.push_back(name + "=" +
                        (name.find("URL") != std::string::npos ? "http://127.0.0.1:9/hook" : "x"));
        }
      }
      fs::create_directories(dir_ / "tmp");
      fs::create_directories(dir_ / "volume");
      Chown(dir_ / "tmp");
      Chown(dir_ / "volume");
      RunOptions o;
      o.env = env;
      o.timeout = std::chrono::minutes(3);
      RunResult r = gravl::Run(pg::AsServerUser(argv), o);
      ++ran;
      std::printf("%s: exit %d\n", what.c_str(), r.exit_code);
      if (r.exit_code != 0) {
        failures.push_back(what + ": gravl-dr " + testing::PrintToString(args) +
                           " --dry-run: exit " + std::to_string(r.exit_code) + "\n" + r.out +
                           r.err);
      }
    }
    EXPECT_GE(ran, 9) << "fewer gravl-dr containers than the manifests have";
    return failures;
  }

  void TearDown() override { ::unsetenv("SLACK_WEBHOOK_URL"); }

  std::unique_ptr<test::EtcdCluster> etcd_;
  nlohmann::json manifests_;
  std::string source_;
  std::string target_time_;
};

TEST_F(ManifestCommands, EveryCommandRunsWithTheConfigMapsConfigurationAgainstARealCluster) {
  std::vector<std::string> failures = RunAll(manifests_, target_time_);
  EXPECT_TRUE(failures.empty()) << testing::PrintToString(failures);
}

TEST_F(ManifestCommands, APlantedMistakeInAManifestFailsTheCheckAndIsNamed) {
  test::TempDir copy;
  fs::copy(std::string(GRAVL_SOURCE_DIR) + "/k8s", copy.path() + "/k8s",
           fs::copy_options::recursive);
  const std::string cronjob = copy.path() + "/k8s/backup/postgres-backup-cronjob.yaml";
  std::string text = test::ReadFile(cronjob);
  auto at = text.find("\"--type\"");
  ASSERT_NE(at, std::string::npos) << "the backup CronJob no longer passes --type";
  text.replace(at, 8, "\"--tpye\"");
  test::WriteFile(cronjob, text);
  nlohmann::json planted = Extract(copy.path() + "/k8s");
  ASSERT_TRUE(planted.contains("workloads"));
  std::vector<std::string> failures = RunAll(planted, target_time_);
  // The base's and both overlays' backup CronJob, each named with the unknown option.
  ASSERT_EQ(failures.size(), 3u) << testing::PrintToString(failures);
  for (const auto& f : failures) {
    EXPECT_NE(f.find("CronJob/gravl-dr-backup"), std::string::npos) << f;
    EXPECT_NE(f.find("--tpye"), std::string::npos) << f;
  }
}

}  // namespace
}  // namespace gravl
