// CRC-32C and XXH128 against published values, and the fast CRC-32C path against the table.
#include <gtest/gtest.h>

#include <algorithm>
#include <initializer_list>
#include <random>
#include <vector>

#include "common/error.h"
#include "io/crc32c.h"
#include "io/hash.h"

namespace gravl::io {
namespace {

std::vector<std::uint8_t> RandomBytes(std::size_t n, unsigned seed) {
  std::mt19937 rng(seed);
  std::vector<std::uint8_t> v(n);
  for (auto& b : v) b = static_cast<std::uint8_t>(rng());
  return v;
}

TEST(Crc32c, KnownValues) {
  Crc32c crc;
  crc.Update(AsBytes("123456789"));  // the CRC catalogue's check value
  EXPECT_EQ(crc.value(), 0xE3069283u);
  EXPECT_EQ(crc.ManifestHex(), "839206e3");  // PostgreSQL's byte order
  EXPECT_EQ(Crc32c().value(), 0u);
  EXPECT_EQ(Crc32cPortable(AsBytes("123456789")), 0xE3069283u);
  // RFC 3720 B.4: 32 bytes of zeros, of 0xFF.
  std::vector<std::uint8_t> zeros(32, 0), ones(32, 0xFF);
  EXPECT_EQ(Crc32cPortable(zeros), 0x8A9136AAu);
  EXPECT_EQ(Crc32cPortable(ones), 0x62A8AB43u);
}

// The three-lane path is taken from 12 KiB up; lengths around its block edges, offsets that
// misalign the data, and updates split at odd places all agree with the table.
TEST(Crc32c, FastPathMatchesTheTableAtEveryLengthAndSplit) {
  auto data = RandomBytes(3 * 3 * 4096 + 100, 7);
  for (std::size_t len : std::initializer_list<std::size_t>{0, 1, 7, 8, 9, 4095, 12287, 12288,
                                                            12289, 24576, 24583, 36964}) {
    for (std::size_t offset : std::initializer_list<std::size_t>{0, 1, 3}) {
      if (offset + len > data.size()) continue;
      ByteView part(data.data() + offset, len);
      Crc32c whole;
      whole.Update(part);
      EXPECT_EQ(whole.value(), Crc32cPortable(part)) << "len " << len << " offset " << offset;
      Crc32c split;
      std::size_t cut = len / 3;
      split.Update(part.subspan(0, cut));
      split.Update(part.subspan(cut, std::min<std::size_t>(1, len - cut)));
      split.Update(part.subspan(std::min(len, cut + 1)));
      EXPECT_EQ(split.value(), whole.value()) << "len " << len;
    }
  }
}

TEST(Xxh128, KnownValuesAsXxhsumPrintsThem) {
  // xxhsum -H2 of empty input and of "abc" (xxhash 0.8.1).
  EXPECT_EQ(DigestHex(DigestType::kXxh128, {}), "99aa06d3014798d86001c324468d497f");
  EXPECT_EQ(DigestHex(DigestType::kXxh128, AsBytes("abc")), "06b05ab6733a618578af5f94892f3950");
  auto data = RandomBytes(1 << 20, 3);
  Xxh128 split;
  split.Update(ByteView(data).subspan(0, 1000));
  split.Update(ByteView(data).subspan(1000));
  EXPECT_EQ(split.FinalHex(), DigestHex(DigestType::kXxh128, data));
  EXPECT_EQ(DigestHex(DigestType::kXxh128, data).size(), 32u);
}

TEST(Digest, VerifySinkNamesTheAlgorithmThatFound) {
  BufferSink dest;
  VerifySink verify(dest, std::string(32, '0'), "files/000001", DigestType::kXxh128);
  verify.Write(AsBytes("data"));
  try {
    verify.Finish();
    FAIL() << "a wrong XXH128 was accepted";
  } catch (const IntegrityError& e) {
    EXPECT_NE(std::string(e.what()).find("files/000001: XXH128 mismatch"), std::string::npos)
        << e.what();
  }
  EXPECT_FALSE(dest.finished());
  BufferSink dest2;
  VerifySink good(dest2, DigestHex(DigestType::kXxh128, AsBytes("data")), "x", DigestType::kXxh128);
  good.Write(AsBytes("data"));
  good.Finish();
  EXPECT_TRUE(dest2.finished());
  EXPECT_EQ(AsChars(dest2.data()), "data");
}

}  // namespace
}  // namespace gravl::io
