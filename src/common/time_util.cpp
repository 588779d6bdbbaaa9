#include "common/time_util.h"

#include <cstdio>
#include <ctime>
#include <regex>

#include "common/error.h"

namespace gravl {
namespace {
std::tm ToTm(SystemTime t) {
  std::time_t tt = std::chrono::system_clock::to_time_t(t);
  std::tm tm{};
  gmtime_r(&tt, &tm);
  return tm;
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
  static const std::regex kRe(
      R"(^(\d{4})-(\d{2})-(\d{2})[T ](\d{2}):(\d{2}):(\d{2})(\.(\d{1,6}))?\s*(Z|UTC|([+-])(\d{2}):?(\d{2})?)?$)");
  std::smatch m;
  if (!std::regex_match(text, m, kRe)) {
    throw UsageError("cannot parse time '" + text +
                     "': use YYYY-MM-DD HH:MM:SS[.ffffff][+HH:MM|Z], e.g. 2026-03-04 02:00:00Z");
  }
  std::tm tm{};
  tm.tm_year = std::stoi(m[1]) - 1900;
  tm.tm_mon = std::stoi(m[2]) - 1;
  tm.tm_mday = std::stoi(m[3]);
  tm.tm_hour = std::stoi(m[4]);
  tm.tm_min = std::stoi(m[5]);
  tm.tm_sec = std::stoi(m[6]);
  std::time_t base = timegm(&tm);
  auto t = std::chrono::system_clock::from_time_t(base);
  if (m[8].matched) {
    std::string frac = m[8].str();
    frac.resize(6, '0');
    t += std::chrono::microseconds(std::stoi(frac));
  }
  if (m[10].matched) {
    int minutes = std::stoi(m[11]) * 60 + (m[12].matched ? std::stoi(m[12]) : 0);
    if (m[10] == "+") minutes = -minutes;
    t += std::chrono::minutes(minutes);
  }
  return t;
}

}  // namespace gravl
