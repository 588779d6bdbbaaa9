#include "repo/retention.h"

#include <algorithm>
#include <map>
#include <set>
#include <tuple>

#include "common/error.h"

namespace gravl::repo {
namespace {

using std::chrono::days;
using std::chrono::floor;
using std::chrono::sys_days;

std::int64_t DayOf(SystemTime t) { return floor<days>(t).time_since_epoch().count(); }

// Calendar buckets (UTC): an index per bucket and the time the bucket `n` later begins.
struct Tier {
  const char* name;
  int count;
  std::int64_t (*bucket)(SystemTime);
  SystemTime (*begin)(std::int64_t bucket);
};

std::int64_t DayBucket(SystemTime t) { return DayOf(t); }
SystemTime DayBegin(std::int64_t b) { return sys_days(days(b)); }
// ISO weeks start on Monday; 1970-01-01 was a Thursday.
std::int64_t WeekBucket(SystemTime t) {
  std::int64_t d = DayOf(t) + 3;
  return d >= 0 ? d / 7 : (d - 6) / 7;
}
SystemTime WeekBegin(std::int64_t b) { return sys_days(days(b * 7 - 3)); }
std::int64_t MonthBucket(SystemTime t) {
  std::chrono::year_month_day ymd{floor<days>(t)};
  return static_cast<std::int64_t>(static_cast<int>(ymd.year())) * 12 +
         static_cast<unsigned>(ymd.month()) - 1;
}
SystemTime MonthBegin(std::int64_t b) {
  std::int64_t y = b >= 0 ? b / 12 : (b - 11) / 12;
  auto m = static_cast<unsigned>(b - y * 12 + 1);
  return sys_days(std::chrono::year(static_cast<int>(y)) / std::chrono::month(m) / 1);
}
std::int64_t YearBucket(SystemTime t) {
  return static_cast<int>(std::chrono::year_month_day{floor<days>(t)}.year());
}
SystemTime YearBegin(std::int64_t b) {
  return sys_days(std::chrono::year(static_cast<int>(b)) / 1 / 1);
}

std::vector<Tier> TiersOf(const TierCounts& c) {
  return {{"daily", c.daily, DayBucket, DayBegin},
          {"weekly", c.weekly, WeekBucket, WeekBegin},
          {"monthly", c.monthly, MonthBucket, MonthBegin},
          {"yearly", c.yearly, YearBucket, YearBegin}};
}

struct Working {
  const BackupFacts* facts;
  BackupDecision decision;
  bool foreseeable = true;  // every reason so far has an end date
  bool any_end = false;     // some reason has one
  SystemTime latest_end{};
};

void Keep(Working& w, const std::string& reason, std::optional<SystemTime> until) {
  if (std::find(w.decision.reasons.begin(), w.decision.reasons.end(), reason) ==
      w.decision.reasons.end()) {
    w.decision.reasons.push_back(reason);
  }
  w.decision.keep = true;
  if (!until) {
    w.foreseeable = false;
  } else {
    w.latest_end = std::max(w.latest_end, *until);
    w.any_end = true;
  }
}

// The newest backup of each of the last `tier.count` buckets (the current one included).
void ApplyTier(const Tier& tier, const std::vector<Working*>& newest_first, SystemTime now) {
  if (tier.count <= 0) return;
  std::int64_t current = tier.bucket(now);
  std::set<std::int64_t> seen;
  for (Working* w : newest_first) {
    std::int64_t b = tier.bucket(w->facts->stop_time);
    if (b <= current - tier.count || b > current) continue;
    if (!seen.insert(b).second) continue;
    Keep(*w, tier.name, tier.begin(b + tier.count));
  }
}

std::uint64_t SegNo(Lsn lsn, std::uint64_t segment_size) { return lsn.value / segment_size; }

}  // namespace

SystemTime LongestTierEnd(const TierCounts& tiers, SystemTime now) {
  SystemTime end = now;
  for (const auto& tier : TiersOf(tiers)) {
    if (tier.count > 0) end = std::max(end, tier.begin(tier.bucket(now) + tier.count));
  }
  return end;
}

bool RetentionPlan::KeepsSegment(TimelineId timeline, std::uint64_t segno) const {
  if (keep_all_wal || segno >= wal_all_from) return true;
  for (const auto& r : wal_ranges) {
    if (r.timeline == timeline && segno >= r.first && segno <= r.last) return true;
  }
  return false;
}

const BackupDecision* RetentionPlan::Find(const std::string& label) const {
  for (const auto& b : backups) {
    if (b.label == label) return &b;
  }
  return nullptr;
}

RetentionPlan PlanRetention(const std::vector<BackupFacts>& backups, const RetentionPolicy& policy,
                            SystemTime now, std::uint64_t segment_size) {
  RetentionPlan plan;
  plan.now = now;
  std::vector<Working> work;
  work.reserve(backups.size());
  for (const auto& b : backups) {
    Working w{&b, BackupDecision{b.label, false, {}, std::nullopt, std::nullopt, ""}};
    work.push_back(std::move(w));
  }
  std::vector<Working*> full, logical;  // valid, not in the future; newest first below
  for (auto& w : work) {
    const BackupFacts& b = *w.facts;
    for (const auto& pin : b.pins) {
      if (pin.Active(now)) Keep(w, "pinned", pin.until);
    }
    if (!b.ok) {
      Keep(w, "damaged", std::nullopt);
      continue;
    }
    if (b.stop_time > now) {
      Keep(w, "future", std::nullopt);
      plan.warnings.push_back("backup " + b.label + " is dated " + FormatIso8601(b.stop_time) +
                              ", after now (" + FormatIso8601(now) +
                              "): kept; check the clocks of the hosts writing backups");
      continue;
    }
    (b.full ? full : logical).push_back(&w);
  }
  auto newest_first = [](std::vector<Working*>& v) {
    // Manifests record times to the second: two backups stopped in one second are ordered by
    // label (their start time), so the later one is the newest.
    std::sort(v.begin(), v.end(), [](const Working* a, const Working* b) {
      return std::tie(a->facts->stop_time, a->facts->label) >
             std::tie(b->facts->stop_time, b->facts->label);
    });
  };
  newest_first(full);
  newest_first(logical);

  // Tiers; and the longest tier each backup can still enter (the newest in its bucket of a
  // tier whose window holds it, if nothing newer arrives in that bucket).
  for (const auto& tier : TiersOf(policy.full)) ApplyTier(tier, full, now);
  if (policy.logical.any()) {
    for (const auto& tier : TiersOf(policy.logical)) ApplyTier(tier, logical, now);
  } else {
    for (Working* w : logical) Keep(*w, "logical", std::nullopt);
  }
  for (auto* group : {&full, &logical}) {
    for (Working* w : *group) {
      for (const auto& r : w->decision.reasons) {
        if (r == "daily" || r == "weekly" || r == "monthly" || r == "yearly") {
          w->decision.highest_tier = r;  // reasons are added in tier order
        }
      }
    }
  }

  // The PITR window and its anchor.
  const SystemTime window_begin = policy.pitr_window.count() > 0 ? now - policy.pitr_window : now;
  Working* anchor = nullptr;
  for (Working* w : full) {
    if (w->facts->stop_time <= window_begin) {
      anchor = w;
      break;
    }
  }
  if (anchor == nullptr && !full.empty()) anchor = full.back();  // younger than the window
  if (anchor != nullptr) {
    plan.anchor = anchor->facts->label;
    plan.window_start = std::max(window_begin, anchor->facts->stop_time);
    plan.keep_all_wal = false;
    plan.wal_all_from = SegNo(anchor->facts->start_lsn, segment_size);
    for (std::size_t i = 0; i < full.size(); ++i) {
      Working* w = full[i];
      // Needed until a newer backup is consistent at the window's start: the next newer
      // one's stop time plus the window (the newest ones: not foreseeable).
      std::optional<SystemTime> until;
      if (i > 0) until = full[i - 1]->facts->stop_time + policy.pitr_window;
      Keep(*w, "pitr", until);
      if (w == anchor) break;  // full is newest first: the anchor and everything after it
    }
    if (anchor->facts->stop_time > window_begin && policy.pitr_window.count() > 0) {
      plan.warnings.push_back("the PITR window starts at " + FormatIso8601(*plan.window_start) +
                              " (the oldest valid full backup, " + anchor->facts->label +
                              "), later than the " + FormatDuration(policy.pitr_window) +
                              " asked for");
    }
  }

  // min_full: the newest valid full backups, until there are enough.
  int kept_full = 0;
  for (Working* w : full) kept_full += w->decision.keep ? 1 : 0;
  for (Working* w : full) {
    if (kept_full >= policy.min_full) break;
    if (!w->decision.keep) {
      Keep(*w, "min_full", std::nullopt);
      ++kept_full;
    }
  }
  // Refusal: a backup from before the window's start exists, but none of them is usable.
  bool valid_before = anchor != nullptr && anchor->facts->stop_time <= window_begin;
  if (!valid_before && policy.pitr_window.count() > 0) {
    for (const auto& w : work) {
      const BackupFacts& b = *w.facts;
      if (b.full && !b.ok && b.start_time != SystemTime{} && b.start_time <= window_begin) {
        plan.refusal = "backup " + b.label +
                       " is damaged and no other full backup is consistent at the start of the "
                       "PITR window (" +
                       FormatIso8601(window_begin) +
                       "): expiring now would leave the window unrestorable. Repair or remove "
                       "the damaged backup, or take a new backup and wait for the window";
        break;
      }
    }
  }

  // WAL ranges of the backups kept outside the window.
  for (auto& w : work) {
    const BackupFacts& b = *w.facts;
    if (!w.decision.keep || !b.full || !b.ok || plan.keep_all_wal) continue;
    std::uint64_t first = SegNo(b.start_lsn, segment_size);
    if (first >= plan.wal_all_from) continue;
    std::uint64_t last = SegNo(b.stop_lsn, segment_size);
    plan.wal_ranges.push_back({b.timeline, first, last, b.label});
  }

  for (auto& w : work) {
    if (!plan.refusal.empty() && !w.decision.keep) Keep(w, "window", std::nullopt);
    if (w.decision.keep && w.foreseeable) w.decision.expires = w.latest_end;
    if (w.decision.keep && w.any_end) w.decision.known_until = w.latest_end;
    plan.backups.push_back(std::move(w.decision));
  }
  return plan;
}

}  // namespace gravl::repo
