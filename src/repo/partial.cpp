#include "repo/partial.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <cstdio>

#include "common/error.h"
#include "common/log.h"
#include "io/compress.h"
#include "io/hash.h"
#include "repo/object_io.h"
#include "repo/repository.h"

namespace gravl::repo {
namespace {

std::string Hex8(std::uint64_t v) {
  char buf[17];
  std::snprintf(buf, sizeof buf, "%08llX", static_cast<unsigned long long>(v));
  return buf;
}

bool ParseHex(const std::string& s, std::uint64_t& out) {
  if (s.empty() || s.size() > 16) return false;
  out = 0;
  for (char c : s) {
    int d = c >= '0' && c <= '9' ? c - '0' : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
    if (d < 0) return false;
    out = out << 4 | static_cast<std::uint64_t>(d);
  }
  return true;
}

std::string SegmentPrefix(const std::string& stanza, const WalSegment& segment,
                          std::uint64_t segment_size) {
  return PartialPrefix(stanza) + TimelineHex(segment.timeline) + "/" + segment.Name(segment_size) +
         "/";
}

// Passes a chunk's bytes on, without the first `skip` (already written from the chunk before),
// and never finishes the destination: ReadObject finishes its sink only after verification,
// and the whole segment is finished once.
class ChunkSink final : public io::Sink {
 public:
  ChunkSink(io::Sink& out, std::uint64_t skip) : out_(out), skip_(skip) {}
  void Write(ByteView data) override {
    if (skip_ >= data.size()) {
      skip_ -= data.size();
      return;
    }
    out_.Write(data.subspan(skip_));
    skip_ = 0;
  }
  void Finish() override {}

 private:
  io::Sink& out_;
  std::uint64_t skip_;
};

}  // namespace

std::string PartialChunkKey(const std::string& stanza, const WalSegment& segment,
                            std::uint64_t segment_size, std::uint64_t start, std::uint64_t end,
                            const std::string& sha256, CompressionType compression) {
  std::string key =
      SegmentPrefix(stanza, segment, segment_size) + Hex8(start) + "-" + Hex8(end) + "-" + sha256;
  const char* ext = io::CompressionExtension(compression);
  if (*ext != '\0') key += std::string(".") + ext;
  return key;
}

std::optional<PartialChunk> ParsePartialChunkKey(const std::string& key,
                                                 std::uint64_t segment_size) {
  // .../wal-partial/<TTTTTTTT>/<segment>/<start>-<end>-<sha256>[.ext]
  auto slash = key.rfind('/');
  if (slash == std::string::npos || slash == 0) return std::nullopt;
  auto seg_slash = key.rfind('/', slash - 1);
  if (seg_slash == std::string::npos) return std::nullopt;
  std::string seg_name = key.substr(seg_slash + 1, slash - seg_slash - 1);
  auto segment = WalSegment::ParseName(seg_name, segment_size);
  if (!segment) return std::nullopt;
  std::string base = key.substr(slash + 1);
  PartialChunk c;
  c.key = key;
  c.segment = *segment;
  for (CompressionType t :
       {CompressionType::kZstd, CompressionType::kLz4, CompressionType::kGzip}) {
    std::string ext = std::string(".") + io::CompressionExtension(t);
    if (base.size() > ext.size() && base.compare(base.size() - ext.size(), ext.size(), ext) == 0) {
      base.resize(base.size() - ext.size());
      c.compression = t;
      break;
    }
  }
  auto d1 = base.find('-');
  auto d2 = d1 == std::string::npos ? d1 : base.find('-', d1 + 1);
  if (d2 == std::string::npos) return std::nullopt;
  if (!ParseHex(base.substr(0, d1), c.start) ||
      !ParseHex(base.substr(d1 + 1, d2 - d1 - 1), c.end)) {
    return std::nullopt;
  }
  c.sha256 = base.substr(d2 + 1);
  if (c.sha256.size() != 64 || c.end <= c.start || c.end > segment_size) return std::nullopt;
  return c;
}

void PutPartialChunk(Repository& repo, const WalSegment& segment, std::uint64_t segment_size,
                     std::uint64_t start, ByteView data, CompressionType compression, int level) {
  if (data.empty()) return;
  const std::string sha = io::Sha256Hex(data);
  const std::string key = PartialChunkKey(repo.stanza(), segment, segment_size, start,
                                          start + data.size(), sha, compression);
  ObjectWriter writer(repo.storage(), key, repo.Format(compression, level),
                      storage::PutOptions{.if_absent = true}, sha);
  writer.Write(data);
  // false: the same chunk (same range, same checksum) is already there -- made durable here,
  // since its writer may have died before syncing it.
  if (!writer.Commit()) repo.storage().Persist(key);
}

std::vector<PartialChunk> ListPartialChunks(Repository& repo, const WalSegment& segment,
                                            std::uint64_t segment_size) {
  std::vector<PartialChunk> chunks;
  for (const auto& info :
       storage::ListAll(repo.storage(), SegmentPrefix(repo.stanza(), segment, segment_size))) {
    if (auto c = ParsePartialChunkKey(info.key, segment_size); c && c->segment == segment) {
      chunks.push_back(std::move(*c));
    }
  }
  return chunks;
}

std::vector<PartialChunk> FurthestChain(std::vector<PartialChunk> chunks) {
  std::sort(chunks.begin(), chunks.end(), [](const PartialChunk& a, const PartialChunk& b) {
    return a.start != b.start ? a.start < b.start : a.end > b.end;
  });
  std::vector<PartialChunk> chain;
  std::uint64_t reached = 0;
  std::size_t i = 0;
  // Greedy: of the chunks that start within what is reached, the one that ends furthest.
  while (true) {
    const PartialChunk* best = nullptr;
    for (; i < chunks.size() && chunks[i].start <= reached; ++i) {
      if (chunks[i].end > reached && (!best || chunks[i].end > best->end)) best = &chunks[i];
    }
    if (!best) break;
    chain.push_back(*best);
    reached = best->end;
  }
  return chain;
}

std::optional<PartialSegment> FindPartialSegment(const std::vector<Repository*>& repos,
                                                 const WalSegment& segment,
                                                 std::uint64_t segment_size) {
  std::optional<PartialSegment> best;
  for (Repository* repo : repos) {
    auto chain = FurthestChain(ListPartialChunks(*repo, segment, segment_size));
    if (chain.empty()) continue;
    std::uint64_t bytes = chain.back().end;
    if (!best || bytes > best->bytes) best = PartialSegment{repo, std::move(chain), bytes};
  }
  return best;
}

void ReadPartialSegment(const PartialSegment& partial, std::uint64_t segment_size,
                        io::Sink& destination) {
  std::uint64_t written = 0;
  for (const PartialChunk& c : partial.chain) {
    ChunkSink sink(destination, written - c.start);
    ReadObject(partial.repo->storage(), c.key, ObjectFormat{c.compression, 0, partial.repo->key()},
               Expected{c.sha256, c.end - c.start}, sink);
    written = c.end;
  }
  static const Bytes kZeros(64 * 1024, 0);
  while (written < segment_size) {
    std::uint64_t n = std::min<std::uint64_t>(kZeros.size(), segment_size - written);
    destination.Write(ByteView(kZeros.data(), n));
    written += n;
  }
  destination.Finish();
}

std::size_t DeletePartialChunks(Repository& repo, TimelineId timeline, std::uint64_t last_segno,
                                std::uint64_t segment_size) {
  std::vector<std::string> keys;
  for (const auto& info : storage::ListAll(
           repo.storage(), PartialPrefix(repo.stanza()) + TimelineHex(timeline) + "/")) {
    auto c = ParsePartialChunkKey(info.key, segment_size);
    if (c && c->segment.timeline == timeline && c->segment.segno <= last_segno) {
      keys.push_back(info.key);
    }
  }
  if (!keys.empty()) repo.storage().DeleteMany(keys);
  return keys.size();
}

}  // namespace gravl::repo
