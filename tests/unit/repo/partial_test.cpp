#include "repo/partial.h"

#include <gtest/gtest.h>

#include "common/error.h"
#include "io/hash.h"
#include "io/stream.h"
#include "repo/repository.h"
#include "repo/wal_index.h"
#include "storage/memory.h"
#include "support/manifest_util.h"
#include "support/test_util.h"

namespace gravl::repo {
namespace {

constexpr std::uint64_t kSeg = 1 << 20;

PartialChunk Chunk(std::uint64_t start, std::uint64_t end) {
  PartialChunk c;
  c.start = start;
  c.end = end;
  c.key = std::to_string(start) + "-" + std::to_string(end);
  return c;
}

TEST(PartialKeys, RoundTripAndRejectOtherKeys) {
  WalSegment seg{3, 17};
  std::string sha(64, 'a');
  std::string key = PartialChunkKey("main", seg, kSeg, 0x100, 0x2F0, sha, CompressionType::kZstd);
  EXPECT_EQ(key,
            "main/wal-partial/00000003/" + seg.Name(kSeg) + "/00000100-000002F0-" + sha + ".zst");
  auto c = ParsePartialChunkKey(key, kSeg);
  ASSERT_TRUE(c);
  EXPECT_EQ(c->segment, seg);
  EXPECT_EQ(c->start, 0x100u);
  EXPECT_EQ(c->end, 0x2F0u);
  EXPECT_EQ(c->sha256, sha);
  EXPECT_EQ(c->compression, CompressionType::kZstd);
  for (const std::string& bad :
       {"main/wal-partial/00000003/" + seg.Name(kSeg) + "/.tmp-x",
        "main/wal-partial/00000003/" + seg.Name(kSeg) + "/00000200-00000100-" + sha,  // empty
        "main/wal-partial/00000003/" + seg.Name(kSeg) + "/00000000-00200000-" + sha,  // > seg
        "main/wal-partial/00000003/XYZ/00000000-00000010-" + sha,
        "main/wal-partial/00000003/" + seg.Name(kSeg) + "/00000000-00000010-abc"}) {
    EXPECT_FALSE(ParsePartialChunkKey(bad, kSeg)) << bad;
  }
}

TEST(PartialChain, TakesThePathFromZeroThatReachesFurthest) {
  // A receiver that restarted uploaded [0,150) and [150,300) beside [0,100) and [100,200).
  auto chain = FurthestChain({Chunk(100, 200), Chunk(0, 100), Chunk(150, 300), Chunk(0, 150)});
  ASSERT_EQ(chain.size(), 2u);
  EXPECT_EQ(chain[0].end, 150u);
  EXPECT_EQ(chain[1].end, 300u);
  // Overlaps are allowed; a gap ends the chain.
  chain = FurthestChain({Chunk(0, 100), Chunk(50, 120), Chunk(130, 400)});
  ASSERT_EQ(chain.size(), 2u);
  EXPECT_EQ(chain.back().end, 120u);
  EXPECT_TRUE(FurthestChain({Chunk(10, 100)}).empty());  // nothing from offset 0
  EXPECT_TRUE(FurthestChain({}).empty());
}

class PartialRepo : public ::testing::Test {
 protected:
  void SetUp() override {
    repo_ = test::NewTestRepository(storage::MakeMemoryStorage(), kSeg);
    wal_ = test::PseudoRandom(300000, 7);
  }
  std::unique_ptr<Repository> repo_;
  Bytes wal_;
  WalSegment seg_{1, 5};
};

TEST_F(PartialRepo, ServesTheChunksVerifiedThenZerosToTheSegmentSize) {
  ByteView all(wal_);
  PutPartialChunk(*repo_, seg_, kSeg, 0, all.first(1000), CompressionType::kZstd, 1);
  PutPartialChunk(*repo_, seg_, kSeg, 1000, all.subspan(1000, 99000), CompressionType::kLz4, 1);
  // After a restart: the segment again from its start, further.
  PutPartialChunk(*repo_, seg_, kSeg, 0, all.first(250000), CompressionType::kZstd, 1);
  PutPartialChunk(*repo_, seg_, kSeg, 250000, all.subspan(250000), CompressionType::kNone, 1);
  // The same chunk twice is no error.
  PutPartialChunk(*repo_, seg_, kSeg, 0, all.first(1000), CompressionType::kZstd, 1);

  auto p = FindPartialSegment({repo_.get()}, seg_, kSeg);
  ASSERT_TRUE(p);
  EXPECT_EQ(p->bytes, wal_.size());
  io::BufferSink out;
  ReadPartialSegment(*p, kSeg, out);
  ASSERT_EQ(out.data().size(), kSeg);
  EXPECT_TRUE(std::equal(wal_.begin(), wal_.end(), out.data().begin()));
  EXPECT_TRUE(std::all_of(out.data().begin() + static_cast<std::ptrdiff_t>(wal_.size()),
                          out.data().end(), [](std::uint8_t b) { return b == 0; }));
  // Another segment has none.
  EXPECT_FALSE(FindPartialSegment({repo_.get()}, WalSegment{1, 6}, kSeg));
  EXPECT_FALSE(FindPartialSegment({repo_.get()}, WalSegment{2, 5}, kSeg));
}

TEST_F(PartialRepo, ADamagedChunkIsAnIntegrityErrorAndFinishesNothing) {
  PutPartialChunk(*repo_, seg_, kSeg, 0, ByteView(wal_).first(5000), CompressionType::kNone, 1);
  auto chunks = ListPartialChunks(*repo_, seg_, kSeg);
  ASSERT_EQ(chunks.size(), 1u);
  // Replace the stored bytes with other ones under the same key.
  repo_->storage().DeleteMany({chunks[0].key});
  {
    Bytes other = test::PseudoRandom(5000, 8);
    ObjectWriter w(repo_->storage(), chunks[0].key, repo_->Format(CompressionType::kNone, 1));
    w.Write(other);
    w.Finish();
  }
  auto p = FindPartialSegment({repo_.get()}, seg_, kSeg);
  ASSERT_TRUE(p);
  io::BufferSink out;
  EXPECT_THROW(ReadPartialSegment(*p, kSeg, out), IntegrityError);
  EXPECT_FALSE(out.finished());
}

TEST_F(PartialRepo, IsNeverTakenForArchivedWalAndIsDeletedOnceTheSegmentIsComplete) {
  PutPartialChunk(*repo_, seg_, kSeg, 0, ByteView(wal_).first(4096), CompressionType::kZstd, 1);
  PutPartialChunk(*repo_, WalSegment{1, 6}, kSeg, 0, ByteView(wal_).first(10),
                  CompressionType::kZstd, 1);
  auto index = WalIndex::Build(*repo_);
  EXPECT_EQ(index.segment_count(), 0u);
  EXPECT_TRUE(index.others().empty());
  EXPECT_FALSE(index.Newest());
  EXPECT_EQ(DeletePartialChunks(*repo_, 1, 5, kSeg), 1u);
  EXPECT_TRUE(ListPartialChunks(*repo_, seg_, kSeg).empty());
  EXPECT_EQ(ListPartialChunks(*repo_, WalSegment{1, 6}, kSeg).size(), 1u);
}

}  // namespace
}  // namespace gravl::repo
