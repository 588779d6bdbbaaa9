// Two regions on 127.0.0.1: a primary ("eu-north-1") archiving into two posix repositories,
// and a standby ("us-east-1") built from the repository with standby-create. Exercised with
// real servers: switchover under load in both directions (a client-side log of committed
// ids, compared afterwards: nothing lost), the refusals (healthy primary, paused replay, a
// failing fencing hook), failover after kill -9 under load (the loss measured against the
// bound the report states), an old primary that comes back writable (its WAL quarantined in
// the repository, its fork reported by failback), and failback with pg_rewind and with a
// delta restore (pg_amcheck on the rebuilt server, which ends as primary again).

#include <gtest/gtest.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include <atomic>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>
#include <thread>

#include "common/lsn.h"
#include "common/subprocess.h"
#include "pg/connection.h"
#include "pg/instance.h"
#include "support/archiving_fixture.h"
#include "support/cli.h"
#include "support/http.h"
#include "support/test_util.h"
#include "support/two_regions.h"

namespace gravl {
namespace {

namespace fs = std::filesystem;

using test::Conninfo;
using test::TwoRegions;
using test::Writer;

TEST_F(TwoRegions, StandbyCreatedFromTheRepositoryStreams) {
  EXPECT_TRUE(InRecovery(B()));
  EXPECT_TRUE(Streams(B()));
  Query("INSERT INTO commits(id) VALUES (-1)");
  std::string lsn = Query("SELECT pg_current_wal_lsn()");
  for (int i = 0; i < 100; ++i) {
    if (Sql(B(), "SELECT (pg_last_wal_replay_lsn() >= '" + lsn + "')::text") == "true") break;
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  EXPECT_EQ(Sql(B(), "SELECT count(*)::text FROM commits WHERE id = -1"), "1");
  // Through its slot, which the primary created for it.
  EXPECT_EQ(Query("SELECT active::text FROM pg_replication_slots WHERE slot_name = 'us_east_1'"),
            "true");

  // --delta rebuilds the same standby in place (only what differs is rewritten).
  gravl::Run(pg::AsServerUser(
      {cluster_->Bin("pg_ctl"), "-D", dir_ / "b/data", "-m", "fast", "-w", "stop"}));
  Query("INSERT INTO commits(id) SELECT g FROM generate_series(1, 2000) g");
  RunResult r =
      Cli({"standby-create", "--region", "us-east-1", "--slot", "us_east_1", "--delta", "--set",
           "port=" + std::to_string(port_b_), "--set", "listen_addresses=127.0.0.1", "--set",
           "unix_socket_directories=" + (dir_ / "b"), "--start", "--output", "json"});
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  EXPECT_TRUE(Streams(B()));
  EXPECT_EQ(Sql(B(), "SELECT count(*)::text FROM commits WHERE id > 0"), "2000");
  // Reported in the standby region's repository.
  auto reports = Reports("us");
  ASSERT_EQ(reports.size(), 2u);
  EXPECT_TRUE(Reports("eu").empty());
  EXPECT_EQ(reports.back()["subject"], "standby-create");
  EXPECT_TRUE(reports.back()["ok"].get<bool>());
}

TEST_F(TwoRegions, SwitchoverUnderLoadLosesNothingBothWays) {
  Writer writer({A(), B()});
  std::jthread pgbench([&] {
    gravl::Run({cluster_->Bin("pgbench"), "-n", "-c", "2", "-T", "12", "-d", A()});
  });
  while (writer.count() < 200) std::this_thread::sleep_for(std::chrono::milliseconds(20));

  RunResult r = Cli({"switchover", "--to", "us-east-1", "--output", "json"});
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  nlohmann::json out = Json(r);
  EXPECT_FALSE(InRecovery(B()));
  EXPECT_TRUE(InRecovery(A()));
  EXPECT_TRUE(Streams(A())) << "the old primary streams from the new one";
  EXPECT_EQ(out["timeline"]["new"], 2);
  EXPECT_TRUE(out.contains("decision_to_writable_seconds"));
  EXPECT_EQ(Sql(B(), "SELECT string_agg(application_name, ',') FROM pg_stat_replication"),
            "eu-north-1");

  std::size_t before = writer.count();
  while (writer.count() < before + 200) std::this_thread::sleep_for(std::chrono::milliseconds(20));
  r = Cli({"switchover", "--to", "eu-north-1", "--output", "json"});
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  EXPECT_FALSE(InRecovery(A()));
  EXPECT_TRUE(Streams(B()));
  before = writer.count();
  while (writer.count() < before + 100) std::this_thread::sleep_for(std::chrono::milliseconds(20));
  writer.Stop();
  pgbench.join();

  auto committed = writer.committed();
  auto present = Ids(A());
  std::size_t lost = 0;
  for (const auto& [id, lsn] : committed) lost += present.count(id) == 0;
  EXPECT_EQ(lost, 0u) << "of " << committed.size() << " committed transactions";
  EXPECT_GT(committed.size(), 500u);

  // The endpoint hook was told where the primary went, each time.
  EXPECT_EQ(test::ReadFile(dir_ / "endpoint"), "us-east-1 127.0.0.1 " + std::to_string(port_b_) +
                                                   "\neu-north-1 127.0.0.1 " +
                                                   std::to_string(cluster_->port()) + "\n");
  EXPECT_FALSE(fs::exists(dir_ / "fenced")) << "a switchover fences nothing";

  // Both runs are reported in the promoted region's repository.
  auto us = Reports("us");
  auto eu = Reports("eu");
  ASSERT_FALSE(us.empty());
  ASSERT_FALSE(eu.empty());
  EXPECT_EQ(us.back()["subject"], "switchover");
  EXPECT_TRUE(us.back()["ok"].get<bool>());
  EXPECT_GT(us.back()["phases"]["promote"].get<double>(), 0);
  // info and the exporter show the roles, the lag and the last role change.
  RunResult info = Cli({"info", "--output", "json"});
  ASSERT_EQ(info.exit_code, 0) << info.err;
  nlohmann::json ij = Json(info);
  ASSERT_EQ(ij["regions"].size(), 2u) << ij.dump(2);
  EXPECT_EQ(ij["regions"][0]["role"], "primary");
  EXPECT_EQ(ij["regions"][1]["role"], "standby");
  EXPECT_TRUE(ij["regions"][1].contains("lag_bytes"));
  EXPECT_EQ(ij["regions"][0]["timeline"], 3);
  EXPECT_EQ(ij["last_role_change"]["kind"], "switchover");
  EXPECT_EQ(ij["last_role_change"]["to"], "eu-north-1") << ij.dump(2) << info.err;
  std::string prom = dir_ / "m.prom";
  ASSERT_EQ(Cli({"exporter", "--textfile", prom}).exit_code, 0);
  std::string metrics = test::ReadFile(prom);
  for (const char* series :
       {"gravl_region_primary{region=\"eu-north-1\",stanza=\"main\"} 1",
        "gravl_region_primary{region=\"us-east-1\",stanza=\"main\"} 0",
        "gravl_region_timeline{region=\"eu-north-1\",stanza=\"main\"} 3",
        "gravl_role_change_runs_total{kind=\"switchover\",repo=\"eu-north-1\",result=\"success\","
        "stanza=\"main\"} 1",
        "gravl_role_change_last_success{kind=\"switchover\",repo=\"us-east-1\",stanza=\"main\"} 1",
        "gravl_wal_quarantined_files{repo=\"eu-north-1\",stanza=\"main\"} 0"}) {
    EXPECT_NE(metrics.find(series), std::string::npos) << series << "\n" << metrics;
  }
  EXPECT_NE(metrics.find("gravl_role_change_last_writable_seconds{kind=\"switchover\""),
            std::string::npos);
  EXPECT_NE(metrics.find("gravl_region_replication_lag_bytes{region=\"us-east-1\""),
            std::string::npos);

  // The repositories record where timelines 1 and 2 ended.
  EXPECT_TRUE(fs::exists(dir_ / "eu/main/fences/00000001.json"));
  EXPECT_TRUE(fs::exists(dir_ / "eu/main/fences/00000002.json"));
}

TEST_F(TwoRegions, RefusalsChangeNothing) {
  // A healthy primary: failover is refused, switchover suggested.
  RunResult r = Cli({"failover", "--to", "us-east-1"});
  EXPECT_EQ(r.exit_code, 13) << r.out << r.err;
  EXPECT_NE(r.err.find("switchover --to us-east-1"), std::string::npos) << r.err;
  EXPECT_TRUE(InRecovery(B()));
  EXPECT_FALSE(InRecovery(A()));

  // The primary's own region: nothing to fail over or switch.
  r = Cli({"failover", "--to", "eu-north-1"});
  EXPECT_EQ(r.exit_code, 13) << r.out << r.err;
  EXPECT_NE(r.err.find("nothing to fail over"), std::string::npos) << r.err;
  r = Cli({"switchover", "--to", "eu-north-1"});
  EXPECT_EQ(r.exit_code, 13) << r.out << r.err;
  EXPECT_NE(r.err.find("nothing to switch"), std::string::npos) << r.err;
  EXPECT_FALSE(InRecovery(A()));
  EXPECT_TRUE(Streams(B()));

  // A lagging standby (replay paused): switchover refused, the primary keeps running.
  Sql(B(), "SELECT pg_wal_replay_pause()");
  Query("INSERT INTO commits(id) SELECT g FROM generate_series(1, 1000) g");
  r = Cli({"switchover", "--to", "us-east-1"});
  EXPECT_EQ(r.exit_code, 13) << r.out << r.err;
  EXPECT_NE(r.err.find("paused"), std::string::npos) << r.err;
  EXPECT_FALSE(InRecovery(A()));
  EXPECT_EQ(Query("SELECT count(*) FROM commits"), "1000");
  EXPECT_TRUE(InRecovery(B()));
  Sql(B(), "SELECT pg_wal_replay_resume()");

  // The failover after the refusals is reported as refused.
  // Each in the repository of the region it was asked to promote.
  auto all = Reports("us");
  for (auto& rep : Reports("eu")) all.push_back(rep);
  std::vector<std::string> refused;
  for (const auto& rep : all) {
    if (!rep["ok"].get<bool>() && rep["exit_code"] == 13) refused.push_back(rep["subject"]);
  }
  std::sort(refused.begin(), refused.end());
  EXPECT_EQ(refused,
            (std::vector<std::string>{"failover", "failover", "switchover", "switchover"}));
}

class TwoRegionsFailingFence : public TwoRegions {
 protected:
  void SetUp() override {
    test::WriteFile(dir_ / "webhook-url", receiver_.url());
    TwoRegions::SetUp();
  }
  std::string FailoverExtra() const override {
    return "  fence_command: [sh, -c, 'echo cannot reach the fencing API for $0 >&2; exit 3', "
           "'{region}']\n"
           "notify:\n  targets:\n    - {name: oncall, format: json, url_file: " +
           (dir_ / "webhook-url") + ", events: ['failover.*']}\n";
  }
  test::WebhookReceiver receiver_;
};

TEST_F(TwoRegionsFailingFence, AFencingHookThatFailsStopsThePromotion) {
  Kill(cluster_->data_dir());
  RunResult r = Cli({"failover", "--to", "us-east-1", "--output", "json"});
  EXPECT_EQ(r.exit_code, 13) << r.out << r.err;
  EXPECT_NE(r.err.find("fence_command for eu-north-1 failed (exit 3)"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("cannot reach the fencing API for eu-north-1"), std::string::npos);
  EXPECT_TRUE(InRecovery(B())) << "not promoted";
  auto us = Reports("us");
  ASSERT_FALSE(us.empty());
  EXPECT_FALSE(us.back()["ok"].get<bool>());
  bool refused = false;
  for (const auto& s : us.back()["details"]["steps"]) {
    if (s["step"] == "fence") refused = s["outcome"] == "refused";
  }
  EXPECT_TRUE(refused) << us.back().dump(2);
  // The on-call webhook heard of it (and of nothing else: events failover.*).
  ASSERT_TRUE(receiver_.WaitFor(1, std::chrono::seconds(10)));
  auto body = receiver_.Bodies().front();
  EXPECT_NE(body.find("failover.failure"), std::string::npos) << body;
  EXPECT_NE(body.find("fence_command for eu-north-1 failed"), std::string::npos) << body;
  EXPECT_EQ(receiver_.Requests(), 1u);
}

TEST_F(TwoRegions, FailoverAfterKillLosesNoMoreThanItsBoundThenFailbackRewinds) {
  Writer writer({A()});
  std::jthread pgbench([&] {
    gravl::Run({cluster_->Bin("pgbench"), "-n", "-c", "2", "-T", "6", "-d", A()});
  });
  while (writer.count() < 300) std::this_thread::sleep_for(std::chrono::milliseconds(20));
  Kill(cluster_->data_dir());
  writer.Stop();
  pgbench.join();

  RunResult r = Cli({"failover", "--to", "us-east-1", "--output", "json"});
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  nlohmann::json out = Json(r);
  EXPECT_FALSE(InRecovery(B()));
  const auto& loss = out["loss"];
  EXPECT_TRUE(loss["exact"].get<bool>()) << out.dump(2);
  Lsn replayed = Lsn::Parse(loss["replayed"].get<std::string>());
  Lsn last_known = Lsn::Parse(loss["old_primary_last_known"].get<std::string>());
  EXPECT_EQ(loss["bytes"].get<std::uint64_t>(),
            last_known > replayed ? last_known.value - replayed.value : 0);

  EXPECT_EQ(test::ReadFile(dir_ / "fenced"), "eu-north-1\n");
  EXPECT_EQ(test::ReadFile(dir_ / "endpoint"),
            "us-east-1 127.0.0.1 " + std::to_string(port_b_) + "\n");
  EXPECT_EQ(out["fence_hooks"]["eu-north-1"]["exit_code"], 0);

  // The measured loss: committed on the old primary, missing on the new one -- each inside
  // the WAL the report says is lost.
  std::size_t lost = CheckLoss(writer, loss);
  const std::set<long> present = Ids(B());
  std::printf("failover: %zu of %zu committed ids lost; bound %s bytes, %zu commits\n", lost,
              writer.count(), loss["bytes"].dump().c_str(), loss["lost_commits"].size());
  EXPECT_GT(out["decision_to_writable_seconds"].get<double>(), 0);

  // Timeline 2 is archived (into the new primary's region, as regions[].pg.archive_command
  // says) and backed up.
  EXPECT_NE(Sql(B(), "SHOW archive_command").find("--repo us-east-1 archive-push"),
            std::string::npos);
  EXPECT_EQ(out["timeline"]["new"], 2);
  Sql(B(), "INSERT INTO commits(id) VALUES (-2)");
  Sql(B(), "SELECT pg_switch_wal()");
  bool archived = false;
  for (int i = 0; i < 100 && !archived; ++i) {
    for (const auto& e : fs::directory_iterator(dir_ / "us/main/wal/00000002")) {
      archived |= e.path().filename().string().size() > 24 &&
                  e.path().filename().string().find(".history") == std::string::npos;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  EXPECT_TRUE(archived);
  EXPECT_TRUE(out["backup"].contains("label")) << out.dump(2);
  EXPECT_TRUE(fs::exists(dir_ / "eu/main/fences/00000001.json"));

  // The old primary comes back as a primary (a partition healed badly): what it archives on
  // timeline 1 goes to quarantine, never into the archive.
  {
    RunResult start =
        gravl::Run(pg::AsServerUser({cluster_->Bin("pg_ctl"), "-D", cluster_->data_dir(), "-l",
                                     dir_ / "a-again.log", "-w", "start"}));
    ASSERT_EQ(start.exit_code, 0) << start.err << test::ReadFile(dir_ / "a-again.log");
  }
  Query("ALTER SYSTEM RESET default_transaction_read_only");
  Query("SELECT pg_reload_conf()");
  Query("INSERT INTO commits(id) SELECT -g FROM generate_series(100, 120) g");
  std::string seg = Query("SELECT pg_walfile_name(pg_switch_wal())");
  bool quarantined = false;
  for (int i = 0; i < 150 && !quarantined; ++i) {
    std::string q = dir_ / "us/main/quarantine/wal/00000001";
    if (fs::exists(q)) {
      for (const auto& e : fs::directory_iterator(q)) {
        quarantined |= e.path().filename().string().rfind(seg, 0) == 0;
      }
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  EXPECT_TRUE(quarantined) << seg;
  RunResult info = Cli({"info", "--output", "json"});
  EXPECT_GE(Json(info)["quarantined_wal"]["us-east-1"].get<int>(), 1) << info.out;
  EXPECT_NE(Cli({"info"}).out.find("quarantine: an old primary archived"), std::string::npos);
  for (const auto& e : fs::directory_iterator(dir_ / "us/main/wal/00000001")) {
    std::string name = e.path().filename().string();
    // The new primary's copy of the old timeline's last segment is a .partial: legitimate.
    if (name.find(".partial") != std::string::npos) continue;
    EXPECT_NE(name.rfind(seg, 0), 0u) << "served to restores: " << name;
  }

  // failback reports the fork and changes nothing more without --force.
  r = Cli({"failback", "--to", "eu-north-1", "--output", "json"});
  EXPECT_EQ(r.exit_code, 13) << r.out << r.err;
  EXPECT_NE(r.err.find("transactions committed on eu-north-1 after the fork"), std::string::npos)
      << r.err;
  auto us = Reports("us");
  ASSERT_FALSE(us.empty());
  EXPECT_GE(us.back()["details"]["fork"]["commits"].size(), 1u) << us.back().dump(2);

  r = Cli({"failback", "--to", "eu-north-1", "--force", "--output", "json"});
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  out = Json(r);
  EXPECT_EQ(out["method"], "pg_rewind") << out.dump(2);
  EXPECT_FALSE(InRecovery(A()));
  EXPECT_TRUE(InRecovery(B()));
  EXPECT_TRUE(Streams(B()));
  AmCheck(cluster_->port());
  // Everything the new timeline had is on the old primary again; the forked rows are not.
  auto on_a = Ids(A());
  EXPECT_EQ(on_a.count(-2), 1u);
  EXPECT_EQ(on_a.count(-100), 0u);
  for (long id : present) EXPECT_EQ(on_a.count(id), 1u) << id;
}

TEST_F(TwoRegions, DryRunsChangeNothingAndFailbackRewindsACrashedOldPrimary) {
  Query("INSERT INTO commits(id) SELECT g FROM generate_series(1, 3000) g");
  for (const char* cmd : {"switchover", "failover"}) {
    RunResult r = Cli({cmd, "--to", "us-east-1", "--dry-run", "--output", "json"});
    if (std::string(cmd) == "failover") {
      EXPECT_EQ(r.exit_code, 13) << "a healthy primary is refused in a dry run too";
      continue;
    }
    ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
    EXPECT_EQ(Json(r)["steps"][1]["outcome"], "skipped");
  }
  EXPECT_TRUE(InRecovery(B()));
  EXPECT_FALSE(InRecovery(A()));

  Kill(cluster_->data_dir());
  RunResult r = Cli({"failover", "--to", "us-east-1", "--dry-run"});
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  EXPECT_NE(r.out.find("nothing was changed"), std::string::npos) << r.out;
  EXPECT_TRUE(InRecovery(B()));

  // One configuration for both hosts, with the same data directory path in both regions, as
  // seen on the standby's host: eu-north-1's data_dir is the standby's own. The failover must
  // not take it for the old primary's (nor stop it): it is the server being promoted.
  std::string same_path = dir_ / "same-path.yaml";
  {
    std::string text = test::ReadFile(config_);
    std::string a_dir = "data_dir: " + cluster_->data_dir();
    text.replace(text.find(a_dir), a_dir.size(), "data_dir: " + (dir_ / "b/data"));
    test::WriteFile(same_path, text);
    ::chmod(same_path.c_str(), 0644);
  }
  r = test::Cli({"--config", same_path, "failover", "--to", "us-east-1", "--output", "json"});
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  EXPECT_FALSE(InRecovery(B()));
  EXPECT_FALSE(Json(r)["loss"]["exact"].get<bool>()) << "the old primary's WAL is not here";
  // ... and failback there would rebuild the current primary: refused.
  r = test::Cli({"--config", same_path, "failback", "--to", "eu-north-1", "--force"});
  EXPECT_EQ(r.exit_code, 13) << r.out << r.err;
  EXPECT_NE(r.err.find("is the data directory of the current primary"), std::string::npos) << r.err;
  EXPECT_FALSE(InRecovery(B()));
  // Running it again continues (and finds everything done).
  r = Cli({"failover", "--to", "us-east-1", "--output", "json"});
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  EXPECT_EQ(Json(r)["steps"][1]["outcome"], "skipped") << r.out;
  Sql(B(), "INSERT INTO commits(id) SELECT g FROM generate_series(3001, 4000) g");

  // The old primary was killed: pg_rewind first finishes its crash recovery.
  r = Cli({"failback", "--to", "eu-north-1", "--dry-run"});
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  r = Cli({"failback", "--to", "eu-north-1", "--force", "--output", "json"});
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  EXPECT_EQ(Json(r)["method"], "pg_rewind") << r.out;
  EXPECT_FALSE(InRecovery(A()));
  EXPECT_TRUE(Streams(B()));
  AmCheck(cluster_->port());
  EXPECT_EQ(Sql(A(), "SELECT count(*)::text FROM commits WHERE id BETWEEN 1 AND 4000"), "4000");
}

class TwoRegionsWithoutRewind : public TwoRegions {
 protected:
  bool Rewindable() const override { return false; }
};

TEST_F(TwoRegionsWithoutRewind, FailbackFallsBackToADeltaRestore) {
  Query("INSERT INTO commits(id) SELECT g FROM generate_series(1, 5000) g");
  SwitchAndWait();
  Kill(cluster_->data_dir());
  RunResult r = Cli({"failover", "--to", "us-east-1", "--output", "json"});
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  Sql(B(), "INSERT INTO commits(id) SELECT g FROM generate_series(5001, 6000) g");

  r = Cli({"failback", "--to", "eu-north-1", "--force", "--output", "json"});
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  nlohmann::json out = Json(r);
  EXPECT_EQ(out["method"].get<std::string>().rfind("delta restore", 0), 0u) << out.dump(2);
  EXPECT_NE(out["rewind_problem"].get<std::string>().find("wal_log_hints"), std::string::npos);
  EXPECT_FALSE(InRecovery(A()));
  EXPECT_TRUE(Streams(B()));
  AmCheck(cluster_->port());
  EXPECT_EQ(Sql(A(), "SELECT count(*)::text FROM commits WHERE id BETWEEN 1 AND 6000"), "6000");
}

}  // namespace
}  // namespace gravl
