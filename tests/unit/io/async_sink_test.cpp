#include "io/async_sink.h"

#include <gtest/gtest.h>

#include <thread>

#include "common/error.h"
#include "io/hash.h"
#include "support/test_util.h"

namespace gravl::io {
namespace {

class SlowSink final : public Sink {
 public:
  void Write(ByteView d) override {
    std::this_thread::sleep_for(std::chrono::microseconds(200));
    data.insert(data.end(), d.begin(), d.end());
    if (fail_after && data.size() > *fail_after) throw StorageError("disk full (test)");
  }
  void Finish() override { finished = true; }
  Bytes data;
  bool finished = false;
  std::optional<std::size_t> fail_after;
};

TEST(AsyncSink, DeliversEverythingInOrderAndFinishesAfterIt) {
  Bytes input = test::PseudoRandom(5 * kChunkSize + 12345, 4);
  SlowSink slow;
  {
    AsyncSink async(slow, 3);
    for (std::size_t pos = 0; pos < input.size(); pos += 1000) {
      async.Write(ByteView(input).subspan(pos, std::min<std::size_t>(1000, input.size() - pos)));
    }
    async.Finish();
    EXPECT_TRUE(slow.finished);
  }
  EXPECT_EQ(slow.data, input);
}

TEST(AsyncSink, WorkerErrorsReachTheProducer) {
  SlowSink slow;
  slow.fail_after = 3 * kChunkSize;
  AsyncSink async(slow, 2);
  Bytes chunk(kChunkSize, 1);
  EXPECT_THROW(
      {
        for (int i = 0; i < 50; ++i) async.Write(chunk);
        async.Finish();
      },
      StorageError);
  EXPECT_FALSE(slow.finished);
}

TEST(AsyncSink, AbandonedWithoutFinishNeverFinishesTheNextSink) {
  SlowSink slow;
  {
    AsyncSink async(slow, 2);
    async.Write(Bytes(3 * kChunkSize, 2));
  }
  EXPECT_FALSE(slow.finished);
}

TEST(AsyncSink, EmptyStream) {
  SlowSink slow;
  AsyncSink async(slow);
  async.Finish();
  EXPECT_TRUE(slow.finished);
  EXPECT_TRUE(slow.data.empty());
}

}  // namespace
}  // namespace gravl::io
