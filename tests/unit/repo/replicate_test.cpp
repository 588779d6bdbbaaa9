// Repository sync on memory stores: what is copied (backups, then the WAL the target needs),
// verification of every object (a flipped byte in the source is never committed), resuming
// after an interruption, 10 % injected faults on either side converging to identical content,
// refusals (other key material, a different backup under one label), and retention: a sync
// never resurrects what the target's policy lets go.

#include "repo/replicate.h"

#include <gtest/gtest.h>

#include <random>

#include "common/error.h"
#include "io/hash.h"
#include "io/stream.h"
#include "repo/file_list.h"
#include "repo/layout.h"
#include "repo/manifest.h"
#include "repo/wal.h"
#include "storage/faulty.h"
#include "storage/memory.h"
#include "support/manifest_util.h"
#include "support/test_util.h"

namespace gravl::repo {
namespace {

constexpr std::uint64_t kSeg = 16 << 20;
using std::chrono::hours;

// A store whose calls fail at random (retryable), `percent` of them.
class FlakyStorage final : public storage::ForwardingStorage {
 public:
  FlakyStorage(std::unique_ptr<storage::Storage> inner, int percent)
      : ForwardingStorage(std::move(inner)), percent_(percent) {}
  std::unique_ptr<storage::WriteStream> Put(const std::string& key,
                                            const storage::PutOptions& o) override {
    Maybe();
    return ForwardingStorage::Put(key, o);
  }
  std::unique_ptr<storage::ReadStream> TryGet(const std::string& key,
                                              const std::optional<storage::Range>& r) override {
    Maybe();
    return ForwardingStorage::TryGet(key, r);
  }
  std::optional<storage::ObjectInfo> Stat(const std::string& key) override {
    Maybe();
    return ForwardingStorage::Stat(key);
  }
  bool armed = true;

 private:
  void Maybe() {
    std::lock_guard lock(mutex_);
    if (static_cast<int>(rng_() % 100) < percent_ && armed) {
      throw StorageError("injected fault", true);
    }
  }

  int percent_;
  std::mutex mutex_;
  std::mt19937 rng_{42};
};

std::unique_ptr<Repository> Open(storage::Storage& store, const std::string& name) {
  auto r =
      std::make_unique<Repository>(RepoConfig{name, "memory", "", {}},
                                   std::make_unique<storage::ForwardingStorage>(store), "main");
  r->Stanza();
  return r;
}

class ReplicateTest : public ::testing::Test {
 protected:
  void SetUp() override {
    a_store_ = storage::MakeMemoryStorage();
    b_store_ = storage::MakeMemoryStorage();
    test::NewTestRepository(std::make_unique<storage::ForwardingStorage>(*a_store_), kSeg);
    test::NewTestRepository(std::make_unique<storage::ForwardingStorage>(*b_store_), kSeg);
    a_ = Open(*a_store_, "a");
    b_ = Open(*b_store_, "b");
  }
  void Wal(Repository& repo, std::uint64_t segno) {
    std::string name = WalSegment{1, segno}.Name(kSeg);
    Bytes content = test::PseudoRandom(1000, segno);
    io::BufferSource src(content);
    WriteObject(repo.storage(),
                WalObjectKey("main", *ParseWalFileName(name), io::Sha256Hex(content),
                             CompressionType::kZstd),
                src, repo.Format(CompressionType::kZstd, 1));
  }
  ObjectRecord Object(Repository& repo, const std::string& key, const std::string& name,
                      std::uint64_t seed) {
    Bytes content = test::PseudoRandom(20000, seed, true);
    io::BufferSource src(content);
    StoredObject so = WriteObject(repo.storage(), key, src,
                                  BackupObjectFormat(repo.Format(CompressionType::kZstd, 1), 3));
    return {name, so.sha256, so.size, so.stored_size};
  }
  // A full backup of format 3: an empty file list, three bundles, PostgreSQL's manifest.
  std::string Backup(Repository& repo, SystemTime stop, std::uint64_t segno) {
    BackupManifest m = test::SampleFullManifest(FormatCompact(stop) + "-full");
    m.start_time = stop - std::chrono::minutes(5);
    m.stop_time = stop;
    m.start_lsn = Lsn{segno * kSeg + 40};
    m.stop_lsn = Lsn{segno * kSeg + 4000};
    std::string prefix = BackupObjectPrefix("main", m.label);
    m.file_list = MakeFileListRecord(WriteFileList(repo, m.label, FileList(3)), 0);
    for (int i = 1; i <= 3; ++i) {
      std::string name = "bundles/00000" + std::to_string(i);
      m.bundles.push_back(
          Object(repo, prefix + name, name, segno * 10 + static_cast<std::uint64_t>(i)));
    }
    m.backup_manifest = Object(repo, prefix + "backup_manifest", "backup_manifest", segno);
    WriteManifest(repo, m);
    return m.label;
  }
  SyncResult Run(SyncOptions options = {}) {
    options.now = now_;
    Catalog a(*a_), b(*b_);
    return Sync(a, b, options);
  }
  std::map<std::string, std::string> Contents(storage::Storage& s, const std::string& sub) {
    std::map<std::string, std::string> out;
    for (const auto& o : storage::ListAll(s, "main/" + sub)) {
      out[o.key] = io::Sha256Hex(storage::GetBytes(s, o.key));
    }
    return out;
  }

  std::unique_ptr<storage::Storage> a_store_, b_store_;
  std::unique_ptr<Repository> a_, b_;
  SystemTime now_ =
      std::chrono::time_point_cast<std::chrono::seconds>(std::chrono::system_clock::now());
};

TEST_F(ReplicateTest, CopiesBackupsAndTheirWalThenNothing) {
  for (std::uint64_t s = 1; s <= 12; ++s) Wal(*a_, s);
  std::string b1 = Backup(*a_, now_ - hours(30), 2);
  std::string b2 = Backup(*a_, now_ - hours(6), 8);

  SyncResult check = Run({.verify_only = true});
  EXPECT_EQ(check.backups.size(), 2u);
  EXPECT_EQ(check.backups[0].status, "missing");
  EXPECT_EQ(check.wal_missing, 11u);              // from the oldest backup's start segment (2) on
  EXPECT_EQ(check.missing_objects, 11u + 2 * 6);  // WAL + per backup 5 objects and a manifest
  EXPECT_FALSE(check.complete());
  EXPECT_TRUE(storage::ListAll(*b_store_, "main/backups/").empty());

  SyncResult done = Run();
  EXPECT_EQ(done.backups[1].status, "copied");
  EXPECT_EQ(done.objects_copied, 11u + 2 * 6);
  EXPECT_TRUE(Contents(*a_store_, "backups/") == Contents(*b_store_, "backups/"));
  Catalog b(*b_);
  EXPECT_EQ(b.Backups().size(), 2u);
  ASSERT_TRUE(b.Backups()[1].ok()) << b.Backups()[1].problem;
  EXPECT_TRUE(b.Window(*b.Find(b2)->manifest).consistent);

  SyncResult again = Run();
  EXPECT_EQ(again.objects_copied, 0u);
  EXPECT_EQ(again.backups[0].status, "present");
  EXPECT_TRUE(Run({.verify_only = true}).complete());
  (void)b1;
}

TEST_F(ReplicateTest, LagIsWhatTheTargetLacksAndZeroAfterASync) {
  for (std::uint64_t s = 1; s <= 10; ++s) Wal(*a_, s);
  Backup(*a_, now_ - hours(30), 2);
  Backup(*a_, now_ - hours(6), 8);
  auto lag = [&] {
    Catalog a(*a_), b(*b_);
    return LagOf(a.Backups(), a.Wal(), b.Backups(), b.Wal());
  };
  SyncLag before = lag();
  EXPECT_EQ(before.missing_backups, 2u);
  EXPECT_EQ(before.missing_wal, 9u);  // from the oldest backup's segment (2) on
  EXPECT_EQ(before.newest_missing_backup, now_ - hours(6));
  EXPECT_TRUE(before.newest_missing_wal.has_value());
  EXPECT_GT(before.missing_bytes, 0u);
  Run();
  SyncLag after = lag();
  EXPECT_EQ(after.missing_backups, 0u);
  EXPECT_EQ(after.missing_wal, 0u);
  EXPECT_FALSE(after.newest_missing_wal.has_value());
  Wal(*a_, 11);  // archived in A only since
  EXPECT_EQ(lag().missing_wal, 1u);
}

TEST_F(ReplicateTest, AFlippedByteInTheSourceIsNeverCommittedAndTheManifestNeverListed) {
  Wal(*a_, 2);
  std::string label = Backup(*a_, now_ - hours(1), 2);
  storage::FaultyStorage faulty(*a_store_, {.flip_read_byte = 100, .key_filter = "bundles/000002"});
  auto a = std::make_unique<Repository>(
      RepoConfig{"a", "memory", "", {}},
      std::make_unique<storage::ForwardingStorage>(static_cast<storage::Storage&>(faulty)), "main");
  a->Stanza();
  Catalog ca(*a), cb(*b_);
  EXPECT_THROW(Sync(ca, cb, {.now = now_}), IntegrityError);
  EXPECT_FALSE(b_store_->Stat(BackupObjectPrefix("main", label) + "bundles/000002"));
  EXPECT_FALSE(b_store_->Stat(ManifestKey("main", label)));
  // The source repaired (here: read without the fault): the next sync completes.
  EXPECT_EQ(Run().backups[0].status, "copied");
}

TEST_F(ReplicateTest, InterruptedSyncResumesWithoutCopyingAgainOrListingEarly) {
  for (std::uint64_t s = 1; s <= 6; ++s) Wal(*a_, s);
  std::string label = Backup(*a_, now_ - hours(1), 2);
  int seen = 0;
  std::uint64_t copied_first = 0;
  SyncOptions stop_half;
  stop_half.parallel = 1;
  stop_half.on_object = [&](const std::string& key, std::uint64_t bytes) {
    if (bytes > 0) ++copied_first;
    if (++seen == 3 || key.ends_with("bundles/000002")) {
      throw Error(ExitCode::kInterrupted, "stopped (test)");
    }
  };
  EXPECT_THROW(Run(stop_half), Error);
  EXPECT_FALSE(b_store_->Stat(ManifestKey("main", label)));  // not listed in B
  SyncResult rest = Run();
  EXPECT_EQ(rest.backups[0].status, "copied");
  // 5 WAL segments (from the backup's), 5 backup objects and the manifest in all.
  EXPECT_EQ(rest.objects_copied, 11u - copied_first) << "only what the first run did not copy";
  EXPECT_GT(copied_first, 0u);
  EXPECT_TRUE(Contents(*a_store_, "backups/") == Contents(*b_store_, "backups/"));
}

TEST_F(ReplicateTest, TenPercentFaultsOnEitherSideConvergeToIdenticalContent) {
  for (std::uint64_t s = 2; s <= 30; ++s) Wal(*a_, s);
  for (int i = 0; i < 4; ++i)
    Backup(*a_, now_ - hours(40 - 10 * i), 2 + 6 * static_cast<std::uint64_t>(i));
  FlakyStorage flaky_a(std::make_unique<storage::ForwardingStorage>(*a_store_), 10);
  FlakyStorage flaky_b(std::make_unique<storage::ForwardingStorage>(*b_store_), 10);
  auto a = std::make_unique<Repository>(
      RepoConfig{"a", "memory", "", {}},
      std::make_unique<storage::ForwardingStorage>(static_cast<storage::Storage&>(flaky_a)),
      "main");
  auto b = std::make_unique<Repository>(
      RepoConfig{"b", "memory", "", {}},
      std::make_unique<storage::ForwardingStorage>(static_cast<storage::Storage&>(flaky_b)),
      "main");
  flaky_a.armed = flaky_b.armed = false;
  a->Stanza();
  b->Stanza();
  flaky_a.armed = flaky_b.armed = true;
  int runs = 0;
  for (; runs < 2000; ++runs) {
    try {
      Catalog ca(*a), cb(*b);
      SyncResult r = Sync(ca, cb, {.now = now_});
      if (r.objects_copied == 0) break;
    } catch (const Error& e) {
      EXPECT_TRUE(e.code() == ExitCode::kStorage) << e.what();
    }
    // After every run, B lists only backups that are complete and verified.
    flaky_b.armed = false;
    Catalog check(*b_);
    for (const auto& e : check.Backups()) ASSERT_TRUE(e.ok()) << e.problem;
    flaky_b.armed = true;
  }
  EXPECT_LT(runs, 2000);
  RecordProperty("runs", runs);
  EXPECT_TRUE(Contents(*a_store_, "backups/") == Contents(*b_store_, "backups/"));
  EXPECT_TRUE(Contents(*a_store_, "wal/") == Contents(*b_store_, "wal/"));
}

TEST_F(ReplicateTest, RefusesOtherKeyMaterialAndADifferentBackupUnderTheSameLabel) {
  std::string label = Backup(*a_, now_ - hours(1), 2);
  // B's stanza encrypted: other key material.
  {
    auto store = storage::MakeMemoryStorage();
    StanzaInfo info = a_->Stanza();
    io::Key key;
    info.encryption = NewEncryption("passphrase", key, io::KdfParams{.n = 1024, .r = 8, .p = 1});
    WriteMetadata(*store, StanzaKey("main"), info.ToJson());
    auto enc = Open(*store, "enc");
    Catalog ca(*a_), cb(*enc);
    try {
      Sync(ca, cb, {.now = now_});
      FAIL() << "synced into a repository of other key material";
    } catch (const ConflictError& e) {
      EXPECT_NE(std::string(e.what()).find("key material"), std::string::npos) << e.what();
    }
  }
  // Another major version, and another cluster, in B.
  for (auto change : {+[](StanzaInfo& i) { i.pg_major = 16; },
                      +[](StanzaInfo& i) { i.system_identifier = "2"; }}) {
    auto store = storage::MakeMemoryStorage();
    StanzaInfo info = a_->Stanza();
    change(info);
    WriteMetadata(*store, StanzaKey("main"), info.ToJson());
    auto other = Open(*store, "other");
    Catalog ca(*a_), cb(*other);
    EXPECT_THROW(Sync(ca, cb, {.now = now_}), ConflictError);
    EXPECT_TRUE(storage::ListAll(*store, "main/backups/").empty());
  }
  // The same label in B, another manifest.
  nlohmann::json doc = ReadManifestDocument(*a_, label);
  doc["created_by"] = "someone else";
  test::WriteManifestDocument(*b_, label, doc);
  auto before = Contents(*b_store_, "");
  try {
    Run();
    FAIL() << "a different backup under the same label was accepted";
  } catch (const ConflictError& e) {
    EXPECT_NE(std::string(e.what()).find(label + "/manifest.json"), std::string::npos) << e.what();
  }
  EXPECT_EQ(Contents(*b_store_, ""), before);
}

TEST_F(ReplicateTest, NeverResurrectsWhatTheTargetsRetentionLetsGo) {
  for (std::uint64_t s = 1; s <= 20; ++s) Wal(*a_, s);
  std::string old = Backup(*a_, now_ - hours(24 * 40), 2);
  std::string recent = Backup(*a_, now_ - hours(50), 15);  // the newest of its day
  Backup(*b_, now_ - hours(1), 16);                        // B has a newer one of its own
  RetentionPolicy policy;
  policy.full = {7, 0, 0, 0};
  policy.min_full = 1;
  SyncResult r = Run({.policy = policy});
  EXPECT_EQ(r.backups[0].label, old);
  EXPECT_EQ(r.backups[0].status, "expired-in-target");
  EXPECT_EQ(r.backups[1].status, "copied");
  EXPECT_FALSE(b_store_->Stat(ManifestKey("main", old)));
  // ... and its WAL is not copied either: only from the recent backup's segment on.
  EXPECT_FALSE(b_store_->Stat(storage::ListAll(*a_store_, "main/wal/").front().key));
  (void)recent;
}

}  // namespace
}  // namespace gravl::repo
