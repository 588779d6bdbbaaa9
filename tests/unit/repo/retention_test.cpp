// The retention planner on generated calendars: which backups a policy keeps, why, until when,
// and which WAL; with gaps, leap years, clock skew, pins, damaged and logical backups.

#include "repo/retention.h"

#include <gtest/gtest.h>

#include <set>

#include "common/error.h"
#include "repo/object_lock.h"

namespace gravl::repo {
namespace {

constexpr std::uint64_t kSeg = 16 << 20;
using std::chrono::days;
using std::chrono::hours;

SystemTime At(const std::string& iso) { return ParseIso8601(iso); }
SystemTime Day(int y, unsigned m, unsigned d, int hour = 1) {  // UTC
  return std::chrono::sys_days(std::chrono::year(y) / std::chrono::month(m) / std::chrono::day(d)) +
         hours(hour);
}
std::string DayLabel(SystemTime t) { return FormatIso8601(t).substr(0, 10); }

// One full backup per day at 01:00 from `first` to `last` (inclusive), except `skip`; each
// spans one segment of WAL (start segment 2n, stop segment 2n+1) on timeline 1.
std::vector<BackupFacts> Daily(SystemTime first, SystemTime last,
                               const std::set<std::string>& skip = {}) {
  std::vector<BackupFacts> v;
  std::uint64_t n = 0;
  for (SystemTime t = first; t <= last; t += days(1), ++n) {
    if (skip.count(DayLabel(t))) continue;
    BackupFacts b;
    b.label = DayLabel(t);
    b.start_time = t - std::chrono::minutes(10);
    b.stop_time = t;
    b.start_lsn = Lsn{2 * n * kSeg + 100};
    b.stop_lsn = Lsn{(2 * n + 1) * kSeg + 100};
    b.timeline = 1;
    b.stored_size = 1000;
    v.push_back(b);
  }
  return v;
}

std::set<std::string> Kept(const RetentionPlan& plan) {
  std::set<std::string> s;
  for (const auto& b : plan.backups) {
    if (b.keep) s.insert(b.label);
  }
  return s;
}

std::vector<std::string> Reasons(const RetentionPlan& plan, const std::string& label) {
  const BackupDecision* d = plan.Find(label);
  return d ? d->reasons : std::vector<std::string>{"(no such backup)"};
}

RetentionPolicy Seed() {  // the strategy's: 30 dailies, 12 monthlies, 7 yearlies, 7-day window
  RetentionPolicy p;
  p.full = {30, 0, 12, 7};
  p.pitr_window = days(7);
  p.min_full = 2;
  return p;
}

TEST(Retention, EightYearsOfDailiesWithGapsKeepExactlyTheTiers) {
  SystemTime now = At("2026-11-30T12:00:00Z");
  auto backups = Daily(Day(2018, 11, 30), Day(2026, 11, 30),
                       {"2025-12-31", "2026-11-10", "2026-11-11", "2026-11-12", "2023-12-31",
                        "2023-12-30", "2026-02-28"});
  RetentionPlan plan = PlanRetention(backups, Seed(), now, kSeg);
  std::set<std::string> expected;
  // daily: 2026-11-01 .. 2026-11-30 without the three missing days.
  for (unsigned d = 1; d <= 30; ++d) {
    if (d >= 10 && d <= 12) continue;
    expected.insert(DayLabel(Day(2026, 11, d)));
  }
  // monthly: the newest of each month from 2025-12 to 2026-10 (2026-11 is daily already);
  // December 2025 lost its 31st, February 2026 its 28th.
  for (std::string m :
       {"2025-12-30", "2026-01-31", "2026-02-27", "2026-03-31", "2026-04-30", "2026-05-31",
        "2026-06-30", "2026-07-31", "2026-08-31", "2026-09-30", "2026-10-31"}) {
    expected.insert(m);
  }
  // yearly: the newest of each year 2020 .. 2026 (2025's is the monthly one above; 2023 lost
  // its last two days).
  for (std::string y : {"2020-12-31", "2021-12-31", "2022-12-31", "2023-12-29", "2024-12-31"}) {
    expected.insert(y);
  }
  EXPECT_EQ(Kept(plan), expected);
  EXPECT_EQ(plan.anchor, "2026-11-23");  // the newest consistent by 2026-11-23T12:00
  EXPECT_EQ(*plan.window_start, At("2026-11-23T12:00:00Z"));
  EXPECT_TRUE(plan.refusal.empty());
  EXPECT_TRUE(plan.warnings.empty());

  EXPECT_EQ(Reasons(plan, "2026-11-25"), (std::vector<std::string>{"daily", "pitr"}));
  EXPECT_EQ(Reasons(plan, "2025-12-30"), (std::vector<std::string>{"monthly", "yearly"}));
  EXPECT_EQ(Reasons(plan, "2020-12-31"), (std::vector<std::string>{"yearly"}));
  EXPECT_EQ(plan.Find("2025-12-30")->highest_tier, "yearly");
  EXPECT_EQ(plan.Find("2026-10-31")->highest_tier, "monthly");
  // Expiry: a daily ages out 30 days after its day, a monthly 12 months after its month, a
  // yearly 7 years after its year.
  EXPECT_EQ(plan.Find("2026-11-01")->expires, Day(2026, 12, 1, 0));
  EXPECT_EQ(plan.Find("2026-10-31")->expires, Day(2027, 10, 1, 0));
  EXPECT_EQ(plan.Find("2020-12-31")->expires, Day(2027, 1, 1, 0));
  EXPECT_EQ(plan.Find("2025-12-30")->expires, Day(2032, 1, 1, 0));
  // The window's newest backups have no foreseeable end; the anchor ends when the next one
  // is a window old.
  EXPECT_FALSE(plan.Find("2026-11-30")->expires.has_value());
  // ... but Object Lock can hold it at least as long as its yearly tier does.
  EXPECT_EQ(plan.Find("2026-11-30")->known_until, Day(2033, 1, 1, 0));
  EXPECT_EQ(plan.Find("2026-11-23")->expires, Day(2026, 12, 23, 0));  // daily outlasts pitr
  EXPECT_EQ(plan.Find("2026-11-24")->expires, Day(2026, 12, 24, 0));
  EXPECT_FALSE(plan.Find("2026-10-30")->keep);
  EXPECT_FALSE(plan.Find("2019-12-31")->keep);  // yearly window is 2020 .. 2026

  // WAL: everything from the anchor's start segment; below it only each kept backup's range.
  std::uint64_t anchor_n =
      static_cast<std::uint64_t>((Day(2026, 11, 23) - Day(2018, 11, 30)) / days(1));
  EXPECT_FALSE(plan.keep_all_wal);
  EXPECT_EQ(plan.wal_all_from, 2 * anchor_n);
  EXPECT_TRUE(plan.KeepsSegment(1, 2 * anchor_n));
  EXPECT_TRUE(plan.KeepsSegment(7, 2 * anchor_n + 5));        // any timeline after the anchor
  EXPECT_TRUE(plan.KeepsSegment(1, 2 * anchor_n - 1));        // 2026-11-22's stop: a daily's range
  EXPECT_FALSE(plan.KeepsSegment(1, 2 * anchor_n - 2 * 24));  // 2026-10-30's, expired
  EXPECT_FALSE(plan.KeepsSegment(1, 2 * anchor_n - 2 * 24 + 1));
  std::uint64_t y2020 =
      static_cast<std::uint64_t>((Day(2020, 12, 31) - Day(2018, 11, 30)) / days(1));
  EXPECT_TRUE(plan.KeepsSegment(1, 2 * y2020));
  EXPECT_TRUE(plan.KeepsSegment(1, 2 * y2020 + 1));
  EXPECT_FALSE(plan.KeepsSegment(1, 2 * y2020 + 2));
  EXPECT_FALSE(plan.KeepsSegment(1, 2 * y2020 - 1));
  EXPECT_FALSE(plan.KeepsSegment(2, 2 * y2020));  // the range is the backup's timeline only
  EXPECT_EQ(plan.wal_ranges.size(), expected.size() - 8);  // all but the anchor and after
}

TEST(Retention, LeapYearsAndWeeksAreCalendarBuckets) {
  // 2024-02-29 is the newest of February 2024; ISO weeks begin on Monday.
  SystemTime now = At("2024-03-15T12:00:00Z");  // a Friday
  RetentionPolicy p;
  p.full = {0, 2, 2, 0};
  p.min_full = 0;
  RetentionPlan plan = PlanRetention(Daily(Day(2024, 1, 1), Day(2024, 3, 15)), p, now, kSeg);
  EXPECT_EQ(Kept(plan), (std::set<std::string>{"2024-02-29", "2024-03-10", "2024-03-15"}));
  EXPECT_EQ(Reasons(plan, "2024-02-29"), (std::vector<std::string>{"monthly"}));
  // 2024-03-10 is a Sunday: the newest of the week of March 4; March 15's week began on 11.
  EXPECT_EQ(Reasons(plan, "2024-03-10"), (std::vector<std::string>{"weekly"}));
  EXPECT_EQ(plan.Find("2024-03-10")->expires, Day(2024, 3, 18, 0));
  EXPECT_EQ(Reasons(plan, "2024-03-15"), (std::vector<std::string>{"weekly", "monthly", "pitr"}));
}

TEST(Retention, MinFullKeepsTheNewestWhenEverythingIsOld) {
  SystemTime now = At("2026-11-30T12:00:00Z");
  RetentionPolicy p;
  p.full = {7, 0, 0, 0};
  p.pitr_window = days(1);
  p.min_full = 3;
  RetentionPlan plan = PlanRetention(Daily(Day(2026, 1, 1), Day(2026, 1, 10)), p, now, kSeg);
  EXPECT_EQ(Kept(plan), (std::set<std::string>{"2026-01-08", "2026-01-09", "2026-01-10"}));
  EXPECT_EQ(Reasons(plan, "2026-01-10"), (std::vector<std::string>{"pitr"}));
  EXPECT_EQ(Reasons(plan, "2026-01-09"), (std::vector<std::string>{"min_full"}));
  EXPECT_FALSE(plan.Find("2026-01-09")->expires.has_value());
}

TEST(Retention, ARepositoryYoungerThanTheWindowKeepsEverythingAndSaysSo) {
  SystemTime now = At("2026-11-30T12:00:00Z");
  RetentionPolicy p;
  p.full = {1, 0, 0, 0};
  p.pitr_window = days(7);
  p.min_full = 1;
  RetentionPlan plan = PlanRetention(Daily(Day(2026, 11, 27), Day(2026, 11, 30)), p, now, kSeg);
  EXPECT_EQ(Kept(plan).size(), 4u);
  EXPECT_EQ(plan.anchor, "2026-11-27");
  EXPECT_EQ(*plan.window_start, Day(2026, 11, 27));
  ASSERT_EQ(plan.warnings.size(), 1u);
  EXPECT_NE(plan.warnings[0].find("later than the 7d asked for"), std::string::npos);
  EXPECT_EQ(plan.wal_all_from, 0u);
}

TEST(Retention, AFutureDatedBackupIsKeptAndReported) {
  SystemTime now = At("2026-11-30T12:00:00Z");
  auto backups = Daily(Day(2026, 11, 1), Day(2026, 11, 30));
  BackupFacts skewed = backups.back();
  skewed.label = "skewed";
  skewed.stop_time = Day(2027, 1, 1);
  backups.push_back(skewed);
  RetentionPolicy p;
  p.full = {2, 0, 0, 0};
  p.min_full = 1;
  RetentionPlan plan = PlanRetention(backups, p, now, kSeg);
  EXPECT_EQ(Kept(plan), (std::set<std::string>{"2026-11-29", "2026-11-30", "skewed"}));
  EXPECT_EQ(Reasons(plan, "skewed"), (std::vector<std::string>{"future"}));
  ASSERT_EQ(plan.warnings.size(), 1u);
  EXPECT_NE(plan.warnings[0].find("skewed"), std::string::npos);
  EXPECT_EQ(plan.anchor, "2026-11-30");  // the skewed one does not anchor the window
}

TEST(Retention, PinsKeepABackupAndItsWalUntilTheirDate) {
  SystemTime now = At("2026-11-30T12:00:00Z");
  auto backups = Daily(Day(2026, 1, 1), Day(2026, 11, 30));
  backups[10].pins.push_back(Pin{backups[10].label, std::nullopt, "legal hold", now, "k1"});
  backups[20].pins.push_back(Pin{backups[20].label, Day(2027, 1, 1, 0), "migration", now, "k2"});
  backups[30].pins.push_back(Pin{backups[30].label, Day(2026, 6, 1), "ended", now, "k3"});
  RetentionPolicy p;
  p.full = {1, 0, 0, 0};
  p.min_full = 1;
  RetentionPlan plan = PlanRetention(backups, p, now, kSeg);
  EXPECT_EQ(Kept(plan), (std::set<std::string>{"2026-01-11", "2026-01-21", "2026-11-30"}));
  EXPECT_EQ(Reasons(plan, "2026-01-11"), (std::vector<std::string>{"pinned"}));
  EXPECT_FALSE(plan.Find("2026-01-11")->expires.has_value());
  EXPECT_EQ(plan.Find("2026-01-21")->expires, Day(2027, 1, 1, 0));
  EXPECT_FALSE(plan.Find("2026-01-31")->keep);  // its pin ended
  EXPECT_TRUE(plan.KeepsSegment(1, 20));
  EXPECT_TRUE(plan.KeepsSegment(1, 21));
  EXPECT_FALSE(plan.KeepsSegment(1, 22));
}

TEST(Retention, DamagedBackupsAreKeptAndOneAtTheWindowsStartRefusesTheWholePlan) {
  SystemTime now = At("2026-11-30T12:00:00Z");
  auto backups = Daily(Day(2026, 11, 1), Day(2026, 11, 30));
  RetentionPolicy p;
  p.full = {3, 0, 0, 0};
  p.pitr_window = days(7);
  p.min_full = 1;
  backups[15].ok = false;  // 2026-11-16: damaged, but 11-23 anchors the window
  RetentionPlan plan = PlanRetention(backups, p, now, kSeg);
  EXPECT_TRUE(plan.refusal.empty());
  EXPECT_EQ(Reasons(plan, "2026-11-16"), (std::vector<std::string>{"damaged"}));
  EXPECT_FALSE(plan.Find("2026-11-15")->keep);

  // Every backup consistent before the window's start is damaged: no anchor there, nothing
  // may be deleted.
  for (std::size_t i = 0; i < 23; ++i) backups[i].ok = false;
  plan = PlanRetention(backups, p, now, kSeg);
  EXPECT_NE(plan.refusal.find("PITR window"), std::string::npos) << plan.refusal;
  for (const auto& b : plan.backups) EXPECT_TRUE(b.keep) << b.label;
}

TEST(Retention, LogicalBackupsHaveTheirOwnTiersOrAreKept) {
  SystemTime now = At("2026-11-30T12:00:00Z");
  auto backups = Daily(Day(2026, 11, 1), Day(2026, 11, 30));
  std::vector<BackupFacts> logical;
  for (const auto& b : backups) {
    BackupFacts l = b;
    l.label = b.label + "-logical";
    l.full = false;
    logical.push_back(l);
  }
  backups.insert(backups.end(), logical.begin(), logical.end());
  RetentionPolicy p;
  p.full = {2, 0, 0, 0};
  p.min_full = 1;
  RetentionPlan plan = PlanRetention(backups, p, now, kSeg);
  EXPECT_EQ(Reasons(plan, "2026-11-01-logical"), (std::vector<std::string>{"logical"}));
  p.logical = {5, 0, 0, 0};
  plan = PlanRetention(backups, p, now, kSeg);
  EXPECT_FALSE(plan.Find("2026-11-01-logical")->keep);
  EXPECT_EQ(Reasons(plan, "2026-11-26-logical"), (std::vector<std::string>{"daily"}));
  EXPECT_FALSE(plan.Find("2026-11-25-logical")->keep);
  EXPECT_FALSE(plan.Find("2026-11-27")->keep);  // full tiers unaffected by logical ones
}

TEST(Retention, BackupsStoppedInOneSecondAreOrderedByLabel) {
  // Manifests keep times to the second: the later label is the newest of the day.
  SystemTime now = At("2026-11-30T12:00:00Z");
  auto backups = Daily(Day(2026, 11, 30), Day(2026, 11, 30));
  BackupFacts later = backups[0];
  later.label = backups[0].label + "-b";
  backups.push_back(later);
  RetentionPolicy p;
  p.full = {1, 0, 0, 0};
  p.min_full = 1;
  RetentionPlan plan = PlanRetention(backups, p, now, kSeg);
  EXPECT_EQ(Reasons(plan, later.label), (std::vector<std::string>{"daily", "pitr"}));
  EXPECT_FALSE(plan.Find(backups[0].label)->keep);
}

TEST(Retention, NoValidFullBackupKeepsAllWal) {
  RetentionPolicy p;
  p.full = {1, 0, 0, 0};
  RetentionPlan plan = PlanRetention({}, p, At("2026-11-30T12:00:00Z"), kSeg);
  EXPECT_TRUE(plan.keep_all_wal);
  EXPECT_TRUE(plan.KeepsSegment(1, 0));
  EXPECT_FALSE(plan.anchor.has_value());
}

TEST(Retention, Durations) {
  EXPECT_EQ(ParseDuration("7d", "x").count(), 7 * 86400);
  EXPECT_EQ(ParseDuration("36h", "x").count(), 36 * 3600);
  EXPECT_EQ(ParseDuration("2w", "x").count(), 14 * 86400);
  EXPECT_EQ(ParseDuration("90m", "x").count(), 5400);
  EXPECT_EQ(ParseDuration("3600", "x").count(), 3600);
  for (std::string bad : {"", "d", "7 d", "-1d", "7y", "1.5d"}) {
    EXPECT_THROW(ParseDuration(bad, "retention.pitr_window"), ConfigError) << bad;
  }
  EXPECT_EQ(FormatDuration(std::chrono::seconds(7 * 86400)), "7d");
  EXPECT_EQ(FormatDuration(std::chrono::seconds(5400)), "90m");
}

}  // namespace
}  // namespace gravl::repo

namespace gravl::repo {
namespace {

TEST(ObjectLock, RetainUntilFollowsTheLongestTierAWriteCanEnter) {
  SystemTime now = At("2026-11-30T12:00:00Z");
  RetentionPolicy p = Seed();  // daily 30, monthly 12, yearly 7, window 7d
  const auto day = std::chrono::hours(24);
  EXPECT_EQ(LongestTierEnd(p.full, now), Day(2033, 1, 1, 0));
  EXPECT_EQ(LockUntil("main", "main/backups/20261130T120000Z-full/files/1", p, now),
            Day(2033, 1, 1, 0) + day);
  EXPECT_EQ(LockUntil("main", "main/wal/00000001/000000010000000000000003-ab.zst", p, now),
            now + days(7) + day);
  EXPECT_FALSE(LockUntil("main", "main/wal/00000002.history-ab", p, now));
  for (std::string k : {"main/stanza.json", "main/locks/backup.lock", "main/pins/x/y.json",
                        "main/reports/restore-tests/a.json", "other/backups/x/files/1"}) {
    EXPECT_FALSE(LockUntil("main", k, p, now)) << k;
  }
  // Logical backups follow the logical tiers; none configured: as long as the WAL.
  EXPECT_EQ(LockUntil("main", "main/backups/20261130T120000Z-logical/dumps/1.dump", p, now),
            now + days(7) + day);
  p.full = {30, 0, 0, 0};
  EXPECT_EQ(LongestTierEnd(p.full, now), Day(2026, 12, 30, 0));
  p.full = {0, 4, 0, 0};
  EXPECT_EQ(LongestTierEnd(p.full, now), Day(2026, 12, 28, 0));  // 4 ISO weeks on, a Monday
}

}  // namespace
}  // namespace gravl::repo
