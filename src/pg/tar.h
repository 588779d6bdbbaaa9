#pragma once
// A streaming reader of the ustar archives BASE_BACKUP sends: bytes are pushed in (it is an
// io::Sink), entries come out through a TarHandler, with bounded memory.

#include <cstdint>
#include <string>

#include "io/stream.h"

namespace gravl::pg {

enum class TarEntryType { kFile, kDirectory, kSymlink };

struct TarEntry {
  std::string path;
  TarEntryType type = TarEntryType::kFile;
  std::uint64_t size = 0;
  std::uint32_t mode = 0;
  std::int64_t mtime = 0;
  std::string link_target;  // symlinks
};

class TarHandler {
 public:
  virtual ~TarHandler() = default;
  virtual void OnEntry(const TarEntry& entry) = 0;
  virtual void OnData(ByteView data) = 0;  // file content, in pieces
  virtual void OnEntryEnd() = 0;
};

// Throws IntegrityError on a damaged header (bad checksum, unknown type) or a stream that
// ends inside an entry.
class TarReader final : public io::Sink {
 public:
  explicit TarReader(TarHandler& handler) : handler_(handler) {}
  void Write(ByteView data) override;
  void Finish() override;

 private:
  void ParseHeader();
  enum class State { kHeader, kData, kPadding, kEnd };
  TarHandler& handler_;
  State state_ = State::kHeader;
  std::uint8_t header_[512];
  std::size_t header_fill_ = 0;
  std::uint64_t remaining_ = 0;
  std::uint64_t padding_ = 0;
  int zero_blocks_ = 0;
};

}  // namespace gravl::pg
