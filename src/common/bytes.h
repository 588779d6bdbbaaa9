#pragma once
// Byte buffers and encoding helpers shared by every layer.

#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace gravl {

using Bytes = std::vector<std::uint8_t>;
using ByteView = std::span<const std::uint8_t>;
using MutableByteView = std::span<std::uint8_t>;

inline ByteView AsBytes(std::string_view s) {
  return {reinterpret_cast<const std::uint8_t*>(s.data()), s.size()};
}
inline std::string_view AsChars(ByteView b) {
  return {reinterpret_cast<const char*>(b.data()), b.size()};
}

std::string HexEncode(ByteView data);
// Throws std::invalid_argument on odd length or non-hex characters.
Bytes HexDecode(std::string_view hex);

// Standard base64 with padding (RFC 4648), as etcd's JSON gateway carries keys and values.
std::string Base64Encode(std::string_view data);
// Throws std::invalid_argument on characters outside the alphabet or a bad length.
std::string Base64Decode(std::string_view text);

// Constant-time comparison for MACs and key checks.
bool ConstantTimeEqual(ByteView a, ByteView b);

// Cryptographically secure random bytes (OpenSSL RAND_bytes); throws on failure.
Bytes RandomBytes(std::size_t n);

// Human-readable size: "1.5 MiB".
std::string FormatBytes(std::uint64_t n);

}  // namespace gravl
