#pragma once
// A reader of PostgreSQL's WAL record format (versions 10 and later: XLogPageHeaderData,
// XLogRecord with CRC-32C), used to find restore points in archived segments so that a
// restore to --target-name chooses a backup taken before the restore point.
//
// Segments are fed whole and in order. A record that continues into the next segment is
// completed when that segment follows; a segment that does not follow its predecessor
// drops the unfinished record. Reading a segment stops at the end of valid WAL: a page with
// another address (a recycled segment's old contents), zeros, or a record whose CRC-32C does
// not match. Nothing here trusts lengths before checking them against the data.

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "common/bytes.h"
#include "common/lsn.h"
#include "common/time_util.h"

namespace gravl::pg {

struct RestorePoint {
  std::string name;
  Lsn lsn;  // of the restore point record
  TimelineId timeline = 0;
  SystemTime time{};
};

class WalRecordScanner {
 public:
  explicit WalRecordScanner(std::uint64_t segment_size) : segment_size_(segment_size) {}

  // Reads every record of `segment` (its whole content); restore points go to
  // restore_points(). Returns the number of complete records read.
  std::uint64_t AddSegment(const WalSegment& segment, ByteView data);

  const std::vector<RestorePoint>& restore_points() const { return restore_points_; }
  // Where valid WAL ended in the last segment read (its end when it was full).
  Lsn end() const { return end_; }

 private:
  void Record(Lsn lsn, TimelineId tli, ByteView record);
  std::uint64_t segment_size_;
  std::vector<RestorePoint> restore_points_;
  // A record that continues on the next page: its bytes so far and how many are missing.
  Bytes pending_;
  std::uint32_t pending_missing_ = 0;
  Lsn pending_lsn_;
  std::optional<WalSegment> last_;
  Lsn end_;
};

}  // namespace gravl::pg
