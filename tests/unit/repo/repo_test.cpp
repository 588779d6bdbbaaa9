#include <gtest/gtest.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/error.h"
#include "io/hash.h"
#include "repo/catalog.h"
#include "repo/layout.h"
#include "repo/lock.h"
#include "repo/manifest.h"
#include "repo/metadata.h"
#include "repo/object_io.h"
#include "repo/repository.h"
#include "storage/faulty.h"
#include "storage/memory.h"
#include "storage/posix.h"
#include "support/manifest_util.h"
#include "support/test_util.h"

namespace gravl::repo {
namespace {

TEST(Metadata, RoundTripAndTamperDetection) {
  auto s = storage::MakeMemoryStorage();
  WriteMetadata(*s, "m.json", {{"a", 1}, {"b", "text"}});
  EXPECT_EQ(ReadMetadata(*s, "m.json"), (nlohmann::json{{"a", 1}, {"b", "text"}}));

  std::string text(AsChars(storage::GetBytes(*s, "m.json")));
  std::string changed = text;
  changed.replace(changed.find("text"), 4, "TEXT");
  storage::PutBytes(*s, "m.json", AsBytes(changed));
  try {
    ReadMetadata(*s, "m.json");
    FAIL();
  } catch (const IntegrityError& e) {
    EXPECT_NE(std::string(e.what()).find("m.json: checksum mismatch"), std::string::npos);
  }
  storage::PutBytes(*s, "m.json", AsBytes(text.substr(0, text.size() / 2)));
  EXPECT_THROW(ReadMetadata(*s, "m.json"), IntegrityError);
  EXPECT_THROW(ReadMetadata(*s, "absent.json"), NotFoundError);
}

TEST(Metadata, LargeDocumentsAreCompactVerifiedOnTheirTextAndStillReadTheOldWay) {
  nlohmann::json files = nlohmann::json::array();
  for (int i = 0; i < 40000; ++i) {
    files.push_back({{"path", "base/5/" + std::to_string(i)}, {"size", 8192}, {"n", i}});
  }
  nlohmann::json doc = {{"label", "x"}, {"files", files}};
  std::string text = SerializeMetadata(doc);
  ASSERT_GT(text.size(), 1u << 20);
  EXPECT_EQ(text.rfind("{\"checksum\":\"", 0), 0u);  // compact, checksum first
  EXPECT_EQ(text.find('\n'), text.size() - 1);
  EXPECT_EQ(ParseMetadata(text, "big"), doc);
  EXPECT_EQ(ParseMetadata(text, "big", {"files"}), (nlohmann::json{{"label", "x"}}));
  std::string changed = text;
  changed.replace(changed.find("base/5/777"), 10, "base/5/778");
  try {
    ParseMetadata(changed, "big");
    FAIL();
  } catch (const IntegrityError& e) {
    EXPECT_NE(std::string(e.what()).find("big: checksum mismatch"), std::string::npos);
  }
  EXPECT_THROW(ParseMetadata(text.substr(0, text.size() - 100), "big"), IntegrityError);
  // Small documents stay indented (and documents written before the compact form read).
  std::string small = SerializeMetadata({{"a", 1}});
  EXPECT_NE(small.find("\n  \"a\": 1"), std::string::npos) << small;
  EXPECT_EQ(ParseMetadata(small, "small"), (nlohmann::json{{"a", 1}}));
  EXPECT_EQ(ParseMetadata(small, "small", {"a"}), nlohmann::json::object());
}

class ObjectIo : public ::testing::TestWithParam<std::tuple<CompressionType, bool, bool>> {};

// Both kinds of object: SHA-256 of the content (WAL, format 1-2 backups), and SHA-256 of the
// stored bytes with the content checked by size and XXH128 (format 3 backups).
TEST_P(ObjectIo, WriteReadVerifyAndDetectDamage) {
  auto [compression, encrypted, of_stored] = GetParam();
  io::Key key(Bytes(io::kKeySize, 9));
  ObjectFormat format{compression, 1, encrypted ? &key : nullptr};
  format.sha256_of_stored = of_stored;
  const std::string name = "st/backups/L/files/base/1";
  auto inner = storage::MakeMemoryStorage();
  Bytes data = test::PseudoRandom(700000, 11, true);
  io::BufferSource src(data);
  StoredObject obj = WriteObject(*inner, name, src, format);
  EXPECT_EQ(obj.size, data.size());
  EXPECT_EQ(obj.stored_size, inner->Stat(name)->size);
  Bytes stored = storage::GetBytes(*inner, name);
  EXPECT_EQ(obj.sha256, io::Sha256Hex(of_stored ? ByteView(stored) : ByteView(data)));
  const std::string xxh = of_stored ? io::DigestHex(io::DigestType::kXxh128, data) : "";
  auto expect = [&](std::uint64_t size) {
    return Expected{obj.sha256, size, obj.stored_size, xxh};
  };

  io::BufferSink out;
  ReadObject(*inner, name, format, expect(obj.size), out);
  EXPECT_TRUE(out.finished());
  EXPECT_EQ(out.data(), data);

  // One flipped byte anywhere in the stored object: an error naming the object, and the
  // destination is never finished.
  for (std::uint64_t pos : {std::uint64_t{0}, obj.stored_size / 2, obj.stored_size - 1}) {
    storage::FaultyStorage flip(*inner, storage::FaultPlan{.flip_read_byte = pos});
    io::BufferSink bad;
    try {
      ReadObject(flip, name, format, expect(obj.size), bad);
      FAIL() << "flip at " << pos << " accepted";
    } catch (const IntegrityError& e) {
      EXPECT_NE(std::string(e.what()).find(name), std::string::npos) << e.what();
    }
    EXPECT_FALSE(bad.finished());
  }
  // A wrong expected size is caught even when the hash would match.
  io::BufferSink sized;
  EXPECT_THROW(ReadObject(*inner, name, format, expect(obj.size + 1), sized), IntegrityError);
  // Longer than recorded: stopped as soon as the excess arrives, not at the end.
  io::BufferSink shorter;
  EXPECT_THROW(ReadObject(*inner, name, format, expect(1000), shorter), IntegrityError);
  EXPECT_LE(shorter.data().size(), 1000u);
  if (of_stored) {
    // The stored bytes are what the SHA-256 covers: a wrong stored size or SHA-256 is refused
    // before the destination is finished, and so is content with the wrong XXH128.
    io::BufferSink stored_size;
    EXPECT_THROW(ReadObject(*inner, name, format, {obj.sha256, obj.size, obj.stored_size + 1, xxh},
                            stored_size),
                 IntegrityError);
    EXPECT_FALSE(stored_size.finished());
    if (stored != data) {  // the content's SHA-256 is not the stored bytes'
      io::BufferSink content_sha;
      EXPECT_THROW(
          ReadObject(*inner, name, format, {io::Sha256Hex(data), obj.size, {}, {}}, content_sha),
          IntegrityError);
      EXPECT_FALSE(content_sha.finished());
    }
    io::BufferSink wrong_xxh;
    try {
      ReadObject(*inner, name, format,
                 {obj.sha256, obj.size, obj.stored_size, std::string(32, '0')}, wrong_xxh);
      FAIL() << "wrong XXH128 accepted";
    } catch (const IntegrityError& e) {
      EXPECT_NE(std::string(e.what()).find("XXH128 mismatch"), std::string::npos) << e.what();
    }
    EXPECT_FALSE(wrong_xxh.finished());
  }
}

INSTANTIATE_TEST_SUITE_P(
    Formats, ObjectIo,
    ::testing::Combine(::testing::Values(CompressionType::kNone, CompressionType::kZstd,
                                         CompressionType::kLz4, CompressionType::kGzip),
                       ::testing::Bool(), ::testing::Bool()));

TEST(Encryption, WrongPassphraseIsAClearErrorWithTheDefaultKdf) {
  io::Key key;
  EncryptionInfo info = NewEncryption("the right one", key);
  EXPECT_EQ(info.kdf.n, 1u << 16);
  EXPECT_EQ(info.kdf.salt.size(), 32u);
  io::Key again = UnlockEncryption(info, "the right one", "repo X");
  EXPECT_TRUE(ConstantTimeEqual(again.bytes(), key.bytes()));
  try {
    UnlockEncryption(info, "the wrong one", "repo X");
    FAIL();
  } catch (const CryptoError& e) {
    EXPECT_EQ(e.code(), ExitCode::kCrypto);
    EXPECT_NE(std::string(e.what()).find("wrong passphrase for repo X"), std::string::npos);
    EXPECT_EQ(std::string(e.what()).find("the wrong one"), std::string::npos);
  }
  // Two stanzas with the same passphrase get different salts and keys.
  io::Key other;
  EncryptionInfo info2 = NewEncryption("the right one", other);
  EXPECT_NE(info.kdf.salt, info2.kdf.salt);
  EXPECT_FALSE(ConstantTimeEqual(key.bytes(), other.bytes()));
}

TEST(StanzaInfoJson, RoundTripAndValidation) {
  StanzaInfo s;
  s.stanza = "main";
  s.system_identifier = "7301234567890123456";
  s.pg_version_num = 150020;
  s.pg_major = 15;
  s.wal_segment_size = 16 << 20;
  s.created_at = "2026-01-01T00:00:00Z";
  s.created_by = "test";
  s.encryption = EncryptionInfo{};
  s.encryption->kdf.salt = Bytes(32, 1);
  s.encryption->key_check = "ab";
  StanzaInfo back = StanzaInfo::FromJson(s.ToJson(), "x");
  EXPECT_EQ(back.system_identifier, s.system_identifier);
  ASSERT_TRUE(back.encryption);
  EXPECT_EQ(back.encryption->kdf.salt, s.encryption->kdf.salt);
  nlohmann::json bad = s.ToJson();
  bad.erase("system_identifier");
  EXPECT_THROW(StanzaInfo::FromJson(bad, "x"), IntegrityError);
  nlohmann::json newer = s.ToJson();
  newer["format"] = 99;
  EXPECT_THROW(StanzaInfo::FromJson(newer, "x"), ConflictError);
}

TEST(Lock, SecondHolderIsRefusedAndReleaseFrees) {
  test::TempDir dir;
  auto storage = storage::MakePosixStorage(dir / "repo");
  {
    auto lock = StanzaLock::Acquire(*storage, "main", "backup", "test");
    EXPECT_TRUE(storage->Stat(LockKey("main", "backup")));
    // Another process on this host is refused by the local lock.
    pid_t child = ::fork();
    if (child == 0) {
      auto s2 = storage::MakePosixStorage(dir / "repo");
      try {
        StanzaLock::Acquire(*s2, "main", "backup", "child");
        _exit(0);
      } catch (const LockError&) {
        _exit(10);
      }
    }
    int status = 0;
    ::waitpid(child, &status, 0);
    EXPECT_EQ(WEXITSTATUS(status), 10);
    // Another kind is independent.
    EXPECT_NO_THROW(StanzaLock::Acquire(*storage, "main", "archive", "test"));
  }
  EXPECT_FALSE(storage->Stat(LockKey("main", "backup")));
  EXPECT_NO_THROW(StanzaLock::Acquire(*storage, "main", "backup", "test"));
}

TEST(Lock, StaleLeaseOfADeadProcessIsTakenOver) {
  test::TempDir dir;
  auto storage = storage::MakePosixStorage(dir / "repo");
  pid_t child = ::fork();
  if (child == 0) {
    auto s2 = storage::MakePosixStorage(dir / "repo");
    auto lock = StanzaLock::Acquire(*s2, "main", "backup", "doomed");
    ::_exit(0);  // dies holding the lease (no destructor runs)
  }
  int status = 0;
  ::waitpid(child, &status, 0);
  ASSERT_TRUE(storage->Stat(LockKey("main", "backup")));
  EXPECT_NO_THROW(StanzaLock::Acquire(*storage, "main", "backup", "survivor"));
}

TEST(Lock, SameHostNameButAnotherPidNamespaceIsNotTakenOver) {
  test::TempDir dir;
  auto storage = storage::MakePosixStorage(dir / "repo");
  char host[256] = {};
  ::gethostname(host, sizeof host - 1);
  std::string boot = test::ReadFile("/proc/sys/kernel/random/boot_id");
  boot.resize(boot.find('\n'));
  // A live process in another container with the same host name: its pid means nothing here.
  nlohmann::json lease = {{"host", host},
                          {"boot_id", boot},
                          {"pid_namespace", "pid:[1]"},
                          {"pid", 999999},
                          {"command", "backup"},
                          {"token", "t"},
                          {"acquired_at", "2026-01-01T00:00:00Z"}};
  storage::PutBytes(*storage, LockKey("main", "backup"), AsBytes(lease.dump()));
  EXPECT_THROW(StanzaLock::Acquire(*storage, "main", "backup", "test"), LockError);
  // The same lease from an earlier boot of this machine is stale.
  lease["boot_id"] = "00000000-0000-0000-0000-000000000000";
  storage->DeleteMany({LockKey("main", "backup")});
  storage::PutBytes(*storage, LockKey("main", "backup"), AsBytes(lease.dump()));
  EXPECT_NO_THROW(StanzaLock::Acquire(*storage, "main", "backup", "test"));
}

TEST(Lock, LeaseOfAnotherHostIsReported) {
  test::TempDir dir;
  auto storage = storage::MakePosixStorage(dir / "repo");
  nlohmann::json lease = {{"host", "other-host"},
                          {"pid", 1},
                          {"command", "backup"},
                          {"acquired_at", "2026-01-01T00:00:00Z"},
                          {"token", "t"}};
  storage::PutBytes(*storage, LockKey("main", "backup"), AsBytes(lease.dump()));
  try {
    StanzaLock::Acquire(*storage, "main", "backup", "test");
    FAIL();
  } catch (const LockError& e) {
    EXPECT_EQ(e.code(), ExitCode::kLocked);
    EXPECT_NE(std::string(e.what()).find("other-host"), std::string::npos);
  }
  EXPECT_TRUE(storage->Stat(LockKey("main", "backup")));  // not stolen
}

TEST(Summary, WalRangeGapsAndIncompleteBackups) {
  auto s = storage::MakeMemoryStorage();
  StanzaInfo info;
  info.stanza = "main";
  info.system_identifier = "1";
  info.pg_version_num = 150000;
  info.pg_major = 15;
  info.wal_segment_size = 16 << 20;
  info.created_at = info.created_by = "x";
  WriteMetadata(*s, StanzaKey("main"), info.ToJson());
  const std::string sha(64, 'a');
  for (const char* seg : {"000000010000000000000003", "000000010000000000000004",
                          "000000010000000000000006", "000000010000000100000000"}) {
    storage::PutBytes(*s, "main/wal/00000001/" + std::string(seg) + "-" + sha + ".zst",
                      AsBytes("w"));
  }
  storage::PutBytes(*s, "main/wal/00000002/000000020000000100000000-" + sha, AsBytes("w"));
  storage::PutBytes(*s, "main/wal/00000002/00000002.history-" + sha + ".gz", AsBytes("h"));
  storage::PutBytes(*s, "main/wal/00000002/.junk.gravl-tmp-1", AsBytes("ignored"));
  storage::PutBytes(*s, "main/backups/20260102T000000Z-full/files/x", AsBytes("partial"));

  RepoConfig rc{"mem", "memory", ""};
  Repository repo(rc, std::move(s), "main");
  WriteManifest(repo, test::SampleFullManifest("20260101T000000Z-full"));
  Catalog catalog(repo);
  StanzaSummary sum = Summarize(catalog);
  ASSERT_EQ(sum.backups.size(), 1u);
  EXPECT_EQ(sum.backups[0].label, "20260101T000000Z-full");
  EXPECT_EQ(sum.incomplete_labels, std::vector<std::string>{"20260102T000000Z-full"});
  ASSERT_EQ(sum.wal.size(), 2u);
  EXPECT_EQ(sum.wal[0].first, "000000010000000000000003");
  EXPECT_EQ(sum.wal[0].last, "000000010000000100000000");
  EXPECT_EQ(sum.wal[0].segments, 4u);
  EXPECT_EQ(sum.wal[0].missing, 256u - 3u + 1u - 4u);  // 0x03..0x100 spans 254 segments
  EXPECT_EQ(sum.wal[1].history_files, 1u);
  EXPECT_EQ(sum.wal[1].segments, 1u);
}

TEST(Repository, MissingStanzaSaysWhatToDo) {
  RepoConfig rc{"mem", "memory", ""};
  Repository repo(rc, storage::MakeMemoryStorage(), "main");
  EXPECT_FALSE(repo.FindStanza());
  try {
    repo.Stanza();
    FAIL();
  } catch (const NotFoundError& e) {
    EXPECT_NE(std::string(e.what()).find("stanza-create"), std::string::npos);
  }
}

}  // namespace
}  // namespace gravl::repo

namespace gravl::repo {
namespace {

TEST(Lock, TheHostLockIsExclusiveNamesItsHolderAndIsReleased) {
  auto first = HostLock::Acquire("unit-test-host-lock");
  ASSERT_TRUE(first.lock);
  auto second = HostLock::Acquire("unit-test-host-lock");
  EXPECT_FALSE(second.lock);
  ASSERT_TRUE(second.holder.known);
  EXPECT_EQ(second.holder.pid, ::getpid());
  EXPECT_EQ(second.holder.uid, ::geteuid());
  EXPECT_NE(second.holder.Describe().find("pid " + std::to_string(::getpid())), std::string::npos);
  EXPECT_TRUE(HostLockUserTrusted(0));
  EXPECT_TRUE(HostLockUserTrusted(::geteuid()));
  first.lock.reset();
  EXPECT_TRUE(HostLock::Acquire("unit-test-host-lock").lock);
}

TEST(Lock, ASecondStanzaLockIsRefusedNamingTheHolderAndFreedOnRelease) {
  test::TempDir dir;
  auto storage = storage::MakePosixStorage(dir / "repo");
  auto held = StanzaLock::Acquire(*storage, "main", "backup", "test");
  try {
    StanzaLock::Acquire(*storage, "main", "backup", "second");
    ADD_FAILURE() << "a second lock was granted";
  } catch (const LockError& e) {
    EXPECT_NE(std::string(e.what()).find("pid " + std::to_string(::getpid())), std::string::npos)
        << e.what();
  }
  EXPECT_NO_THROW(StanzaLock::Acquire(*storage, "main", "archive", "other kind"));
  held.reset();
  EXPECT_FALSE(storage->Stat(LockKey("main", "backup")));
  EXPECT_NO_THROW(StanzaLock::Acquire(*storage, "main", "backup", "again"));
}

}  // namespace
}  // namespace gravl::repo

namespace gravl::repo {
namespace {

TEST(Manifest, ACopiedManifestIsRefused) {
  RepoConfig rc{"mem", "memory", ""};
  auto mem = storage::MakeMemoryStorage();
  StanzaInfo info;
  info.stanza = "main";
  info.system_identifier = "1";
  WriteMetadata(*mem, StanzaKey("main"), info.ToJson());
  Repository repo(rc, std::move(mem), "main");
  WriteManifest(repo, test::SampleFullManifest("20260101T000000Z-full"));
  EXPECT_EQ(ReadManifest(repo, "20260101T000000Z-full").label, "20260101T000000Z-full");
  Bytes copy = storage::GetBytes(repo.storage(), ManifestKey("main", "20260101T000000Z-full"));
  storage::PutBytes(repo.storage(), ManifestKey("main", "20260202T000000Z-full"), copy);
  EXPECT_THROW(ReadManifest(repo, "20260202T000000Z-full"), IntegrityError);
}

}  // namespace
}  // namespace gravl::repo
