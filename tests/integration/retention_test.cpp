// Retention against real PostgreSQL (issue 16): forty full backups whose dates are spread
// over three years, then `expire`: the kept set is the planner's, the window and every kept
// archive backup restore, WAL nothing needs is gone; --dry-run changes nothing; a kill -9 at
// any moment never leaves a listed backup that fails verify; pins hold; and on S3.
//
// Backups are dated by rewriting their manifests (test/support/manifest_util.h), as anyone
// able to write the repository could: the product has no way to set a backup's time.

#include "repo/retention.h"

#include <gtest/gtest.h>
#include <signal.h>

#include <filesystem>
#include <map>
#include <nlohmann/json.hpp>
#include <random>
#include <set>
#include <thread>

#include "io/hash.h"
#include "repo/catalog.h"
#include "repo/layout.h"
#include "repo/manifest.h"
#include "repo/metadata.h"
#include "storage/factory.h"
#include "storage/s3/s3_storage.h"
#include "support/cli.h"
#include "support/manifest_util.h"
#include "support/restoring_fixture.h"
#include "support/s3_gateway.h"
#include "support/test_util.h"

namespace gravl {
namespace {

namespace fs = std::filesystem;
using std::chrono::days;

constexpr const char* kPolicy =
    "retention:\n  daily: 7\n  monthly: 6\n  yearly: 3\n  pitr_window: 7d\n  min_full: 2\n"
    "  auto: false\n";

repo::RetentionPolicy Policy() {
  repo::RetentionPolicy p;
  p.full = {7, 0, 6, 3};
  p.pitr_window = days(7);
  p.min_full = 2;
  return p;
}

class Retention : public test::RestoringFixture {
 protected:
  std::string ConfigBody() const override { return OneRepositoryConfig() + kPolicy; }

  std::unique_ptr<repo::Repository> Open() {
    RepoConfig rc{"local", "posix", dir_ / "repo", {}};
    auto r = std::make_unique<repo::Repository>(rc, storage::OpenStorage(rc), "main");
    r->Stanza();
    return r;
  }
  // Test-only: the backup's times, as if it had been taken at `stop`.
  static void Redate(repo::Repository& repo, const std::string& label, SystemTime stop) {
    nlohmann::json m = repo::ReadManifestDocument(repo, label);
    m["start_time"] = FormatIso8601(stop - std::chrono::minutes(1));
    m["stop_time"] = FormatIso8601(stop);
    test::WriteManifestDocument(repo, label, m);
  }
  std::string Backup() {
    RunResult b = Cli({"backup", "--output", "json"});
    for (int i = 0; i < 20 && b.exit_code == 5; ++i) {  // labels are to the second
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
      b = Cli({"backup", "--output", "json"});
    }
    EXPECT_EQ(b.exit_code, 0) << b.err;
    return nlohmann::json::parse(b.out)["label"].get<std::string>();
  }
  // Every file of the repository with its SHA-256.
  // Every file of the repository, or all but the run reports (which a run that changes
  // nothing still leaves: a refused expire is recorded as a failed run; dry runs leave none).
  std::map<std::string, std::string> Snapshot(bool with_reports = true) {
    std::map<std::string, std::string> files;
    for (const auto& e : fs::recursive_directory_iterator(dir_ / "repo")) {
      if (!with_reports && e.path().string().find("/reports/") != std::string::npos) continue;
      if (e.is_regular_file()) files[e.path()] = io::Sha256Hex(AsBytes(test::ReadFile(e.path())));
    }
    return files;
  }
  std::set<std::string> Listed() {
    auto r = Open();
    repo::Catalog c(*r);
    std::set<std::string> s;
    for (const auto& b : c.Backups()) s.insert(b.label);
    return s;
  }
  repo::RetentionPlan Plan() {
    auto r = Open();
    repo::Catalog c(*r);
    return repo::PlanRetention(c.RetentionFacts(), Policy(), std::chrono::system_clock::now(),
                               r->Stanza().wal_segment_size);
  }
  static std::set<std::string> Kept(const repo::RetentionPlan& p) {
    std::set<std::string> s;
    for (const auto& b : p.backups) {
      if (b.keep) s.insert(b.label);
    }
    return s;
  }
  static bool InWindow(const repo::BackupDecision& d) {
    return std::find(d.reasons.begin(), d.reasons.end(), "pitr") != d.reasons.end();
  }
};

TEST_F(Retention, FortyBackupsOverThreeYearsKeepThePlannersSetAndStayRestorable) {
  Query("CREATE TABLE t(i int)");
  std::vector<std::string> labels;
  std::vector<std::pair<std::string, std::string>> moments;  // (time, rows then)
  for (int i = 0; i < 40; ++i) {
    Query("INSERT INTO t VALUES (" + std::to_string(i) + ")");
    labels.push_back(Backup());
    ASSERT_FALSE(HasFailure());
    if (i >= 37) {  // moments inside the window, between the real-dated backups
      Query("INSERT INTO t SELECT generate_series(1000, 1004)");
      std::this_thread::sleep_for(std::chrono::milliseconds(1100));
      moments.emplace_back(Query("SELECT now()"), Query("SELECT count(*) FROM t"));
      std::this_thread::sleep_for(std::chrono::milliseconds(1100));
      Query("INSERT INTO t SELECT generate_series(2000, 2004)");
    }
  }
  SwitchAndWait();
  {
    auto r = Open();
    SystemTime now = std::chrono::system_clock::now();
    for (int i = 0; i < 37; ++i) {  // about every 29 days, from three years ago to 51 days ago
      Redate(*r, labels[static_cast<std::size_t>(i)], now - days(1095 - 29 * i));
    }
    Chown(dir_ / "repo");
  }
  std::size_t wal_before = 0;
  for (const auto& e : fs::recursive_directory_iterator(dir_ / "repo/main/wal")) {
    if (e.is_regular_file()) ++wal_before;
  }

  // --dry-run: the plan, and not one byte changed.
  auto before = Snapshot();
  RunResult dry = Cli({"expire", "--dry-run", "--output", "json"});
  ASSERT_EQ(dry.exit_code, 0) << dry.err;
  EXPECT_EQ(Snapshot(), before);
  EXPECT_NE(Cli({"expire", "--dry-run"}).out.find("nothing was deleted (--dry-run)"),
            std::string::npos);

  repo::RetentionPlan plan = Plan();
  RunResult e = Cli({"expire", "--output", "json"});
  ASSERT_EQ(e.exit_code, 0) << e.err;
  auto report = nlohmann::json::parse(e.out)["repos"][0];
  std::set<std::string> deleted;
  for (const auto& l : report["deleted"]["backups"]) deleted.insert(l.get<std::string>());
  std::set<std::string> expected_deleted;
  for (const auto& d : plan.backups) {
    if (!d.keep) expected_deleted.insert(d.label);
  }
  EXPECT_EQ(deleted, expected_deleted);
  EXPECT_GE(deleted.size(), 20u);  // most of the 37 old ones are in no tier
  EXPECT_EQ(Listed(), Kept(plan));
  // The window: the anchor is the newest backup consistent 7 days ago (the 37th), and it and
  // the three real-dated ones are kept for it.
  EXPECT_EQ(plan.anchor, labels[36]);
  for (std::size_t i = 36; i < 40; ++i) EXPECT_TRUE(InWindow(*plan.Find(labels[i]))) << i;
  EXPECT_EQ(report["anchor"], labels[36]);

  // WAL: nothing left that the plan does not keep; everything it keeps is still there.
  auto r = Open();
  repo::Catalog after(*r);
  std::size_t wal_after = 0;
  for (const auto& [tli, t] : after.Wal().timelines()) {
    for (const auto& [segno, s] : t.segments) {
      EXPECT_TRUE(plan.KeepsSegment(tli, segno)) << segno;
      ++wal_after;
    }
  }
  EXPECT_LT(wal_after + 10, wal_before) << "WAL outside the window was not deleted";
  EXPECT_EQ(report["wal"]["delete"].get<std::size_t>(),
            report["deleted"]["wal_objects"].get<std::size_t>());

  RunResult v = Cli({"verify"});
  EXPECT_EQ(v.exit_code, 0) << v.out << v.err;
  RunResult info = Cli({"info"});
  EXPECT_NE(info.out.find("guaranteed PITR window: from"), std::string::npos) << info.out;
  EXPECT_NE(info.out.find("kept: monthly"), std::string::npos) << info.out;

  // Three moments inside the window.
  for (std::size_t k = 0; k < moments.size(); ++k) {
    auto restored =
        RestoreAndStart("pitr" + std::to_string(k), {"--target-time", moments[k].first});
    ASSERT_TRUE(restored) << last_restore_output_;
    EXPECT_EQ(Query(*restored, "SELECT count(*) FROM t"), moments[k].second);
  }
  // Each kept archive backup (kept for a tier, not for the window) on its own.
  int archives = 0;
  for (std::size_t i = 0; i < 36; ++i) {
    const repo::BackupDecision* d = plan.Find(labels[i]);
    if (!d->keep || InWindow(*d)) continue;
    ++archives;
    auto restored = RestoreAndStart("archive" + std::to_string(i),
                                    {"--set", labels[i], "--target", "immediate"});
    ASSERT_TRUE(restored) << labels[i] << ": " << last_restore_output_;
    EXPECT_EQ(Query(*restored, "SELECT count(*) FROM t"), std::to_string(i + 1)) << labels[i];
  }
  EXPECT_GE(archives, 5);
}

TEST_F(Retention, KilledExpireNeverLeavesAListedBackupThatFailsVerify) {
  Query("CREATE TABLE t(i int)");
  std::vector<std::string> labels;
  for (int i = 0; i < 12; ++i) {
    Query("INSERT INTO t VALUES (" + std::to_string(i) + ")");
    labels.push_back(Backup());
    ASSERT_FALSE(HasFailure());
  }
  SwitchAndWait();
  {
    auto r = Open();
    SystemTime now = std::chrono::system_clock::now();
    for (int i = 0; i < 10; ++i) {
      Redate(*r, labels[static_cast<std::size_t>(i)], now - days(700 - 61 * i));
    }
  }
  cluster_->Psql("ALTER SYSTEM SET archive_command = ''");  // the repository stays as it is
  cluster_->Psql("SELECT pg_reload_conf()");
  const std::set<std::string> kept = Kept(Plan());
  ASSERT_LT(kept.size(), labels.size());
  fs::copy(dir_ / "repo", dir_ / "template", fs::copy_options::recursive);

  auto reset = [&] {
    fs::remove_all(dir_ / "repo");
    fs::copy(dir_ / "template", dir_ / "repo", fs::copy_options::recursive);
    Chown(dir_ / "repo");
  };
  auto expire = [&] {
    return Child::Spawn({test::GravlBinary(), "--config", config_, "expire"}, {});
  };
  reset();
  auto t0 = std::chrono::steady_clock::now();
  ASSERT_EQ(expire()->Wait(), 0);
  auto full = std::chrono::steady_clock::now() - t0;
  EXPECT_EQ(Listed(), kept);

  std::mt19937 rng(std::random_device{}());
  std::uniform_int_distribution<long> at(
      0, std::chrono::duration_cast<std::chrono::microseconds>(full).count());
  // Manifests on disk, read without the catalog so that it is quick enough to poll.
  auto manifests = [&] {
    std::size_t n = 0;
    std::error_code ec;
    for (const auto& e : fs::directory_iterator(dir_ / "repo/main/backups", ec)) {
      n += fs::exists(e.path() / "manifest.json", ec);
    }
    return n;
  };
  int killed_midway = 0;
  for (int k = 0; k < 20; ++k) {
    reset();
    const std::size_t before = manifests();
    auto child = expire();
    if (k % 2 == 0) {
      // At a random moment of a full run.
      std::this_thread::sleep_for(std::chrono::microseconds(at(rng)));
    } else {
      // The moment the first backup is unlisted, so that some kills land mid-way through
      // the deletions on any machine, not only when a random moment happens to hit them.
      auto deadline = std::chrono::steady_clock::now() + full * 4 + std::chrono::seconds(5);
      while (manifests() == before && std::chrono::steady_clock::now() < deadline) {
      }
    }
    ::kill(child->pid(), SIGKILL);
    int code = child->Wait();
    std::set<std::string> listed = Listed();
    if (code == 128 + SIGKILL && listed != kept && listed.size() < labels.size()) {
      ++killed_midway;
    }
    RunResult v = Cli({"verify"});
    EXPECT_EQ(v.exit_code, 0) << "kill " << k << " (exit " << code << "):\n" << v.out << v.err;
    for (const auto& l : kept) EXPECT_TRUE(listed.count(l)) << "kill " << k << ": " << l;
    RunResult again = Cli({"expire"});
    EXPECT_EQ(again.exit_code, 0) << again.err;
    EXPECT_EQ(Listed(), kept) << "kill " << k;
  }
  // The kills landed at different points: some mid-way (others before it began or after
  // it finished).
  EXPECT_GE(killed_midway, 1);
}

TEST_F(Retention, PinnedBackupsStayUntilUnpinned) {
  Query("CREATE TABLE t(i int)");
  std::vector<std::string> labels;
  for (int i = 0; i < 4; ++i) labels.push_back(Backup());
  SwitchAndWait();
  {
    auto r = Open();
    SystemTime now = std::chrono::system_clock::now();
    for (int i = 0; i < 3; ++i) {
      Redate(*r, labels[static_cast<std::size_t>(i)], now - days(3000 - 10 * i));
    }
    Chown(dir_ / "repo");
  }
  RunResult pin = Cli({"pin", "--set", labels[0], "--reason", "legal hold"});
  ASSERT_EQ(pin.exit_code, 0) << pin.err;
  EXPECT_EQ(Cli({"pin", "--set", "nosuchlabel"}).exit_code, 4);
  EXPECT_EQ(Cli({"pin", "--set", labels[1], "--until", "2001-01-01 00:00:00Z"}).exit_code, 2);
  ASSERT_EQ(Cli({"expire"}).exit_code, 0);
  std::set<std::string> listed = Listed();
  EXPECT_TRUE(listed.count(labels[0]));   // pinned
  EXPECT_FALSE(listed.count(labels[1]));  // in no tier: 8 years old
  RunResult info = Cli({"info"});
  EXPECT_NE(info.out.find("kept: pinned"), std::string::npos) << info.out;
  auto restored = RestoreAndStart("pinned", {"--set", labels[0], "--target", "immediate"});
  ASSERT_TRUE(restored) << last_restore_output_;  // its WAL was kept with it
  restored.reset();
  ASSERT_EQ(Cli({"unpin", "--set", labels[0]}).exit_code, 0);
  ASSERT_EQ(Cli({"expire"}).exit_code, 0);
  EXPECT_FALSE(Listed().count(labels[0]));
}

TEST_F(Retention, BackupExpiresAfterItselfAndARefusalDeletesNothing) {
  Query("CREATE TABLE t(i int)");
  std::string old1 = Backup(), old2 = Backup();
  {
    auto r = Open();
    SystemTime now = std::chrono::system_clock::now();
    Redate(*r, old1, now - days(4000));
    Redate(*r, old2, now - days(3990));
    Chown(dir_ / "repo");
  }
  std::this_thread::sleep_for(std::chrono::milliseconds(1100));  // labels are to the second
  RunResult b = Cli({"--retention-auto", "true", "backup", "--output", "json"});
  ASSERT_EQ(b.exit_code, 0) << b.err;
  auto j = nlohmann::json::parse(b.out);
  ASSERT_TRUE(j.contains("expire")) << b.out;
  EXPECT_FALSE(Listed().count(old1));  // old2 anchors the 7-day window: the only older one

  // The anchor damaged (its manifest unreadable; dated by its label, which says 2015): no
  // valid backup is consistent at the window's start, and expire refuses (exit 13) without
  // deleting anything.
  fs::rename(dir_ / ("repo/main/backups/" + old2),
             dir_ / "repo/main/backups/20150101T000000Z-full");
  test::WriteFile(dir_ / "repo/main/backups/20150101T000000Z-full/manifest.json", "garbage");
  Chown(dir_ / "repo");
  auto before = Snapshot(false);
  RunResult e = Cli({"expire"});
  EXPECT_EQ(e.exit_code, 13) << e.out << e.err;
  EXPECT_NE(e.out.find("REFUSED"), std::string::npos) << e.out;
  EXPECT_EQ(Snapshot(false), before);
  // ... and the refusal is recorded as a failed expire run, for the exporter's alert.
  std::size_t failed_runs = 0;
  for (const auto& f : fs::directory_iterator(dir_ / "repo/main/reports/expires")) {
    auto report = nlohmann::json::parse(test::ReadFile(f.path()));
    failed_runs += report["error_class"] == "refused" && report["ok"] == false;
  }
  EXPECT_EQ(failed_runs, 1u);
  // Without a policy there is nothing to apply: a configuration error, not a silent no-op.
  RunResult none = Cli({"--retention-pitr-window", "0", "--retention-daily", "0",
                        "--retention-monthly", "0", "--retention-yearly", "0", "expire"});
  EXPECT_EQ(none.exit_code, 3) << none.err;
  EXPECT_NE(none.err.find("no retention policy configured"), std::string::npos) << none.err;
}

// verify fails a guaranteed window shorter than pitr_window in a repository older than the
// window (exit 12), and check warns when full backups are further apart than the window.
TEST_F(Retention, AWindowShorterThanAskedFailsVerifyAndSparseBackupsWarnInCheck) {
  Query("CREATE TABLE t(i int)");
  std::string first = Backup();
  SwitchAndWait();
  RunResult young = Cli({"verify"});
  EXPECT_EQ(young.exit_code, 0) << young.out << young.err;  // the stanza is younger than 7d
  EXPECT_NE(young.out.find("younger than the window"), std::string::npos) << young.out;
  {
    // Test-only: the stanza as if created a year ago.
    auto r = Open();
    nlohmann::json st = repo::ReadMetadata(r->storage(), repo::StanzaKey("main"));
    st["created_at"] = FormatIso8601(std::chrono::system_clock::now() - days(365));
    r->storage().DeleteMany({repo::StanzaKey("main")});
    repo::WriteMetadata(r->storage(), repo::StanzaKey("main"), st);
    Chown(dir_ / "repo");
  }
  RunResult v = Cli({"verify", "--output", "json"});
  EXPECT_EQ(v.exit_code, 12) << v.out << v.err;
  EXPECT_NE(v.out.find("the guaranteed PITR window starts at"), std::string::npos) << v.out;

  {
    auto r = Open();
    Redate(*r, first, std::chrono::system_clock::now() - days(30));
    Chown(dir_ / "repo");
  }
  Backup();
  RunResult c = Cli({"check"});
  EXPECT_EQ(c.exit_code, 0) << c.out << c.err;
  EXPECT_NE(c.err.find("is shorter than the 30d between the last two full backups"),
            std::string::npos)
      << c.err;
  // With the older backup consistent before the window's start, the window is whole.
  RunResult whole = Cli({"verify"});
  EXPECT_EQ(whole.exit_code, 0) << whole.out << whole.err;
}

class S3Retention : public test::RestoringFixture {
 protected:
  void SetUp() override {
    gw_ = std::make_unique<test::S3Gateway>();
    RestoringFixture::SetUp();
  }
  std::string ConfigBody() const override {
    return "repos:\n  - name: s3\n" + gw_->RepoYaml("db1", dir_ / "s3-secret") +
           "    archive_storage_class: STANDARD_IA\narchive: {async: true, spool_path: " +
           (dir_ / "spool") + "}\nparallel: 2\n" + kPolicy;
  }
  std::unique_ptr<test::S3Gateway> gw_;
};

TEST_F(S3Retention, ExpireOnS3KeepsThePlannersSetAndTheArchiveBackupsRestore) {
  Query("CREATE TABLE t(i int)");
  std::vector<std::string> labels;
  for (int i = 0; i < 8; ++i) {
    Query("INSERT INTO t VALUES (" + std::to_string(i) + ")");
    RunResult b = Cli({"backup", "--output", "json"});
    for (int k = 0; k < 20 && b.exit_code == 5; ++k) {  // labels are to the second
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
      b = Cli({"backup", "--output", "json"});
    }
    ASSERT_EQ(b.exit_code, 0) << b.err;
    labels.push_back(nlohmann::json::parse(b.out)["label"].get<std::string>());
  }
  SwitchAndWait();
  RepoConfig rc{"s3", "s3", "", gw_->Repo("db1")};
  repo::Repository r(rc, storage::OpenStorage(rc), "main");
  r.Stanza();
  SystemTime now = std::chrono::system_clock::now();
  for (int i = 0; i < 6; ++i) {  // 2021 .. 2026, one per year
    nlohmann::json m = repo::ReadManifestDocument(r, labels[static_cast<std::size_t>(i)]);
    SystemTime stop = now - days(365 * (6 - i));
    m["start_time"] = FormatIso8601(stop - std::chrono::minutes(1));
    m["stop_time"] = FormatIso8601(stop);
    test::WriteManifestDocument(r, labels[static_cast<std::size_t>(i)], m);
  }
  repo::RetentionPlan plan = [&] {
    repo::Catalog c(r);
    return repo::PlanRetention(c.RetentionFacts(), Policy(), now, r.Stanza().wal_segment_size);
  }();
  RunResult e = Cli({"expire"});
  ASSERT_EQ(e.exit_code, 0) << e.err << e.out;
  repo::Catalog after(r);
  std::set<std::string> listed;
  for (const auto& b : after.Backups()) listed.insert(b.label);
  std::set<std::string> kept;
  for (const auto& d : plan.backups) {
    if (d.keep) kept.insert(d.label);
  }
  EXPECT_EQ(listed, kept);
  EXPECT_LT(listed.size(), labels.size());
  for (const auto& [tli, t] : after.Wal().timelines()) {
    for (const auto& [segno, s] : t.segments) EXPECT_TRUE(plan.KeepsSegment(tli, segno));
  }
  EXPECT_EQ(Cli({"verify"}).exit_code, 0);
  int archived = 0;
  for (std::size_t i = 0; i < 6; ++i) {
    const repo::BackupDecision* d = plan.Find(labels[i]);
    if (!d->keep || std::find(d->reasons.begin(), d->reasons.end(), "pitr") != d->reasons.end()) {
      continue;
    }
    // Kept only for a yearly tier: moved to the archive storage class, every object.
    auto plain = storage::OpenStorage(rc);
    for (const auto& o : storage::ListAll(*plain, repo::BackupObjectPrefix("main", labels[i]))) {
      EXPECT_EQ(plain->Stat(o.key)->storage_class, "STANDARD_IA") << o.key;
    }
    EXPECT_EQ(plain->Stat(repo::ManifestKey("main", labels[7]))->storage_class, "STANDARD");
    auto restored =
        RestoreAndStart("a" + std::to_string(i), {"--set", labels[i], "--target", "immediate"});
    ASSERT_TRUE(restored) << last_restore_output_;
    EXPECT_EQ(Query(*restored, "SELECT count(*) FROM t"), std::to_string(i + 1));
    ++archived;
    break;  // one archive backup from S3 is enough here
  }
  EXPECT_EQ(archived, 1) << "no backup was kept for a tier alone";
}

class S3ObjectLock : public S3Retention {
 protected:
  std::string ConfigBody() const override {
    return "repos:\n  - name: s3\n" + gw_->RepoYaml("locked", dir_ / "s3-secret") +
           "    object_lock: {mode: GOVERNANCE}\narchive: {async: true, spool_path: " +
           (dir_ / "spool") + "}\nparallel: 2\n" + kPolicy;
  }
};

// Objects are written locked until the policy's longest tier (backups) or the window (WAL);
// expire leaves locked backups listed and whole, with their WAL, and says until when; the
// store itself refuses a forced delete.
TEST_F(S3ObjectLock, LockedObjectsAreReportedNotDeletedAndTheStoreRefusesForcedDeletes) {
  Query("CREATE TABLE t(i int)");
  std::vector<std::string> labels;
  for (int i = 0; i < 3; ++i) {
    Query("INSERT INTO t VALUES (" + std::to_string(i) + ")");
    RunResult b = Cli({"backup", "--output", "json"});
    for (int k = 0; k < 20 && b.exit_code == 5; ++k) {
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
      b = Cli({"backup", "--output", "json"});
    }
    ASSERT_EQ(b.exit_code, 0) << b.err;
    labels.push_back(nlohmann::json::parse(b.out)["label"].get<std::string>());
  }
  SwitchAndWait();
  RepoConfig rc{"s3", "s3", "", gw_->Repo("locked")};
  auto plain = storage::OpenStorage(rc);  // no LockingStorage: what anyone with the keys has
  repo::Repository r(rc, storage::OpenStorage(rc), "main");
  r.Stanza();
  std::this_thread::sleep_for(std::chrono::milliseconds(1100));  // the newest is > 1 s old
  const SystemTime now = std::chrono::system_clock::now();
  const std::string manifest0 = repo::ManifestKey("main", labels[0]);
  auto info = plain->Stat(manifest0);
  ASSERT_TRUE(info && info->retain_until) << "written without a lock";
  // yearly: 3 -> locked until 1 January three years on (plus a day).
  EXPECT_GT(*info->retain_until, now + days(2 * 365));
  auto wal = storage::ListAll(*plain, repo::WalPrefix("main") + "00000001/");
  ASSERT_FALSE(wal.empty());
  auto wal_info = plain->Stat(wal.front().key);
  ASSERT_TRUE(wal_info && wal_info->retain_until);
  EXPECT_LT(*wal_info->retain_until, now + days(9));  // the 7-day window plus a day
  EXPECT_GT(*wal_info->retain_until, now + days(7));

  // A forced delete of a locked object is refused by the store.
  EXPECT_THROW(plain->DeleteMany({manifest0}), StorageError);
  EXPECT_TRUE(plain->Stat(manifest0).has_value());
  EXPECT_THROW(plain->DeletePrefix(repo::BackupObjectPrefix("main", labels[0])), StorageError);
  EXPECT_TRUE(plain->Stat(manifest0).has_value());

  // expire under a policy that keeps only the newest: the two older ones are due, but locked
  // (they were written under the configured policy).
  const std::vector<std::string> strict = {
      "--retention-daily",       "1",  "--retention-monthly",  "0", "--retention-yearly", "0",
      "--retention-pitr-window", "1s", "--retention-min-full", "1"};
  auto with = [&](std::vector<std::string> args) {
    args.insert(args.begin(), strict.begin(), strict.end());
    return Cli(args);
  };
  RunResult e = with({"expire", "--output", "json"});
  ASSERT_EQ(e.exit_code, 0) << e.err << e.out;
  auto report = nlohmann::json::parse(e.out)["repos"][0];
  EXPECT_TRUE(report["deleted"]["backups"].empty()) << e.out;
  std::string locked = report["deleted"]["locked"].dump();
  EXPECT_NE(locked.find("backup " + labels[0] + " locked until"), std::string::npos) << locked;
  repo::Catalog after(r);
  EXPECT_EQ(after.Backups().size(), 3u);
  RunResult v = with({"verify"});
  EXPECT_EQ(v.exit_code, 0) << v.out << v.err;

  // A longer policy (ten years of yearlies): the kept backups' locks are extended to match,
  // every object of them.
  RunResult longer = Cli({"--retention-yearly", "10", "expire", "--output", "json"});
  ASSERT_EQ(longer.exit_code, 0) << longer.err;
  std::string extended =
      nlohmann::json::parse(longer.out)["repos"][0]["deleted"]["lock_extended"].dump();
  EXPECT_NE(extended.find(labels[2] + " until"), std::string::npos) << longer.out;
  for (const auto& o : storage::ListAll(*plain, repo::BackupObjectPrefix("main", labels[2]))) {
    auto i = plain->Stat(o.key);
    ASSERT_TRUE(i && i->retain_until) << o.key;
    EXPECT_GT(*i->retain_until, now + days(9 * 365)) << o.key;
  }

  auto restored = RestoreAndStart("locked0", {"--set", labels[0], "--target", "immediate"});
  ASSERT_TRUE(restored) << last_restore_output_;
  EXPECT_EQ(Query(*restored, "SELECT count(*) FROM t"), "1");
}

}  // namespace
}  // namespace gravl
