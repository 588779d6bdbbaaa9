#include "pg/tar.h"

#include <algorithm>
#include <cstring>

#include "common/error.h"

namespace gravl::pg {
namespace {

std::string Field(const std::uint8_t* p, std::size_t n) {
  std::size_t len = 0;
  while (len < n && p[len] != 0) ++len;
  return std::string(reinterpret_cast<const char*>(p), len);
}

std::uint64_t Number(const std::uint8_t* p, std::size_t n) {
  if (p[0] & 0x80) {  // base-256 (GNU) for large values
    std::uint64_t v = p[0] & 0x7f;
    for (std::size_t i = 1; i < n; ++i) v = v << 8 | p[i];
    return v;
  }
  std::uint64_t v = 0;
  for (std::size_t i = 0; i < n; ++i) {
    if (p[i] == ' ' || p[i] == 0) {
      if (v != 0) break;
      continue;
    }
    if (p[i] < '0' || p[i] > '7') throw IntegrityError("tar: invalid octal number in a header");
    v = v << 3 | static_cast<std::uint64_t>(p[i] - '0');
  }
  return v;
}

}  // namespace

void TarReader::ParseHeader() {
  if (std::all_of(header_, header_ + 512, [](std::uint8_t b) { return b == 0; })) {
    if (++zero_blocks_ == 2) state_ = State::kEnd;
    return;
  }
  zero_blocks_ = 0;
  std::uint64_t sum = 0;
  for (std::size_t i = 0; i < 512; ++i) sum += (i >= 148 && i < 156) ? ' ' : header_[i];
  if (sum != Number(header_ + 148, 8)) throw IntegrityError("tar: header checksum mismatch");
  TarEntry e;
  std::string name = Field(header_, 100);
  std::string prefix = std::memcmp(header_ + 257, "ustar", 5) == 0 ? Field(header_ + 345, 155) : "";
  e.path = prefix.empty() ? name : prefix + "/" + name;
  while (e.path.size() > 1 && e.path.back() == '/') e.path.pop_back();
  e.mode = static_cast<std::uint32_t>(Number(header_ + 100, 8));
  e.size = Number(header_ + 124, 12);
  e.mtime = static_cast<std::int64_t>(Number(header_ + 136, 12));
  switch (header_[156]) {
    case '0':
    case 0:
      e.type = TarEntryType::kFile;
      break;
    case '5':
      e.type = TarEntryType::kDirectory;
      e.size = 0;
      break;
    case '2':
      e.type = TarEntryType::kSymlink;
      e.link_target = Field(header_ + 157, 100);
      e.size = 0;
      break;
    default:
      throw IntegrityError(std::string("tar: unsupported entry type '") +
                           static_cast<char>(header_[156]) + "' for " + e.path);
  }
  handler_.OnEntry(e);
  remaining_ = e.size;
  padding_ = (512 - e.size % 512) % 512;
  if (remaining_ == 0) {
    handler_.OnEntryEnd();
    state_ = State::kHeader;
  } else {
    state_ = State::kData;
  }
}

void TarReader::Write(ByteView data) {
  while (!data.empty()) {
    switch (state_) {
      case State::kEnd:
        return;  // trailing blocks after the end marker
      case State::kHeader: {
        std::size_t take = std::min(data.size(), 512 - header_fill_);
        std::memcpy(header_ + header_fill_, data.data(), take);
        header_fill_ += take;
        data = data.subspan(take);
        if (header_fill_ == 512) {
          header_fill_ = 0;
          ParseHeader();
        }
        break;
      }
      case State::kData: {
        std::size_t take =
            static_cast<std::size_t>(std::min<std::uint64_t>(data.size(), remaining_));
        handler_.OnData(data.first(take));
        remaining_ -= take;
        data = data.subspan(take);
        if (remaining_ == 0) {
          handler_.OnEntryEnd();
          state_ = padding_ ? State::kPadding : State::kHeader;
        }
        break;
      }
      case State::kPadding: {
        std::size_t take = static_cast<std::size_t>(std::min<std::uint64_t>(data.size(), padding_));
        padding_ -= take;
        data = data.subspan(take);
        if (padding_ == 0) state_ = State::kHeader;
        break;
      }
    }
  }
}

void TarReader::Finish() {
  if (state_ == State::kData || state_ == State::kPadding || header_fill_ != 0) {
    throw IntegrityError("tar: the archive stream ended inside an entry (connection lost?)");
  }
}

}  // namespace gravl::pg
