// The WAL index: one listing, timelines with their histories, and what recovery can reach.

#include "repo/wal_index.h"

#include <gtest/gtest.h>

#include "common/error.h"
#include "io/hash.h"
#include "repo/layout.h"
#include "repo/metadata.h"
#include "repo/repository.h"
#include "repo/stanza.h"
#include "repo/wal_archive.h"
#include "storage/memory.h"

namespace gravl::repo {
namespace {

constexpr std::uint64_t kSeg = 16 << 20;

// An index of a generated archive: segments [first, last] of each timeline, minus `holes`.
struct Archive {
  WalIndex index{"main", kSeg};
  void Segments(TimelineId tli, std::uint64_t first, std::uint64_t last,
                std::vector<std::uint64_t> holes = {}, std::int64_t modified = 1000) {
    for (std::uint64_t s = first; s <= last; ++s) {
      if (std::find(holes.begin(), holes.end(), s) != holes.end()) continue;
      std::string name = WalSegment{tli, s}.Name(kSeg);
      std::string sha = io::Sha256Hex(AsBytes(name));
      index.Add({WalObjectKey("main", *ParseWalFileName(name), sha, CompressionType::kZstd), 100,
                 SystemTime(std::chrono::seconds(modified + static_cast<std::int64_t>(s)))});
    }
  }
};

Lsn At(std::uint64_t segno, std::uint64_t offset = 0) { return Lsn{segno * kSeg + offset}; }

TEST(WalIndex, ParsesHistoryFilesAndRefusesDamagedOnes) {
  auto h =
      ParseHistory("1\t0/3000000\tno recovery target specified\n\n# c\n2\t0/5000A00\tx\n", "h");
  ASSERT_EQ(h.size(), 2u);
  EXPECT_EQ(h[1].parent, 2u);
  EXPECT_EQ(h[1].switch_lsn.ToString(), "0/5000A00");
  EXPECT_THROW(ParseHistory("1 zz\n", "h"), IntegrityError);
  EXPECT_THROW(ParseHistory("x 0/1\n", "h"), IntegrityError);
  EXPECT_THROW(ParseHistory("2 0/5\n1 0/6\n", "h"), IntegrityError);  // not increasing
}

TEST(WalIndex, ContiguousWalReachesTheEndOfTheArchive) {
  Archive a;
  a.Segments(1, 3, 9);
  EXPECT_EQ(a.index.segment_count(), 7u);
  EXPECT_EQ(a.index.Newest()->segno, 9u);
  WalReach r = a.index.ReachFrom(1, At(4, 0x28), 1);
  EXPECT_EQ(r.end, At(10));
  EXPECT_EQ(r.segments, 6u);
  EXPECT_FALSE(r.gap);
  EXPECT_EQ(r.newest_time, SystemTime(std::chrono::seconds(1009)));
  auto segs = a.index.SegmentsFrom(1, At(4), 1);
  ASSERT_EQ(segs.size(), 6u);
  EXPECT_EQ(segs.front().name, "000000010000000000000004");
  EXPECT_EQ(segs.front().key, a.index.Find(1, 4)->key);
  // From a segment that is not archived: nothing is reached.
  EXPECT_EQ(a.index.ReachFrom(1, At(12), 1).end, At(12));
}

TEST(WalIndex, AGapCutsTheReachShortAndIsNamed) {
  Archive a;
  a.Segments(1, 1, 20, {7});
  WalReach r = a.index.ReachFrom(1, At(2), 1);
  EXPECT_EQ(r.end, At(7));
  ASSERT_TRUE(r.gap);
  EXPECT_EQ(r.gap->Name(kSeg), "000000010000000000000007");
}

TEST(WalIndex, RecoveryFollowsTheTargetsHistoryAndTakesSwitchSegmentsFromTheChild) {
  // Timeline 1 to segment 9; timeline 2 forked at 0/5800000 (in segment 5) and ran to 12;
  // timeline 3 forked from 2 at segment 10.
  Archive a;
  a.Segments(1, 1, 9);
  a.Segments(2, 5, 12);
  a.Segments(3, 10, 14);
  a.index.SetHistory(2, {{1, Lsn{0x5800000}}});
  a.index.SetHistory(3, {{1, Lsn{0x5800000}}, {2, Lsn{0xA000100}}});
  EXPECT_EQ(a.index.LatestFrom(1), 3u);
  EXPECT_EQ(a.index.LatestFrom(3), 3u);
  auto path = a.index.Path(3);
  ASSERT_EQ(path.size(), 3u);
  EXPECT_EQ(path[1].timeline, 2u);
  EXPECT_EQ(path[1].begin.ToString(), "0/5800000");

  auto segs = a.index.SegmentsFrom(1, At(2), 3);
  std::vector<std::string> names;
  for (const auto& s : segs) names.push_back(s.name);
  std::vector<std::string> expected = {
      "000000010000000000000002", "000000010000000000000003", "000000010000000000000004",
      "000000020000000000000005", "000000020000000000000006", "000000020000000000000007",
      "000000020000000000000008", "000000020000000000000009", "00000003000000000000000A",
      "00000003000000000000000B", "00000003000000000000000C", "00000003000000000000000D",
      "00000003000000000000000E"};
  EXPECT_EQ(names, expected);
  // Staying on timeline 1 (recovery_target_timeline = current): its own segments to 9.
  EXPECT_EQ(a.index.ReachFrom(1, At(2), 1).end, At(10));
  // Timeline 2 from a backup on timeline 1.
  WalReach r2 = a.index.ReachFrom(1, At(2), 2);
  EXPECT_EQ(r2.end, At(13));
  EXPECT_EQ(r2.timeline, 2u);
  // A backup on timeline 1 after the fork cannot reach timeline 2.
  EXPECT_NE(a.index.ReachFrom(1, At(6), 2).problem.find("ended at 0/5800000"), std::string::npos);
  EXPECT_THROW(a.index.SegmentsFrom(1, At(6), 2), ConflictError);
  // Timeline 3 does not descend from a timeline 4.
  EXPECT_NE(a.index.ReachFrom(4, At(6), 3).problem.find("does not descend"), std::string::npos);
}

TEST(WalIndex, AMissingSwitchSegmentOnTheChildFallsBackToTheParentsCopy) {
  Archive a;
  a.Segments(1, 1, 9);
  a.Segments(2, 6, 8);  // the child's copy of segment 5 was never archived
  a.index.SetHistory(2, {{1, Lsn{0x5800000}}});
  WalReach r = a.index.ReachFrom(1, At(1), 2);
  EXPECT_EQ(r.end, At(9));
  EXPECT_EQ(r.timeline, 2u);
}

TEST(WalIndex, BuildsFromOneListingAndReadsHistoryFilesOnce) {
  StanzaInfo info;
  info.stanza = "main";
  info.system_identifier = "7";
  info.pg_version_num = 150000;
  info.pg_major = 15;
  info.wal_segment_size = kSeg;
  info.created_at = info.created_by = "x";
  auto storage = storage::MakeMemoryStorage();
  WriteMetadata(*storage, StanzaKey("main"), info.ToJson());
  Repository repo(RepoConfig{"mem", "memory", "", {}}, std::move(storage), "main");
  storage::Storage& mem = repo.storage();
  // A history file pushed like PostgreSQL's, a damaged one, a segment and a temporary file.
  auto push = [&](const std::string& name, const std::string& content) {
    std::string sha = io::Sha256Hex(AsBytes(content));
    std::string key = WalObjectKey("main", *ParseWalFileName(name), sha, CompressionType::kNone);
    storage::PutBytes(mem, key, AsBytes(content));
    return key;
  };
  push("00000002.history", "1\t0/5000000\tno recovery target specified\n");
  std::string bad = push("00000003.history", "2\t0/7000000\tx\n");
  storage::PutBytes(mem, bad, AsBytes(std::string("2\t0/7000000\ty\n")));  // content changed
  push("000000010000000000000001", "segment");
  storage::PutBytes(mem, "main/wal/00000001/.000000010000000000000002.gravl-tmp-x",
                    AsBytes(std::string("tmp")));
  WalIndex index = WalIndex::Build(repo);
  EXPECT_EQ(index.segment_count(), 1u);
  ASSERT_TRUE(index.timelines().at(2).history);
  EXPECT_EQ(index.timelines().at(2).history->at(0).switch_lsn.ToString(), "0/5000000");
  EXPECT_FALSE(index.timelines().at(3).history);
  EXPECT_FALSE(index.timelines().at(3).history_problem.empty());
  EXPECT_THROW(index.Path(3), IntegrityError);  // reported when it matters, never skipped
  EXPECT_EQ(index.Path(2).size(), 2u);
}

}  // namespace
}  // namespace gravl::repo
