#include "support/test_util.h"

#include <sys/resource.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <stdexcept>

namespace gravl::test {

TempDir::TempDir() {
  const char* tmp = std::getenv("TMPDIR");
  std::string templ = std::string(tmp && *tmp ? tmp : "/tmp") + "/gravl-test-XXXXXX";
  if (::mkdtemp(templ.data()) == nullptr) throw std::runtime_error("mkdtemp failed");
  path_ = templ;
}

TempDir::~TempDir() {
  std::error_code ec;
  std::filesystem::remove_all(path_, ec);
}

Bytes PseudoRandom(std::size_t n, std::uint64_t seed, bool compressible) {
  Bytes out(n);
  std::uint64_t x = seed | 1;
  for (std::size_t i = 0; i < n; ++i) {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    out[i] = compressible && (x & 0x300) ? static_cast<std::uint8_t>('a' + (i / 97) % 7)
                                         : static_cast<std::uint8_t>(x);
  }
  return out;
}

std::size_t GeneratedSource::Read(MutableByteView buf) {
  std::size_t n = static_cast<std::size_t>(std::min<std::uint64_t>(buf.size(), left_));
  // Fill 8 bytes per step: fast enough for multi-GB streams. Half of each 4 KiB block is
  // a repeated pattern, so compressors have work and incompressible parts alike.
  std::size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    state_ ^= state_ << 13;
    state_ ^= state_ >> 7;
    state_ ^= state_ << 17;
    std::uint64_t v = (pos_in_block(i) < 2048) ? state_ : 0x6772617620647221ULL;
    std::memcpy(buf.data() + i, &v, 8);
  }
  for (; i < n; ++i) buf[i] = static_cast<std::uint8_t>(state_ >> (i % 8));
  left_ -= n;
  offset_ += n;
  return n;
}

void WriteFile(const std::string& path, const std::string& content) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << content;
  if (!out) throw std::runtime_error("cannot write " + path);
}

std::string ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::uint64_t PeakRssBytes() {
  rusage ru{};
  getrusage(RUSAGE_SELF, &ru);
  return static_cast<std::uint64_t>(ru.ru_maxrss) * 1024;
}

std::string ReadFileOrEmpty(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return "";
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

}  // namespace gravl::test
