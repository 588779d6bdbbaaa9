// The exporter against the real thing: a PostgreSQL cluster archiving into a repository,
// backups (one failing), a restore drill, notifications to a local webhook, and a real
// Prometheus (Debian) scraping the exporter on 127.0.0.1 -- every metric checked through
// Prometheus's HTTP API, every dashboard panel's query evaluated, the alert rules loaded --
// and, with Alertmanager, a WAL-lag alert that reaches a webhook when archiving stops.

#include <gtest/gtest.h>
#include <signal.h>

#include <filesystem>
#include <nlohmann/json.hpp>
#include <regex>
#include <thread>

#include "common/subprocess.h"
#include "pg/instance.h"
#include "support/archiving_fixture.h"
#include "support/cli.h"
#include "support/http.h"
#include "support/prometheus.h"
#include "support/test_util.h"

namespace gravl {
namespace {

namespace fs = std::filesystem;
using std::chrono::seconds;

const std::string kSource = GRAVL_SOURCE_DIR;

// A running `gravl-dr exporter`, stopped (SIGTERM, then killed) when destroyed.
class ExporterProcess {
 public:
  ExporterProcess(const std::string& config, const std::vector<std::string>& env = {})
      : port_(pg::FindFreePort()) {
    std::vector<std::string> argv = {
        test::GravlBinary(), "--config", config,
        "exporter",          "--listen", "127.0.0.1:" + std::to_string(port_),
        "--interval",        "1"};
    child_ = Child::Spawn(argv, {env});
    auto deadline = std::chrono::steady_clock::now() + seconds(30);
    while (test::HttpGet(url("/healthz"), 2).status != 200) {
      if (std::chrono::steady_clock::now() > deadline) {
        ADD_FAILURE() << "the exporter did not become healthy: " << child_->StderrTail();
        break;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
  }
  std::string url(const std::string& path) const {
    return "http://127.0.0.1:" + std::to_string(port_) + path;
  }
  std::string address() const { return "127.0.0.1:" + std::to_string(port_); }
  // SIGTERM; the exit code.
  int Stop() {
    ::kill(child_->pid(), SIGTERM);
    return child_->Wait();
  }
  std::string Log() const { return child_->StderrTail(); }

 private:
  int port_;
  std::unique_ptr<Child> child_;
};

std::string ScrapeConfig(const std::string& exporter, const std::string& rule_file = "",
                         const std::string& alertmanager = "") {
  std::string c =
      "global: {scrape_interval: 1s, evaluation_interval: 1s}\n"
      "scrape_configs:\n"
      "  - job_name: gravl-dr-exporter\n"
      "    static_configs: [{targets: ['" +
      exporter + "']}]\n";
  if (!rule_file.empty()) c += "rule_files: ['" + rule_file + "']\n";
  if (!alertmanager.empty()) {
    c += "alerting:\n  alertmanagers:\n    - static_configs: [{targets: ['" + alertmanager +
         "']}]\n";
  }
  return c;
}

class Metrics : public test::ArchivingFixture {
 protected:
  std::string ConfigBody() const override {
    return OneRepositoryConfig() +
           "retention: {daily: 7, pitr_window: 7d}\n"
           "notify:\n  retries: 1\n  timeout: 5\n  targets:\n"
           "    - {name: oncall, format: slack, url_env: GRAVL_TEST_HOOK, events: ['*']}\n";
  }
  void SetUp() override {
    ::setenv("GRAVL_TEST_HOOK", receiver_.url("/services/T0/B0/s3cr3tT0ken").c_str(), 1);
    ArchivingFixture::SetUp();
    EnableArchiving();
    cluster_->Psql(
        "CREATE TABLE accounts(id int primary key, name text); "
        "INSERT INTO accounts SELECT g, 'acct ' || g FROM generate_series(1, 2000) g");
  }
  void TearDown() override { ::unsetenv("GRAVL_TEST_HOOK"); }
  double Value(const test::PrometheusServer& prom, const std::string& expr) {
    auto v = prom.WaitForValue(expr, seconds(30));
    EXPECT_TRUE(v.has_value()) << expr << " has no value in Prometheus";
    return v.value_or(-1);
  }

  test::WebhookReceiver receiver_;
};

TEST_F(Metrics, ExporterFeedsPrometheusAndEveryDashboardPanelHasData) {
  auto before = std::chrono::system_clock::now();
  RunResult ok = Cli({"backup"});
  ASSERT_EQ(ok.exit_code, 0) << ok.err;
  SwitchAndWait();
  // A backup that fails (the server cannot be reached) is recorded too.
  RunResult bad = Cli({"--pg-conninfo", "host=127.0.0.1 port=1 connect_timeout=2", "backup"});
  ASSERT_EQ(bad.exit_code, 9) << bad.err;
  RunResult drill = Cli({"test-restore"});
  ASSERT_EQ(drill.exit_code, 0) << drill.out << drill.err;
  RunResult verify = Cli({"verify"});
  ASSERT_EQ(verify.exit_code, 0) << verify.out << verify.err;
  // Every run was notified, in Slack's format, and the webhook's token never shows.
  ASSERT_TRUE(receiver_.WaitFor(5, seconds(10)));  // backup, its expire, failed backup, drill,
                                                   // verify
  std::string all;
  for (const auto& b : receiver_.Bodies()) all += b + "\n";
  EXPECT_NE(all.find("backup FAILED"), std::string::npos) << all;
  EXPECT_NE(all.find("drill succeeded"), std::string::npos) << all;
  for (const auto* r : {&ok, &bad, &drill}) {
    EXPECT_EQ((r->out + r->err).find("s3cr3tT0ken"), std::string::npos) << r->err;
  }

  ExporterProcess exporter(config_);
  // The exposition itself passes Prometheus's own linter.
  test::HttpAnswer scrape = test::HttpGet(exporter.url("/metrics"));
  ASSERT_EQ(scrape.status, 200);
  RunOptions lint;
  lint.input = scrape.body;
  RunResult checked = gravl::Run({"promtool", "check", "metrics"}, lint);
  EXPECT_EQ(checked.exit_code, 0) << checked.out << checked.err;

  test::TempDir pdir;
  std::string rules =
      test::PlainRuleGroups(test::ReadFile(kSource + "/k8s/monitoring/prometheus-rules-dr.yaml"));
  test::WriteFile(pdir / "rules.yaml", rules);
  test::PrometheusServer prom(pdir.path(), ScrapeConfig(exporter.address(), pdir / "rules.yaml"));

  // Every signal, with the value the repository and the server hold.
  EXPECT_EQ(Value(prom, "up{job=\"gravl-dr-exporter\"}"), 1);
  EXPECT_EQ(Value(prom, "gravl_repository_up{repo=\"local\",stanza=\"main\"}"), 1);
  EXPECT_EQ(Value(prom, "gravl_postgres_up"), 1);
  EXPECT_EQ(Value(prom, "gravl_backups{type=\"full\"}"), 1);
  EXPECT_EQ(Value(prom, "gravl_backup_runs_total{type=\"full\",result=\"success\"}"), 1);
  EXPECT_EQ(Value(prom, "gravl_backup_runs_total{type=\"full\",result=\"failure\"}"), 1);
  EXPECT_EQ(Value(prom, "gravl_backup_last_run_success{type=\"full\"}"), 0);
  double last = Value(prom, "gravl_backup_last_success_timestamp_seconds{type=\"full\"}");
  double t0 = std::chrono::duration<double>(before.time_since_epoch()).count();
  EXPECT_GE(last, t0 - 1);
  EXPECT_LE(last, t0 + 600);
  EXPECT_GT(Value(prom, "gravl_backup_last_size_bytes{type=\"full\"}"), 1e6);
  EXPECT_GT(Value(prom, "gravl_backup_last_duration_seconds{type=\"full\"}"), 0);
  EXPECT_EQ(Value(prom, "gravl_backup_size_deviation_ratio{type=\"full\"}"), 0);
  EXPECT_GT(Value(prom, "gravl_wal_segments"), 0);
  EXPECT_EQ(Value(prom, "gravl_wal_ready_segments"), 0);
  EXPECT_EQ(Value(prom, "gravl_wal_archive_lag_seconds"), 0);
  EXPECT_GT(Value(prom, "gravl_pg_archiver_archived_total"), 0);
  EXPECT_EQ(Value(prom, "gravl_pg_in_recovery"), 0);
  EXPECT_EQ(Value(prom, "gravl_replication_standbys"), 0);
  EXPECT_EQ(Value(prom, "gravl_drill_last_success"), 1);
  EXPECT_EQ(Value(prom, "gravl_drill_runs_total{result=\"success\"}"), 1);
  EXPECT_GT(Value(prom, "gravl_drill_rto_seconds{phase=\"rto\"}"), 0);
  EXPECT_GT(Value(prom, "gravl_drill_rto_seconds{phase=\"recovery\"}"), 0);
  EXPECT_GE(Value(prom, "gravl_recoverable_window_seconds"), 0);
  EXPECT_GE(Value(prom, "gravl_rpo_estimate_seconds"), 0);
  EXPECT_EQ(Value(prom, "gravl_retention_pitr_window_seconds"), 7 * 86400);
  EXPECT_EQ(Value(prom, "gravl_expire_last_success"), 1);  // after the backup
  EXPECT_EQ(Value(prom, "gravl_verify_last_success"), 1);
  EXPECT_EQ(Value(prom, "gravl_verify_runs_total{result=\"success\"}"), 1);
  EXPECT_GT(Value(prom, "gravl_repository_bytes{kind=\"backups\"}"), 0);
  EXPECT_GT(Value(prom, "gravl_repository_bytes{kind=\"wal\"}"), 0);
  EXPECT_EQ(Value(prom, "gravl_notifications_total{result=\"success\"}"), 5);

  // Every query of every dashboard panel returns data from this Prometheus.
  auto dashboard = nlohmann::json::parse(
      test::ReadFile(kSource + "/k8s/monitoring/dashboards/gravl-disaster-recovery.json"));
  std::size_t queries = 0;
  for (const auto& panel : dashboard["panels"]) {
    if (!panel.contains("targets")) continue;
    for (const auto& target : panel["targets"]) {
      std::string expr = target.value("expr", "");
      if (expr.empty()) continue;
      ++queries;
      expr = std::regex_replace(expr, std::regex(R"(\$\{?stanza\}?)"), "main");
      expr = std::regex_replace(expr, std::regex(R"(\$__(rate_interval|interval|range))"), "5m");
      nlohmann::json data;
      ASSERT_NO_THROW(data = prom.Query(expr)) << panel["title"] << ": " << expr;
      EXPECT_FALSE(data["result"].empty())
          << "panel '" << panel["title"].get<std::string>() << "' has no data: " << expr;
    }
  }
  EXPECT_GE(queries, 6u);

  // The alert rules load and evaluate without error; with a drill that passed and a backup
  // taken just now, none of the backup or drill alerts fires.
  auto rule_groups = nlohmann::json::parse(test::HttpGet(prom.url() + "/api/v1/rules").body);
  std::size_t rule_count = 0;
  for (const auto& g : rule_groups["data"]["groups"]) {
    for (const auto& r : g["rules"]) {
      ++rule_count;
      EXPECT_EQ(r["health"], "ok") << r.dump();
      if (r["name"] == "GravlRestoreDrillFailed" || r["name"] == "GravlBackupMissing") {
        EXPECT_EQ(r["state"], "inactive") << r.dump();
      }
    }
  }
  EXPECT_GE(rule_count, 15u);

  // Health, and a clean stop on SIGTERM.
  auto health = nlohmann::json::parse(test::HttpGet(exporter.url("/healthz")).body);
  EXPECT_EQ(health["status"], "ok");
  EXPECT_EQ(exporter.Stop(), 0) << exporter.Log();
  std::string log = exporter.Log();
  EXPECT_NE(log.find("event=listening"), std::string::npos) << log;
  EXPECT_NE(log.find("event=stopped"), std::string::npos) << log;
}

TEST_F(Metrics, UnreachableRepositoryAndServerAreMetricsNotFailures) {
  ASSERT_EQ(Cli({"backup"}).exit_code, 0);
  ExporterProcess exporter(config_);
  std::string text;
  auto wait_for = [&](const std::string& needle) {
    for (int i = 0; i < 100; ++i) {
      text = test::HttpGet(exporter.url("/metrics")).body;
      if (text.find(needle) != std::string::npos) return true;
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    return false;
  };
  ASSERT_TRUE(wait_for("gravl_repository_up{repo=\"local\",stanza=\"main\"} 1")) << text;
  // The repository disappears, the server stops: the scrape still answers, at once.
  fs::rename(dir_ / "repo", dir_ / "repo.away");
  cluster_->Stop();
  ASSERT_TRUE(wait_for("gravl_postgres_up{stanza=\"main\"} 0")) << text;
  ASSERT_TRUE(wait_for("gravl_repository_up{repo=\"local\",stanza=\"main\"} 0")) << text;
  EXPECT_EQ(text.find("gravl_backups{"), std::string::npos) << "stale numbers: " << text;
  auto start = std::chrono::steady_clock::now();
  EXPECT_EQ(test::HttpGet(exporter.url("/metrics")).status, 200);
  EXPECT_LT(std::chrono::steady_clock::now() - start, seconds(2));
  auto health = nlohmann::json::parse(test::HttpGet(exporter.url("/healthz")).body);
  EXPECT_EQ(health["status"], "ok");  // the exporter works; what it watches does not
  EXPECT_EQ(health["problems"].size(), 2u) << health.dump();
  // And back.
  fs::rename(dir_ / "repo.away", dir_ / "repo");
  ASSERT_TRUE(wait_for("gravl_repository_up{repo=\"local\",stanza=\"main\"} 1")) << text;
  EXPECT_NE(text.find("gravl_backups{repo=\"local\",stanza=\"main\",type=\"full\"} 1"),
            std::string::npos)
      << text;
  EXPECT_EQ(exporter.Stop(), 0);
  EXPECT_NE(exporter.Log().find("event=repository_unreachable"), std::string::npos);
  EXPECT_NE(exporter.Log().find("event=postgres_unreachable"), std::string::npos);
}

// The metrics of a real streaming standby, seen from the primary and from the standby, while
// its replay is paused and the primary writes.
TEST_F(Metrics, ReplicationLagOfAStandbyInTheOtherRegion) {
  ASSERT_EQ(Cli({"backup"}).exit_code, 0);
  std::string standby_dir = dir_ / "standby";
  RunResult r = Cli({"restore", "--pgdata", standby_dir, "--standby", "--primary-conninfo",
                     cluster_->conninfo() + " application_name=us-east-1"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  pg::InstanceOptions o;
  o.base_dir = dir_ / "standby-run";
  auto standby = pg::Instance::Adopt(o, standby_dir);
  auto textfile = [&](const std::vector<std::string>& extra) {
    std::vector<std::string> args = extra;
    args.insert(args.end(), {"exporter", "--textfile", dir_ / "m.prom"});
    RunResult t = Cli(args);
    EXPECT_EQ(t.exit_code, 0) << t.err;
    return test::ReadFile(dir_ / "m.prom");
  };
  auto value = [](const std::string& text, const std::string& series) -> std::optional<double> {
    auto at = text.find("\n" + series + " ");
    if (at == std::string::npos) return std::nullopt;
    return std::stod(text.substr(at + series.size() + 2));
  };
  // Streaming, caught up.
  std::string text;
  for (int i = 0; i < 100; ++i) {
    text = textfile({});
    if (value(text, "gravl_replication_standbys{stanza=\"main\"}") == 1.0) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
  }
  ASSERT_EQ(value(text, "gravl_replication_standbys{stanza=\"main\"}"), 1.0) << text;
  EXPECT_TRUE(value(text, "gravl_replication_lag_seconds{standby=\"us-east-1\",stanza=\"main\"}"))
      << text;
  // A transaction replayed (the standby's replay delay is known from then on), then replay
  // paused on the standby and writes on the primary: the lag in bytes is what it has not
  // replayed.
  cluster_->Psql("CREATE TABLE marker(i int)");
  for (int i = 0; i < 100 && standby->Psql("SELECT to_regclass('marker') IS NOT NULL") != "t\n";
       ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  standby->Psql("SELECT pg_wal_replay_pause()");
  cluster_->Psql(
      "INSERT INTO accounts SELECT g, repeat('x', 500) FROM generate_series(2001, 12000) g");
  std::optional<double> lag;
  for (int i = 0; i < 100; ++i) {
    text = textfile({});
    lag = value(text, "gravl_replication_lag_bytes{standby=\"us-east-1\",stanza=\"main\"}");
    if (lag && *lag > 1e6) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
  }
  ASSERT_TRUE(lag && *lag > 1e6) << text;
  // The standby's own view: in recovery, received but not replayed.
  text = textfile({"--pg-conninfo", standby->conninfo()});
  EXPECT_EQ(value(text, "gravl_pg_in_recovery{stanza=\"main\"}"), 1.0) << text;
  EXPECT_GT(value(text, "gravl_standby_replay_lag_bytes{stanza=\"main\"}").value_or(0), 1e6)
      << text;
  EXPECT_TRUE(value(text, "gravl_standby_replay_delay_seconds{stanza=\"main\"}")) << text;
  EXPECT_FALSE(value(text, "gravl_replication_standbys{stanza=\"main\"}"));
  standby->Psql("SELECT pg_wal_replay_resume()");
}

TEST_F(Metrics, TextfileForNodeExporter) {
  ASSERT_EQ(Cli({"backup"}).exit_code, 0);
  std::string path = dir_ / "gravl.prom";
  RunResult r = Cli({"exporter", "--textfile", path});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  std::string text = test::ReadFile(path);
  EXPECT_NE(text.find("gravl_backups{repo=\"local\",stanza=\"main\",type=\"full\"} 1"),
            std::string::npos)
      << text;
  struct stat st {};
  ASSERT_EQ(::stat(path.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0644u);
  RunOptions lint;
  lint.input = text;
  EXPECT_EQ(gravl::Run({"promtool", "check", "metrics"}, lint).exit_code, 0);
}

TEST_F(Metrics, FailedNotificationsNeverFailTheCommandAndAreCounted) {
  receiver_.Answer(500);
  RunResult r = Cli({"backup"});
  EXPECT_EQ(r.exit_code, 0) << r.err;  // the backup's result, not the webhook's
  EXPECT_NE(r.err.find("delivered=false"), std::string::npos) << r.err;
  EXPECT_EQ(r.err.find("s3cr3tT0ken"), std::string::npos) << r.err;
  EXPECT_EQ(receiver_.Requests(), 4u);  // backup and expire, each tried twice
  std::string path = dir_ / "gravl.prom";
  ASSERT_EQ(Cli({"exporter", "--textfile", path}).exit_code, 0);
  std::string text = test::ReadFile(path);
  EXPECT_NE(
      text.find("gravl_notifications_total{repo=\"local\",result=\"failure\",stanza=\"main\"} 2"),
      std::string::npos)
      << text;
  EXPECT_EQ(text.find("s3cr3tT0ken"), std::string::npos);
}

TEST_F(Metrics, WalLagAlertFiresAndReachesTheWebhookThroughAlertmanager) {
  ASSERT_EQ(Cli({"backup"}).exit_code, 0);
  ExporterProcess exporter(config_);
  test::WebhookReceiver am_hook;
  test::TempDir adir;
  test::AlertmanagerServer am(
      adir.path(),
      "route: {receiver: hook, group_by: [alertname], group_wait: 1s, group_interval: 1s, "
      "repeat_interval: 1h}\n"
      "receivers:\n  - name: hook\n    webhook_configs: [{url: '" +
          am_hook.url("/alerts") + "', send_resolved: false}]\n");
  // The shipped rules, with the WAL-lag threshold shortened from 15 minutes to 3 seconds.
  std::string rules =
      test::PlainRuleGroups(test::ReadFile(kSource + "/k8s/monitoring/prometheus-rules-dr.yaml"));
  const std::string expr = "max by (stanza) (gravl_wal_archive_lag_seconds) > 900";
  auto at = rules.find(expr);
  ASSERT_NE(at, std::string::npos) << "the WAL-lag rule changed: update this test";
  rules.replace(at, expr.size(), "max by (stanza) (gravl_wal_archive_lag_seconds) > 3");
  auto for_at = rules.find("for: 5m", at);
  ASSERT_NE(for_at, std::string::npos);
  rules.replace(for_at, 7, "for: 1s");
  test::TempDir pdir;
  test::WriteFile(pdir / "rules.yaml", rules);
  test::PrometheusServer prom(pdir.path(),
                              ScrapeConfig(exporter.address(), pdir / "rules.yaml", am.address()));
  ASSERT_TRUE(prom.WaitForValue("gravl_wal_archive_lag_seconds", seconds(30)));
  std::this_thread::sleep_for(seconds(3));
  EXPECT_EQ(am_hook.Requests(), 0u) << "an alert fired while archiving works";

  // Archiving stops (archive_command fails); WAL keeps coming.
  cluster_->Psql("ALTER SYSTEM SET archive_command = 'false'");
  cluster_->Psql("SELECT pg_reload_conf()");
  cluster_->Psql("INSERT INTO accounts SELECT g, 'more' FROM generate_series(2001, 3000) g");
  cluster_->Psql("SELECT pg_switch_wal()");
  ASSERT_TRUE(prom.WaitForValue("gravl_wal_archive_lag_seconds > 3", seconds(60)))
      << prom.LogTail();
  ASSERT_TRUE(am_hook.WaitFor(1, std::chrono::milliseconds(60000)))
      << "no alert reached the webhook\n"
      << prom.LogTail() << am.LogTail();
  bool found = false;
  for (const auto& body : am_hook.Bodies()) {
    auto j = nlohmann::json::parse(body);
    for (const auto& alert : j["alerts"]) {
      if (alert["labels"]["alertname"] != "GravlWalArchiveLag") continue;
      found = true;
      EXPECT_EQ(alert["labels"]["severity"], "critical");
      EXPECT_EQ(alert["labels"]["stanza"], "main");
      EXPECT_NE(alert["annotations"]["runbook_url"].get<std::string>().find("wal-archiving"),
                std::string::npos);
    }
  }
  EXPECT_TRUE(found) << am_hook.Bodies().front();
}

}  // namespace
}  // namespace gravl
