// The Storage contract, run against every driver. The S3 driver runs against s3rver behind
// the verifying gateway (tests/s3), in path style and in virtual-host style, each test under
// its own prefix.

#include <gtest/gtest.h>
#include <unistd.h>

#include <functional>
#include <set>
#include <thread>

#include "common/error.h"
#include "storage/faulty.h"
#include "storage/memory.h"
#include "storage/posix.h"
#include "storage/s3/s3_storage.h"
#include "support/s3_gateway.h"
#include "support/test_util.h"

namespace gravl::storage {
namespace {

struct Driver {
  std::string name;
  std::function<std::unique_ptr<Storage>(test::TempDir&)> make;
};

void PrintTo(const Driver& d, std::ostream* os) { *os << d.name; }

// One gateway for the whole suite (starting node takes a moment); each test gets a prefix.
test::S3Gateway& SharedGateway() {
  static test::S3Gateway gateway;  // stopped (and its directory removed) at exit
  return gateway;
}

std::unique_ptr<Storage> MakeS3(bool host_style) {
  static std::atomic<int> counter{0};
  auto& gw = SharedGateway();
  S3RepoConfig c =
      gw.Repo("contract-" + std::to_string(getpid()) + "-" + std::to_string(counter++));
  if (host_style) {
    c.uri_style = "host";
    c.endpoint = "http://localhost:" + std::to_string(gw.port());
  }
  c.part_size_mib = 5;  // so the 3 MiB objects stay single PUTs and bigger ones go multipart
  return s3::MakeS3Storage("contract", c);
}

class StorageContract : public ::testing::TestWithParam<Driver> {
 protected:
  void SetUp() override { storage_ = GetParam().make(dir_); }
  Storage& s() { return *storage_; }
  std::string GetString(const std::string& key, std::optional<Range> range = std::nullopt) {
    auto r = s().Get(key, range);
    io::BufferSink sink;
    io::Pump(*r, sink);
    return std::string(AsChars(sink.data()));
  }
  std::vector<std::string> Keys(const std::string& prefix) {
    std::vector<std::string> keys;
    for (const auto& o : ListAll(s(), prefix)) keys.push_back(o.key);
    return keys;
  }
  test::TempDir dir_;
  std::unique_ptr<Storage> storage_;
};

TEST_P(StorageContract, PutThenGetReturnsTheSameBytes) {
  Bytes data = test::PseudoRandom(3 * 1024 * 1024 + 17, 1);
  auto w = s().Put("a/b/c.bin");
  for (std::size_t pos = 0; pos < data.size(); pos += 100000) {
    w->Write(ByteView(data).subspan(pos, std::min<std::size_t>(100000, data.size() - pos)));
  }
  w->Finish();
  EXPECT_EQ(GetBytes(s(), "a/b/c.bin"), data);
  auto info = s().Stat("a/b/c.bin");
  ASSERT_TRUE(info);
  EXPECT_EQ(info->size, data.size());
  EXPECT_EQ(info->key, "a/b/c.bin");
}

// Big enough for several S3 multipart parts (5 MiB in the S3 drivers here), written in odd
// pieces; an abandoned one of the same size leaves nothing behind.
TEST_P(StorageContract, LargeObjectsAreStreamedAndAbandonedOnesVanish) {
  Bytes data = test::PseudoRandom(11 * 1024 * 1024 + 5, 7);
  auto w = s().Put("big/object");
  for (std::size_t pos = 0; pos < data.size(); pos += 777777) {
    w->Write(ByteView(data).subspan(pos, std::min<std::size_t>(777777, data.size() - pos)));
  }
  w->Finish();
  EXPECT_EQ(GetBytes(s(), "big/object"), data);
  EXPECT_EQ(GetString("big/object", Range{10 * 1024 * 1024, 3}),
            std::string(AsChars(ByteView(data).subspan(10 * 1024 * 1024, 3))));
  {
    auto abandoned = s().Put("big/abandoned");
    abandoned->Write(data);
  }
  EXPECT_FALSE(s().Stat("big/abandoned"));
  EXPECT_EQ(Keys("big/"), (std::vector<std::string>{"big/object"}));
}

TEST_P(StorageContract, EmptyObject) {
  PutBytes(s(), "empty", {});
  EXPECT_TRUE(GetBytes(s(), "empty").empty());
  EXPECT_EQ(s().Stat("empty")->size, 0u);
}

TEST_P(StorageContract, NothingIsVisibleBeforeFinish) {
  {
    auto w = s().Put("pending/obj");
    w->Write(AsBytes("partial data"));
    EXPECT_FALSE(s().Stat("pending/obj"));
    EXPECT_TRUE(Keys("pending/").empty());
    EXPECT_THROW(s().Get("pending/obj"), NotFoundError);
  }  // abandoned without Finish
  EXPECT_FALSE(s().Stat("pending/obj"));
  EXPECT_TRUE(Keys("").empty());
}

TEST_P(StorageContract, AbandonedOverwriteKeepsTheOldObject) {
  PutBytes(s(), "k", AsBytes("old"));
  {
    auto w = s().Put("k");
    w->Write(AsBytes("new but never finished"));
  }
  EXPECT_EQ(GetString("k"), "old");
  PutBytes(s(), "k", AsBytes("new"));
  EXPECT_EQ(GetString("k"), "new");
}

TEST_P(StorageContract, IfAbsentRefusesToReplace) {
  PutBytes(s(), "once", AsBytes("first"), PutOptions{.if_absent = true});
  EXPECT_THROW(PutBytes(s(), "once", AsBytes("second"), PutOptions{.if_absent = true}),
               ConflictError);
  EXPECT_EQ(GetString("once"), "first");
}

TEST_P(StorageContract, IfAbsentCommitAnswersFalseForAnExistingKey) {
  // An existing key is an expected outcome, a value: Commit() says so, writes nothing, and
  // the stream cannot be committed again.
  EXPECT_TRUE(PutBytesIfAbsent(s(), "once", AsBytes("first")));
  auto w = s().Put("once", PutOptions{.if_absent = true});
  w->Write(AsBytes("second"));
  EXPECT_FALSE(w->Commit());
  EXPECT_THROW(w->Commit(), StorageError);
  EXPECT_NE(w->Name().find("once"), std::string::npos);
  EXPECT_EQ(GetString("once"), "first");
  EXPECT_FALSE(PutBytesIfAbsent(s(), "once", AsBytes("third")));
  EXPECT_EQ(GetString("once"), "first");
  EXPECT_EQ(ListAll(s(), "").size(), 1u);  // no temporary left behind
}

TEST_P(StorageContract, ConcurrentIfAbsentHasExactlyOneWinner) {
  std::atomic<int> winners{0}, losers{0};
  std::vector<std::thread> threads;
  for (int i = 0; i < 8; ++i) {
    threads.emplace_back([&, i] {
      try {
        PutBytes(s(), "race", AsBytes("writer " + std::to_string(i)),
                 PutOptions{.if_absent = true});
        ++winners;
      } catch (const ConflictError&) {
        ++losers;
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(winners.load(), 1);
  EXPECT_EQ(losers.load(), 7);
}

TEST_P(StorageContract, MissingObjects) {
  EXPECT_THROW(s().Persist("no/such/key"), NotFoundError);
  PutBytes(s(), "there", AsBytes("x"));
  EXPECT_NO_THROW(s().Persist("there"));
  EXPECT_THROW(s().Get("no/such/key"), NotFoundError);
  EXPECT_FALSE(s().Stat("no/such/key"));
  EXPECT_NO_THROW(s().DeleteMany({"no/such/key"}));
}

TEST_P(StorageContract, RangedGet) {
  PutBytes(s(), "r", AsBytes("0123456789"));
  EXPECT_EQ(GetString("r", Range{3, 4}), "3456");
  EXPECT_EQ(GetString("r", Range{7, std::nullopt}), "789");
  EXPECT_EQ(GetString("r", Range{8, 100}), "89");
  EXPECT_EQ(GetString("r", Range{0, 0}), "");
}

TEST_P(StorageContract, ListIsOrderedFilteredAndPaginated) {
  std::set<std::string> expected;
  for (int i = 0; i < 25; ++i) {
    char name[32];
    std::snprintf(name, sizeof name, "wal/%08d", i * 7 % 25);
    PutBytes(s(), name, AsBytes("x"));
    expected.insert(name);
  }
  PutBytes(s(), "wal-other", AsBytes("x"));
  PutBytes(s(), "wal/sub/deep", AsBytes("x"));
  expected.insert("wal/sub/deep");
  PutBytes(s(), "walrus/x", AsBytes("x"));

  std::vector<std::string> keys;
  ListOptions options;
  options.limit = 4;
  int pages = 0;
  do {
    ListPage page = s().List("wal/", options);
    EXPECT_LE(page.objects.size(), 4u);
    for (const auto& o : page.objects) keys.push_back(o.key);
    options.token = page.next_token;
    ++pages;
  } while (options.token && pages < 100);
  EXPECT_EQ(keys, std::vector<std::string>(expected.begin(), expected.end()));
  EXPECT_GE(pages, 7);

  // A prefix need not end at a '/'.
  auto wal_all = Keys("wal");
  EXPECT_EQ(wal_all.size(), expected.size() + 2);  // + wal-other and walrus/x
  EXPECT_EQ(Keys("walrus").size(), 1u);
  EXPECT_TRUE(std::is_sorted(wal_all.begin(), wal_all.end()));
  EXPECT_EQ(Keys("wal/0000001").size(), 10u);
}

TEST_P(StorageContract, KeyOrderMatchesByteOrderAcrossDirectories) {
  for (const char* k : {"a/x", "a-b", "a.c", "a/y/z", "a0", "b"}) PutBytes(s(), k, AsBytes("1"));
  EXPECT_EQ(Keys(""), (std::vector<std::string>{"a-b", "a.c", "a/x", "a/y/z", "a0", "b"}));
}

TEST_P(StorageContract, DelimitedListRollsUpSubtrees) {
  for (const char* k : {"st/wal/00000001/a", "st/wal/00000001/b", "st/wal/00000002/a",
                        "st/wal/00000002.history", "st/stanza.json"}) {
    PutBytes(s(), k, AsBytes("1"));
  }
  ListOptions o;
  o.delimited = true;
  ListPage page = s().List("st/wal/", o);
  EXPECT_EQ(page.common_prefixes,
            (std::vector<std::string>{"st/wal/00000001/", "st/wal/00000002/"}));
  ASSERT_EQ(page.objects.size(), 1u);
  EXPECT_EQ(page.objects[0].key, "st/wal/00000002.history");
  EXPECT_EQ(ListPrefixes(s(), ""), (std::vector<std::string>{"st/"}));
  // Pagination over prefixes.
  o.limit = 1;
  std::vector<std::string> seen;
  do {
    ListPage p = s().List("st/wal/", o);
    for (auto& x : p.common_prefixes) seen.push_back(x);
    for (auto& x : p.objects) seen.push_back(x.key);
    o.token = p.next_token;
  } while (o.token);
  EXPECT_EQ(seen, (std::vector<std::string>{"st/wal/00000001/", "st/wal/00000002.history",
                                            "st/wal/00000002/"}));
}

TEST_P(StorageContract, DeleteMany) {
  std::vector<std::string> keys;
  for (int i = 0; i < 30; ++i) {
    keys.push_back("d/" + std::to_string(i));
    PutBytes(s(), keys.back(), AsBytes("x"));
  }
  PutBytes(s(), "d/keep", AsBytes("x"));
  keys.push_back("d/not-there");
  s().DeleteMany(keys);
  EXPECT_EQ(Keys("d/"), std::vector<std::string>{"d/keep"});
}

TEST_P(StorageContract, DeletePrefixRemovesEverythingUnderIt) {
  for (const char* k : {"b/L1/files/1", "b/L1/bundles/1", "b/L1x", "b/L2/files/1"}) {
    PutBytes(s(), k, AsBytes("x"));
  }
  {
    auto unfinished = s().Put("b/L1/files/2");  // abandoned mid-write, still open
    unfinished->Write(AsBytes("partial"));
    s().DeletePrefix("b/L1/");
  }
  EXPECT_EQ(Keys("b/"), (std::vector<std::string>{"b/L1x", "b/L2/files/1"}));
  EXPECT_EQ(ListPrefixes(s(), "b/"), std::vector<std::string>{"b/L2/"});
  EXPECT_THROW(s().DeletePrefix("b/L2"), StorageError);
}

TEST_P(StorageContract, InvalidKeysAreRejected) {
  for (const char* k : {"", "/abs", "a/../b", "..", "a//b", "a/", "./a"}) {
    EXPECT_THROW(s().Put(k), StorageError) << k;
    EXPECT_THROW(s().Get(k), StorageError) << k;
  }
}

TEST_P(StorageContract, ConcurrentWritersAndReaders) {
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 20; ++i) {
        std::string key = "c/" + std::to_string(t) + "/" + std::to_string(i);
        Bytes data = test::PseudoRandom(1000 + static_cast<std::size_t>(i),
                                        static_cast<std::uint64_t>(t * 100 + i));
        PutBytes(s(), key, data);
        EXPECT_EQ(GetBytes(s(), key), data);
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(Keys("c/").size(), 80u);
}

INSTANTIATE_TEST_SUITE_P(
    Drivers, StorageContract,
    ::testing::Values(Driver{"posix",
                             [](test::TempDir& d) { return MakePosixStorage(d / "repo"); }},
                      Driver{"memory", [](test::TempDir&) { return MakeMemoryStorage(); }},
                      Driver{"faulty_passthrough",
                             [](test::TempDir&) -> std::unique_ptr<Storage> {
                               return std::make_unique<FaultyStorage>(MakeMemoryStorage(),
                                                                      FaultPlan{});
                             }},
                      Driver{"s3_path_style", [](test::TempDir&) { return MakeS3(false); }},
                      Driver{"s3_host_style", [](test::TempDir&) { return MakeS3(true); }}),
    [](const auto& p) { return p.param.name; });

}  // namespace
}  // namespace gravl::storage
