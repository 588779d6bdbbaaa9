// Carrying out a retention plan: what goes, in which order (each expired backup's manifest
// before its objects, WAL last), and what a failure half-way leaves: only listed backups
// with all their objects and WAL.

#include "repo/expire.h"

#include <gtest/gtest.h>

#include <algorithm>

#include "common/error.h"
#include "io/hash.h"
#include "repo/layout.h"
#include "repo/metadata.h"
#include "repo/partial.h"
#include "storage/faulty.h"
#include "storage/forwarding.h"
#include "storage/memory.h"
#include "support/manifest_util.h"

namespace gravl::repo {
namespace {

constexpr std::uint64_t kSeg = 16 << 20;
using std::chrono::days;

// Records every deletion, in order.
class RecordingStorage final : public storage::ForwardingStorage {
 public:
  using ForwardingStorage::ForwardingStorage;
  void DeleteMany(const std::vector<std::string>& keys) override {
    for (const auto& k : keys) log.push_back("key " + k);
    ForwardingStorage::DeleteMany(keys);
  }
  void DeletePrefix(const std::string& prefix) override {
    log.push_back("prefix " + prefix);
    ForwardingStorage::DeletePrefix(prefix);
  }
  std::vector<std::string> log;
};

class ExpireTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto recording = std::make_unique<RecordingStorage>(storage::MakeMemoryStorage());
    storage_ = recording.get();
    repo_ = test::NewTestRepository(std::move(recording), kSeg);
    for (std::uint64_t s = 1; s <= 30; ++s) Wal(WalSegment{1, s}.Name(kSeg));
    Wal("00000002.history", "1\t0/1F000000\tno recovery target specified\n");
    // A: 100 days old (segments 2-3), B: 50 days, pinned (10-11), C: today (20-21).
    Backup("A", now_ - days(100), 2);
    Backup("B", now_ - days(50), 10);
    Backup("C", now_ - std::chrono::hours(1), 20);
    WritePin(*repo_, "B", std::nullopt, "legal hold");
    storage::PutBytes(*storage_, BackupObjectPrefix("main", "D") + "files/1", AsBytes("partial"));
    storage_->log.clear();
  }
  void Wal(const std::string& name, const std::string& content = "") {
    std::string text = content.empty() ? name : content;
    std::string sha = io::Sha256Hex(AsBytes(text));
    storage::PutBytes(*storage_,
                      WalObjectKey("main", *ParseWalFileName(name), sha, CompressionType::kNone),
                      AsBytes(text));
  }
  void Backup(const std::string& label, SystemTime stop, std::uint64_t segno) {
    BackupManifest m = test::SampleFullManifest(label);
    m.start_time = stop - std::chrono::minutes(1);
    m.stop_time = stop;
    m.start_lsn = Lsn{segno * kSeg + 40};
    m.stop_lsn = Lsn{(segno + 1) * kSeg + 40};
    storage::PutBytes(*storage_, BackupObjectPrefix("main", label) + "files/1", AsBytes("data"));
    WriteManifest(*repo_, m);
  }
  RetentionPlan Plan(Catalog& c) {
    RetentionPolicy p;
    p.full = {1, 0, 0, 0};
    p.min_full = 1;
    return PlanRetention(c.RetentionFacts(), p, now_, kSeg);
  }
  std::vector<std::string> WalLeft() {
    std::vector<std::string> names;
    for (const auto& o : storage::ListAll(*storage_, WalPrefix("main"))) {
      names.push_back(ParseWalObjectKey(o.key)->name);
    }
    return names;
  }
  std::size_t Position(const std::string& entry) {
    auto it = std::find(storage_->log.begin(), storage_->log.end(), entry);
    EXPECT_NE(it, storage_->log.end()) << entry;
    return static_cast<std::size_t>(it - storage_->log.begin());
  }

  SystemTime now_ = std::chrono::system_clock::now();
  RecordingStorage* storage_ = nullptr;
  std::unique_ptr<Repository> repo_;
};

TEST_F(ExpireTest, ManifestThenObjectsThenWalAndOnlyWhatThePlanDoesNotKeep) {
  Catalog catalog(*repo_);
  RetentionPlan plan = Plan(catalog);
  ASSERT_FALSE(plan.Find("A")->keep);
  WalDeletion wal = WalToDelete(catalog, plan);
  // Below C's start (20) only B's range (10-11) stays; history files always.
  EXPECT_EQ(wal.keys.size(), 19u - 2u);
  EXPECT_EQ(wal.first, (WalSegment{1, 1}.Name(kSeg)));
  EXPECT_EQ(wal.last, (WalSegment{1, 19}.Name(kSeg)));

  ExpireOutcome out = CarryOut(catalog, plan);
  EXPECT_EQ(out.backups_deleted, (std::vector<std::string>{"A"}));
  EXPECT_EQ(out.incomplete_removed, (std::vector<std::string>{"D"}));
  EXPECT_EQ(out.wal_deleted, 17u);
  std::size_t manifest = Position("key " + ManifestKey("main", "A"));
  std::size_t objects = Position("prefix " + BackupObjectPrefix("main", "A"));
  std::size_t first_wal = Position("key " + wal.keys.front());
  EXPECT_LT(manifest, objects);
  EXPECT_LT(objects, first_wal);
  EXPECT_LT(Position("prefix " + BackupObjectPrefix("main", "D")), first_wal);

  std::vector<std::string> left = WalLeft();
  EXPECT_EQ(left.size(), 2u + 11u + 1u);  // B's two, 20..30, the history file
  EXPECT_NE(std::find(left.begin(), left.end(), "00000002.history"), left.end());
  Catalog after(*repo_);
  ASSERT_EQ(after.Backups().size(), 2u);
  EXPECT_TRUE(after.Incomplete().empty());
  for (const auto& b : after.Backups()) EXPECT_TRUE(after.Window(*b.manifest).consistent);
}

TEST_F(ExpireTest, PartialChunksGoWithTheirSegmentOrOnceACompleteSegmentSupersedesThem) {
  // Chunks a killed receiver left: of segment 5 (expired), 10 (kept for B), 25 (archived
  // complete meanwhile) and 31 (the newest, only partial).
  for (std::uint64_t s : {5u, 10u, 25u, 31u}) {
    PutPartialChunk(*repo_, WalSegment{1, s}, kSeg, 0, AsBytes("wal bytes"), CompressionType::kNone,
                    1);
  }
  Catalog catalog(*repo_);
  RetentionPlan plan = Plan(catalog);
  WalDeletion wal = WalToDelete(catalog, plan);
  std::vector<std::string> chunks;
  for (const auto& k : wal.keys) {
    if (k.find("/wal-partial/") != std::string::npos) chunks.push_back(k);
  }
  ASSERT_EQ(chunks.size(), 3u) << testing::PrintToString(chunks);
  CarryOut(catalog, plan);
  EXPECT_TRUE(ListPartialChunks(*repo_, WalSegment{1, 5}, kSeg).empty());
  EXPECT_TRUE(ListPartialChunks(*repo_, WalSegment{1, 10}, kSeg).empty());  // 10 is complete
  EXPECT_TRUE(ListPartialChunks(*repo_, WalSegment{1, 25}, kSeg).empty());
  EXPECT_EQ(ListPartialChunks(*repo_, WalSegment{1, 31}, kSeg).size(), 1u);
}

TEST_F(ExpireTest, AFailureHalfWayLeavesOnlyRestorableBackupsListed) {
  // The store fails on the first WAL deletion: the expired backup is gone, the kept ones
  // are listed whole with their WAL, and a second run finishes the job.
  storage::FaultPlan faults;
  faults.fail_from_call = 1;
  faults.key_filter = "/000000010000";  // WAL segments of timeline 1, nothing else
  Repository through(RepoConfig{"mem", "memory", "", {}},
                     std::make_unique<storage::FaultyStorage>(*storage_, faults), "main");
  through.Stanza();
  {
    Catalog catalog(*repo_);  // planned on the healthy store, carried out on the failing one
    RetentionPlan plan = Plan(catalog);
    Catalog failing(through);
    failing.Backups();
    failing.Wal();
    EXPECT_THROW(CarryOut(failing, plan), StorageError);
  }
  Catalog after(*repo_);
  ASSERT_EQ(after.Backups().size(), 2u);
  for (const auto& b : after.Backups()) EXPECT_TRUE(after.Window(*b.manifest).consistent);
  EXPECT_EQ(WalLeft().size(), 31u);  // not one WAL object went
  Catalog again(*repo_);
  CarryOut(again, Plan(again));
  EXPECT_EQ(WalLeft().size(), 14u);
}

}  // namespace
}  // namespace gravl::repo
