#pragma once
// Partial segments: the WAL of a segment that is not complete yet, as the streaming receiver
// (src/receive/) uploads it, so that the repository holds every acknowledged commit, not only
// the completed segments.
//
// A partial segment is stored as chunks, each a range of the segment's bytes:
//     <stanza>/wal-partial/<TTTTTTTT>/<segment>/<start>-<end>-<sha256>[.zst|.lz4|.gz]
// (start and end are 8-hex-digit offsets into the segment; the SHA-256 is of the chunk's
// original bytes). A chunk is write-once; every upload adds the bytes received since the last
// one, so an upload costs what is new, not the whole segment. A receiver that restarts streams
// the segment again from its start and uploads chunks that overlap earlier ones -- the same
// WAL, so any path of overlapping chunks from offset 0 gives the same bytes; the one reaching
// furthest is the newest partial segment.
//
// A partial segment is never mistaken for a complete one: it lives apart from <stanza>/wal/
// (which WalIndex, verify, expire and repo-sync read), and archive-get serves it only when no
// repository holds the complete segment, padded with zeros to the segment size as PostgreSQL
// expects (recovery ends at the first zero record). Chunks of a segment are deleted once the
// complete segment is archived.

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "common/config.h"
#include "common/lsn.h"
#include "io/stream.h"
#include "storage/storage.h"

namespace gravl::repo {

class Repository;

inline std::string PartialPrefix(const std::string& stanza) { return stanza + "/wal-partial/"; }

struct PartialChunk {
  std::string key;
  WalSegment segment;
  std::uint64_t start = 0;  // offsets into the segment, [start, end)
  std::uint64_t end = 0;
  std::string sha256;  // of the original bytes
  CompressionType compression = CompressionType::kNone;
};

std::string PartialChunkKey(const std::string& stanza, const WalSegment& segment,
                            std::uint64_t segment_size, std::uint64_t start, std::uint64_t end,
                            const std::string& sha256, CompressionType compression);
// Parses a key under <stanza>/wal-partial/; nullopt for anything else (temporary files).
std::optional<PartialChunk> ParsePartialChunkKey(const std::string& key,
                                                 std::uint64_t segment_size);

// Stores bytes [start, start + data.size()) of `segment` in `repo` (its format: compression,
// encryption); an identical chunk already there counts as stored. Durable when it returns.
void PutPartialChunk(Repository& repo, const WalSegment& segment, std::uint64_t segment_size,
                     std::uint64_t start, ByteView data, CompressionType compression, int level);

// The chunks of one segment in `repo`.
std::vector<PartialChunk> ListPartialChunks(Repository& repo, const WalSegment& segment,
                                            std::uint64_t segment_size);
// The path through `chunks` from offset 0 that reaches furthest (empty when none starts at 0):
// each chunk starts at or before the end of the one before it.
std::vector<PartialChunk> FurthestChain(std::vector<PartialChunk> chunks);

// The newest partial segment of `segment` across `repos`: the repository whose chain reaches
// furthest; nullopt when none has one. `bytes` is how many bytes of WAL it holds.
struct PartialSegment {
  Repository* repo = nullptr;
  std::vector<PartialChunk> chain;
  std::uint64_t bytes = 0;
};
std::optional<PartialSegment> FindPartialSegment(const std::vector<Repository*>& repos,
                                                 const WalSegment& segment,
                                                 std::uint64_t segment_size);
// Writes the partial segment into `destination`, every chunk verified by its SHA-256, then
// zeros up to the segment size; finishes `destination` only when all of it was written.
void ReadPartialSegment(const PartialSegment& partial, std::uint64_t segment_size,
                        io::Sink& destination);

// Deletes the chunks of timeline `timeline`'s segments up to `last_segno` (they are archived
// complete); returns how many were deleted.
std::size_t DeletePartialChunks(Repository& repo, TimelineId timeline, std::uint64_t last_segno,
                                std::uint64_t segment_size);

}  // namespace gravl::repo
