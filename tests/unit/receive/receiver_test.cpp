#include "receive/receiver.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <atomic>
#include <condition_variable>
#include <deque>
#include <filesystem>
#include <future>
#include <mutex>
#include <thread>

#include "io/hash.h"
#include "repo/partial.h"
#include "repo/repository.h"
#include "repo/wal.h"
#include "repo/wal_index.h"
#include "storage/faulty.h"
#include "storage/memory.h"
#include "support/manifest_util.h"
#include "support/test_util.h"

namespace gravl::receive {
namespace {

namespace fs = std::filesystem;
constexpr std::uint64_t kSeg = 1 << 20;
using namespace std::chrono_literals;

// WAL of `segments` segments (stanza "main", system identifier 1): each begins with a long
// page header, the rest pseudo-random.
Bytes FakeWal(std::size_t segments) {
  Bytes wal = test::PseudoRandom(segments * kSeg, 3);
  for (std::size_t s = 0; s < segments; ++s) {
    std::uint8_t* h = wal.data() + s * kSeg;
    std::fill(h, h + 40, 0);
    h[0] = 0x10;
    h[1] = 0xD1;
    h[2] = 0x02;
    h[24] = 1;  // system identifier 1
    for (int i = 0; i < 4; ++i) h[32 + i] = static_cast<std::uint8_t>(kSeg >> (8 * i));
  }
  return wal;
}

template <typename F>
bool Eventually(F f, std::chrono::milliseconds timeout = 10s) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < deadline) {
    if (f()) return true;
    std::this_thread::sleep_for(5ms);
  }
  return f();
}

class ReceiverTest : public ::testing::Test {
 protected:
  void SetUp() override {
    memory_ = storage::MakeMemoryStorage();
    auto faulty = std::make_unique<storage::FaultyStorage>(*memory_, storage::FaultPlan{});
    faulty_ = faulty.get();
    repo_ = test::NewTestRepository(std::move(faulty), kSeg);
    wal_ = FakeWal(4);
  }
  ReceiverOptions Options(bool synchronous) {
    ReceiverOptions o;
    o.spool_dir = dir_ / "spool";
    o.segment_size = kSeg;
    o.system_identifier = "1";
    o.synchronous = synchronous;
    o.partial_interval = 200ms;
    o.compression = CompressionType::kZstd;
    return o;
  }
  void Break() { faulty_->SetPlan({.fail_from_call = faulty_->calls() + 1}); }
  void Heal() { faulty_->SetPlan({}); }
  ByteView Wal(std::uint64_t from, std::uint64_t n) { return ByteView(wal_).subspan(from, n); }
  Lsn At(std::uint64_t offset) { return Lsn{kBase + offset}; }
  // Bytes [0, n) of the WAL as the repository would restore them.
  Bytes Restored(std::uint64_t segno) {
    WalSegment seg{1, kBase / kSeg + segno};
    auto objects = repo::FindWalObjects(repo_->storage(), "main",
                                        {seg.Name(kSeg), repo::WalFileKind::kSegment, 1});
    io::BufferSink out;
    if (!objects.empty()) {
      repo::ReadObject(repo_->storage(), objects[0].key,
                       repo::ObjectFormat{objects[0].compression, 0, nullptr},
                       repo::Expected{objects[0].sha256, std::nullopt}, out);
    } else if (auto p = repo::FindPartialSegment({repo_.get()}, seg, kSeg)) {
      repo::ReadPartialSegment(*p, kSeg, out);
    }
    return out.Take();
  }
  static constexpr std::uint64_t kBase = 16 * kSeg;  // streaming starts at segment 16
  test::TempDir dir_;
  std::unique_ptr<storage::Storage> memory_;
  storage::FaultyStorage* faulty_ = nullptr;
  std::unique_ptr<repo::Repository> repo_;
  Bytes wal_;
};

TEST_F(ReceiverTest, SynchronousAcknowledgesOnlyWhatTheRepositoryHolds) {
  Receiver r(Options(true), {repo_.get()});
  r.Begin(1, At(0));
  Break();
  r.Write(At(0), Wal(0, 5000));
  std::this_thread::sleep_for(300ms);
  EXPECT_EQ(r.Received(), At(5000));
  EXPECT_EQ(r.Acknowledged(), At(0)) << "acknowledged while the repository failed";
  EXPECT_GT(r.Status().upload_failures, 0u);
  EXPECT_FALSE(r.Status().last_error.empty());
  Heal();
  ASSERT_TRUE(Eventually([&] { return r.Acknowledged() == At(5000); }));
  Bytes restored = Restored(0);
  ASSERT_EQ(restored.size(), kSeg);
  EXPECT_TRUE(std::equal(restored.begin(), restored.begin() + 5000, wal_.begin()));
  EXPECT_TRUE(r.Status().last_error.empty());
}

TEST_F(ReceiverTest, AReconnectResumesFromWhatIsDurableNotFromWhatWasReceived) {
  Receiver r(Options(true), {repo_.get()});
  r.Begin(1, At(0));
  r.Write(At(0), Wal(0, 3000));
  ASSERT_TRUE(Eventually([&] { return r.Acknowledged() == At(3000); }));
  Break();
  r.Write(At(3000), Wal(3000, 2 * kSeg));  // two more segments, not uploaded
  EXPECT_EQ(r.ResumePosition(), std::make_pair(TimelineId{1}, At(0)))
      << "resuming at the received position's segment would report WAL that is only in the "
         "spool as flushed";
  r.Begin(1, r.ResumePosition().second);
  EXPECT_EQ(r.Acknowledged(), At(0));
  Heal();
  r.Write(At(0), Wal(0, kSeg + 10));
  ASSERT_TRUE(Eventually([&] { return r.Acknowledged() == At(kSeg + 10); }));
}

TEST_F(ReceiverTest, CompletedSegmentsArePushedLikeArchivePushAndTheirChunksDeleted) {
  Receiver r(Options(true), {repo_.get()});
  r.Begin(1, At(0));
  // In pieces that cross segment boundaries.
  const std::uint64_t total = 2 * kSeg + 12345;
  for (std::uint64_t off = 0; off < total; off += 70000) {
    r.Write(At(off), Wal(off, std::min<std::uint64_t>(70000, total - off)));
  }
  ASSERT_TRUE(Eventually([&] {
    auto s = r.Status();
    return s.acknowledged == At(total) && s.archived >= At(2 * kSeg) && s.pending_segments == 0;
  })) << r.Status().last_error;
  for (std::uint64_t s = 0; s < 2; ++s) {
    WalSegment seg{1, kBase / kSeg + s};
    auto objects = repo::FindWalObjects(repo_->storage(), "main",
                                        {seg.Name(kSeg), repo::WalFileKind::kSegment, 1});
    ASSERT_EQ(objects.size(), 1u);
    // The object archive-push would store: same key (name and SHA-256 of the segment).
    EXPECT_EQ(objects[0].sha256, io::Sha256Hex(Wal(s * kSeg, kSeg)));
    EXPECT_EQ(Restored(s), Bytes(wal_.begin() + static_cast<std::ptrdiff_t>(s * kSeg),
                                 wal_.begin() + static_cast<std::ptrdiff_t>((s + 1) * kSeg)));
    ASSERT_TRUE(Eventually([&] { return repo::ListPartialChunks(*repo_, seg, kSeg).empty(); }));
  }
  auto p = repo::FindPartialSegment({repo_.get()}, WalSegment{1, kBase / kSeg + 2}, kSeg);
  ASSERT_TRUE(p);
  EXPECT_EQ(p->bytes, 12345u);
  // The spool holds only the segment being written.
  std::vector<std::string> spool;
  for (const auto& e : fs::directory_iterator(dir_ / "spool")) spool.push_back(e.path().filename());
  ASSERT_EQ(spool.size(), 1u);
  EXPECT_EQ(spool[0], (WalSegment{1, kBase / kSeg + 2}.Name(kSeg) + ".partial"));
  // Complete segments are indexed; partial chunks are not.
  auto index = repo::WalIndex::Build(*repo_);
  EXPECT_EQ(index.segment_count(), 2u);
}

TEST_F(ReceiverTest, AsynchronousAcknowledgesTheSpoolAndUploadsEveryInterval) {
  Receiver r(Options(false), {repo_.get()});
  r.Begin(1, At(0));
  Break();
  r.Write(At(0), Wal(0, 8000));
  EXPECT_EQ(r.Acknowledged(), At(0));  // not fsynced yet
  r.Sync();
  EXPECT_EQ(r.Acknowledged(), At(8000)) << "the spool is what asynchronous mode acknowledges";
  std::this_thread::sleep_for(500ms);
  EXPECT_EQ(r.Status().uploaded, At(0));
  Heal();
  auto healed = std::chrono::steady_clock::now();
  ASSERT_TRUE(Eventually([&] { return r.Status().uploaded == At(8000); }));
  // Within an interval and the retry backoff.
  EXPECT_LT(std::chrono::steady_clock::now() - healed, 3s);
  // Uploads come in rounds, not per write: many small writes within one interval, one chunk.
  const auto chunks = r.Status().chunks_uploaded;
  for (std::uint64_t i = 0; i < 50; ++i) r.Write(At(8000 + i * 100), Wal(8000 + i * 100, 100));
  ASSERT_TRUE(Eventually([&] { return r.Status().uploaded == At(13000); }));
  EXPECT_LE(r.Status().chunks_uploaded - chunks, 2u);
}

TEST_F(ReceiverTest, BackPressureHoldsTheStreamWhileTheSpoolIsFull) {
  auto o = Options(true);
  o.max_spool_segments = 1;
  Receiver r(o, {repo_.get()});
  r.Begin(1, At(0));
  Break();
  auto writer = std::async(std::launch::async, [&] { r.Write(At(0), Wal(0, 2 * kSeg + 10)); });
  struct StopFirst {  // on a failed assertion, ends the wait before the future is joined
    Receiver& r;
    ~StopFirst() { r.Stop(); }
  } stop_first{r};
  EXPECT_EQ(writer.wait_for(500ms), std::future_status::timeout) << "wrote past a full spool";
  EXPECT_TRUE(r.Status().waiting_for_spool);
  Heal();
  ASSERT_EQ(writer.wait_for(10s), std::future_status::ready);
  writer.get();
  ASSERT_TRUE(Eventually([&] { return r.Acknowledged() == At(2 * kSeg + 10); }));
}

TEST_F(ReceiverTest, ChunksAreBoundedSoMemoryDoesNotGrowWithTheBacklog) {
  auto o = Options(true);
  o.max_chunk = 64 * 1024;
  Receiver r(o, {repo_.get()});
  r.Begin(1, At(0));
  Break();
  r.Write(At(0), Wal(0, kSeg - 1000));  // a backlog while the repository is down
  Heal();
  ASSERT_TRUE(Eventually([&] { return r.Acknowledged() == At(kSeg - 1000); }));
  auto chunks = repo::ListPartialChunks(*repo_, WalSegment{1, kBase / kSeg}, kSeg);
  ASSERT_FALSE(chunks.empty());
  for (const auto& c : chunks) EXPECT_LE(c.end - c.start, 64u * 1024) << c.key;
}

TEST_F(ReceiverTest, ARestartPushesWhatTheSpoolKeptAndReceivesTheSegmentAgain) {
  {
    Receiver r(Options(true), {repo_.get()});
    r.Begin(1, At(0));
    Break();
    r.Write(At(0), Wal(0, kSeg + 4000));  // segment 16 complete in the spool, 17 partial
    r.Stop();
  }
  EXPECT_TRUE(fs::exists(dir_ / ("spool/" + WalSegment{1, kBase / kSeg}.Name(kSeg))));
  Heal();
  Receiver r(Options(true), {repo_.get()});
  ASSERT_TRUE(Eventually([&] { return r.Status().segments_archived == 1; }));
  EXPECT_EQ(Restored(0), Bytes(wal_.begin(), wal_.begin() + kSeg));
  // Streaming resumes at the start of the segment that was partial.
  r.Begin(1, At(kSeg));
  r.Write(At(kSeg), Wal(kSeg, 9000));
  ASSERT_TRUE(Eventually([&] { return r.Acknowledged() == At(kSeg + 9000); }));
  Bytes restored = Restored(1);
  EXPECT_TRUE(std::equal(restored.begin(), restored.begin() + 9000, wal_.begin() + kSeg));
  EXPECT_THROW(r.Write(At(kSeg + 9001), Wal(0, 10)), PgError) << "a gap must not be written";
}

TEST_F(ReceiverTest, EndTimelineUploadsTheRestAndArchivesTheHistoryFile) {
  Receiver r(Options(true), {repo_.get()});
  r.Begin(1, At(0));
  r.Write(At(0), Wal(0, 3000));
  std::string history = "1\t0/10000BB8\tno recovery target specified\n";
  r.EndTimeline("00000002.history", AsBytes(history));
  EXPECT_EQ(r.Status().uploaded, At(3000));
  auto h = repo::FindWalObjects(repo_->storage(), "main",
                                {"00000002.history", repo::WalFileKind::kHistory, 2});
  ASSERT_EQ(h.size(), 1u);
  EXPECT_FALSE(fs::exists(dir_ / ("spool/" + WalSegment{1, kBase / kSeg}.Name(kSeg) + ".partial")));
  r.Begin(2, At(0));
  r.Write(At(0), Wal(0, 3500));
  ASSERT_TRUE(Eventually([&] { return r.Acknowledged() == At(3500); }));
  EXPECT_EQ(r.Status().timeline, 2u);
  EXPECT_EQ(r.Status().timelines_followed, 1u);
}

// A scripted server for RunStream.
class FakeSource final : public pg::WalSource {
 public:
  void Push(pg::StreamEvent e) {
    std::lock_guard lock(mu_);
    events_.push_back(std::move(e));
    cv_.notify_all();
  }
  pg::StreamEvent Next(std::chrono::milliseconds timeout) override {
    std::unique_lock lock(mu_);
    cv_.wait_for(lock, timeout, [&] { return !events_.empty() || woken_; });
    woken_ = false;
    if (events_.empty()) return {};
    auto e = std::move(events_.front());
    events_.pop_front();
    return e;
  }
  void SendStatus(Lsn written, Lsn flushed, bool) override {
    std::lock_guard lock(mu_);
    statuses_.emplace_back(written, flushed);
  }
  void Wake() override {
    std::lock_guard lock(mu_);
    woken_ = true;
    cv_.notify_all();
  }
  std::vector<std::pair<Lsn, Lsn>> statuses() {
    std::lock_guard lock(mu_);
    return statuses_;
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<pg::StreamEvent> events_;
  std::vector<std::pair<Lsn, Lsn>> statuses_;
  bool woken_ = false;
};

TEST_F(ReceiverTest, TheStreamReportsEachNewlyDurablePositionAndEndsWithTheTimeline) {
  Receiver r(Options(true), {repo_.get()});
  r.Begin(1, At(0));
  FakeSource source;
  std::atomic<bool> stop{false};
  auto run = std::async(std::launch::async, [&] { return RunStream(source, r, stop); });
  for (std::uint64_t off = 0; off < 20000; off += 4000) {
    pg::StreamEvent e;
    e.kind = pg::StreamEvent::Kind::kData;
    e.start = At(off);
    e.data = Wal(off, 4000);
    e.server_end = At(off + 4000);
    source.Push(e);
    // Each commit waits for its flush report, as a synchronous standby's would.
    ASSERT_TRUE(Eventually([&] {
      auto st = source.statuses();
      return !st.empty() && st.back().second == At(off + 4000);
    })) << "no flush report for "
        << At(off + 4000).ToString();
  }
  pg::StreamEvent end;
  end.kind = pg::StreamEvent::Kind::kTimelineEnd;
  end.next_timeline = 2;
  end.next_start = At(20000);
  source.Push(end);
  ASSERT_EQ(run.wait_for(5s), std::future_status::ready);
  auto ev = run.get();
  EXPECT_EQ(ev.kind, pg::StreamEvent::Kind::kTimelineEnd);
  EXPECT_EQ(ev.next_timeline, 2u);
  // Flush positions never go back and never pass what the repository holds.
  Lsn last;
  for (const auto& [written, flushed] : source.statuses()) {
    EXPECT_GE(flushed, last);
    EXPECT_LE(flushed, written);
    last = flushed;
  }
  EXPECT_EQ(r.Status().server_end, At(20000));
}

}  // namespace
}  // namespace gravl::receive
