#pragma once
// Streaming compression filters: zstd, lz4 (frame format), gzip (zlib), none.
// Memory per filter is bounded by the codec's window plus one output buffer, whatever the
// stream length. Decompressors throw IntegrityError on corrupt or truncated input.

#include <memory>

#include "common/config.h"
#include "io/stream.h"

namespace gravl::io {

std::unique_ptr<Sink> MakeCompressor(CompressionType type, int level, Sink& next);
std::unique_ptr<Sink> MakeDecompressor(CompressionType type, Sink& next);

// File-name extension for a compression type ("zst", "lz4", "gz", "").
const char* CompressionExtension(CompressionType type);

}  // namespace gravl::io
