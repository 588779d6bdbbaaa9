#pragma once
// UTC time formatting used in labels, manifests and reports.

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
// Parses "YYYY-MM-DDTHH:MM:SS[.fff][Z|+HH:MM|+HHMM]" or with a space instead of 'T'.
// Throws UsageError naming the accepted forms.
SystemTime ParseIso8601(const std::string& text);

}  // namespace gravl
