#pragma once
// Digests: SHA-256 (OpenSSL EVP), for everything stored in a repository, and XXH3-128
// (libxxhash), a fast non-cryptographic 128-bit hash of file contents (end-to-end checks,
// delta restore).

#include <cstdint>
#include <memory>
#include <string>

#include "common/bytes.h"
#include "io/stream.h"

namespace gravl::io {

class Sha256 {
 public:
  Sha256();
  ~Sha256();
  Sha256(const Sha256&) = delete;
  Sha256& operator=(const Sha256&) = delete;
  void Update(ByteView data);
  // Returns the lowercase hex digest; the object cannot be updated afterwards.
  std::string FinalHex();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

std::string Sha256Hex(ByteView data);

class Xxh128 {
 public:
  Xxh128();
  ~Xxh128();
  Xxh128(const Xxh128&) = delete;
  Xxh128& operator=(const Xxh128&) = delete;
  void Update(ByteView data);
  // Lowercase hex of the canonical (big-endian) form, as xxhsum -H2 prints it.
  std::string FinalHex();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

enum class DigestType : std::uint8_t { kSha256, kXxh128 };
const char* DigestName(DigestType type);  // "SHA-256", "XXH128"

// One of the digests, chosen at run time.
class Digest {
 public:
  explicit Digest(DigestType type);
  void Update(ByteView data);
  std::string FinalHex();
  DigestType type() const { return type_; }

 private:
  DigestType type_;
  std::unique_ptr<Sha256> sha256_;
  std::unique_ptr<Xxh128> xxh128_;
};

std::string DigestHex(DigestType type, ByteView data);

// Hashes bytes on their way to the next sink; hex() is valid after Finish().
class HashSink final : public Sink {
 public:
  explicit HashSink(Sink& next) : next_(next) {}
  void Write(ByteView data) override;
  void Finish() override;
  const std::string& hex() const { return hex_; }

 private:
  Sink& next_;
  Sha256 sha_;
  std::string hex_;
};

// Hashes bytes on their way through and, at Finish(), throws IntegrityError naming `what`
// unless the digest equals `expected_hex` -- before finishing the next sink, so a
// mismatching object is never committed downstream.
class VerifySink final : public Sink {
 public:
  VerifySink(Sink& next, std::string expected_hex, std::string what,
             DigestType type = DigestType::kSha256)
      : next_(next), digest_(type), expected_(std::move(expected_hex)), what_(std::move(what)) {}
  void Write(ByteView data) override;
  void Finish() override;

 private:
  Sink& next_;
  Digest digest_;
  std::string expected_;
  std::string what_;
};

}  // namespace gravl::io
