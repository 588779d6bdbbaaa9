#include "io/compress.h"

#include <lz4frame.h>
#include <zlib.h>
#include <zstd.h>

#include <algorithm>
#include <string>

#include "common/error.h"

namespace gravl::io {
namespace {

constexpr std::size_t kOutBuf = 128 * 1024;

class PassThrough final : public Sink {
 public:
  explicit PassThrough(Sink& next) : next_(next) {}
  void Write(ByteView data) override { next_.Write(data); }
  void Finish() override { next_.Finish(); }

 private:
  Sink& next_;
};

// ---- zstd ----
class ZstdCompressor final : public Sink {
 public:
  ZstdCompressor(int level, Sink& next, int workers) : next_(next), out_(ZSTD_CStreamOutSize()) {
    ctx_ = ZSTD_createCCtx();
    if (ctx_ == nullptr) throw Error(ExitCode::kError, "zstd: out of memory");
    ZSTD_CCtx_setParameter(ctx_, ZSTD_c_compressionLevel, level);
    // No XXH64 content checksum: every read verifies the SHA-256 of the original bytes
    // (recorded by the writer) after decompression, and the checksum costs ~0.1 s per GiB.
    ZSTD_CCtx_setParameter(ctx_, ZSTD_c_checksumFlag, 0);
    // Without multithreading support in libzstd this fails harmlessly: compression stays
    // in the calling thread.
    if (workers > 0) ZSTD_CCtx_setParameter(ctx_, ZSTD_c_nbWorkers, workers);
  }
  ~ZstdCompressor() override { ZSTD_freeCCtx(ctx_); }
  void Write(ByteView data) override { Run(data, ZSTD_e_continue); }
  void Finish() override {
    Run({}, ZSTD_e_end);
    next_.Finish();
  }

 private:
  void Run(ByteView data, ZSTD_EndDirective mode) {
    ZSTD_inBuffer in{data.data(), data.size(), 0};
    for (;;) {
      ZSTD_outBuffer out{out_.data(), out_.size(), 0};
      std::size_t rc = ZSTD_compressStream2(ctx_, &out, &in, mode);
      if (ZSTD_isError(rc)) {
        throw Error(ExitCode::kError, std::string("zstd compression: ") + ZSTD_getErrorName(rc));
      }
      if (out.pos > 0) next_.Write(ByteView(out_.data(), out.pos));
      bool done = mode == ZSTD_e_end ? rc == 0 : in.pos == in.size;
      if (done) break;
    }
  }
  Sink& next_;
  ZSTD_CCtx* ctx_ = nullptr;
  Bytes out_;
};

class ZstdDecompressor final : public Sink {
 public:
  explicit ZstdDecompressor(Sink& next) : next_(next), out_(ZSTD_DStreamOutSize()) {
    ctx_ = ZSTD_createDCtx();
    if (ctx_ == nullptr) throw Error(ExitCode::kError, "zstd: out of memory");
  }
  ~ZstdDecompressor() override { ZSTD_freeDCtx(ctx_); }
  void Write(ByteView data) override {
    if (data.empty()) return;
    seen_input_ = true;
    ZSTD_inBuffer in{data.data(), data.size(), 0};
    bool out_full = false;
    // Loop while input remains or the decoder may still hold output (full buffer).
    while (in.pos < in.size || out_full) {
      ZSTD_outBuffer out{out_.data(), out_.size(), 0};
      std::size_t rc = ZSTD_decompressStream(ctx_, &out, &in);
      if (ZSTD_isError(rc)) {
        throw IntegrityError(std::string("zstd: corrupt compressed data: ") +
                             ZSTD_getErrorName(rc));
      }
      if (out.pos > 0) next_.Write(ByteView(out_.data(), out.pos));
      frame_done_ = rc == 0;
      // rc == 0: the frame is complete and fully flushed, so a full buffer holds nothing
      // more; calling again would start reading a next frame.
      out_full = !frame_done_ && out.pos == out.size;
    }
  }
  void Finish() override {
    if (!seen_input_ || !frame_done_) {
      throw IntegrityError("zstd: compressed data is truncated (the stream ends inside a frame)");
    }
    next_.Finish();
  }

 private:
  Sink& next_;
  ZSTD_DCtx* ctx_ = nullptr;
  Bytes out_;
  bool frame_done_ = false;
  bool seen_input_ = false;
};

// ---- lz4 frame ----
class Lz4Compressor final : public Sink {
 public:
  Lz4Compressor(int level, Sink& next) : next_(next) {
    if (LZ4F_isError(LZ4F_createCompressionContext(&ctx_, LZ4F_VERSION))) {
      throw Error(ExitCode::kError, "lz4: out of memory");
    }
    prefs_ = LZ4F_preferences_t{};
    prefs_.compressionLevel = level;
    prefs_.frameInfo.blockSizeID = LZ4F_max256KB;
    prefs_.frameInfo.contentChecksumFlag = LZ4F_contentChecksumEnabled;
    out_.resize(LZ4F_compressBound(kInChunk, &prefs_) + LZ4F_HEADER_SIZE_MAX);
    std::size_t n = LZ4F_compressBegin(ctx_, out_.data(), out_.size(), &prefs_);
    Check(n);
    next_.Write(ByteView(out_.data(), n));
  }
  ~Lz4Compressor() override { LZ4F_freeCompressionContext(ctx_); }
  void Write(ByteView data) override {
    while (!data.empty()) {
      std::size_t take = std::min(data.size(), kInChunk);
      std::size_t n =
          LZ4F_compressUpdate(ctx_, out_.data(), out_.size(), data.data(), take, nullptr);
      Check(n);
      if (n > 0) next_.Write(ByteView(out_.data(), n));
      data = data.subspan(take);
    }
  }
  void Finish() override {
    std::size_t n = LZ4F_compressEnd(ctx_, out_.data(), out_.size(), nullptr);
    Check(n);
    next_.Write(ByteView(out_.data(), n));
    next_.Finish();
  }

 private:
  static constexpr std::size_t kInChunk = 64 * 1024;
  static void Check(std::size_t rc) {
    if (LZ4F_isError(rc)) {
      throw Error(ExitCode::kError, std::string("lz4 compression: ") + LZ4F_getErrorName(rc));
    }
  }
  Sink& next_;
  LZ4F_cctx* ctx_ = nullptr;
  LZ4F_preferences_t prefs_{};
  Bytes out_;
};

class Lz4Decompressor final : public Sink {
 public:
  explicit Lz4Decompressor(Sink& next) : next_(next), out_(kOutBuf) {
    if (LZ4F_isError(LZ4F_createDecompressionContext(&ctx_, LZ4F_VERSION))) {
      throw Error(ExitCode::kError, "lz4: out of memory");
    }
  }
  ~Lz4Decompressor() override { LZ4F_freeDecompressionContext(ctx_); }
  void Write(ByteView data) override {
    const std::uint8_t* src = data.data();
    std::size_t left = data.size();
    while (left > 0) {
      if (frame_done_) throw IntegrityError("lz4: unexpected data after the end of the frame");
      std::size_t out_size = out_.size();
      std::size_t in_size = left;
      std::size_t rc = LZ4F_decompress(ctx_, out_.data(), &out_size, src, &in_size, nullptr);
      if (LZ4F_isError(rc)) {
        throw IntegrityError(std::string("lz4: corrupt compressed data: ") + LZ4F_getErrorName(rc));
      }
      if (out_size > 0) next_.Write(ByteView(out_.data(), out_size));
      src += in_size;
      left -= in_size;
      if (rc == 0) frame_done_ = true;
      if (in_size == 0 && out_size == 0) break;
    }
    // Drain output the decoder may still hold.
    for (;;) {
      if (frame_done_) break;
      std::size_t out_size = out_.size();
      std::size_t in_size = 0;
      std::size_t rc = LZ4F_decompress(ctx_, out_.data(), &out_size, nullptr, &in_size, nullptr);
      if (LZ4F_isError(rc)) {
        throw IntegrityError(std::string("lz4: corrupt compressed data: ") + LZ4F_getErrorName(rc));
      }
      if (out_size > 0) next_.Write(ByteView(out_.data(), out_size));
      if (rc == 0) frame_done_ = true;
      if (out_size == 0) break;
    }
  }
  void Finish() override {
    if (!frame_done_) {
      throw IntegrityError("lz4: compressed data is truncated (the stream ends inside a frame)");
    }
    next_.Finish();
  }

 private:
  Sink& next_;
  LZ4F_dctx* ctx_ = nullptr;
  Bytes out_;
  bool frame_done_ = false;
};

// ---- gzip (zlib with a gzip wrapper) ----
class GzipCompressor final : public Sink {
 public:
  GzipCompressor(int level, Sink& next) : next_(next), out_(kOutBuf) {
    zs_ = z_stream{};
    if (deflateInit2(&zs_, level, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) != Z_OK) {
      throw Error(ExitCode::kError, "gzip: cannot initialize the compressor");
    }
  }
  ~GzipCompressor() override { deflateEnd(&zs_); }
  void Write(ByteView data) override {
    while (!data.empty()) {
      // zlib counts in 32-bit units.
      std::size_t take = std::min<std::size_t>(data.size(), 1u << 30);
      Run(data.first(take), Z_NO_FLUSH);
      data = data.subspan(take);
    }
  }
  void Finish() override {
    Run({}, Z_FINISH);
    next_.Finish();
  }

 private:
  void Run(ByteView data, int flush) {
    zs_.next_in = const_cast<Bytef*>(data.data());
    zs_.avail_in = static_cast<uInt>(data.size());
    for (;;) {
      zs_.next_out = out_.data();
      zs_.avail_out = static_cast<uInt>(out_.size());
      int rc = deflate(&zs_, flush);
      if (rc == Z_STREAM_ERROR) throw Error(ExitCode::kError, "gzip compression failed");
      std::size_t produced = out_.size() - zs_.avail_out;
      if (produced > 0) next_.Write(ByteView(out_.data(), produced));
      if (flush == Z_FINISH ? rc == Z_STREAM_END : (zs_.avail_in == 0 && zs_.avail_out != 0)) {
        break;
      }
    }
  }
  Sink& next_;
  z_stream zs_{};
  Bytes out_;
};

class GzipDecompressor final : public Sink {
 public:
  explicit GzipDecompressor(Sink& next) : next_(next), out_(kOutBuf) {
    zs_ = z_stream{};
    if (inflateInit2(&zs_, 15 + 16) != Z_OK) {
      throw Error(ExitCode::kError, "gzip: cannot initialize the decompressor");
    }
  }
  ~GzipDecompressor() override { inflateEnd(&zs_); }
  void Write(ByteView data) override {
    while (!data.empty()) {
      if (done_) throw IntegrityError("gzip: unexpected data after the end of the stream");
      std::size_t take = std::min<std::size_t>(data.size(), 1u << 30);
      zs_.next_in = const_cast<Bytef*>(data.data());
      zs_.avail_in = static_cast<uInt>(take);
      do {
        zs_.next_out = out_.data();
        zs_.avail_out = static_cast<uInt>(out_.size());
        int rc = inflate(&zs_, Z_NO_FLUSH);
        if (rc != Z_OK && rc != Z_STREAM_END && rc != Z_BUF_ERROR) {
          throw IntegrityError(std::string("gzip: corrupt compressed data: ") +
                               (zs_.msg ? zs_.msg : "inflate error"));
        }
        std::size_t produced = out_.size() - zs_.avail_out;
        if (produced > 0) next_.Write(ByteView(out_.data(), produced));
        if (rc == Z_STREAM_END) {
          done_ = true;
          if (zs_.avail_in > 0) {
            throw IntegrityError("gzip: unexpected data after the end of the stream");
          }
          break;
        }
        if (rc == Z_BUF_ERROR) break;  // no progress possible: needs more input
      } while (zs_.avail_in > 0 || zs_.avail_out == 0);
      data = data.subspan(take);
    }
  }
  void Finish() override {
    if (!done_) throw IntegrityError("gzip: compressed data is truncated");
    next_.Finish();
  }

 private:
  Sink& next_;
  z_stream zs_{};
  Bytes out_;
  bool done_ = false;
};

}  // namespace

std::unique_ptr<Sink> MakeCompressor(CompressionType type, int level, Sink& next, int workers) {
  switch (type) {
    case CompressionType::kZstd:
      return std::make_unique<ZstdCompressor>(level, next, workers);
    case CompressionType::kLz4:
      return std::make_unique<Lz4Compressor>(level, next);
    case CompressionType::kGzip:
      return std::make_unique<GzipCompressor>(level, next);
    case CompressionType::kNone:
      return std::make_unique<PassThrough>(next);
  }
  throw Error(ExitCode::kError, "unknown compression type");
}

std::unique_ptr<Sink> MakeDecompressor(CompressionType type, Sink& next) {
  switch (type) {
    case CompressionType::kZstd:
      return std::make_unique<ZstdDecompressor>(next);
    case CompressionType::kLz4:
      return std::make_unique<Lz4Decompressor>(next);
    case CompressionType::kGzip:
      return std::make_unique<GzipDecompressor>(next);
    case CompressionType::kNone:
      return std::make_unique<PassThrough>(next);
  }
  throw Error(ExitCode::kError, "unknown compression type");
}

const char* CompressionExtension(CompressionType type) {
  switch (type) {
    case CompressionType::kZstd:
      return "zst";
    case CompressionType::kLz4:
      return "lz4";
    case CompressionType::kGzip:
      return "gz";
    case CompressionType::kNone:
      return "";
  }
  return "";
}

}  // namespace gravl::io
