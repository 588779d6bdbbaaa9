#include "repo/wal.h"

#include <gtest/gtest.h>

#include "common/error.h"
#include "io/hash.h"
#include "repo/layout.h"
#include "repo/metadata.h"
#include "repo/wal_archive.h"
#include "storage/faulty.h"
#include "storage/forwarding.h"
#include "storage/memory.h"
#include "support/test_util.h"

namespace gravl::repo {
namespace {

TEST(WalNames, ClassifiesEveryKindPostgresArchives) {
  auto seg = ParseWalFileName("0000000A0000000100000002");
  ASSERT_TRUE(seg);
  EXPECT_EQ(seg->kind, WalFileKind::kSegment);
  EXPECT_EQ(seg->timeline, 10u);
  EXPECT_EQ(ParseWalFileName("00000002.history")->kind, WalFileKind::kHistory);
  EXPECT_EQ(ParseWalFileName("000000010000000000000003.partial")->kind, WalFileKind::kPartial);
  EXPECT_EQ(ParseWalFileName("000000010000000000000002.00000028.backup")->kind,
            WalFileKind::kBackupLabel);
  for (const char* bad :
       {"", "RECOVERYXLOG", "00000000.history", "0000000100000000000000",
        "000000010000000000000003.tmp", "00000001000000000000000g", "../00000001.history"}) {
    EXPECT_FALSE(ParseWalFileName(bad)) << bad;
  }
}

TEST(WalNames, ObjectKeysRoundTrip) {
  std::string sha(64, 'c');
  auto file = *ParseWalFileName("000000020000000000000007");
  std::string key = WalObjectKey("main", file, sha, CompressionType::kZstd);
  EXPECT_EQ(key, "main/wal/00000002/000000020000000000000007-" + sha + ".zst");
  auto obj = ParseWalObjectKey(key);
  ASSERT_TRUE(obj);
  EXPECT_EQ(obj->name, file.name);
  EXPECT_EQ(obj->sha256, sha);
  EXPECT_EQ(obj->compression, CompressionType::kZstd);
  auto plain = ParseWalObjectKey(
      WalObjectKey("main", *ParseWalFileName("00000002.history"), sha, CompressionType::kNone));
  ASSERT_TRUE(plain);
  EXPECT_EQ(plain->name, "00000002.history");
  EXPECT_EQ(plain->compression, CompressionType::kNone);
  EXPECT_FALSE(ParseWalObjectKey("main/wal/00000002/000000020000000000000007.zst"));
  EXPECT_FALSE(ParseWalObjectKey("main/wal/00000002/.x.gravl-tmp-abc"));
}

// A minimal segment: long page header with system identifier and segment size.
Bytes FakeSegment(std::uint64_t sysid, std::uint32_t seg_size, std::size_t size) {
  Bytes data(size, 0);
  data[0] = 0x10;
  data[1] = 0xD1;  // magic (PG 15: 0xD110)
  data[2] = 0x02;  // XLP_LONG_HEADER
  for (int i = 0; i < 8; ++i)
    data[24 + static_cast<std::size_t>(i)] = static_cast<std::uint8_t>(sysid >> (8 * i));
  for (int i = 0; i < 4; ++i)
    data[32 + static_cast<std::size_t>(i)] = static_cast<std::uint8_t>(seg_size >> (8 * i));
  return data;
}

TEST(WalHeader, AcceptsOwnClusterRefusesOthers) {
  Bytes seg = FakeSegment(7301234567890123456ULL, 16 << 20, 8192);
  EXPECT_NO_THROW(ValidateSegmentHeader(seg, "f", "7301234567890123456", 16 << 20));
  try {
    ValidateSegmentHeader(seg, "pg_wal/F", "42", 16 << 20);
    FAIL();
  } catch (const ConflictError& e) {
    EXPECT_NE(std::string(e.what()).find("7301234567890123456"), std::string::npos);
    EXPECT_NE(std::string(e.what()).find("pg_wal/F"), std::string::npos);
  }
  EXPECT_THROW(ValidateSegmentHeader(seg, "f", "7301234567890123456", 64 << 20), ConflictError);
  Bytes not_wal(8192, 0);
  EXPECT_THROW(ValidateSegmentHeader(not_wal, "f", "1", 16 << 20), IntegrityError);
  EXPECT_THROW(ValidateSegmentHeader(Bytes(10, 0), "f", "1", 16 << 20), IntegrityError);
}

// A destination factory whose sinks append into `out` (cleared for each attempt).
std::function<std::unique_ptr<io::Sink>()> Collector(Bytes& out) {
  struct Collect final : io::Sink {
    explicit Collect(Bytes& b) : b_(b) {}
    void Write(ByteView d) override { b_.insert(b_.end(), d.begin(), d.end()); }
    void Finish() override {}
    Bytes& b_;
  };
  return [&out] {
    out.clear();
    return std::unique_ptr<io::Sink>(std::make_unique<Collect>(out));
  };
}

class WalArchiveTest : public ::testing::Test {
 protected:
  void SetUp() override {
    for (const char* name : {"eu", "us"}) {
      auto storage = storage::MakeMemoryStorage();
      inner_.push_back(storage.get());
      StanzaInfo info;
      info.stanza = "main";
      info.system_identifier = "1";
      info.pg_major = 15;
      info.wal_segment_size = 16 << 20;
      WriteMetadata(*storage, StanzaKey("main"), info.ToJson());
      repos_.push_back(
          std::make_unique<Repository>(RepoConfig{name, "memory", ""}, std::move(storage), "main"));
      ptrs_.push_back(repos_.back().get());
    }
  }
  std::vector<storage::Storage*> inner_;
  std::vector<std::unique_ptr<Repository>> repos_;
  std::vector<Repository*> ptrs_;
  WalFileName file_ = *ParseWalFileName("000000010000000000000005");
};

TEST_F(WalArchiveTest, PushIsIdempotentAndNeverOverwrites) {
  Bytes data = test::PseudoRandom(100000, 1);
  std::string sha = io::Sha256Hex(data);
  auto first = PushWalFile(ptrs_, file_, data, sha, CompressionType::kZstd, 1);
  ASSERT_EQ(first.size(), 2u);
  EXPECT_TRUE(first[0].stored && first[1].stored);
  auto again = PushWalFile(ptrs_, file_, data, sha, CompressionType::kLz4, 1);
  EXPECT_FALSE(again[0].stored || again[1].stored);

  Bytes other = test::PseudoRandom(100000, 2);
  try {
    PushWalFile(ptrs_, file_, other, io::Sha256Hex(other), CompressionType::kZstd, 1);
    FAIL();
  } catch (const ConflictError& e) {
    EXPECT_NE(std::string(e.what()).find(sha), std::string::npos);
    EXPECT_NE(std::string(e.what()).find(io::Sha256Hex(other)), std::string::npos);
  }
  for (auto* s : inner_) EXPECT_EQ(FindWalObjects(*s, "main", file_).size(), 1u);
  Bytes received;
  EXPECT_EQ(FetchWalFile(ptrs_, file_, Collector(received)), std::optional<std::string>("eu"));
  EXPECT_EQ(received, data);
}

TEST_F(WalArchiveTest, FetchFallsBackToTheNextRepositoryAndReportsErrorsHonestly) {
  Bytes data = test::PseudoRandom(5000, 3);
  std::string sha = io::Sha256Hex(data);
  PushWalFile(ptrs_, file_, data, sha, CompressionType::kGzip, 6);

  // First region gone: the second serves the file.
  storage::FaultyStorage broken(*inner_[0], storage::FaultPlan{.fail_from_call = 1});
  Repository faulty_eu(
      RepoConfig{"eu", "memory", ""},
      std::make_unique<storage::ForwardingStorage>(static_cast<storage::Storage&>(broken)), "main");
  std::vector<Repository*> repos = {&faulty_eu, ptrs_[1]};
  Bytes received;
  auto collect = Collector(received);
  EXPECT_EQ(FetchWalFile(repos, file_, collect), std::optional<std::string>("us"));
  EXPECT_EQ(received, data);

  // A file no repository has, while one repository is failing: an error, not "not found".
  auto absent = *ParseWalFileName("000000010000000000000099");
  EXPECT_THROW(FetchWalFile(repos, absent, collect), StorageError);
  // With every repository answering, it is simply not archived.
  EXPECT_EQ(FetchWalFile(ptrs_, absent, collect), std::nullopt);

  // A corrupted copy in the first region: the second region's good copy is used, and the
  // bytes of the failed attempt are not mixed in.
  storage::FaultyStorage flip(*inner_[0], storage::FaultPlan{.flip_read_byte = 100});
  Repository flipped_eu(
      RepoConfig{"eu", "memory", ""},
      std::make_unique<storage::ForwardingStorage>(static_cast<storage::Storage&>(flip)), "main");
  std::vector<Repository*> repos2 = {&flipped_eu, ptrs_[1]};
  EXPECT_EQ(FetchWalFile(repos2, file_, collect), std::optional<std::string>("us"));
  EXPECT_EQ(received, data);
}

}  // namespace
}  // namespace gravl::repo
