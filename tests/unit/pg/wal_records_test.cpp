// The WAL record reader on generated segments laid out as PostgreSQL lays them out: page
// headers, records continued across pages and segments, CRC-32C, recycled tails.

#include "pg/wal_records.h"

#include <gtest/gtest.h>

#include <cstring>

#include "io/crc32c.h"

namespace gravl::pg {
namespace {

constexpr std::uint64_t kSeg = 1 << 20;  // small segments: 128 pages
constexpr std::size_t kBlock = 8192;

void Put16(Bytes& b, std::size_t at, std::uint16_t v) {
  b[at] = static_cast<std::uint8_t>(v);
  b[at + 1] = static_cast<std::uint8_t>(v >> 8);
}
void Put32(Bytes& b, std::size_t at, std::uint32_t v) {
  for (std::size_t i = 0; i < 4; ++i) b[at + i] = static_cast<std::uint8_t>(v >> (8 * i));
}
void Put64(Bytes& b, std::size_t at, std::uint64_t v) {
  for (std::size_t i = 0; i < 8; ++i) b[at + i] = static_cast<std::uint8_t>(v >> (8 * i));
}

// Writes records into consecutive segments of timeline `tli` starting at segment `first`.
class WalWriter {
 public:
  WalWriter(TimelineId tli, std::uint64_t first) : tli_(tli), first_(first) { NewSegment(); }

  // A restore point record; returns its LSN.
  Lsn RestorePoint(const std::string& name, std::int64_t pg_micros = 0) {
    Bytes main(8 + 64, 0);
    Put64(main, 0, static_cast<std::uint64_t>(pg_micros));
    std::memcpy(main.data() + 8, name.data(), name.size());
    return Record(0, 0x70, main, {});
  }
  // Some other record (a heap insert with a block reference and `size` bytes of data).
  Lsn Filler(std::size_t size) {
    Bytes block_header = {0, 0x20, 0, 0};  // block 0, fork 0, data length patched below
    Put16(block_header, 2, static_cast<std::uint16_t>(size));
    block_header.resize(4 + 12 + 4, 7);  // RelFileNode and block number
    Bytes main(4, 1);
    return Record(10, 0x00, main, block_header, size);
  }
  // Zeros to the end of the current segment (the end of WAL written so far).
  std::vector<Bytes> Finish() {
    segments_.back().resize(kSeg, 0);
    return segments_;
  }
  Bytes& current() { return segments_.back(); }
  std::size_t segment_count() const { return segments_.size(); }

 private:
  Lsn Record(std::uint8_t rmid, std::uint8_t info, const Bytes& main, const Bytes& blocks,
             std::size_t block_data = 0) {
    Bytes rec(24, 0);
    rec.insert(rec.end(), blocks.begin(), blocks.end());
    if (main.size() < 256) {
      rec.push_back(255);
      rec.push_back(static_cast<std::uint8_t>(main.size()));
    } else {
      rec.push_back(254);
      rec.resize(rec.size() + 4);
      Put32(rec, rec.size() - 4, static_cast<std::uint32_t>(main.size()));
    }
    rec.insert(rec.end(), block_data, 0x5a);
    rec.insert(rec.end(), main.begin(), main.end());
    Put32(rec, 0, static_cast<std::uint32_t>(rec.size()));
    Put32(rec, 4, 741);
    rec[16] = info;
    rec[17] = rmid;
    io::Crc32c crc;
    crc.Update(ByteView(rec).subspan(24));
    crc.Update(ByteView(rec).first(20));
    Put32(rec, 20, crc.value());
    // Align the start, then copy across pages (and segments).
    Pad();
    Lsn lsn = Position();
    std::size_t done = 0;
    while (done < rec.size()) {
      if (Offset() % kBlock == 0) PageHeader(static_cast<std::uint32_t>(rec.size() - done));
      std::size_t room = kBlock - Offset() % kBlock;
      std::size_t n = std::min(room, rec.size() - done);
      current().insert(current().end(), rec.begin() + static_cast<long>(done),
                       rec.begin() + static_cast<long>(done + n));
      done += n;
    }
    return lsn;
  }
  std::size_t Offset() const { return segments_.back().size(); }
  Lsn Position() {
    if (Offset() % kBlock == 0) PageHeader(0);
    return Lsn{(first_ + segments_.size() - 1) * kSeg + Offset()};
  }
  void Pad() {
    while (Offset() % 8 != 0) current().push_back(0);
    if (Offset() == kSeg) NewSegment();
  }
  void NewSegment() { segments_.emplace_back(); }
  void PageHeader(std::uint32_t rem_len) {
    if (Offset() == kSeg) NewSegment();
    bool first_page = Offset() == 0;
    std::size_t at = Offset();
    current().resize(at + (first_page ? 40 : 24), 0);
    Put16(current(), at, 0xD10D);
    Put16(current(), at + 2, static_cast<std::uint16_t>((rem_len ? 1 : 0) | (first_page ? 2 : 0)));
    Put32(current(), at + 4, tli_);
    Put64(current(), at + 8, (first_ + segments_.size() - 1) * kSeg + at);
    Put32(current(), at + 16, rem_len);
    if (first_page) {
      Put64(current(), at + 24, 7);
      Put32(current(), at + 32, static_cast<std::uint32_t>(kSeg));
      Put32(current(), at + 36, kBlock);
    }
  }
  TimelineId tli_;
  std::uint64_t first_;
  std::vector<Bytes> segments_;
};

TEST(WalRecords, FindsRestorePointsAcrossPagesAndSegments) {
  WalWriter w(2, 5);
  Lsn a = w.RestorePoint("before-upgrade", 1000000);  // 2000-01-01 00:00:01
  w.Filler(9000);                                     // spans a page boundary
  Lsn b = w.RestorePoint("nightly");
  // Fill up to just before the segment's end so that the next records span segments.
  while (w.segment_count() == 1 && w.current().size() < kSeg - 6000) w.Filler(5000);
  w.Filler(20000);  // continues into the second segment, over several pages
  ASSERT_EQ(w.segment_count(), 2u);
  Lsn c = w.RestorePoint("after-split");
  auto segments = w.Finish();
  ASSERT_EQ(segments.size(), 2u);

  WalRecordScanner scanner(kSeg);
  EXPECT_GT(scanner.AddSegment(WalSegment{2, 5}, segments[0]), 100u);
  EXPECT_GT(scanner.AddSegment(WalSegment{2, 6}, segments[1]), 1u);
  const auto& rps = scanner.restore_points();
  ASSERT_EQ(rps.size(), 3u);
  EXPECT_EQ(rps[0].name, "before-upgrade");
  EXPECT_EQ(rps[0].lsn, a);
  EXPECT_EQ(rps[0].timeline, 2u);
  EXPECT_EQ(FormatIso8601(rps[0].time), "2000-01-01T00:00:01Z");
  EXPECT_EQ(rps[1].name, "nightly");
  EXPECT_EQ(rps[1].lsn, b);
  EXPECT_EQ(rps[2].name, "after-split");
  EXPECT_EQ(rps[2].lsn, c);
  EXPECT_GT(c.value, 6 * kSeg);
  EXPECT_LT(scanner.end().value, 7 * kSeg);  // valid WAL ends after the last record
}

TEST(WalRecords, ASegmentReadWithoutItsPredecessorSkipsTheContinuedRecord) {
  WalWriter w(1, 0);
  while (w.segment_count() == 1 && w.current().size() < kSeg - 3100) w.Filler(3000);
  w.Filler(8000);  // crosses into segment 1
  ASSERT_EQ(w.segment_count(), 2u);
  Lsn rp = w.RestorePoint("x");
  auto segments = w.Finish();
  WalRecordScanner scanner(kSeg);
  scanner.AddSegment(WalSegment{1, 1}, segments[1]);
  ASSERT_EQ(scanner.restore_points().size(), 1u);
  EXPECT_EQ(scanner.restore_points()[0].lsn, rp);
}

TEST(WalRecords, DamagedRecordsAndRecycledPagesEndTheSegment) {
  WalWriter w(1, 3);
  w.RestorePoint("one");
  Lsn two = w.RestorePoint("two");
  w.RestorePoint("three");
  auto segments = w.Finish();
  Bytes damaged = segments[0];
  damaged[two.value - 3 * kSeg + 40] ^= 0x01;  // inside "two"'s name: CRC mismatch
  WalRecordScanner scanner(kSeg);
  scanner.AddSegment(WalSegment{1, 3}, damaged);
  ASSERT_EQ(scanner.restore_points().size(), 1u);
  EXPECT_EQ(scanner.restore_points()[0].name, "one");
  EXPECT_EQ(scanner.end(), two);

  // A recycled segment: its pages carry another segment's addresses.
  WalRecordScanner other(kSeg);
  other.AddSegment(WalSegment{1, 9}, segments[0]);
  EXPECT_TRUE(other.restore_points().empty());
  // Truncated or empty data.
  other.AddSegment(WalSegment{1, 3}, ByteView(segments[0]).first(30));
  other.AddSegment(WalSegment{1, 4}, ByteView{});
  EXPECT_TRUE(other.restore_points().empty());
}

}  // namespace
}  // namespace gravl::pg
