#include "pg/wal_records.h"

#include <cstring>

#include "io/crc32c.h"

namespace gravl::pg {
namespace {

constexpr std::uint16_t kPageMagicMin = 0xD000;  // XLOG_PAGE_MAGIC of PostgreSQL 10 and later
constexpr std::uint16_t kFirstIsContRecord = 0x0001;
constexpr std::uint16_t kLongHeader = 0x0002;
constexpr std::size_t kShortHeader = 24;  // MAXALIGN(sizeof(XLogPageHeaderData))
constexpr std::size_t kLongHeaderSize = 40;
constexpr std::size_t kRecordHeader = 24;  // SizeOfXLogRecord
constexpr std::size_t kCrcOffset = 20;     // offsetof(XLogRecord, xl_crc)
constexpr std::uint8_t kRmXlog = 0;
constexpr std::uint8_t kRestorePoint = 0x70;
constexpr std::size_t kRestorePointNameLen = 64;  // MAXFNAMELEN
// Microseconds between 1970-01-01 and 2000-01-01, PostgreSQL's timestamp epoch.
constexpr std::int64_t kPgEpochMicros = 946684800LL * 1000000;

std::uint16_t Le16(const std::uint8_t* p) { return static_cast<std::uint16_t>(p[0] | p[1] << 8); }
std::uint32_t Le32(const std::uint8_t* p) {
  return static_cast<std::uint32_t>(p[0]) | static_cast<std::uint32_t>(p[1]) << 8 |
         static_cast<std::uint32_t>(p[2]) << 16 | static_cast<std::uint32_t>(p[3]) << 24;
}
std::uint64_t Le64(const std::uint8_t* p) {
  return static_cast<std::uint64_t>(Le32(p)) | static_cast<std::uint64_t>(Le32(p + 4)) << 32;
}
std::size_t MaxAlign(std::size_t n) { return (n + 7) & ~static_cast<std::size_t>(7); }

// The main data of a record: after the block headers, the last `length` bytes. nullopt when
// the headers do not parse within the record.
std::optional<ByteView> MainData(ByteView rec) {
  std::size_t p = kRecordHeader;
  std::uint64_t block_data = 0;
  while (p < rec.size()) {
    std::uint8_t id = rec[p];
    if (id == 255 || id == 254) {  // XLR_BLOCK_ID_DATA_SHORT / _LONG
      std::size_t len_size = id == 255 ? 1 : 4;
      if (p + 1 + len_size > rec.size()) return std::nullopt;
      std::uint64_t len = id == 255 ? rec[p + 1] : Le32(&rec[p + 1]);
      if (len > rec.size()) return std::nullopt;
      return rec.subspan(rec.size() - static_cast<std::size_t>(len));
    }
    if (id == 253) {  // XLR_BLOCK_ID_ORIGIN
      p += 3;
    } else if (id == 252) {  // XLR_BLOCK_ID_TOPLEVEL_XID
      p += 5;
    } else if (id <= 32) {  // a block reference
      if (p + 4 > rec.size()) return std::nullopt;
      std::uint8_t fork_flags = rec[p + 1];
      block_data += Le16(&rec[p + 2]);
      p += 4;
      if (fork_flags & 0x10) {  // BKPBLOCK_HAS_IMAGE
        if (p + 5 > rec.size()) return std::nullopt;
        block_data += Le16(&rec[p]);
        std::uint8_t bimg_info = rec[p + 4];
        p += 5;
        if ((bimg_info & 0x01) && (bimg_info & 0x1C)) p += 2;  // hole and compressed
      }
      if (!(fork_flags & 0x80)) p += 12;  // not BKPBLOCK_SAME_REL: a RelFileNode
      p += 4;                             // BlockNumber
    } else {
      return std::nullopt;
    }
  }
  (void)block_data;
  return ByteView{};  // no main data
}

}  // namespace

void WalRecordScanner::Record(Lsn lsn, TimelineId tli, ByteView rec) {
  if (rec.size() < kRecordHeader) return;
  std::uint8_t info = rec[16], rmid = rec[17];
  if (rmid != kRmXlog || (info & 0xF0) != kRestorePoint) return;
  auto data = MainData(rec);
  if (!data || data->size() < 8 + kRestorePointNameLen) return;
  RestorePoint rp;
  rp.lsn = lsn;
  rp.timeline = tli;
  auto micros = static_cast<std::int64_t>(Le64(data->data()));
  rp.time = SystemTime(std::chrono::microseconds(micros + kPgEpochMicros));
  const auto* name = reinterpret_cast<const char*>(data->data() + 8);
  rp.name.assign(name, strnlen(name, kRestorePointNameLen));
  restore_points_.push_back(std::move(rp));
}

std::uint64_t WalRecordScanner::AddSegment(const WalSegment& segment, ByteView data) {
  if (!last_ || last_->segno + 1 != segment.segno) {  // not the continuation of the last one
    pending_.clear();
    pending_missing_ = 0;
  }
  last_ = segment;
  const std::uint64_t seg_start = segment.segno * segment_size_;
  end_ = Lsn{seg_start};
  std::uint64_t records = 0;
  std::size_t block = 8192;
  if (data.size() >= kLongHeaderSize && (Le16(&data[2]) & kLongHeader)) {
    std::uint32_t blcksz = Le32(&data[36]);
    if (blcksz >= 1024 && blcksz <= 65536 && (blcksz & (blcksz - 1)) == 0) block = blcksz;
  }
  auto finish = [&](Lsn lsn, const Bytes& rec) {
    // CRC-32C of the data after the header, then of the header up to xl_crc.
    io::Crc32c crc;
    crc.Update(ByteView(rec).subspan(kRecordHeader));
    crc.Update(ByteView(rec).first(kCrcOffset));
    if (crc.value() != Le32(&rec[kCrcOffset])) return false;
    Record(lsn, segment.timeline, rec);
    ++records;
    return true;
  };
  for (std::size_t page = 0; page + kShortHeader <= data.size(); page += block) {
    const std::uint8_t* p = &data[page];
    std::size_t page_len = std::min(block, data.size() - page);
    std::uint16_t magic = Le16(p), flags = Le16(p + 2);
    if (magic < kPageMagicMin || Le64(p + 8) != seg_start + page) break;  // end of valid WAL
    std::size_t pos = (flags & kLongHeader) ? kLongHeaderSize : kShortHeader;
    if (pos > page_len) break;
    std::uint32_t rem_len = Le32(p + 16);
    if (flags & kFirstIsContRecord) {
      std::size_t here = std::min<std::size_t>(rem_len, page_len - pos);
      if (!pending_.empty() && pending_missing_ == rem_len) {
        pending_.insert(pending_.end(), p + pos, p + pos + here);
        pending_missing_ -= static_cast<std::uint32_t>(here);
        if (pending_missing_ == 0) {
          Bytes rec = std::move(pending_);
          pending_.clear();
          if (!finish(pending_lsn_, rec)) break;
        }
      } else {
        pending_.clear();  // the start of this record is not here: skip its remainder
        pending_missing_ = 0;
      }
      if (rem_len > page_len - pos) continue;  // the whole page continues the record
      pos = MaxAlign(pos + here);
    } else if (!pending_.empty()) {
      pending_.clear();  // the continuation announced is missing
      pending_missing_ = 0;
    }
    bool stop = false;
    while (pos + 4 <= page_len) {
      std::uint32_t tot_len = Le32(p + pos);
      if (tot_len == 0) {  // zeros: the end of the WAL written so far
        stop = true;
        break;
      }
      if (tot_len < kRecordHeader) {
        stop = true;
        break;
      }
      Lsn lsn{seg_start + page + pos};
      std::size_t avail = page_len - pos;
      if (tot_len <= avail) {
        Bytes rec(p + pos, p + pos + tot_len);
        if (!finish(lsn, rec)) {
          stop = true;
          break;
        }
        pos = MaxAlign(pos + tot_len);
        end_ = Lsn{seg_start + page + pos};
        continue;
      }
      if (tot_len > (1u << 30)) {  // larger than PostgreSQL ever writes (XLogRecordMaxSize)
        stop = true;
        break;
      }
      pending_.assign(p + pos, p + page_len);
      pending_missing_ = tot_len - static_cast<std::uint32_t>(avail);
      pending_lsn_ = lsn;
      break;
    }
    if (stop) break;
    end_ = Lsn{seg_start + page + page_len};
  }
  return records;
}

}  // namespace gravl::pg
