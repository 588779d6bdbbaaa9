#include "common/lsn.h"

#include <cstdio>

#include "common/error.h"

namespace gravl {
namespace {
bool ParseHex(std::string_view s, std::uint64_t& out) {
  if (s.empty() || s.size() > 16) return false;
  std::uint64_t v = 0;
  for (char c : s) {
    int d;
    if (c >= '0' && c <= '9') {
      d = c - '0';
    } else if (c >= 'A' && c <= 'F') {
      d = c - 'A' + 10;
    } else if (c >= 'a' && c <= 'f') {
      d = c - 'a' + 10;
    } else {
      return false;
    }
    v = v << 4 | static_cast<std::uint64_t>(d);
  }
  out = v;
  return true;
}
}  // namespace

Lsn Lsn::Parse(std::string_view text) {
  auto slash = text.find('/');
  std::uint64_t hi = 0, lo = 0;
  if (slash == std::string_view::npos || !ParseHex(text.substr(0, slash), hi) ||
      !ParseHex(text.substr(slash + 1), lo) || hi > 0xffffffffULL || lo > 0xffffffffULL) {
    throw UsageError("invalid LSN '" + std::string(text) + "': expected the form 16/B374D848");
  }
  return Lsn{hi << 32 | lo};
}

std::string Lsn::ToString() const {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%X/%X", static_cast<unsigned>(value >> 32),
                static_cast<unsigned>(value & 0xffffffffULL));
  return buf;
}

WalSegment WalSegment::FromLsn(TimelineId tli, Lsn lsn, std::uint64_t seg_size) {
  return WalSegment{tli, lsn.value / seg_size};
}

std::optional<WalSegment> WalSegment::ParseName(std::string_view name, std::uint64_t seg_size) {
  if (name.size() != 24) return std::nullopt;
  std::uint64_t tli = 0, log = 0, seg = 0;
  if (!ParseHex(name.substr(0, 8), tli) || !ParseHex(name.substr(8, 8), log) ||
      !ParseHex(name.substr(16, 8), seg)) {
    return std::nullopt;
  }
  std::uint64_t per_log = 0x100000000ULL / seg_size;
  if (seg >= per_log) return std::nullopt;
  return WalSegment{static_cast<TimelineId>(tli), log * per_log + seg};
}

std::string WalSegment::Name(std::uint64_t seg_size) const {
  std::uint64_t per_log = 0x100000000ULL / seg_size;
  char buf[32];
  std::snprintf(buf, sizeof buf, "%08X%08X%08X", timeline, static_cast<unsigned>(segno / per_log),
                static_cast<unsigned>(segno % per_log));
  return buf;
}

Lsn WalSegment::StartLsn(std::uint64_t seg_size) const { return Lsn{segno * seg_size}; }

std::string TimelineHex(TimelineId tli) {
  char buf[16];
  std::snprintf(buf, sizeof buf, "%08X", tli);
  return buf;
}

}  // namespace gravl
