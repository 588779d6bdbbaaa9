// The catalog on generated repositories: manifests of every format, a damaged one, an
// incomplete backup, two timelines with a history file and a gap -- each fact read with one
// listing.

#include "repo/catalog.h"

#include <gtest/gtest.h>

#include <map>

#include "common/error.h"
#include "io/hash.h"
#include "repo/layout.h"
#include "repo/metadata.h"
#include "repo/wal_archive.h"
#include "storage/forwarding.h"
#include "storage/memory.h"
#include "support/manifest_util.h"

namespace gravl::repo {
namespace {

constexpr std::uint64_t kSeg = 16 << 20;

// Counts listings by prefix (the forwarding base: only List is overridden).
class CountingStorage final : public storage::ForwardingStorage {
 public:
  using ForwardingStorage::ForwardingStorage;
  storage::ListPage List(const std::string& prefix, const storage::ListOptions& options) override {
    ++lists[prefix];
    return ForwardingStorage::List(prefix, options);
  }
  std::map<std::string, int> lists;
};

class CatalogTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto counting = std::make_unique<CountingStorage>(storage::MakeMemoryStorage());
    storage_ = counting.get();
    repo_ = test::NewTestRepository(std::move(counting), kSeg);
  }
  void PushWal(const std::string& name, const std::string& content = "x") {
    std::string sha = io::Sha256Hex(AsBytes(content + name));
    storage::PutBytes(*storage_,
                      WalObjectKey("main", *ParseWalFileName(name), sha, CompressionType::kNone),
                      AsBytes(content));
  }
  void Segments(TimelineId tli, std::uint64_t first, std::uint64_t last,
                std::vector<std::uint64_t> holes = {}) {
    for (std::uint64_t s = first; s <= last; ++s) {
      if (std::find(holes.begin(), holes.end(), s) == holes.end()) {
        PushWal(WalSegment{tli, s}.Name(kSeg));
      }
    }
  }
  void History(TimelineId tli, const std::string& text) {
    std::string name = TimelineHex(tli) + ".history";
    std::string sha = io::Sha256Hex(AsBytes(text));
    storage::PutBytes(*storage_,
                      WalObjectKey("main", *ParseWalFileName(name), sha, CompressionType::kNone),
                      AsBytes(text));
  }
  BackupManifest Full(const std::string& label, const std::string& start, const std::string& stop) {
    BackupManifest m = test::SampleFullManifest(label);
    m.start_lsn = Lsn::Parse(start);
    m.stop_lsn = Lsn::Parse(stop);
    return m;
  }
  CountingStorage* storage_ = nullptr;
  std::unique_ptr<Repository> repo_;
};

TEST_F(CatalogTest, BackupsOfEveryFormatDamagedAndIncompleteOnesInOneListing) {
  // Format 3 (as written now), 2 and 1 (as older versions wrote them), a logical one.
  WriteManifest(*repo_, Full("20260101T000000Z-full", "0/2000028", "0/2000100"));
  nlohmann::json v2 = Full("20260102T000000Z-full", "0/3000028", "0/3000100").ToJson();
  v2["format"] = 2;
  v2["file_list"].erase("stored_size");
  v2["backup_manifest"].erase("stored_size");
  test::WriteManifestDocument(*repo_, "20260102T000000Z-full", v2);
  nlohmann::json v1 = Full("20260103T000000Z-full", "0/4000028", "0/4000100").ToJson();
  v1["format"] = 1;
  v1.erase("file_list");
  v1["files"] = nlohmann::json::array();
  v1["backup_manifest"].erase("stored_size");
  test::WriteManifestDocument(*repo_, "20260103T000000Z-full", v1);
  BackupManifest logical = test::SampleFullManifest("20260104T000000Z-logical");
  logical.type = "logical";
  logical.format = 1;
  logical.databases = {{"shop", {"dumps/1.dump", std::string(64, 'c'), 5, 4}}};
  logical.globals = {"globals.sql", std::string(64, 'd'), 3, std::nullopt};
  WriteManifest(*repo_, logical);
  // A damaged manifest, and a folder without one.
  WriteManifest(*repo_, Full("20260105T000000Z-full", "0/5000028", "0/5000100"));
  std::string key = ManifestKey("main", "20260105T000000Z-full");
  Bytes bytes = storage::GetBytes(*storage_, key);
  bytes[bytes.size() / 2] ^= 1;
  storage::PutBytes(*storage_, key, bytes);
  storage::PutBytes(*storage_, "main/backups/20260106T000000Z-full/files/000001",
                    AsBytes(std::string("partial")));

  Catalog catalog(*repo_);
  const auto& backups = catalog.Backups();
  ASSERT_EQ(backups.size(), 5u);
  EXPECT_EQ(backups[0].manifest->format, 3);
  EXPECT_EQ(backups[1].manifest->format, 2);
  EXPECT_FALSE(backups[1].manifest->file_list->object.stored_size);
  EXPECT_EQ(backups[2].manifest->format, 1);
  EXPECT_FALSE(backups[2].manifest->file_list);
  EXPECT_FALSE(backups[3].manifest->full());
  EXPECT_EQ(backups[3].manifest->databases[0].name, "shop");
  EXPECT_FALSE(backups[4].ok());  // reported, never skipped
  EXPECT_EQ(backups[4].problem_code, ExitCode::kIntegrity);
  EXPECT_NE(backups[4].problem.find("20260105T000000Z-full"), std::string::npos);
  EXPECT_EQ(catalog.Incomplete(), std::vector<std::string>{"20260106T000000Z-full"});
  EXPECT_EQ(catalog.Find("20260102T000000Z-full")->manifest->stop_lsn.ToString(), "0/3000100");
  EXPECT_EQ(catalog.Find("nope"), nullptr);
  catalog.Backups();
  EXPECT_EQ(storage_->lists["main/backups/"], 1);  // one listing, kept

  // A manifest written by this build reads back as it was written.
  BackupManifest back = ReadManifest(*repo_, "20260101T000000Z-full");
  EXPECT_EQ(back.ToJson(), Full("20260101T000000Z-full", "0/2000028", "0/2000100").ToJson());
}

// A store that fails to answer says nothing of a backup: the listing fails with a storage
// error (the command exits 8 and can be re-run) instead of calling a sound backup damaged
// (which sync, verify and retention would act on).
TEST_F(CatalogTest, AStoreThatFailsToReadAManifestFailsTheListingNotTheBackup) {
  WriteManifest(*repo_, Full("20260101T000000Z-full", "0/2000028", "0/2000100"));
  History(2, "1\t0/3000000\tno recovery target specified\n");
  // Reads fail (listings and Stat answer): the store went away between them.
  class FailingReads final : public storage::ForwardingStorage {
   public:
    FailingReads(storage::Storage& inner, std::string filter)
        : ForwardingStorage(inner), filter_(std::move(filter)) {}
    std::unique_ptr<storage::ReadStream> TryGet(const std::string& key,
                                                const std::optional<storage::Range>& r) override {
      if (key.find(filter_) != std::string::npos) throw StorageError("connection reset", true);
      return ForwardingStorage::TryGet(key, r);
    }

   private:
    std::string filter_;
  };
  for (const std::string filter : {"manifest.json", ".history"}) {
    Repository view(repo_->config(), std::make_unique<FailingReads>(*storage_, filter), "main");
    view.Stanza();
    Catalog catalog(view);
    try {
      catalog.Backups();
      catalog.Wal();
      FAIL() << filter << ": a read failure was taken for a damaged object";
    } catch (const StorageError& e) {
      EXPECT_TRUE(e.retryable()) << e.what();
    }
  }
  Catalog sound(*repo_);
  EXPECT_TRUE(sound.Backups()[0].ok());
}

TEST_F(CatalogTest, WalIndexWindowsAcrossTimelinesAndGaps) {
  // Timeline 1 has segments 1..9 with 5 missing; timeline 2 forked at 0/7000000 and runs to
  // segment 12.
  Segments(1, 1, 9, {5});
  Segments(2, 7, 12);
  History(2, "1\t0/7000000\tno recovery target specified\n");
  Catalog catalog(*repo_);
  EXPECT_EQ(catalog.NewestWal()->Name(kSeg), "00000002000000000000000C");
  EXPECT_EQ(catalog.Wal().segment_count(), 14u);

  // Before the gap: cut short at segment 5.
  RecoverableWindow early = catalog.Window(Full("a", "0/2000028", "0/3000100"));
  EXPECT_TRUE(early.consistent);
  EXPECT_EQ(early.target_timeline, 2u);
  ASSERT_TRUE(early.gap);
  EXPECT_EQ(early.gap->Name(kSeg), "000000010000000000000005");
  EXPECT_EQ(early.to_lsn.ToString(), "0/5000000");
  // After it: across the switch to the end of timeline 2.
  RecoverableWindow late = catalog.Window(Full("b", "0/6000028", "0/6000100"));
  EXPECT_TRUE(late.consistent);
  EXPECT_FALSE(late.gap);
  EXPECT_EQ(late.to_lsn.ToString(), "0/D000000");
  EXPECT_EQ(late.reached_timeline, 2u);
  // Staying on timeline 1 ends at its own last segment.
  EXPECT_EQ(catalog.Window(Full("b", "0/6000028", "0/6000100"), 1).to_lsn.ToString(), "0/A000000");
  // A backup whose own WAL is missing cannot become consistent.
  RecoverableWindow broken = catalog.Window(Full("c", "0/5000028", "0/5000100"));
  EXPECT_FALSE(broken.consistent);
  // A backup on timeline 1 after the fork does not reach timeline 2.
  RecoverableWindow after_fork = catalog.Window(Full("d", "0/8000028", "0/8000100"), 2);
  EXPECT_FALSE(after_fork.problem.empty());
  // Every window came from one listing of the archive.
  EXPECT_EQ(storage_->lists["main/wal/"], 1);
}

TEST_F(CatalogTest, WaitForWalLooksUntilTheSegmentIsThereOrNamesIt) {
  Segments(1, 2, 3);
  Catalog catalog(*repo_);
  EXPECT_TRUE(catalog.HasWal(*ParseWalFileName("000000010000000000000002")));
  EXPECT_NO_THROW(catalog.WaitForWal(1, Lsn::Parse("0/2000028"), Lsn::Parse("0/3000100"),
                                     std::chrono::milliseconds(0)));
  try {
    catalog.WaitForWal(1, Lsn::Parse("0/3000028"), Lsn::Parse("0/4000100"),
                       std::chrono::milliseconds(50));
    FAIL();
  } catch (const StorageError& e) {
    EXPECT_NE(std::string(e.what()).find("000000010000000000000004"), std::string::npos);
  }
  EXPECT_EQ(storage_->lists.count("main/wal/"), 0u);  // never a listing of the archive
}

}  // namespace
}  // namespace gravl::repo
