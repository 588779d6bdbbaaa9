#pragma once
// Authenticated encryption of streams: AES-256-GCM in framed chunks.
//
// Object format (v1):
//   header  "GRVLAE01" | salt (32 random bytes) | chunk size (u32, big endian)
//   chunks  ciphertext || 16-byte GCM tag, each of exactly `chunk size` plaintext bytes
//           except the last, which holds 0..chunk size bytes (so an empty object still has
//           one authenticated chunk).
// Each object gets its own key, HMAC-SHA256(master key, "gravl-dr object key v1" || salt),
// so nonces never repeat across objects; chunk i uses nonce 0^32 || i (64-bit big endian);
// the additional data is the header plus a final-chunk flag. Hence any modification,
// reordering, truncation or extension of an object fails authentication. Memory is one
// chunk plus one tag, whatever the object size.
//
// The master key is derived from the repository passphrase with scrypt and a per-stanza
// salt; a key check (HMAC of a fixed string) stored beside the salt distinguishes a wrong
// passphrase from damaged data.

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "common/bytes.h"
#include "io/stream.h"

namespace gravl::io {

inline constexpr std::size_t kKeySize = 32;
inline constexpr std::size_t kEncryptionChunk = 64 * 1024;
inline constexpr std::size_t kEncryptionHeaderSize = 8 + 32 + 4;
inline constexpr std::size_t kGcmTagSize = 16;

struct KdfParams {
  std::string algorithm = "scrypt";
  std::uint64_t n = 1u << 16;  // CPU/memory cost: 64 MiB with r = 8, about 0.2 s
  std::uint32_t r = 8;
  std::uint32_t p = 1;
  Bytes salt;  // 32 random bytes per stanza
};

// A 256-bit key, wiped from memory when destroyed.
class Key {
 public:
  Key() = default;
  explicit Key(Bytes bytes);
  ~Key();
  Key(const Key&) = delete;
  Key& operator=(const Key&) = delete;
  Key(Key&& other) noexcept;
  Key& operator=(Key&& other) noexcept;
  ByteView bytes() const { return bytes_; }
  bool empty() const { return bytes_.empty(); }

 private:
  Bytes bytes_;
};

// Throws CryptoError if the KDF fails (e.g. parameters need more memory than allowed).
Key DeriveKey(std::string_view passphrase, const KdfParams& params);

// Hex HMAC-SHA256(key, "gravl-dr key check v1"): stored, compared in constant time.
std::string KeyCheck(const Key& key);

// HMAC-SHA256(key, data).
Bytes HmacSha256(ByteView key, ByteView data);

// Encrypts what it receives into `next`. The key must outlive the sink.
std::unique_ptr<Sink> MakeEncryptor(const Key& key, Sink& next,
                                    std::size_t chunk_size = kEncryptionChunk);
// Decrypts and authenticates; throws IntegrityError naming `what` on any mismatch, before
// passing unauthenticated bytes on.
std::unique_ptr<Sink> MakeDecryptor(const Key& key, Sink& next, std::string what);

// Size of the ciphertext for a plaintext of `n` bytes.
std::uint64_t EncryptedSize(std::uint64_t n, std::size_t chunk_size = kEncryptionChunk);

}  // namespace gravl::io
