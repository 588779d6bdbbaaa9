#include "io/serial_worker.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <thread>

#include "common/error.h"
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

void WriteInPieces(Sink& sink, const Bytes& input, std::size_t piece) {
  for (std::size_t pos = 0; pos < input.size(); pos += piece) {
    sink.Write(ByteView(input).subspan(pos, std::min(piece, input.size() - pos)));
  }
}

TEST(QueuedSink, DeliversEverythingInOrderAndFinishesAfterIt) {
  Bytes input = test::PseudoRandom(5 * kChunkSize + 12345, 4);
  SlowSink slow;
  SerialWorker worker(3 * kChunkSize);
  QueuedSink queued(slow, worker);
  WriteInPieces(queued, input, 1000);
  queued.Finish();
  worker.Wait();
  EXPECT_TRUE(slow.finished);
  EXPECT_EQ(slow.data, input);
}

TEST(QueuedSink, SinksSharingAWorkerKeepTheirOwnOrderAndFinishWithoutWaiting) {
  SerialWorker worker(2 * kChunkSize);
  SlowSink a;
  SlowSink b;
  Bytes in_a = test::PseudoRandom(3 * kChunkSize + 7, 1);
  Bytes in_b = test::PseudoRandom(2 * kChunkSize + 9, 2);
  {
    QueuedSink qa(a, worker);
    QueuedSink qb(b, worker);
    WriteInPieces(qa, in_a, 70000);
    qa.Finish();  // posted: the worker may still be busy with it
    WriteInPieces(qb, in_b, 50000);
    qb.Finish();
  }  // destroying finished QueuedSinks does not cancel their posted work
  worker.Wait();
  EXPECT_EQ(a.data, in_a);
  EXPECT_EQ(b.data, in_b);
  EXPECT_TRUE(a.finished);
  EXPECT_TRUE(b.finished);
}

// Records where each piece it got lives.
class AddressSink final : public Sink {
 public:
  void Write(ByteView d) override {
    pieces.push_back(d.data());
    data.insert(data.end(), d.begin(), d.end());
  }
  void Finish() override { finished = true; }
  std::vector<const std::uint8_t*> pieces;
  Bytes data;
  bool finished = false;
};

TEST(QueuedSink, SharedBuffersAreHandedOverWithoutACopyAndInOrder) {
  AddressSink out;
  Bytes expected;
  std::vector<const std::uint8_t*> shared;
  {
    SerialWorker store(1 << 20);
    QueuedSink queued(out, store);
    for (std::uint64_t i = 0; i < 40; ++i) {
      // Alternately small pieces (gathered, copied) and buffers large enough to share.
      std::size_t size = i % 3 == 0 ? QueuedSink::kShareMin * 2 + 5 : 100;
      auto buffer = std::make_shared<const Bytes>(test::PseudoRandom(size, 100 + i));
      if (size >= QueuedSink::kShareMin) shared.push_back(buffer->data());
      queued.Write(ByteView(*buffer), buffer);  // the caller drops its reference at once
      expected.insert(expected.end(), buffer->begin(), buffer->end());
    }
    queued.Finish();
    store.Wait();
  }
  EXPECT_TRUE(out.finished);
  EXPECT_EQ(out.data, expected);
  for (const auto* p : shared) {
    EXPECT_NE(std::find(out.pieces.begin(), out.pieces.end(), p), out.pieces.end());
  }
}

TEST(QueuedSink, WorkerErrorsReachTheProducerAndLaterWorkIsDropped) {
  SlowSink slow;
  slow.fail_after = 3 * kChunkSize;
  SlowSink other;
  SerialWorker worker(2 * kChunkSize);
  QueuedSink queued(slow, worker);
  Bytes chunk(kChunkSize, 1);
  EXPECT_THROW(
      {
        for (int i = 0; i < 50; ++i) queued.Write(chunk);
        queued.Finish();
        worker.Wait();
      },
      StorageError);
  EXPECT_FALSE(slow.finished);
  QueuedSink after(other, worker);
  EXPECT_THROW(
      {
        after.Write(chunk);
        after.Finish();
        worker.Wait();
      },
      StorageError);
  EXPECT_FALSE(other.finished);
  EXPECT_TRUE(other.data.empty());
}

TEST(QueuedSink, AbandonedWithoutWaitingNeverFinishesTheNextSink) {
  SlowSink slow;
  {
    SerialWorker worker(64 * kChunkSize);  // room for everything: Write() does not wait
    QueuedSink queued(slow, worker);
    queued.Write(Bytes(30 * kChunkSize, 2));
  }
  EXPECT_FALSE(slow.finished);
  EXPECT_LT(slow.data.size(), 30 * kChunkSize);  // the tasks not started were dropped
}

TEST(SerialWorker, CancelReleasesAnotherWorkersTaskWaitingForRoom) {
  SlowSink slow;
  SerialWorker store(kChunkSize);
  SerialWorker stage(64 * kChunkSize);  // a stage before the store, posting to it
  QueuedSink queued(slow, store);
  std::atomic<bool> release{false};
  store.Post([&] {
    while (!release) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  });  // the store is stuck: the stage's posts wait for room
  for (int i = 0; i < 8; ++i) {
    stage.Post([&] { queued.Write(Bytes(kChunkSize, 3)); }, kChunkSize);
  }
  std::this_thread::sleep_for(std::chrono::milliseconds(20));
  store.Cancel();
  EXPECT_THROW(stage.Wait(), Error);  // the stage's task waiting on the store gave up
  release = true;
  EXPECT_THROW(store.Wait(), Error);
  EXPECT_LT(slow.data.size(), 8 * kChunkSize);
}

TEST(QueuedSink, EmptyStream) {
  SlowSink slow;
  SerialWorker worker(kChunkSize);
  QueuedSink queued(slow, worker);
  queued.Finish();
  worker.Wait();
  EXPECT_TRUE(slow.finished);
  EXPECT_TRUE(slow.data.empty());
}

TEST(SerialWorker, PendingBytesAreBounded) {
  SerialWorker worker(100);
  std::atomic<int> done{0};
  std::atomic<bool> release{false};
  std::thread releaser([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(30));
    release = true;
  });
  int most = 0;
  for (int posted = 1; posted <= 20; ++posted) {
    worker.Post(
        [&] {
          while (!release) std::this_thread::sleep_for(std::chrono::microseconds(50));
          ++done;
        },
        30);
    most = std::max(most, posted - done.load());
  }
  worker.Wait();
  releaser.join();
  EXPECT_EQ(done, 20);
  EXPECT_EQ(most, 3);  // 3 x 30 <= 100 < 4 x 30: the 4th Post() waited for the release
}

}  // namespace
}  // namespace gravl::io
