#pragma once
// Streaming compression filters: zstd, lz4 (frame format), gzip (zlib), none.
// Memory per filter is bounded by the codec's window plus one output buffer, whatever the
// stream length. Decompressors throw IntegrityError on corrupt or truncated input.

#include <memory>

#include "common/config.h"
#include "io/stream.h"

namespace gravl::io {

// `workers` > 0 lets zstd compress in that many background threads (overlapping with the
// caller's hashing and I/O); worth it for large objects only. Ignored by other codecs.
std::unique_ptr<Sink> MakeCompressor(CompressionType type, int level, Sink& next, int workers = 0);
std::unique_ptr<Sink> MakeDecompressor(CompressionType type, Sink& next);

// File-name extension for a compression type ("zst", "lz4", "gz", "").
const char* CompressionExtension(CompressionType type);

}  // namespace gravl::io
