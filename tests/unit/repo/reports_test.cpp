// Run reports: stored write-once and checksummed, read back typed; drill reports of earlier
// versions still read; damaged ones are an IntegrityError naming the object.

#include "repo/reports.h"

#include <gtest/gtest.h>

#include "common/error.h"
#include "repo/layout.h"
#include "repo/metadata.h"
#include "storage/memory.h"
#include "support/manifest_util.h"

namespace gravl::repo {
namespace {

TEST(Reports, RoundTripAndOrder) {
  auto repo = test::NewTestRepository(storage::MakeMemoryStorage(), 16 << 20);
  RunReport a;
  a.kind = kBackupReports;
  a.subject = "full";
  a.label = "20261130T020000Z-full";
  a.started = ParseIso8601("2026-11-30T02:00:00Z");
  a.finished = a.started + std::chrono::milliseconds(61500);
  a.ok = false;
  a.exit_code = 8;
  a.error_class = "storage";
  a.error = "S3 unreachable";
  a.bytes = 12345;
  a.phases = {{"upload", 60.5}};
  a.details = {{"files", 3}};
  std::string key_a = WriteReport(*repo, a);
  EXPECT_EQ(key_a.rfind("main/reports/backups/20261130T020000Z-", 0), 0u) << key_a;
  RunReport b = a;
  b.started = ParseIso8601("2026-11-30T03:00:00Z");
  b.finished = b.started;
  b.ok = true;
  WriteReport(*repo, b);

  auto keys = ListReportKeys(repo->storage(), "main", kBackupReports);
  ASSERT_EQ(keys.size(), 2u);
  EXPECT_EQ(keys[0], key_a);  // oldest first
  RunReport r = ReadReport(repo->storage(), key_a);
  EXPECT_EQ(r.repo, "mem");
  EXPECT_EQ(r.stanza, "main");
  EXPECT_EQ(r.subject, "full");
  EXPECT_EQ(r.label, a.label);
  EXPECT_FALSE(r.ok);
  EXPECT_EQ(r.exit_code, 8);
  EXPECT_EQ(r.error_class, "storage");
  EXPECT_EQ(r.bytes, 12345u);
  EXPECT_DOUBLE_EQ(r.seconds(), 61.5);  // sub-second durations survive
  EXPECT_DOUBLE_EQ(r.phases.at("upload"), 60.5);
  EXPECT_EQ(r.details["files"], 3);
}

TEST(Reports, ReadsDrillReportsOfEarlierVersions) {
  auto repo = test::NewTestRepository(storage::MakeMemoryStorage(), 16 << 20);
  std::string key = ReportsPrefix("main", kDrillReports) + "20261101T030000Z.json";
  WriteMetadata(repo->storage(), key,
                {{"kind", "restore-test"},
                 {"label", "20261101T020000Z-full"},
                 {"started_at", "2026-11-01T03:00:00Z"},
                 {"finished_at", "2026-11-01T03:02:00Z"},
                 {"ok", true},
                 {"timings", {{"download_s", 10.0}, {"recovery_s", 20.0}}},
                 {"rto_s", 30.0}});
  RunReport r = ReadReport(repo->storage(), key);
  EXPECT_TRUE(r.ok);
  EXPECT_EQ(r.kind, kDrillReports);
  EXPECT_DOUBLE_EQ(r.phases.at("download"), 10.0);
  EXPECT_DOUBLE_EQ(r.phases.at("rto"), 30.0);
  EXPECT_DOUBLE_EQ(r.seconds(), 120.0);
}

TEST(Reports, DamagedReportIsAnIntegrityErrorNamingIt) {
  auto repo = test::NewTestRepository(storage::MakeMemoryStorage(), 16 << 20);
  std::string key = ReportsPrefix("main", kVerifyReports) + "x.json";
  WriteMetadata(repo->storage(), key, {{"ok", "yes"}, {"started_at", "2026-01-01T00:00:00Z"}});
  try {
    ReadReport(repo->storage(), key);
    FAIL() << "a report with ok: \"yes\" and no finished_at was accepted";
  } catch (const IntegrityError& e) {
    EXPECT_NE(std::string(e.what()).find(key), std::string::npos) << e.what();
  }
  storage::PutBytes(repo->storage(), key + "2", AsBytes("{\"ok\": true}"));
  EXPECT_THROW(ReadReport(repo->storage(), key + "2"), IntegrityError);  // no checksum
}

}  // namespace
}  // namespace gravl::repo

namespace gravl::repo {
namespace {

TEST(Reports, RunsWithinOneSecondKeepTheirOrder) {
  auto repo = test::NewTestRepository(storage::MakeMemoryStorage(), 16 << 20);
  RunReport late;
  late.kind = kBackupReports;
  late.started = ParseIso8601("2026-11-30T02:00:00Z") + std::chrono::milliseconds(900);
  late.finished = late.started + std::chrono::milliseconds(50);
  RunReport early = late;
  early.started = ParseIso8601("2026-11-30T02:00:00Z") + std::chrono::milliseconds(100);
  early.finished = early.started + std::chrono::milliseconds(700);
  std::string late_key = WriteReport(*repo, late);
  std::string early_key = WriteReport(*repo, early);
  auto keys = ListReportKeys(repo->storage(), "main", kBackupReports);
  ASSERT_EQ(keys, (std::vector<std::string>{early_key, late_key}));
  RunReport back = ReadReport(repo->storage(), late_key);
  EXPECT_EQ(back.finished, late.finished);  // to the millisecond, not the second
  EXPECT_GT(back.finished, ReadReport(repo->storage(), early_key).finished);
}

}  // namespace
}  // namespace gravl::repo
