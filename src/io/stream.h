#pragma once
// Streaming sources, sinks and filters.
//
// Data flows by push: a producer calls Sink::Write() repeatedly, then Sink::Finish() once.
// A filter is a Sink that transforms what it receives and writes the result to the next
// Sink, which it references but does not own (a Pipeline owns the chain). Finish() flushes
// the filter and then finishes the next sink, so finishing the head of a chain commits the
// whole chain. A sink that is destroyed without Finish() has been abandoned: sinks that own
// resources (storage writes) must then discard, never publish, what they received.
//
// Thread safety: a single source or sink is used by one thread at a time.

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "common/bytes.h"

namespace gravl::io {

class Sink {
 public:
  virtual ~Sink() = default;
  Sink() = default;
  Sink(const Sink&) = delete;
  Sink& operator=(const Sink&) = delete;

  virtual void Write(ByteView data) = 0;
  // End of data: flush, finalize, and finish the next sink. Called at most once.
  virtual void Finish() = 0;
};

class Source {
 public:
  virtual ~Source() = default;
  Source() = default;
  Source(const Source&) = delete;
  Source& operator=(const Source&) = delete;

  // Fills up to buf.size() bytes; returns 0 only at end of stream. Throws on error.
  virtual std::size_t Read(MutableByteView buf) = 0;
};

// Default transfer chunk; bounds the memory of every Pump.
inline constexpr std::size_t kChunkSize = 256 * 1024;

// Copies source into sink (Write calls of up to kChunkSize bytes), then Finish()es the sink.
// Returns the number of bytes copied.
std::uint64_t Pump(Source& source, Sink& sink);

// Collects everything written into memory; for small objects and tests.
class BufferSink final : public Sink {
 public:
  void Write(ByteView data) override { data_.insert(data_.end(), data.begin(), data.end()); }
  void Finish() override { finished_ = true; }
  const Bytes& data() const { return data_; }
  Bytes Take() { return std::move(data_); }
  bool finished() const { return finished_; }

 private:
  Bytes data_;
  bool finished_ = false;
};

// Discards data.
class NullSink final : public Sink {
 public:
  void Write(ByteView) override {}
  void Finish() override {}
};

// Reads from memory.
class BufferSource final : public Source {
 public:
  explicit BufferSource(Bytes data) : data_(std::move(data)) {}
  std::size_t Read(MutableByteView buf) override;

 private:
  Bytes data_;
  std::size_t pos_ = 0;
};

// Reads a file descriptor (not owned).
class FdSource final : public Source {
 public:
  explicit FdSource(int fd, std::string name) : fd_(fd), name_(std::move(name)) {}
  std::size_t Read(MutableByteView buf) override;

 private:
  int fd_;
  std::string name_;
};

// Writes to a file descriptor (not owned), e.g. a child's stdin. Finish() does not close it.
class FdSink final : public Sink {
 public:
  FdSink(int fd, std::string name) : fd_(fd), name_(std::move(name)) {}
  void Write(ByteView data) override;
  void Finish() override {}

 private:
  int fd_;
  std::string name_;
};

// Splits text pushed in pieces into lines: Feed() calls on_line(std::string_view) for every
// complete line (without its '\n'); the text after the last '\n' waits in partial().
class LineSplitter {
 public:
  template <class OnLine>
  void Feed(std::string_view text, OnLine&& on_line) {
    for (auto nl = text.find('\n'); nl != std::string_view::npos; nl = text.find('\n')) {
      if (partial_.empty()) {
        on_line(text.substr(0, nl));
      } else {
        partial_.append(text.substr(0, nl));
        on_line(std::string_view(partial_));
        partial_.clear();
      }
      text.remove_prefix(nl + 1);
    }
    partial_.append(text);
  }
  const std::string& partial() const { return partial_; }

 private:
  std::string partial_;
};

// Counts bytes on their way through.
class CountingSink final : public Sink {
 public:
  explicit CountingSink(Sink& next) : next_(next) {}
  void Write(ByteView data) override {
    count_ += data.size();
    next_.Write(data);
  }
  void Finish() override { next_.Finish(); }
  std::uint64_t count() const { return count_; }

 private:
  Sink& next_;
  std::uint64_t count_ = 0;
};

}  // namespace gravl::io
