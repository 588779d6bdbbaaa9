#include "common/time_util.h"

#include <charconv>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <fstream>
#include <mutex>
#include <optional>
#include <regex>
#include <set>

#include "common/error.h"

namespace gravl {
namespace {
std::tm ToTm(SystemTime t) {
  std::time_t tt = std::chrono::system_clock::to_time_t(t);
  std::tm tm{};
  gmtime_r(&tt, &tm);
  return tm;
}

constexpr const char* kForms =
    "use YYYY-MM-DD HH:MM:SS[.ffffff] and a zone: Z, +HH:MM, -HH:MM or a name such as "
    "Europe/Berlin, e.g. '2026-03-04 02:00:00+00'";

// The date and time of day, range-checked; the rest of the text (the zone) in `zone`.
struct Wall {
  std::tm tm{};
  std::chrono::microseconds fraction{0};
  std::string zone;
};

bool IsLeap(int year) { return (year % 4 == 0 && year % 100 != 0) || year % 400 == 0; }

Wall ParseWall(const std::string& text) {
  static const std::regex kRe(
      R"(^(\d{4})-(\d{2})-(\d{2})[T ](\d{2}):(\d{2}):(\d{2})(\.(\d{1,9}))?(.*)$)");
  std::smatch m;
  if (!std::regex_match(text, m, kRe)) {
    throw UsageError("cannot parse time '" + text + "': " + kForms);
  }
  int year = std::stoi(m[1]), month = std::stoi(m[2]), day = std::stoi(m[3]);
  int hour = std::stoi(m[4]), minute = std::stoi(m[5]), second = std::stoi(m[6]);
  auto bad = [&](const std::string& field) {
    throw UsageError("time '" + text + "' is not a real time: " + field +
                     "; nothing is normalised (" + kForms + ")");
  };
  static constexpr int kDays[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  if (year < 1000) bad("year " + std::to_string(year) + " is out of range");
  if (month < 1 || month > 12) bad("month " + m[2].str() + " is not 01-12");
  int days = kDays[month - 1] + (month == 2 && IsLeap(year) ? 1 : 0);
  if (day < 1 || day > days) {
    bad("day " + m[3].str() + " is not 01-" + std::to_string(days) + " in " + m[1].str() + "-" +
        m[2].str());
  }
  if (hour > 23) bad("hour " + m[4].str() + " is not 00-23");
  if (minute > 59) bad("minute " + m[5].str() + " is not 00-59");
  if (second > 59) bad("second " + m[6].str() + " is not 00-59");
  Wall w;
  w.tm.tm_year = year - 1900;
  w.tm.tm_mon = month - 1;
  w.tm.tm_mday = day;
  w.tm.tm_hour = hour;
  w.tm.tm_min = minute;
  w.tm.tm_sec = second;
  if (m[8].matched) {
    std::string frac = m[8].str();
    frac.resize(6, '0');  // microseconds, as PostgreSQL keeps them; finer digits dropped
    w.fraction = std::chrono::microseconds(std::stoi(frac));
  }
  w.zone = m[9].str();
  return w;
}

// "Z", "UTC", "+HH", "+HH:MM", "+HHMM" (or '-'), optionally after spaces; the offset east of
// UTC. nullopt when `zone` is none of these.
std::optional<std::chrono::minutes> ParseOffset(const std::string& text, std::string zone) {
  while (!zone.empty() && zone.front() == ' ') zone.erase(0, 1);
  if (zone == "Z" || zone == "UTC" || zone == "z") return std::chrono::minutes(0);
  static const std::regex kRe(R"(^([+-])(\d{2})(:?(\d{2}))?$)");
  std::smatch m;
  if (!std::regex_match(zone, m, kRe)) return std::nullopt;
  int hours = std::stoi(m[2]);
  int minutes = m[4].matched ? std::stoi(m[4]) : 0;
  if (hours > 15 || minutes > 59) {
    throw UsageError("time '" + text + "' has the offset " + zone +
                     ", which is not a real UTC offset (at most +-15:59)");
  }
  int total = hours * 60 + minutes;
  return std::chrono::minutes(m[1] == "-" ? -total : total);
}

SystemTime FromUtcWall(const Wall& w) {
  std::tm tm = w.tm;
  return std::chrono::system_clock::from_time_t(timegm(&tm)) + w.fraction;
}

std::string ZoneDir() {
  const char* dir = std::getenv("TZDIR");
  return dir != nullptr && *dir != '\0' ? dir : "/usr/share/zoneinfo";
}

// The instants at which the wall-clock time `w` occurs in the IANA zone `zone` (none in a
// daylight-saving gap, two in a repeated hour). The C library's conversion needs the process
// time zone: it is switched under a lock and restored.
std::set<std::time_t> LocalInstants(const Wall& w, const std::string& zone) {
  static std::mutex mutex;
  std::lock_guard lock(mutex);
  const char* old = std::getenv("TZ");
  std::optional<std::string> saved = old ? std::optional<std::string>(old) : std::nullopt;
  ::setenv("TZ", (":" + zone).c_str(), 1);
  ::tzset();
  std::set<std::time_t> out;
  for (int dst : {0, 1}) {
    std::tm tm = w.tm;
    tm.tm_isdst = dst;
    std::time_t t = std::mktime(&tm);
    std::tm back{};
    if (t == static_cast<std::time_t>(-1) || localtime_r(&t, &back) == nullptr) continue;
    if (back.tm_year == w.tm.tm_year && back.tm_mon == w.tm.tm_mon &&
        back.tm_mday == w.tm.tm_mday && back.tm_hour == w.tm.tm_hour &&
        back.tm_min == w.tm.tm_min && back.tm_sec == w.tm.tm_sec) {
      out.insert(t);
    }
  }
  if (saved) {
    ::setenv("TZ", saved->c_str(), 1);
  } else {
    ::unsetenv("TZ");
  }
  ::tzset();
  return out;
}

}  // namespace

std::string FormatIso8601(SystemTime t) {
  std::tm tm = ToTm(t);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

std::string FormatPostgres(SystemTime t) {
  std::tm tm = ToTm(t);
  char buf[40];
  std::strftime(buf, sizeof buf, "%Y-%m-%d %H:%M:%S", &tm);
  auto micros =
      std::chrono::duration_cast<std::chrono::microseconds>(t.time_since_epoch()).count() % 1000000;
  if (micros < 0) micros += 1000000;
  char out[64];
  std::snprintf(out, sizeof out, "%s.%06lld+00", buf, static_cast<long long>(micros));
  return out;
}

std::string FormatCompact(SystemTime t) {
  std::tm tm = ToTm(t);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y%m%dT%H%M%SZ", &tm);
  return buf;
}

SystemTime ParseIso8601(const std::string& text) {
  Wall w = ParseWall(text);
  std::string zone = w.zone;
  while (!zone.empty() && zone.front() == ' ') zone.erase(0, 1);
  if (zone.empty()) return FromUtcWall(w);
  auto offset = ParseOffset(text, zone);
  if (!offset) throw UsageError("cannot parse the zone of time '" + text + "': " + kForms);
  return FromUtcWall(w) - *offset;
}

SystemTime ParseTargetTime(const std::string& text) {
  Wall w = ParseWall(text);
  std::string zone = w.zone;
  while (!zone.empty() && zone.front() == ' ') zone.erase(0, 1);
  if (zone.empty()) {
    throw UsageError("time '" + text +
                     "' has no time zone, and a restore must not guess one (the server's "
                     "TimeZone setting may differ from this machine's): add Z for UTC, an "
                     "offset such as +02:00, or a zone name such as ' Europe/Berlin'");
  }
  if (auto offset = ParseOffset(text, zone)) return FromUtcWall(w) - *offset;
  // An IANA zone name: letters, digits, '_', '+', '-' in '/'-separated parts.
  static const std::regex kName(R"(^[A-Za-z][A-Za-z0-9_+\-]*(/[A-Za-z0-9_+\-]+)*$)");
  if (!std::regex_match(zone, kName) || zone.size() > 64) {
    throw UsageError("cannot parse the zone '" + zone.substr(0, 64) + "' of time '" +
                     text.substr(0, 100) + "': " + kForms);
  }
  std::ifstream tzfile(ZoneDir() + "/" + zone, std::ios::binary);
  char magic[4] = {};
  if (!tzfile.read(magic, 4) || std::string(magic, 4) != "TZif") {
    throw UsageError("time zone '" + zone + "' is not known on this machine (no " + ZoneDir() +
                     "/" + zone +
                     "): use a name from tzdata such as Europe/Berlin, or an offset "
                     "such as +02:00");
  }
  std::set<std::time_t> instants = LocalInstants(w, zone);
  if (instants.empty()) {
    throw UsageError("time '" + text + "' does not exist in " + zone +
                     " (clocks skip it for daylight-saving time): give the UTC offset instead");
  }
  if (instants.size() > 1) {
    throw UsageError("time '" + text + "' occurs twice in " + zone +
                     " (clocks repeat it when daylight-saving time ends): give the UTC offset "
                     "instead, e.g. " +
                     FormatIso8601(std::chrono::system_clock::from_time_t(*instants.begin())) +
                     " or " +
                     FormatIso8601(std::chrono::system_clock::from_time_t(*instants.rbegin())));
  }
  return std::chrono::system_clock::from_time_t(*instants.begin()) + w.fraction;
}

std::chrono::seconds ParseDuration(const std::string& text, const std::string& what) {
  auto bad = [&] {
    return ConfigError(what + ": '" + text +
                       "' is not a duration; write a number with a unit: 7d, 36h, 90m, 3600s "
                       "or 2w");
  };
  if (text.empty()) throw bad();
  std::uint64_t n = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), n);
  if (ec != std::errc() || end == text.data() || n > 100ull * 365 * 86400) throw bad();
  std::string unit(end, text.data() + text.size());
  std::uint64_t scale = 0;
  if (unit.empty() || unit == "s") scale = 1;
  if (unit == "m") scale = 60;
  if (unit == "h") scale = 3600;
  if (unit == "d") scale = 86400;
  if (unit == "w") scale = 7 * 86400;
  if (scale == 0) throw bad();
  return std::chrono::seconds(static_cast<std::int64_t>(n * scale));
}

std::string FormatDuration(std::chrono::seconds d) {
  std::int64_t s = d.count();
  if (s > 0 && s % 86400 == 0) return std::to_string(s / 86400) + "d";
  if (s > 0 && s % 3600 == 0) return std::to_string(s / 3600) + "h";
  if (s > 0 && s % 60 == 0) return std::to_string(s / 60) + "m";
  return std::to_string(s) + "s";
}

}  // namespace gravl
