#include "io/stream.h"

#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "common/error.h"

namespace gravl::io {

std::uint64_t Pump(Source& source, Sink& sink) {
  Bytes buf(kChunkSize);
  std::uint64_t total = 0;
  for (;;) {
    std::size_t n = source.Read(buf);
    if (n == 0) break;
    sink.Write(ByteView(buf.data(), n));
    total += n;
  }
  sink.Finish();
  return total;
}

std::size_t BufferSource::Read(MutableByteView buf) {
  std::size_t n = std::min(buf.size(), data_.size() - pos_);
  std::memcpy(buf.data(), data_.data() + pos_, n);
  pos_ += n;
  return n;
}

std::size_t FdSource::Read(MutableByteView buf) {
  for (;;) {
    ssize_t n = ::read(fd_, buf.data(), buf.size());
    if (n >= 0) return static_cast<std::size_t>(n);
    if (errno != EINTR) throw StorageError(SysErrorText("cannot read " + name_, errno));
  }
}

void FdSink::Write(ByteView data) {
  while (!data.empty()) {
    ssize_t n = ::write(fd_, data.data(), data.size());
    if (n < 0) {
      if (errno == EINTR) continue;
      throw StorageError(SysErrorText("cannot write to " + name_, errno));
    }
    data = data.subspan(static_cast<std::size_t>(n));
  }
}

}  // namespace gravl::io
