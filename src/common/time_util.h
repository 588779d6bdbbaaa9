#pragma once
// UTC time formatting used in labels, manifests and reports, and the parsing of times given
// by people (recovery targets), which must name a real instant.

#include <chrono>
#include <string>

namespace gravl {

using SystemTime = std::chrono::system_clock::time_point;

// "2026-03-04T02:00:00Z"
std::string FormatIso8601(SystemTime t);
// "2026-03-04 02:00:00.123456+00": full precision, as PostgreSQL settings accept it.
std::string FormatPostgres(SystemTime t);
// "20260304T020000Z" (sorts lexically by time; used in backup labels and report names)
std::string FormatCompact(SystemTime t);

// Parses "YYYY-MM-DDTHH:MM:SS[.fff][Z|+HH:MM|+HHMM]" or with a space instead of 'T', as
// written by gravl-dr and by S3 (no zone: UTC). Every field is range-checked: a month 13, a
// 30 February, a minute 61 or an offset +99:99 is refused, never normalised. Throws
// UsageError naming the field and the accepted forms.
SystemTime ParseIso8601(const std::string& text);

// A time given by an operator (--target-time): "YYYY-MM-DD HH:MM:SS[.ffffff]" followed by a
// zone, which is required -- "Z", "UTC", "+HH", "+HH:MM", "+HHMM" (or '-'), or an IANA zone
// name after a space ("2026-03-04 02:00:00 Europe/Berlin", from the system's tzdata). A
// local time that a daylight-saving change skips or repeats in that zone is refused (give the
// offset instead). Throws UsageError naming what is wrong.
SystemTime ParseTargetTime(const std::string& text);

// "7d", "36h", "90m", "3600s", "2w" (a bare number is seconds), at most 100 years. Throws
// ConfigError naming `what` otherwise.
std::chrono::seconds ParseDuration(const std::string& text, const std::string& what);
// The largest whole unit: "7d", "36h", "90m", "45s".
std::string FormatDuration(std::chrono::seconds d);

}  // namespace gravl
