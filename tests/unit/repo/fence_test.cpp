// Timeline fences: which WAL lies beyond a fence (segment boundaries, the segment holding the
// end, partial and history files), write-once storage (the same fence again is a no-op,
// another end a conflict), and quarantined WAL stored apart from the archive and listed.

#include "repo/fence.h"

#include <gtest/gtest.h>

#include "common/error.h"
#include "io/hash.h"
#include "repo/layout.h"
#include "repo/wal.h"
#include "storage/memory.h"
#include "support/manifest_util.h"

namespace gravl::repo {
namespace {

constexpr std::uint64_t kSeg = 16 << 20;

WalFileName Seg(const std::string& name) { return *ParseWalFileName(name); }

TEST(Fence, WhatLiesBeyond) {
  TimelineFence f;
  f.timeline = 1;
  f.successor = 2;
  f.end = Lsn::Parse("0/3000A28");  // inside segment 3
  EXPECT_FALSE(BeyondFence(f, Seg("000000010000000000000002"), kSeg));
  EXPECT_TRUE(BeyondFence(f, Seg("000000010000000000000003"), kSeg));  // diverges after the end
  EXPECT_TRUE(BeyondFence(f, Seg("000000010000000000000004"), kSeg));
  EXPECT_FALSE(BeyondFence(f, Seg("000000010000000000000003.partial"), kSeg));
  EXPECT_FALSE(BeyondFence(f, Seg("000000020000000000000004"), kSeg));  // another timeline
  EXPECT_FALSE(BeyondFence(f, Seg("00000002.history"), kSeg));
  // An end on a segment boundary: that segment is wholly after it, the one before is not.
  f.end = Lsn::Parse("0/4000000");
  EXPECT_FALSE(BeyondFence(f, Seg("000000010000000000000003"), kSeg));
  EXPECT_TRUE(BeyondFence(f, Seg("000000010000000000000004"), kSeg));
}

TEST(Fence, WriteOnceAndConflicts) {
  auto repo = test::NewTestRepository(storage::MakeMemoryStorage(), kSeg);
  EXPECT_FALSE(ReadFence(repo->storage(), "main", 1));
  TimelineFence f;
  f.timeline = 1;
  f.successor = 2;
  f.end = Lsn::Parse("0/3000A28");
  f.at = ParseIso8601("2026-12-01T02:00:00Z");
  f.reason = "failover";
  f.region = "us-east-1";
  f.token = "abc";
  WriteFence(*repo, f);
  WriteFence(*repo, f);  // a re-run: no-op
  auto back = ReadFence(repo->storage(), "main", 1);
  ASSERT_TRUE(back);
  EXPECT_EQ(back->end, f.end);
  EXPECT_EQ(back->region, "us-east-1");
  EXPECT_EQ(ReadFences(repo->storage(), "main").size(), 1u);
  TimelineFence other = f;
  other.end = Lsn::Parse("0/3000B00");
  try {
    WriteFence(*repo, other);
    FAIL();
  } catch (const ConflictError& e) {
    EXPECT_NE(std::string(e.what()).find("two promotions forked the same timeline"),
              std::string::npos);
  }
  // A damaged fence is an integrity error, not "no fence".
  repo->storage().Put(FenceKey("main", 1), {})->Commit();
  EXPECT_ANY_THROW(ReadFence(repo->storage(), "main", 1));
}

TEST(Fence, QuarantineKeepsWalApart) {
  auto repo = test::NewTestRepository(storage::MakeMemoryStorage(), kSeg);
  Bytes data(1024, 7);
  std::string sha = io::Sha256Hex(data);
  auto file = Seg("000000010000000000000004");
  std::string key = QuarantineWalFile(*repo, file, data, sha, CompressionType::kZstd, 1);
  EXPECT_EQ(key.rfind("main/quarantine/wal/00000001/000000010000000000000004-", 0), 0u) << key;
  EXPECT_EQ(QuarantineWalFile(*repo, file, data, sha, CompressionType::kZstd, 1), key);
  EXPECT_TRUE(FindWalObjects(repo->storage(), "main", file).empty());  // never in the archive
  auto listed = ListQuarantine(repo->storage(), "main");
  ASSERT_EQ(listed.size(), 1u);
  EXPECT_EQ(listed[0].key, key);
}

}  // namespace
}  // namespace gravl::repo
