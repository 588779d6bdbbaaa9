// pg/server.h's parsers: pg_controldata's output (PostgreSQL 15) and pg_waldump's commits.

#include "pg/server.h"

#include <gtest/gtest.h>

#include "common/error.h"

namespace gravl::pg {
namespace {

const char* kControlData = R"(pg_control version number:            1300
Catalog version number:               202209061
Database system identifier:           7312345678901234567
Database cluster state:               shut down
pg_control last modified:             Tue 01 Dec 2026 02:00:00 AM UTC
Latest checkpoint location:           0/5000028
Latest checkpoint's REDO location:    0/5000028
Latest checkpoint's REDO WAL file:    000000020000000000000005
Latest checkpoint's TimeLineID:       2
Latest checkpoint's PrevTimeLineID:   2
Minimum recovery ending location:     0/0
Min recovery ending loc's timeline:   0
wal_level setting:                    replica
wal_log_hints setting:                on
Bytes per WAL segment:                16777216
Data page checksum version:           0
)";

TEST(ControlData, Parses) {
  ControlData c = ParseControlData(kControlData);
  EXPECT_EQ(c.state, "shut down");
  EXPECT_TRUE(c.CleanlyShutDown());
  EXPECT_EQ(c.system_identifier, "7312345678901234567");
  EXPECT_EQ(c.checkpoint.ToString(), "0/5000028");
  EXPECT_EQ(c.timeline, 2u);
  EXPECT_EQ(c.segment_size, 16777216u);
  EXPECT_TRUE(c.wal_log_hints);
  EXPECT_TRUE(c.Rewindable());
  std::string crashed = kControlData;
  crashed.replace(crashed.find("shut down"), 9, "in production");
  crashed.replace(crashed.find("wal_log_hints setting:                on"), 40,
                  "wal_log_hints setting:                off");
  ControlData p = ParseControlData(crashed);
  EXPECT_FALSE(p.CleanlyShutDown());
  EXPECT_FALSE(p.Rewindable());  // neither checksums nor wal_log_hints
  EXPECT_THROW(ParseControlData("Database cluster state: shut down\n"), PgError);
}

TEST(Waldump, FindsCommits) {
  std::string out =
      "rmgr: Heap        len (rec/tot):     59/    59, tx:        741, lsn: 0/030000D8, prev "
      "0/030000A0, desc: INSERT off 3 flags 0x00, blkref #0: rel 1663/5/16384 blk 0\n"
      "rmgr: Transaction len (rec/tot):     34/    34, tx:        741, lsn: 0/03000118, prev "
      "0/030000D8, desc: COMMIT 2026-12-01 02:00:01.123456 UTC\n"
      "rmgr: Transaction len (rec/tot):     34/    34, tx:        742, lsn: 0/03000140, prev "
      "0/03000118, desc: ABORT 2026-12-01 02:00:02.000000 UTC\n"
      "pg_waldump: error: error in WAL record at 0/3000168: invalid record length\n";
  auto commits = ParseWaldumpCommits(out);
  ASSERT_EQ(commits.size(), 1u);
  EXPECT_EQ(commits[0].xid, "741");
  EXPECT_EQ(commits[0].lsn.ToString(), "0/3000118");
  EXPECT_EQ(commits[0].time, "2026-12-01 02:00:01.123456 UTC");
}

}  // namespace
}  // namespace gravl::pg
