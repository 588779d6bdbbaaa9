#include "receive/receiver.h"

#include <dirent.h>
#include <fcntl.h>
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>

#include "common/error.h"
#include "common/log.h"
#include "io/file.h"
#include "io/hash.h"
#include "repo/partial.h"
#include "repo/repository.h"
#include "repo/wal.h"
#include "repo/wal_archive.h"

namespace gravl::receive {
namespace {

using Clock = std::chrono::steady_clock;

constexpr const char* kPartialSuffix = ".partial";

std::chrono::milliseconds Backoff(int failures) {
  return std::chrono::milliseconds(std::min(5000, 100 << std::min(failures, 6)));
}

void WriteAll(int fd, std::uint64_t offset, ByteView data, const std::string& path) {
  while (!data.empty()) {
    ssize_t n = ::pwrite(fd, data.data(), data.size(), static_cast<off_t>(offset));
    if (n < 0) {
      if (errno == EINTR) continue;
      throw StorageError(SysErrorText("cannot write the spool file " + path, errno));
    }
    data = data.subspan(static_cast<std::size_t>(n));
    offset += static_cast<std::uint64_t>(n);
  }
}

// Reads [offset, offset + n) of `path`; nullopt when the file is gone (pushed meanwhile).
std::optional<Bytes> ReadRange(const std::string& path, std::uint64_t offset, std::size_t n) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    if (errno == ENOENT) return std::nullopt;
    throw StorageError(SysErrorText("cannot open the spool file " + path, errno));
  }
  Bytes out(n);
  std::size_t done = 0;
  while (done < n) {
    ssize_t r = ::pread(fd, out.data() + done, n - done, static_cast<off_t>(offset + done));
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) {
      int err = r < 0 ? errno : 0;
      ::close(fd);
      throw StorageError(err ? SysErrorText("cannot read the spool file " + path, err)
                             : "the spool file " + path + " is shorter than the WAL received");
    }
    done += static_cast<std::size_t>(r);
  }
  ::close(fd);
  return out;
}

}  // namespace

Receiver::Receiver(ReceiverOptions options, std::vector<repo::Repository*> repos)
    : options_(std::move(options)), repos_(std::move(repos)) {
  io::MakeDirs(options_.spool_dir, io::InheritedOwner(options_.spool_dir));
  // Completed segments a previous run left: pushed first. Partial files are received again.
  if (DIR* dir = ::opendir(options_.spool_dir.c_str())) {
    while (dirent* e = ::readdir(dir)) {
      std::string n = e->d_name;
      if (auto seg = WalSegment::ParseName(n, options_.segment_size); seg && n.size() == 24) {
        pending_[{seg->timeline, seg->segno}] = options_.spool_dir + "/" + n;
      }
    }
    ::closedir(dir);
  }
  status_.pending_segments = pending_.size();
  if (!pending_.empty()) {
    spdlog::info("event=spool-found segments={} spool={}", pending_.size(), options_.spool_dir);
  }
  uploader_ = std::thread([this] { UploadLoop(); });
  pusher_ = std::thread([this] { PushLoop(); });
}

Receiver::~Receiver() {
  Stop();
  if (fd_ >= 0) ::close(fd_);
}

void Receiver::Stop() {
  {
    std::lock_guard lock(mu_);
    stop_ = true;
  }
  upload_cv_.notify_all();
  push_cv_.notify_all();
  space_cv_.notify_all();
  uploaded_cv_.notify_all();
  if (uploader_.joinable()) uploader_.join();
  if (pusher_.joinable()) pusher_.join();
}

void Receiver::OnProgress(std::function<void()> callback) {
  std::lock_guard lock(mu_);
  on_progress_ = std::move(callback);
}

std::string Receiver::SpoolPath(TimelineId tli, std::uint64_t segno, bool complete) const {
  return options_.spool_dir + "/" + WalSegment{tli, segno}.Name(options_.segment_size) +
         (complete ? "" : kPartialSuffix);
}

Lsn Receiver::SegmentEnd(Lsn lsn) const {
  return Lsn{(lsn.value / options_.segment_size + 1) * options_.segment_size};
}

void Receiver::Begin(TimelineId timeline, Lsn start) {
  if (start.value % options_.segment_size != 0) {
    throw UsageError("streaming must begin at a segment boundary, not " + start.ToString());
  }
  if (fd_ >= 0) {
    ::close(fd_);
    fd_ = -1;
  }
  {
    std::lock_guard lock(mu_);
    status_.timeline = timeline;
    status_.received = status_.spooled = status_.uploaded = status_.acknowledged = start;
    if (status_.archived < start || status_.archived > SegmentEnd(start)) status_.archived = start;
    arrivals_.clear();
  }
  segno_ = start.value / options_.segment_size;
  OpenSegment();
  spdlog::info("event=begin timeline={} start={} spool={}", timeline, start.ToString(),
               SpoolPath(timeline, segno_, false));
}

void Receiver::OpenSegment() {
  const std::string path = SpoolPath(status_.timeline, segno_, false);
  fd_ = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd_ < 0) throw StorageError(SysErrorText("cannot create the spool file " + path, errno));
}

void Receiver::Write(Lsn start, ByteView data) {
  Lsn received = Received();
  if (start != received) {
    throw PgError("the server sent WAL at " + start.ToString() + ", but " + received.ToString() +
                  " was expected (a gap in the stream)");
  }
  while (!data.empty()) {
    const std::uint64_t seg_start = segno_ * options_.segment_size;
    const std::uint64_t offset = received.value - seg_start;
    const std::size_t n = static_cast<std::size_t>(
        std::min<std::uint64_t>(data.size(), options_.segment_size - offset));
    WriteAll(fd_, offset, data.first(n), SpoolPath(status_.timeline, segno_, false));
    data = data.subspan(n);
    received.value += n;
    {
      std::lock_guard lock(mu_);
      status_.received = received;
      arrivals_.emplace_back(received, Clock::now());
      if (arrivals_.size() > 65536) arrivals_.pop_front();  // bounded; the lag is then an estimate
    }
    if (options_.synchronous) upload_cv_.notify_one();
    if (offset + n == options_.segment_size) CompleteSegment();
  }
}

void Receiver::CompleteSegment() {
  const TimelineId tli = status_.timeline;
  const std::string partial = SpoolPath(tli, segno_, false);
  const std::string complete = SpoolPath(tli, segno_, true);
  if (::fdatasync(fd_) != 0) throw StorageError(SysErrorText("cannot fsync " + partial, errno));
  ::close(fd_);
  fd_ = -1;
  if (::rename(partial.c_str(), complete.c_str()) != 0) {
    throw StorageError(SysErrorText("cannot rename " + partial, errno));
  }
  io::FsyncDir(options_.spool_dir);
  {
    std::unique_lock lock(mu_);
    pending_[{tli, segno_}] = complete;
    status_.pending_segments = pending_.size();
    status_.spooled = status_.received;
    if (!options_.synchronous) status_.acknowledged = status_.spooled;
    synced_at_ = Clock::now();
    push_cv_.notify_one();
    // Back-pressure: the stream waits (and so the server) while the spool is full.
    if (static_cast<int>(pending_.size()) >= options_.max_spool_segments) {
      status_.waiting_for_spool = true;
      spdlog::warn(
          "event=spool-full segments={} note=\"streaming waits until segments are pushed\"",
          pending_.size());
      space_cv_.wait(lock, [&] {
        return stop_ || static_cast<int>(pending_.size()) < options_.max_spool_segments;
      });
      status_.waiting_for_spool = false;
      if (stop_) throw InterruptedError("stopped while waiting for spool space");
    }
  }
  ++segno_;
  OpenSegment();
}

void Receiver::Sync() {
  if (fd_ < 0) return;
  Lsn received = Received();
  if (::fdatasync(fd_) != 0) {
    throw StorageError(SysErrorText("cannot fsync the spool file", errno));
  }
  std::lock_guard lock(mu_);
  status_.spooled = received;
  if (!options_.synchronous) status_.acknowledged = received;
  synced_at_ = Clock::now();
}

void Receiver::SetServerEnd(Lsn end) {
  std::lock_guard lock(mu_);
  status_.server_end = std::max(status_.server_end, end);
}

Lsn Receiver::Received() const {
  std::lock_guard lock(mu_);
  return status_.received;
}

Lsn Receiver::Acknowledged() const {
  std::lock_guard lock(mu_);
  return status_.acknowledged;
}

std::pair<TimelineId, Lsn> Receiver::ResumePosition() const {
  std::lock_guard lock(mu_);
  const std::uint64_t ack = status_.acknowledged.value;
  return {status_.timeline, Lsn{ack - ack % options_.segment_size}};
}

ReceiverStatus Receiver::Status() const {
  std::lock_guard lock(mu_);
  ReceiverStatus s = status_;
  auto now = Clock::now();
  auto oldest_after = [&](Lsn pos) {
    for (const auto& [end, at] : arrivals_) {
      if (end > pos) return std::chrono::duration<double>(now - at).count();
    }
    return 0.0;
  };
  s.upload_lag_seconds = oldest_after(status_.uploaded);
  s.spool_lag_seconds = oldest_after(status_.spooled);
  return s;
}

bool Receiver::WaitUploaded(Lsn lsn, std::chrono::milliseconds timeout) {
  std::unique_lock lock(mu_);
  return uploaded_cv_.wait_for(lock, timeout, [&] { return stop_ || status_.uploaded >= lsn; }) &&
         status_.uploaded >= lsn;
}

void Receiver::NotifyProgress() {
  std::function<void()> cb;
  {
    std::lock_guard lock(mu_);
    cb = on_progress_;
  }
  uploaded_cv_.notify_all();
  if (cb) cb();
}

void Receiver::RecordFailure(std::uint64_t ReceiverStatus::*counter, const std::string& what,
                             const std::exception& e) {
  std::string msg = Redact(e.what());
  bool first;
  {
    std::lock_guard lock(mu_);
    first = status_.last_error.empty();
    ++(status_.*counter);
    status_.last_error = what + ": " + msg;
  }
  // One line when a failure streak begins; the retries are counted in the metrics.
  if (first) spdlog::warn("event=retrying what=\"{}\" error=\"{}\"", what, msg);
  NotifyProgress();
}

void Receiver::UploadLoop() {
  int failures = 0;
  auto last_upload = Clock::now();
  bool catching_up = false;  // a round continues until what arrived before it is uploaded
  Lsn round_target;
  while (true) {
    TimelineId tli;
    Lsn from, to;
    {
      std::unique_lock lock(mu_);
      auto ready = [&] { return stop_ || status_.received > status_.uploaded; };
      if (options_.synchronous) {
        upload_cv_.wait(lock, ready);
      } else if (!catching_up) {
        // Every partial_interval: what arrived since the last round.
        auto due = last_upload + options_.partial_interval;
        upload_cv_.wait_until(lock, due, [&] { return stop_; });
        if (stop_) return;
        if (Clock::now() < due) continue;
        last_upload = Clock::now();
        round_target = status_.received;
        if (!ready()) continue;
      }
      if (stop_) return;
      tli = status_.timeline;
      from = status_.uploaded;
      Lsn seg_end = SegmentEnd(from);
      // A segment already archived complete needs no chunk.
      if (status_.archived >= seg_end) {
        status_.uploaded = std::min(status_.archived, status_.received);
        if (options_.synchronous) status_.acknowledged = status_.uploaded;
        catching_up = status_.uploaded < round_target;
        continue;
      }
      to = std::min(status_.received, seg_end);
      to.value = std::min(to.value, from.value + options_.max_chunk);
    }
    const std::uint64_t segno = from.value / options_.segment_size;
    const std::uint64_t offset = from.value % options_.segment_size;
    try {
      std::optional<Bytes> data = ReadRange(SpoolPath(tli, segno, false), offset,
                                            static_cast<std::size_t>(to.value - from.value));
      if (!data) data = ReadRange(SpoolPath(tli, segno, true), offset, to.value - from.value);
      if (!data) {
        // Pushed and removed meanwhile: the pusher moves `archived` past it.
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
        continue;
      }
      for (repo::Repository* r : repos_) {
        repo::PutPartialChunk(*r, WalSegment{tli, segno}, options_.segment_size, offset, *data,
                              options_.compression, options_.compression_level);
      }
      {
        std::lock_guard lock(mu_);
        if (status_.timeline == tli && status_.uploaded == from) {
          status_.uploaded = to;
          if (options_.synchronous) status_.acknowledged = to;
          ++status_.chunks_uploaded;
          status_.last_upload = std::chrono::system_clock::now();
          catching_up = to < round_target;
          while (!arrivals_.empty() && arrivals_.front().first <= to &&
                 arrivals_.front().first <= status_.spooled) {
            arrivals_.pop_front();
          }
        }
        if (!status_.last_error.empty() && failures > 0) {
          spdlog::info("event=recovered what=upload after_failures={}", failures);
        }
        if (failures > 0) status_.last_error.clear();
      }
      failures = 0;
      NotifyProgress();
    } catch (const std::exception& e) {
      RecordFailure(&ReceiverStatus::upload_failures,
                    "uploading WAL " + from.ToString() + ".." + to.ToString(), e);
      std::unique_lock lock(mu_);
      upload_cv_.wait_for(lock, Backoff(failures++), [&] { return stop_; });
    }
  }
}

void Receiver::PushLoop() {
  int failures = 0;
  while (true) {
    std::pair<TimelineId, std::uint64_t> id;
    std::string path;
    {
      std::unique_lock lock(mu_);
      push_cv_.wait(lock, [&] { return stop_ || !pending_.empty(); });
      if (stop_) return;
      id = pending_.begin()->first;
      path = pending_.begin()->second;
    }
    const WalSegment seg{id.first, id.second};
    const std::string name = seg.Name(options_.segment_size);
    try {
      {
        io::MappedFile mapped(path);
        ByteView data = mapped.data();
        if (data.size() != options_.segment_size) {
          throw IntegrityError(path + " has " + std::to_string(data.size()) +
                               " bytes, but a WAL segment has " +
                               std::to_string(options_.segment_size));
        }
        repo::ValidateSegmentHeader(data, path, options_.system_identifier, options_.segment_size);
        repo::ArchiveWalFile(repos_,
                             repo::WalFileName{name, repo::WalFileKind::kSegment, seg.timeline},
                             data, io::Sha256Hex(data), options_.compression,
                             options_.compression_level, options_.segment_size);
      }
      {
        std::lock_guard lock(mu_);
        pending_.erase(id);
        status_.pending_segments = pending_.size();
        ++status_.segments_archived;
        if (status_.timeline == seg.timeline) {
          Lsn end{(seg.segno + 1) * options_.segment_size};
          status_.archived = std::max(status_.archived, end);
        }
        if (failures > 0) {
          spdlog::info("event=recovered what=push after_failures={}", failures);
          status_.last_error.clear();
        }
      }
      failures = 0;
      space_cv_.notify_all();
      upload_cv_.notify_all();
      ::unlink(path.c_str());
      spdlog::info("event=archived segment={}", name);
      // Its chunks (and any older ones of the timeline) are no longer needed.
      for (repo::Repository* r : repos_) {
        try {
          repo::DeletePartialChunks(*r, seg.timeline, seg.segno, options_.segment_size);
        } catch (const std::exception& e) {
          spdlog::warn("event=cleanup-failed repo=\"{}\" segment={} error=\"{}\"", r->Describe(),
                       name, Redact(e.what()));
        }
      }
      NotifyProgress();
    } catch (const std::exception& e) {
      RecordFailure(&ReceiverStatus::push_failures, "archiving " + name, e);
      std::unique_lock lock(mu_);
      push_cv_.wait_for(lock, Backoff(failures++), [&] { return stop_; });
    }
  }
}

void Receiver::EndTimeline(const std::string& history_name, ByteView history) {
  const Lsn received = Received();
  // Everything of the old timeline first (its last segment stays partial forever).
  while (!WaitUploaded(received, std::chrono::seconds(1))) {
    std::lock_guard lock(mu_);
    if (stop_) throw InterruptedError("stopped while uploading the end of the timeline");
  }
  auto file = repo::ParseWalFileName(history_name);
  if (!file || file->kind != repo::WalFileKind::kHistory) {
    throw PgError("the server sent '" + history_name + "' as a timeline history file");
  }
  for (int failures = 0;; ++failures) {
    try {
      repo::PushWalFile(repos_, *file, history, io::Sha256Hex(history), options_.compression,
                        options_.compression_level);
      break;
    } catch (const ConflictError&) {
      throw;
    } catch (const std::exception& e) {
      RecordFailure(&ReceiverStatus::push_failures, "archiving " + history_name, e);
      std::this_thread::sleep_for(Backoff(failures));
      std::lock_guard lock(mu_);
      if (stop_) throw InterruptedError("stopped while archiving " + history_name);
    }
  }
  if (fd_ >= 0) {
    ::close(fd_);
    fd_ = -1;
  }
  ::unlink(SpoolPath(status_.timeline, segno_, false).c_str());
  {
    std::lock_guard lock(mu_);
    ++status_.timelines_followed;
  }
  spdlog::info("event=timeline-end timeline={} end={} history={}", status_.timeline,
               received.ToString(), history_name);
}

pg::StreamEvent RunStream(pg::WalSource& source, Receiver& receiver, const std::atomic<bool>& stop,
                          const StreamLoopOptions& options) {
  receiver.OnProgress([&source] { source.Wake(); });
  struct Detach {
    Receiver& r;
    ~Detach() { r.OnProgress(nullptr); }
  } detach{receiver};
  std::optional<Lsn> sent;
  auto last_status = Clock::now();
  auto last_sync = Clock::now();
  while (!stop) {
    pg::StreamEvent ev = source.Next(std::chrono::milliseconds(100));
    bool reply = false;
    switch (ev.kind) {
      case pg::StreamEvent::Kind::kData:
        receiver.Write(ev.start, ev.data);
        receiver.SetServerEnd(ev.server_end);
        break;
      case pg::StreamEvent::Kind::kKeepalive:
        receiver.SetServerEnd(ev.server_end);
        reply = ev.reply_requested;
        break;
      case pg::StreamEvent::Kind::kTimelineEnd:
      case pg::StreamEvent::Kind::kEnded:
        return ev;  // COPY has ended: no more status updates on this stream
      case pg::StreamEvent::Kind::kIdle:
        break;
    }
    const auto now = Clock::now();
    ReceiverStatus s = receiver.Status();
    if (!receiver.synchronous() && s.spooled < s.received &&
        (ev.kind == pg::StreamEvent::Kind::kIdle || now - last_sync >= options.sync_interval)) {
      receiver.Sync();
      last_sync = now;
      s = receiver.Status();
    }
    if (reply || !sent || *sent != s.acknowledged || now - last_status >= options.status_interval) {
      source.SendStatus(s.received, s.acknowledged, false);
      sent = s.acknowledged;
      last_status = now;
    }
  }
  return {};
}

}  // namespace gravl::receive
