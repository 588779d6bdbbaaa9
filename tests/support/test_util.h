#pragma once
// Helpers shared by unit and integration tests.

#include <cstdint>
#include <string>

#include "common/bytes.h"
#include "io/stream.h"

namespace gravl::test {

// A temporary directory removed (recursively) when the object is destroyed.
class TempDir {
 public:
  TempDir();
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::string& path() const { return path_; }
  std::string operator/(const std::string& name) const { return path_ + "/" + name; }

 private:
  std::string path_;
};

// Deterministic pseudo-random bytes (xorshift); `compressible` mixes in long runs.
Bytes PseudoRandom(std::size_t n, std::uint64_t seed, bool compressible = false);

// A source generating `size` bytes deterministically without holding them in memory.
class GeneratedSource final : public io::Source {
 public:
  GeneratedSource(std::uint64_t size, std::uint64_t seed) : left_(size), state_(seed | 1) {}
  std::size_t Read(MutableByteView buf) override;

 private:
  std::size_t pos_in_block(std::size_t i) const { return (offset_ + i) % 4096; }
  std::uint64_t left_;
  std::uint64_t state_;
  std::uint64_t offset_ = 0;
};

void WriteFile(const std::string& path, const std::string& content);
std::string ReadFile(const std::string& path);
// The same, but "" when the file cannot be read (a process gone from /proc).
std::string ReadFileOrEmpty(const std::string& path);

// Peak resident set size of this process so far, in bytes.
std::uint64_t PeakRssBytes();

}  // namespace gravl::test
