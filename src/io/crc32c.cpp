#include "io/crc32c.h"

#include <array>
#include <cstring>

#if defined(__x86_64__)
#include <nmmintrin.h>
#endif

namespace gravl::io {
namespace {

constexpr std::uint32_t kPoly = 0x82F63B78u;  // reflected

// Byte-at-a-time table for the raw (unconditioned) register.
constexpr std::array<std::uint32_t, 256> MakeTable() {
  std::array<std::uint32_t, 256> t{};
  for (std::uint32_t i = 0; i < 256; ++i) {
    std::uint32_t c = i;
    for (int k = 0; k < 8; ++k) c = (c & 1u) != 0 ? (c >> 1) ^ kPoly : c >> 1;
    t[i] = c;
  }
  return t;
}
constexpr std::array<std::uint32_t, 256> kTable = MakeTable();

std::uint32_t UpdatePortable(std::uint32_t crc, const std::uint8_t* p, std::size_t n) {
  for (std::size_t i = 0; i < n; ++i) crc = kTable[(crc ^ p[i]) & 0xFFu] ^ (crc >> 8);
  return crc;
}

#if defined(__x86_64__)
// Three lanes of kLane bytes each are summed at once (the instruction's latency is three
// cycles, its throughput one per cycle); the lanes are then joined: the CRC register of A||B
// is that of A advanced over |B| zero bytes, XOR that of B started from zero. Advancing over
// kLane zero bytes is linear in the register's bits, so four 256-entry tables do it.
constexpr std::size_t kLane = 4096;

struct Shift {
  std::array<std::array<std::uint32_t, 256>, 4> table{};
  std::uint32_t operator()(std::uint32_t crc) const {
    return table[0][crc & 0xFFu] ^ table[1][(crc >> 8) & 0xFFu] ^ table[2][(crc >> 16) & 0xFFu] ^
           table[3][crc >> 24];
  }
};

Shift MakeShift() {
  std::array<std::uint32_t, 32> basis{};
  static const std::array<std::uint8_t, kLane> zeros{};
  for (std::size_t bit = 0; bit < 32; ++bit)
    basis[bit] = UpdatePortable(1u << bit, zeros.data(), zeros.size());
  Shift s;
  for (std::size_t byte = 0; byte < 4; ++byte) {
    for (std::uint32_t v = 0; v < 256; ++v) {
      std::uint32_t r = 0;
      for (std::size_t bit = 0; bit < 8; ++bit)
        if ((v >> bit) & 1u) r ^= basis[byte * 8 + bit];
      s.table[byte][v] = r;
    }
  }
  return s;
}

__attribute__((target("sse4.2"))) std::uint64_t Load(const std::uint8_t* p) {
  std::uint64_t v;
  std::memcpy(&v, p, sizeof v);
  return v;
}

__attribute__((target("sse4.2"))) std::uint32_t UpdateSse42(std::uint32_t crc,
                                                            const std::uint8_t* p, std::size_t n) {
  static const Shift shift = MakeShift();
  std::uint64_t c0 = crc;
  while (n >= 3 * kLane) {
    std::uint64_t c1 = 0;
    std::uint64_t c2 = 0;
    for (std::size_t i = 0; i < kLane; i += 8) {
      c0 = _mm_crc32_u64(c0, Load(p + i));
      c1 = _mm_crc32_u64(c1, Load(p + kLane + i));
      c2 = _mm_crc32_u64(c2, Load(p + 2 * kLane + i));
    }
    c0 = shift(shift(static_cast<std::uint32_t>(c0)) ^ static_cast<std::uint32_t>(c1)) ^
         static_cast<std::uint32_t>(c2);
    p += 3 * kLane;
    n -= 3 * kLane;
  }
  for (; n >= 8; n -= 8, p += 8) c0 = _mm_crc32_u64(c0, Load(p));
  auto c = static_cast<std::uint32_t>(c0);
  for (; n > 0; --n, ++p) c = _mm_crc32_u8(c, *p);
  return c;
}

const bool kHaveSse42 = __builtin_cpu_supports("sse4.2");
#endif

}  // namespace

void Crc32c::Update(ByteView data) {
#if defined(__x86_64__)
  if (kHaveSse42) {
    state_ = UpdateSse42(state_, data.data(), data.size());
    return;
  }
#endif
  state_ = UpdatePortable(state_, data.data(), data.size());
}

std::string Crc32c::ManifestHex() const { return Crc32cManifestHex(value()); }

std::string Crc32cManifestHex(std::uint32_t v) {
  std::uint8_t bytes[4] = {static_cast<std::uint8_t>(v), static_cast<std::uint8_t>(v >> 8),
                           static_cast<std::uint8_t>(v >> 16), static_cast<std::uint8_t>(v >> 24)};
  return HexEncode(ByteView(bytes, 4));
}

std::uint32_t Crc32cPortable(ByteView data) {
  return ~UpdatePortable(0xFFFFFFFFu, data.data(), data.size());
}

}  // namespace gravl::io
