#pragma once
// PostgreSQL log sequence numbers, timelines and WAL segment names.

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace gravl {

using TimelineId = std::uint32_t;

struct Lsn {
  std::uint64_t value = 0;
  // "16/B374D848"; throws UsageError on bad text.
  static Lsn Parse(std::string_view text);
  std::string ToString() const;
  auto operator<=>(const Lsn&) const = default;
};

inline constexpr std::uint64_t kDefaultWalSegmentSize = 16 * 1024 * 1024;

// A WAL segment name: TTTTTTTTXXXXXXXXYYYYYYYY.
struct WalSegment {
  TimelineId timeline = 1;
  std::uint64_t segno = 0;  // log * segments_per_xlogid + seg

  static WalSegment FromLsn(TimelineId tli, Lsn lsn,
                            std::uint64_t seg_size = kDefaultWalSegmentSize);
  // Parses a 24-hex-digit segment name; nullopt for anything else.
  static std::optional<WalSegment> ParseName(std::string_view name,
                                             std::uint64_t seg_size = kDefaultWalSegmentSize);
  std::string Name(std::uint64_t seg_size = kDefaultWalSegmentSize) const;
  Lsn StartLsn(std::uint64_t seg_size = kDefaultWalSegmentSize) const;
  auto operator<=>(const WalSegment&) const = default;
};

// "0000000A" for timeline 10.
std::string TimelineHex(TimelineId tli);

}  // namespace gravl
