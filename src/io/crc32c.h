#pragma once
// CRC-32C (Castagnoli), the checksum PostgreSQL's backup_manifest uses by default. With
// SSE 4.2, three interleaved streams of the CPU's crc32 instruction; otherwise a table.

#include <cstdint>
#include <string>

#include "common/bytes.h"

namespace gravl::io {

class Crc32c {
 public:
  void Update(ByteView data);
  std::uint32_t value() const { return ~state_; }
  // As PostgreSQL writes it in a backup_manifest: the four bytes of the value in
  // little-endian order, in hex ("839206e3" for "123456789").
  std::string ManifestHex() const;

 private:
  std::uint32_t state_ = 0xFFFFFFFFu;
};

// `value` as PostgreSQL writes a CRC-32C in a backup_manifest.
std::string Crc32cManifestHex(std::uint32_t value);

// The table-driven form, whatever the CPU: for tests comparing the two.
std::uint32_t Crc32cPortable(ByteView data);

}  // namespace gravl::io
