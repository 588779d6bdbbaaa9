#pragma once
// SHA-256 (OpenSSL EVP).

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
  VerifySink(Sink& next, std::string expected_hex, std::string what)
      : next_(next), expected_(std::move(expected_hex)), what_(std::move(what)) {}
  void Write(ByteView data) override;
  void Finish() override;

 private:
  Sink& next_;
  Sha256 sha_;
  std::string expected_;
  std::string what_;
};

}  // namespace gravl::io
