// Round trips through every filter combination, and every way a stored stream can be
// damaged: each must be detected with a clear error, never returned as data.

#include "io/pipeline.h"

#include <gtest/gtest.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <tuple>

#include "common/error.h"
#include "io/compress.h"
#include "io/crypto.h"
#include "io/hash.h"
#include "support/test_util.h"

namespace gravl::io {
namespace {

const Key& TestKey() {
  static const Key key(Bytes(kKeySize, 0x42));
  return key;
}

// Encodes `input` (compress, then optionally encrypt) written in pieces of `piece` bytes.
Bytes Encode(const Bytes& input, CompressionType type, bool encrypt, std::size_t piece,
             std::string* sha = nullptr) {
  BufferSink out;
  FilterChain chain(out);
  if (encrypt) chain.PrependWith([](Sink& next) { return MakeEncryptor(TestKey(), next); });
  chain.PrependWith([&](Sink& next) {
    return MakeCompressor(type, type == CompressionType::kGzip ? 6 : 1, next);
  });
  auto& hash = chain.Prepend<HashSink>();
  for (std::size_t pos = 0; pos < input.size(); pos += piece) {
    chain.head().Write(ByteView(input).subspan(pos, std::min(piece, input.size() - pos)));
  }
  chain.head().Finish();
  if (sha) *sha = hash.hex();
  return out.Take();
}

Bytes Decode(const Bytes& stored, CompressionType type, bool encrypt, const std::string& sha,
             std::size_t piece = 100000, const Key* key = nullptr) {
  BufferSink out;
  FilterChain chain(out);
  chain.Prepend<VerifySink>(sha, "test object");
  chain.PrependWith([&](Sink& next) { return MakeDecompressor(type, next); });
  if (encrypt) {
    chain.PrependWith(
        [&](Sink& next) { return MakeDecryptor(key ? *key : TestKey(), next, "test object"); });
  }
  for (std::size_t pos = 0; pos < stored.size(); pos += piece) {
    chain.head().Write(ByteView(stored).subspan(pos, std::min(piece, stored.size() - pos)));
  }
  chain.head().Finish();
  EXPECT_TRUE(out.finished());
  return out.Take();
}

using Combo = std::tuple<CompressionType, bool, std::size_t>;

class RoundTrip : public ::testing::TestWithParam<Combo> {};

TEST_P(RoundTrip, EveryFilterCombinationRestoresTheInput) {
  auto [type, encrypt, size] = GetParam();
  for (bool compressible : {false, true}) {
    Bytes input = test::PseudoRandom(size, size + 7, compressible);
    for (std::size_t piece : {std::size_t{1} << 20, std::size_t{4093}}) {
      if (piece == 4093 && size > (1u << 20)) continue;  // keep the tiny pieces cheap
      std::string sha;
      Bytes stored = Encode(input, type, encrypt, piece, &sha);
      EXPECT_EQ(sha, Sha256Hex(input));
      if (encrypt) {
        EXPECT_EQ(stored.size(), EncryptedSize(Encode(input, type, false, piece).size()));
      }
      EXPECT_EQ(Decode(stored, type, encrypt, sha), input);
      EXPECT_EQ(Decode(stored, type, encrypt, sha, 1 + size % 777), input);
    }
  }
}

INSTANTIATE_TEST_SUITE_P(
    AllCombinations, RoundTrip,
    ::testing::Combine(::testing::Values(CompressionType::kNone, CompressionType::kZstd,
                                         CompressionType::kLz4, CompressionType::kGzip),
                       ::testing::Bool(),
                       ::testing::Values(0, 1, kEncryptionChunk - 1, kEncryptionChunk,
                                         kEncryptionChunk + 1, 3 * kEncryptionChunk,
                                         (5u << 20) + 3)),
    [](const auto& p) {
      return std::string(CompressionName(std::get<0>(p.param))) +
             (std::get<1>(p.param) ? "_encrypted_" : "_plain_") +
             std::to_string(std::get<2>(p.param));
    });

// ---- damage to encrypted objects ----

class Tamper : public ::testing::Test {
 protected:
  void SetUp() override {
    input_ = test::PseudoRandom(3 * kEncryptionChunk + 100, 99);
    stored_ = Encode(input_, CompressionType::kNone, true, 1 << 20, &sha_);
  }
  void ExpectRejected(const Bytes& damaged, const std::string& expect_in_message) {
    try {
      Decode(damaged, CompressionType::kNone, true, sha_);
      FAIL() << "damaged ciphertext was accepted";
    } catch (const IntegrityError& e) {
      EXPECT_NE(std::string(e.what()).find("test object"), std::string::npos) << e.what();
      EXPECT_NE(std::string(e.what()).find(expect_in_message), std::string::npos) << e.what();
      EXPECT_EQ(e.code(), ExitCode::kIntegrity);
    }
  }
  Bytes input_, stored_;
  std::string sha_;
};

TEST_F(Tamper, FlippedBitAnywhereIsDetected) {
  for (std::size_t pos : {std::size_t{0}, std::size_t{9}, std::size_t{41}, kEncryptionHeaderSize,
                          kEncryptionHeaderSize + kEncryptionChunk + 5,
                          kEncryptionHeaderSize + kEncryptionChunk + 3,  // inside a tag
                          stored_.size() - 1}) {
    Bytes damaged = stored_;
    damaged[pos] ^= 0x01;
    try {
      Decode(damaged, CompressionType::kNone, true, sha_);
      FAIL() << "bit flip at " << pos << " was accepted";
    } catch (const IntegrityError& e) {
      EXPECT_NE(std::string(e.what()).find("test object"), std::string::npos);
    }
  }
}

TEST_F(Tamper, TruncationIsDetectedAtEveryBoundary) {
  std::size_t frame = kEncryptionChunk + kGcmTagSize;
  for (std::size_t len :
       {std::size_t{0}, std::size_t{10}, kEncryptionHeaderSize, kEncryptionHeaderSize + 15,
        kEncryptionHeaderSize + frame, kEncryptionHeaderSize + 2 * frame,
        kEncryptionHeaderSize + 3 * frame, stored_.size() - 1}) {
    Bytes damaged(stored_.begin(), stored_.begin() + static_cast<long>(len));
    ExpectRejected(damaged, "encrypted data is");
  }
}

TEST_F(Tamper, ReorderedChunksAreDetected) {
  std::size_t frame = kEncryptionChunk + kGcmTagSize;
  Bytes damaged = stored_;
  std::swap_ranges(damaged.begin() + static_cast<long>(kEncryptionHeaderSize),
                   damaged.begin() + static_cast<long>(kEncryptionHeaderSize + frame),
                   damaged.begin() + static_cast<long>(kEncryptionHeaderSize + frame));
  ExpectRejected(damaged, "not authentic at chunk 0");
}

TEST_F(Tamper, AppendedDataIsDetected) {
  Bytes damaged = stored_;
  damaged.insert(damaged.end(), 32, 0);
  ExpectRejected(damaged, "not authentic");
}

TEST_F(Tamper, DroppedFinalChunkIsDetected) {
  // Cut exactly after the third full chunk: every remaining chunk is authentic on its own,
  // but none carries the final flag.
  std::size_t frame = kEncryptionChunk + kGcmTagSize;
  Bytes damaged(stored_.begin(),
                stored_.begin() + static_cast<long>(kEncryptionHeaderSize + 3 * frame));
  ExpectRejected(damaged, "truncated or extended");
}

TEST_F(Tamper, WrongKeyIsRejected) {
  Key other(Bytes(kKeySize, 0x43));
  EXPECT_THROW(Decode(stored_, CompressionType::kNone, true, sha_, 100000, &other), IntegrityError);
}

TEST_F(Tamper, HeaderFromAnotherObjectIsRejected) {
  Bytes other = Encode(input_, CompressionType::kNone, true, 1 << 20);
  Bytes damaged = stored_;
  std::copy(other.begin(), other.begin() + static_cast<long>(kEncryptionHeaderSize),
            damaged.begin());
  ExpectRejected(damaged, "not authentic at chunk 0");
}

// ---- damage to compressed (unencrypted) objects ----

class CorruptCompressed : public ::testing::TestWithParam<CompressionType> {};

TEST_P(CorruptCompressed, TruncationAndGarbageAreDetected) {
  CompressionType type = GetParam();
  Bytes input = test::PseudoRandom(300000, 5, true);
  std::string sha;
  Bytes stored = Encode(input, type, false, 1 << 20, &sha);
  for (std::size_t len : {std::size_t{0}, std::size_t{5}, stored.size() / 2, stored.size() - 1}) {
    Bytes cut(stored.begin(), stored.begin() + static_cast<long>(len));
    EXPECT_THROW(Decode(cut, type, false, sha), IntegrityError) << "cut at " << len;
  }
  Bytes flipped = stored;
  flipped[stored.size() / 2] ^= 0x5a;
  EXPECT_THROW(Decode(flipped, type, false, sha), IntegrityError);
}

INSTANTIATE_TEST_SUITE_P(Codecs, CorruptCompressed,
                         ::testing::Values(CompressionType::kZstd, CompressionType::kLz4,
                                           CompressionType::kGzip),
                         [](const auto& p) { return CompressionName(p.param); });

TEST(Verify, ShaMismatchFailsBeforeTheDestinationIsFinished) {
  BufferSink out;
  VerifySink verify(out, std::string(64, '0'), "obj");
  verify.Write(AsBytes("hello"));
  EXPECT_THROW(verify.Finish(), IntegrityError);
  EXPECT_FALSE(out.finished());
}

// ---- key derivation ----

TEST(Kdf, SamePassphraseAndSaltGiveTheSameKeyAndOthersDoNot) {
  KdfParams p;
  p.n = 1 << 10;  // cheap for the test; the default cost is exercised in repo tests
  p.salt = Bytes(32, 7);
  Key a = DeriveKey("correct horse", p);
  Key b = DeriveKey("correct horse", p);
  Key c = DeriveKey("correct horsf", p);
  p.salt[0] = 8;
  Key d = DeriveKey("correct horse", p);
  EXPECT_EQ(KeyCheck(a), KeyCheck(b));
  EXPECT_NE(KeyCheck(a), KeyCheck(c));
  EXPECT_NE(KeyCheck(a), KeyCheck(d));
  EXPECT_EQ(a.bytes().size(), kKeySize);
}

// The work factor is what DeriveKey really spends: deriving a key with the default
// parameters makes a fresh process's peak memory grow by scrypt's 128 * N * r bytes (64 MiB),
// and a lower N gives another key (the parameters are used, not only stored).
TEST(Kdf, DeriveKeyUsesTheDefaultWorkFactor) {
  KdfParams p;
  p.salt = Bytes(32, 7);
  ASSERT_GE(p.n * p.r * 128, 64ULL << 20) << "scrypt should use at least 64 MiB";
  pid_t child = ::fork();
  if (child == 0) {
    rusage before{};
    getrusage(RUSAGE_SELF, &before);
    Key k = DeriveKey("correct horse", p);
    rusage after{};
    getrusage(RUSAGE_SELF, &after);
    long grown_kib = after.ru_maxrss - before.ru_maxrss;
    ::_exit(grown_kib >= 60 * 1024 && k.bytes().size() == kKeySize ? 0 : 1);
  }
  int status = 0;
  ::waitpid(child, &status, 0);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0)
      << "DeriveKey did not use 64 MiB with the default parameters";
  KdfParams cheaper = p;
  cheaper.n = 1u << 10;
  Key full = DeriveKey("correct horse", p), fast = DeriveKey("correct horse", cheaper);
  EXPECT_FALSE(std::equal(full.bytes().begin(), full.bytes().end(), fast.bytes().begin()));
}

// ---- multi-GB streams with bounded memory ----

// Streams GRAVL_TEST_BIG_STREAM_MIB (default 4608 = 4.5 GiB, past every 32-bit boundary)
// through hash -> zstd -> AES-GCM -> AES-GCM decrypt -> zstd decompress -> verify, without
// storing it, and checks that peak memory stays bounded.
TEST(BigStream, MultiGigabyteRoundTripWithBoundedMemory) {
  std::uint64_t mib = 4608;
  if (const char* env = std::getenv("GRAVL_TEST_BIG_STREAM_MIB"))
    mib = std::strtoull(env, nullptr, 10);
  const std::uint64_t size = mib << 20;

  // Decode side: decrypt -> decompress -> hash+count -> null.
  NullSink null;
  FilterChain decode(null);
  auto& dcount = decode.Prepend<CountingSink>();
  auto& dhash = decode.Prepend<HashSink>();
  decode.PrependWith([](Sink& next) { return MakeDecompressor(CompressionType::kZstd, next); });
  decode.PrependWith([](Sink& next) { return MakeDecryptor(TestKey(), next, "big"); });

  // Encode side feeds the decode side directly.
  FilterChain encode(decode.head());
  auto& ecount = encode.Prepend<CountingSink>();  // ciphertext bytes
  encode.PrependWith([](Sink& next) { return MakeEncryptor(TestKey(), next); });
  encode.PrependWith([](Sink& next) { return MakeCompressor(CompressionType::kZstd, 1, next); });
  auto& ehash = encode.Prepend<HashSink>();

  std::uint64_t rss_before = test::PeakRssBytes();
  test::GeneratedSource source(size, 1234);
  std::uint64_t pumped = Pump(source, encode.head());
  std::uint64_t rss_growth = test::PeakRssBytes() - rss_before;

  EXPECT_EQ(pumped, size);
  EXPECT_EQ(dcount.count(), size);
  EXPECT_EQ(dhash.hex(), ehash.hex());
  EXPECT_GT(ecount.count(), size / 4);  // half of the data is incompressible
  EXPECT_LT(rss_growth, 64ULL << 20) << "peak RSS grew by " << rss_growth << " bytes";
  RecordProperty("stream_bytes", std::to_string(size));
  RecordProperty("peak_rss_growth_bytes", std::to_string(rss_growth));
}

}  // namespace
}  // namespace gravl::io
