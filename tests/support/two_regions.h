#pragma once
// Two regions on 127.0.0.1 for the failover tests and the region-outage runbook's end-to-end
// test: a primary ("eu-north-1") archiving into two posix repositories ("eu-north-1" and
// "us-east-1"), and a standby ("us-east-1") built from the repository with standby-create and
// streaming through a slot. Fencing and endpoint hooks record what they were asked in the
// work directory (files "fenced" and "endpoint"). A Writer logs every acknowledged commit.

#include <gtest/gtest.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include <algorithm>
#include <atomic>
#include <filesystem>
#include <fstream>
#include <map>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <set>
#include <sstream>
#include <thread>

#include "common/lsn.h"
#include "common/subprocess.h"
#include "pg/connection.h"
#include "pg/instance.h"
#include "support/archiving_fixture.h"
#include "support/cli.h"
#include "support/test_util.h"

namespace gravl::test {

namespace fs = std::filesystem;

inline std::string Conninfo(int port) {
  return "host=127.0.0.1 port=" + std::to_string(port) + " user=postgres dbname=postgres";
}

// kill -9 of a server's postmaster and every process it started, reaped like a real crash
// leaves them: the calling process must be their subreaper (prctl(PR_SET_CHILD_SUBREAPER),
// before the server started), so that a killed postmaster does not linger as a zombie whose
// pid PostgreSQL would take for a live server.
inline void KillServer(const std::string& data_dir) {
  std::ifstream pid_file(data_dir + "/postmaster.pid");
  long pid = 0;
  pid_file >> pid;
  ASSERT_GT(pid, 0);
  std::vector<pid_t> victims;
  for (const auto& e : fs::directory_iterator("/proc")) {
    std::ifstream stat(e.path() / "stat");
    std::string line;
    if (!std::getline(stat, line)) continue;
    auto paren = line.rfind(')');
    if (paren == std::string::npos) continue;
    std::istringstream rest(line.substr(paren + 2));
    std::string state;
    long ppid = 0;
    rest >> state >> ppid;
    if (ppid == pid) victims.push_back(static_cast<pid_t>(std::stol(e.path().filename())));
  }
  ::kill(static_cast<pid_t>(pid), SIGKILL);
  for (pid_t v : victims) ::kill(v, SIGKILL);
  victims.push_back(static_cast<pid_t>(pid));
  for (pid_t v : victims) {
    // Reparented to this process once the postmaster died; reap them (ECHILD otherwise).
    for (int i = 0; i < 200; ++i) {
      int status = 0;
      pid_t w = ::waitpid(v, &status, WNOHANG);
      if (w == v || (w < 0 && errno == ECHILD && ::kill(v, 0) != 0)) break;
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
  }
  ASSERT_NE(::kill(static_cast<pid_t>(pid), 0), 0) << "postmaster " << pid << " still there";
}

// Inserts increasing ids, one transaction each, into whichever server accepts them, and logs
// every id whose COMMIT was acknowledged, with the WAL position of its insert.
class Writer {
 public:
  explicit Writer(std::vector<std::string> conninfos, long first_id = 1)
      : conninfos_(std::move(conninfos)), first_id_(first_id) {
    thread_ = std::thread([this] { Loop(); });
  }
  ~Writer() { Stop(); }
  void Stop() {
    stop_ = true;
    if (thread_.joinable()) thread_.join();
  }
  std::map<long, Lsn> committed() {
    std::lock_guard<std::mutex> lock(mu_);
    return committed_;
  }
  // When each commit was acknowledged to the writer.
  std::map<long, std::chrono::steady_clock::time_point> acknowledged_at() {
    std::lock_guard<std::mutex> lock(mu_);
    return acknowledged_at_;
  }
  std::size_t count() {
    std::lock_guard<std::mutex> lock(mu_);
    return committed_.size();
  }

 private:
  void Loop() {
    long next = first_id_;
    std::unique_ptr<pg::Connection> conn;
    std::size_t which = 0;
    while (!stop_) {
      try {
        if (!conn) conn = pg::Connection::Open(conninfos_[which] + " connect_timeout=2");
        long id = next++;
        auto lsn = conn->QueryValue("INSERT INTO commits(id) VALUES (" + std::to_string(id) +
                                    ") RETURNING pg_current_wal_insert_lsn()::text");
        std::lock_guard<std::mutex> lock(mu_);
        committed_[id] = Lsn::Parse(*lsn);
        acknowledged_at_[id] = std::chrono::steady_clock::now();
      } catch (const std::exception&) {
        conn.reset();
        which = (which + 1) % conninfos_.size();
        std::this_thread::sleep_for(std::chrono::milliseconds(50));
      }
    }
  }
  std::vector<std::string> conninfos_;
  long first_id_;
  std::atomic<bool> stop_{false};
  std::mutex mu_;
  std::map<long, Lsn> committed_;
  std::map<long, std::chrono::steady_clock::time_point> acknowledged_at_;
  std::thread thread_;
};

class TwoRegions : public test::ArchivingFixture {
 protected:
  virtual bool Rewindable() const { return true; }
  std::vector<std::string> ClusterSettings() const override {
    std::vector<std::string> s = {"max_wal_senders = 10", "hot_standby = on",
                                  "wal_keep_size = '256MB'"};
    if (Rewindable()) s.push_back("wal_log_hints = on");
    return s;
  }
  std::string ConfigBody() const override {
    return "repos:\n  - {name: eu-north-1, type: posix, path: " + (dir_ / "eu") +
           "}\n  - {name: us-east-1, type: posix, path: " + (dir_ / "us") +
           "}\narchive: {async: false}\nparallel: 2\n"
           "regions:\n"
           "  - name: eu-north-1\n    repo: eu-north-1\n    pg: {conninfo: \"" +
           Conninfo(cluster_->port()) + "\", data_dir: " + cluster_->data_dir() +
           "}\n"
           "  - name: us-east-1\n    repo: us-east-1\n    pg: {conninfo: \"" +
           Conninfo(port_b_) + "\", data_dir: " + (dir_ / "b/data") +
           ",\n        archive_command: '" + test::GravlBinary() + " --config " +
           (dir_ / "gravl-dr.yaml") + " --repo us-east-1 archive-push %p'}\n" +
           "failover:\n  timeout: 60\n" + FailoverExtra();
  }
  // Hooks that record what they were asked: the fence (the old primary's region) and the
  // endpoint (the new primary's region, host and port).
  virtual std::string FailoverExtra() const {
    return "  fence_command: [sh, -c, 'echo \"$0\" >> " + (dir_ / "fenced") +
           "', '{region}']\n  endpoint_command: [sh, -c, 'echo \"$0 $1 $2\" >> " +
           (dir_ / "endpoint") + "', '{region}', '{host}', '{port}']\n";
  }

  void SetUp() override {
    // Servers that pg_ctl starts (here or in gravl-dr) are re-parented to this process, so
    // that Kill() can reap them.
    ::prctl(PR_SET_CHILD_SUBREAPER, 1);
    port_b_ = pg::FindFreePort();
    ArchivingFixture::SetUp();
    if (HasFatalFailure()) return;
    // The server's own settings in its configuration, so that pg_ctl start (by gravl-dr)
    // starts it as the test did.
    cluster_->AppendConfig({"port = " + std::to_string(cluster_->port()),
                            "listen_addresses = '127.0.0.1'",
                            "unix_socket_directories = '" + cluster_->base_dir() + "'"});
    EnableArchiving();
    Query("CREATE TABLE commits(id bigint PRIMARY KEY, at timestamptz DEFAULT now())");
    RunChecked({cluster_->Bin("pgbench"), "-i", "-s", "2", "-q", "-d", cluster_->conninfo()});
    ASSERT_EQ(Cli({"--repo", "eu-north-1", "backup"}).exit_code, 0);
    fs::create_directories(dir_ / "b");
    Chown(dir_.path());
    RunResult r = Cli({"standby-create", "--region", "us-east-1", "--slot", "us_east_1", "--set",
                       "port=" + std::to_string(port_b_), "--set", "listen_addresses=127.0.0.1",
                       "--set", "unix_socket_directories=" + (dir_ / "b"), "--start"});
    ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  }
  void TearDown() override {
    // Whatever gravl-dr started, stopped here: the standby has no Instance of its own.
    for (const std::string& d : {dir_ / "b/data"}) {
      if (!d.empty() && fs::exists(d + "/postmaster.pid")) {
        gravl::Run(pg::AsServerUser({cluster_->Bin("pg_ctl"), "-D", d, "-m", "immediate", "stop"}));
      }
    }
  }

  std::string A() const { return Conninfo(cluster_->port()); }
  std::string B() const { return Conninfo(port_b_); }
  std::string Sql(const std::string& conninfo, const std::string& sql) {
    auto c = pg::Connection::Open(conninfo);
    auto v = c->QueryValue(sql);
    return v ? *v : "";
  }
  bool InRecovery(const std::string& conninfo) {
    return Sql(conninfo, "SELECT pg_is_in_recovery()::text") == "true";
  }
  std::set<long> Ids(const std::string& conninfo) {
    std::set<long> ids;
    auto c = pg::Connection::Open(conninfo);
    for (const auto& row : c->Query("SELECT id FROM commits")) ids.insert(std::stol(row[0]));
    return ids;
  }
  nlohmann::json Json(const RunResult& r) {
    auto j = nlohmann::json::parse(r.out, nullptr, false);
    return j.is_discarded() ? nlohmann::json::object() : j;
  }
  void Kill(const std::string& data_dir) { KillServer(data_dir); }
  // The measured loss of a failover: the writer's acknowledged commits missing on us-east-1,
  // each inside the WAL the failover's `loss` says was lost (from its replayed position to the
  // old primary's last known one), and no more of them than it counted when it was exact.
  // Returns how many were lost.
  std::size_t CheckLoss(Writer& writer, const nlohmann::json& loss) {
    const Lsn replayed = Lsn::Parse(loss["replayed"].get<std::string>());
    std::optional<Lsn> last_known;
    if (loss.contains("old_primary_last_known") && loss["old_primary_last_known"].is_string()) {
      last_known = Lsn::Parse(loss["old_primary_last_known"].get<std::string>());
    }
    const auto present = Ids(B());
    std::size_t lost = 0;
    for (const auto& [id, lsn] : writer.committed()) {
      if (present.count(id)) continue;
      ++lost;
      EXPECT_GE(lsn, replayed) << "id " << id << " lost below the replayed position";
      if (last_known) {
        EXPECT_LT(lsn, *last_known) << "id " << id << " lost beyond the bound";
      }
    }
    if (loss.value("exact", false)) {
      EXPECT_LE(lost, loss["lost_commits"].size());
    }
    return lost;
  }

  // Waits until `conninfo` is a standby streaming from a primary.
  bool Streams(const std::string& conninfo, int timeout_s = 60) {
    for (int i = 0; i < timeout_s * 5; ++i) {
      try {
        if (Sql(conninfo,
                "SELECT count(*)::text FROM pg_stat_wal_receiver WHERE status = "
                "'streaming'") == "1") {
          return true;
        }
      } catch (const std::exception&) {
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(200));
    }
    return false;
  }
  std::vector<nlohmann::json> Reports(const std::string& repo) {
    std::vector<nlohmann::json> out;
    std::string d = dir_ / (repo + "/main/reports/failovers");
    if (!fs::exists(d)) return out;
    std::vector<std::string> files;
    for (const auto& e : fs::directory_iterator(d)) files.push_back(e.path());
    std::sort(files.begin(), files.end());
    for (const auto& f : files) out.push_back(nlohmann::json::parse(test::ReadFile(f)));
    return out;
  }
  void AmCheck(int port) {
    Sql(Conninfo(port), "CREATE EXTENSION IF NOT EXISTS amcheck");
    RunResult r =
        gravl::Run({cluster_->Bin("pg_amcheck"), "-h", "127.0.0.1", "-p", std::to_string(port),
                    "-U", "postgres", "--all", "--heapallindexed", "--install-missing"});
    EXPECT_EQ(r.exit_code, 0) << r.out << r.err;
  }

  int port_b_ = 0;
};

}  // namespace gravl::test
