#include "storage/faulty.h"

#include <gtest/gtest.h>

#include "common/error.h"
#include "storage/memory.h"
#include "support/test_util.h"

namespace gravl::storage {
namespace {

TEST(FaultyStorage, FailsTheNthCallWithARetryableError) {
  auto inner = MakeMemoryStorage();
  FaultyStorage faulty(*inner, FaultPlan{.fail_call = 3});
  PutBytes(faulty, "a", AsBytes("1"));  // calls 1 (put) and 2 (finish)
  try {
    faulty.Stat("a");  // call 3
    FAIL();
  } catch (const StorageError& e) {
    EXPECT_TRUE(e.retryable());
  }
  EXPECT_TRUE(faulty.Stat("a"));  // call 4
}

TEST(FaultyStorage, FailFromCallOnSimulatesAnOutage) {
  auto inner = MakeMemoryStorage();
  FaultyStorage faulty(*inner, FaultPlan{.fail_from_call = 1});
  EXPECT_THROW(PutBytes(faulty, "a", AsBytes("1")), StorageError);
  EXPECT_THROW(faulty.List("", {}), StorageError);
  faulty.SetPlan({});
  EXPECT_NO_THROW(PutBytes(faulty, "a", AsBytes("1")));
}

TEST(FaultyStorage, CutWriteNeverPublishes) {
  auto inner = MakeMemoryStorage();
  FaultyStorage faulty(*inner, FaultPlan{.cut_write_after = 100});
  auto w = faulty.Put("obj", {});
  w->Write(Bytes(60, 1));
  EXPECT_THROW(w->Write(Bytes(60, 1)), StorageError);
  EXPECT_THROW(w->Finish(), StorageError);
  EXPECT_FALSE(inner->Stat("obj"));
}

TEST(FaultyStorage, CutReadAndFlippedByte) {
  auto inner = MakeMemoryStorage();
  Bytes data = test::PseudoRandom(1000, 1);
  PutBytes(*inner, "obj", data);
  FaultyStorage cut(*inner, FaultPlan{.cut_read_after = 500});
  EXPECT_THROW(GetBytes(cut, "obj"), StorageError);

  FaultyStorage flip(*inner, FaultPlan{.flip_read_byte = 700});
  Bytes got = GetBytes(flip, "obj");
  ASSERT_EQ(got.size(), data.size());
  EXPECT_EQ(got[700], static_cast<std::uint8_t>(data[700] ^ 0xff));
  got[700] = data[700];
  EXPECT_EQ(got, data);

  // Ranged reads flip by object offset.
  auto r = flip.Get("obj", Range{650, 100});
  io::BufferSink sink;
  io::Pump(*r, sink);
  EXPECT_EQ(sink.data()[50], static_cast<std::uint8_t>(data[700] ^ 0xff));
}

TEST(FaultyStorage, KeyFilterLimitsFaults) {
  auto inner = MakeMemoryStorage();
  FaultyStorage faulty(*inner, FaultPlan{.fail_from_call = 1, .key_filter = "wal/"});
  EXPECT_NO_THROW(PutBytes(faulty, "backups/x", AsBytes("1")));
  EXPECT_THROW(PutBytes(faulty, "wal/x", AsBytes("1")), StorageError);
}

}  // namespace
}  // namespace gravl::storage
