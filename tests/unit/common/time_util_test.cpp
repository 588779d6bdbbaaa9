// Times: formatting, and parsing that refuses anything that is not a real instant.

#include "common/time_util.h"

#include <gtest/gtest.h>

#include "common/error.h"

namespace gravl {
namespace {

using std::chrono::hours;
using std::chrono::minutes;

std::string MessageOf(const std::string& text, bool target = true) {
  try {
    target ? ParseTargetTime(text) : ParseIso8601(text);
  } catch (const UsageError& e) {
    return e.what();
  }
  return "(accepted)";
}

TEST(Time, ImpossibleFieldsAreRefusedNamingTheField) {
  EXPECT_NE(MessageOf("2026-11-30 15:25:62+00").find("second 62"), std::string::npos);
  EXPECT_NE(MessageOf("2026-13-01 00:00:00Z").find("month 13"), std::string::npos);
  EXPECT_NE(MessageOf("2026-02-30 10:00:00Z").find("day 30 is not 01-28"), std::string::npos);
  EXPECT_NE(MessageOf("2026-02-29 10:00:00Z").find("day 29"), std::string::npos);
  EXPECT_NE(MessageOf("2026-02-28 25:61:61Z").find("hour 25"), std::string::npos);
  EXPECT_NE(MessageOf("2026-02-28 23:61:00Z").find("minute 61"), std::string::npos);
  EXPECT_NE(MessageOf("2026-02-28 23:00:00+99:99").find("offset +99:99"), std::string::npos);
  EXPECT_NE(MessageOf("2026-00-10 23:00:00Z").find("month 00"), std::string::npos);
  EXPECT_NE(MessageOf("2026-04-31 23:00:00Z").find("day 31"), std::string::npos);
  // The same checks for times read from manifests and S3.
  EXPECT_NE(MessageOf("2026-13-01T00:00:00Z", false).find("month 13"), std::string::npos);
  // Leap years.
  EXPECT_EQ(ParseTargetTime("2024-02-29 12:00:00Z"),
            ParseIso8601("2024-03-01T12:00:00Z") - hours(24));
  EXPECT_NE(MessageOf("1900-02-29 12:00:00Z").find("day 29"), std::string::npos);
  EXPECT_EQ(MessageOf("2000-02-29 12:00:00Z"), "(accepted)");
}

TEST(Time, TargetTimesNeedAZone) {
  EXPECT_NE(MessageOf("2026-03-04 02:00:00").find("no time zone"), std::string::npos);
  SystemTime utc = ParseTargetTime("2026-03-04 02:00:00Z");
  EXPECT_EQ(ParseTargetTime("2026-03-04 02:00:00 UTC"), utc);
  EXPECT_EQ(ParseTargetTime("2026-03-04 02:00:00+00"), utc);
  EXPECT_EQ(ParseTargetTime("2026-03-04 04:30:00+02:30"), utc);
  EXPECT_EQ(ParseTargetTime("2026-03-04 04:30:00+0230"), utc);
  EXPECT_EQ(ParseTargetTime("2026-03-03 21:00:00-05"), utc);
  EXPECT_EQ(ParseTargetTime("2026-03-04 02:00:00.25Z") - utc, std::chrono::milliseconds(250));
  EXPECT_EQ(ParseTargetTime("2026-03-04T02:00:00.123456789Z") - utc,
            std::chrono::microseconds(123456));
}

TEST(Time, ZoneNamesFollowTheirDaylightSavingRules) {
  // Berlin: UTC+1 in winter, UTC+2 in summer.
  EXPECT_EQ(ParseTargetTime("2026-01-15 12:00:00 Europe/Berlin"),
            ParseIso8601("2026-01-15T11:00:00Z"));
  EXPECT_EQ(ParseTargetTime("2026-07-15 12:00:00 Europe/Berlin"),
            ParseIso8601("2026-07-15T10:00:00Z"));
  EXPECT_EQ(ParseTargetTime("2026-07-15 12:00:00 America/New_York"),
            ParseIso8601("2026-07-15T16:00:00Z"));
  // 2026-03-29 02:30 does not exist in Berlin; 2026-10-25 02:30 happens twice.
  EXPECT_NE(MessageOf("2026-03-29 02:30:00 Europe/Berlin").find("does not exist"),
            std::string::npos);
  std::string twice = MessageOf("2026-10-25 02:30:00 Europe/Berlin");
  EXPECT_NE(twice.find("occurs twice"), std::string::npos) << twice;
  EXPECT_NE(twice.find("2026-10-25T00:30:00Z"), std::string::npos) << twice;
  EXPECT_NE(twice.find("2026-10-25T01:30:00Z"), std::string::npos) << twice;
  // Unknown or malformed names.
  EXPECT_NE(MessageOf("2026-01-15 12:00:00 Mars/Olympus").find("not known"), std::string::npos);
  EXPECT_NE(MessageOf("2026-01-15 12:00:00 ../../etc/passwd").find("cannot parse the zone"),
            std::string::npos);
  // The process time zone is left as it was.
  EXPECT_EQ(ParseIso8601("2026-03-04T02:00:00Z"), ParseTargetTime("2026-03-04 02:00:00Z"));
}

}  // namespace
}  // namespace gravl
