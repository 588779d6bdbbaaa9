#include "io/file.h"

#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>

#include "common/error.h"

namespace gravl::io {
namespace {

// Direct I/O on network file systems turns every 1 MiB write into a synchronous round trip
// (and, on some servers, a commit): they get buffered writes.
bool OnNetworkFileSystem(int fd) {
  struct statfs fs {};
  if (::fstatfs(fd, &fs) != 0) return false;
  switch (static_cast<unsigned long>(fs.f_type)) {
    case 0x6969:      // NFS
    case 0x517B:      // SMB
    case 0xFF534D42:  // CIFS
    case 0xFE534D42:  // SMB2
    case 0x65735546:  // FUSE (s3fs, sshfs, ...)
    case 0x00C36400:  // Ceph
    case 0x47504653:  // GPFS
    case 0x0BD00BD0:  // Lustre
      return true;
    default:
      return false;
  }
}

constexpr std::uint64_t kWritebackStep = 8 * 1024 * 1024;
constexpr std::size_t kDirectStage = 1024 * 1024;
constexpr std::size_t kDirectAlign = 4096;
}  // namespace

std::string ParentDir(const std::string& path) {
  auto slash = path.rfind('/');
  if (slash == std::string::npos) return ".";
  return slash == 0 ? "/" : path.substr(0, slash);
}

void FsyncDir(const std::string& dir) {
  int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) throw StorageError(SysErrorText("cannot open directory " + dir, errno));
  int rc = ::fsync(fd);
  int err = errno;
  ::close(fd);
  if (rc != 0) throw StorageError(SysErrorText("cannot fsync directory " + dir, err));
}

std::optional<FileOwner> InheritedOwner(const std::string& path) {
  if (::geteuid() != 0 || path.empty()) return std::nullopt;
  std::string p = path;
  for (;;) {
    struct stat st {};
    if (::stat(p.c_str(), &st) == 0) {
      if (st.st_uid == 0) return std::nullopt;
      return FileOwner{st.st_uid, st.st_gid};
    }
    std::string parent = ParentDir(p);
    if (parent == p || parent.empty()) return std::nullopt;
    p = parent;
  }
}

void MakeDirs(const std::string& dir, const std::optional<FileOwner>& owner) {
  struct stat st {};
  if (::stat(dir.c_str(), &st) == 0) {
    if (!S_ISDIR(st.st_mode)) throw StorageError(dir + " exists and is not a directory");
    return;
  }
  // A concurrent cleanup may remove an empty parent between the two steps: retry.
  for (int attempt = 0;; ++attempt) {
    if (dir != "/" && dir != ".") MakeDirs(ParentDir(dir), owner);
    if (::mkdir(dir.c_str(), 0700) == 0) {
      if (owner && ::lchown(dir.c_str(), owner->uid, owner->gid) != 0) {
        throw StorageError(
            SysErrorText("cannot hand " + dir + " to uid " + std::to_string(owner->uid), errno));
      }
      break;
    }
    if (errno == EEXIST) break;
    if (errno == ENOENT && attempt < 3) continue;
    throw StorageError(SysErrorText("cannot create directory " + dir, errno) +
                       " (check that the path is writable by this user)");
  }
  FsyncDir(ParentDir(dir));
}

bool IsTempFileName(const std::string& name) {
  return !name.empty() && name.front() == '.' && name.find(kTempMarker) != std::string::npos;
}

namespace {
// 8 hex digits standing for this boot of this machine.
const std::string& BootTag() {
  static const std::string tag = [] {
    std::string id;
    if (FILE* f = std::fopen("/proc/sys/kernel/random/boot_id", "r")) {
      char buf[64] = {};
      if (std::fgets(buf, sizeof buf, f)) id = buf;
      std::fclose(f);
    }
    std::uint32_t h = 2166136261u;  // FNV-1a
    for (char c : id) h = (h ^ static_cast<std::uint8_t>(c)) * 16777619u;
    char out[9];
    std::snprintf(out, sizeof out, "%08x", h);
    return std::string(out);
  }();
  return tag;
}
}  // namespace

StaleTemporaries FindStaleTemporaries(const std::string& dir, bool remove,
                                      std::chrono::seconds idle_limit) {
  StaleTemporaries out;
  auto now = std::chrono::system_clock::now();
  std::error_code ec;
  for (auto it = std::filesystem::recursive_directory_iterator(dir, ec);
       !ec && it != std::filesystem::recursive_directory_iterator(); it.increment(ec)) {
    std::string name = it->path().filename().string();
    if (!IsTempFileName(name)) continue;
    struct stat st {};
    if (::lstat(it->path().c_str(), &st) != 0 || !S_ISREG(st.st_mode)) continue;
    // "<boot>-<pid>-<random>" after the marker.
    std::string tail = name.substr(name.find(kTempMarker) + std::strlen(kTempMarker));
    bool dead = false;
    if (tail.size() > 10 && tail.compare(0, 8, BootTag()) == 0 && tail[8] == '-') {
      long pid = std::strtol(tail.c_str() + 9, nullptr, 10);
      dead = pid > 0 && ::kill(static_cast<pid_t>(pid), 0) != 0 && errno == ESRCH;
    }
    auto modified = std::chrono::system_clock::from_time_t(st.st_mtim.tv_sec);
    bool idle = now - modified > idle_limit;
    if (!dead && !idle) continue;
    out.paths.push_back(it->path().string());
    out.bytes += static_cast<std::uint64_t>(st.st_size);
    if (remove) ::unlink(it->path().c_str());
  }
  return out;
}

AtomicFileSink::AtomicFileSink(std::string path, const AtomicFileOptions& options)
    : path_(std::move(path)), options_(options) {
  std::string dir = ParentDir(path_);
  if (options_.make_dirs) MakeDirs(dir, options_.owner);
  std::string base = path_.substr(path_.rfind('/') == std::string::npos ? 0 : path_.rfind('/') + 1);
  temp_ = dir + "/." + base + kTempMarker + BootTag() + "-" + std::to_string(::getpid()) + "-" +
          HexEncode(RandomBytes(6));
  for (int attempt = 0;; ++attempt) {
    fd_ = ::open(temp_.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC,
                 static_cast<mode_t>(options_.mode));
    if (fd_ >= 0) break;
    // The directory may have been removed concurrently (empty-directory cleanup).
    if (errno == ENOENT && options_.make_dirs && attempt < 3) {
      MakeDirs(dir, options_.owner);
      continue;
    }
    throw StorageError(SysErrorText("cannot create " + temp_, errno));
  }
  ::fchmod(fd_, static_cast<mode_t>(options_.mode));  // regardless of the umask
  if (options_.owner && ::fchown(fd_, options_.owner->uid, options_.owner->gid) != 0) {
    int err = errno;
    Abort();
    throw StorageError(SysErrorText(
        "cannot hand " + temp_ + " to uid " + std::to_string(options_.owner->uid), err));
  }
  if (options_.direct_io && OnNetworkFileSystem(fd_)) direct_refused_ = true;
}

AtomicFileSink::~AtomicFileSink() { Abort(); }

void AtomicFileSink::Abort() {
  stage_.reset();
  if (fd_ >= 0) ::close(fd_);
  fd_ = -1;
  if (!temp_.empty()) ::unlink(temp_.c_str());
  temp_.clear();
}

void AtomicFileSink::Write(ByteView data) {
  if (fd_ < 0) throw StorageError("write to " + path_ + " after it was finished or aborted");
  if (!options_.direct_io) {
    WriteOut(data);
    return;
  }
  while (!data.empty()) {
    if (!stage_) {
      stage_.reset(static_cast<std::uint8_t*>(std::aligned_alloc(kDirectAlign, kDirectStage)));
      if (!stage_) throw Error(ExitCode::kError, "out of memory");
    }
    std::size_t take = std::min(data.size(), kDirectStage - staged_);
    std::memcpy(stage_.get() + staged_, data.data(), take);
    staged_ += take;
    data = data.subspan(take);
    if (staged_ == kDirectStage) {
      // A full stage at an offset that is a multiple of it: aligned for direct I/O.
      if (!direct_ && !direct_refused_) SetDirect(true);
      WriteOut(ByteView(stage_.get(), staged_));
      staged_ = 0;
    }
  }
}

void AtomicFileSink::FlushStage() {
  if (staged_ == 0) return;
  std::size_t aligned = direct_ ? staged_ / kDirectAlign * kDirectAlign : 0;
  if (aligned > 0) WriteOut(ByteView(stage_.get(), aligned));
  if (direct_) SetDirect(false);  // the tail is not a whole block
  WriteOut(ByteView(stage_.get() + aligned, staged_ - aligned));
  staged_ = 0;
}

bool AtomicFileSink::SetDirect(bool on) {
  int flags = ::fcntl(fd_, F_GETFL);
  if (flags < 0 || ::fcntl(fd_, F_SETFL, on ? flags | O_DIRECT : flags & ~O_DIRECT) != 0) {
    if (on) direct_refused_ = true;  // a file system without direct I/O: stay buffered
    return false;
  }
  direct_ = on;
  if (on) writeback_started_ = written_;  // direct writes need no writeback started
  return true;
}

void AtomicFileSink::WriteOut(ByteView data) {
  while (!data.empty()) {
    ssize_t n = ::write(fd_, data.data(), data.size());
    if (n < 0) {
      if (errno == EINTR) continue;
      // Direct I/O refused after all (alignment rules of this device): write buffered.
      if (errno == EINVAL && direct_ && SetDirect(false)) {
        direct_refused_ = true;
        continue;
      }
      int err = errno;
      Abort();
      throw StorageError(SysErrorText("cannot write " + path_, err));
    }
    data = data.subspan(static_cast<std::size_t>(n));
    written_ += static_cast<std::uint64_t>(n);
  }
  if (options_.durable && !direct_ && written_ - writeback_started_ >= kWritebackStep) {
    // Asynchronous: queues the range for writeback and returns. Failures surface at fsync.
    ::sync_file_range(fd_, static_cast<off64_t>(writeback_started_),
                      static_cast<off64_t>(written_ - writeback_started_), SYNC_FILE_RANGE_WRITE);
    writeback_started_ = written_;
  }
}

void AtomicFileSink::Finish() {
  if (!Commit()) throw ConflictError(path_ + " already exists");
}

bool AtomicFileSink::Commit() {
  if (fd_ < 0) throw StorageError("finish of " + path_ + " after it was finished or aborted");
  try {
    FlushStage();
    stage_.reset();
    if (options_.durable && ::fsync(fd_) != 0) {
      throw StorageError(SysErrorText("cannot fsync " + path_, errno));
    }
    int rc = ::close(fd_);
    fd_ = -1;
    if (rc != 0) throw StorageError(SysErrorText("cannot close " + path_, errno));
    if (!options_.no_replace) {
      if (::rename(temp_.c_str(), path_.c_str()) != 0) {
        throw StorageError(SysErrorText("cannot rename into " + path_, errno));
      }
    } else if (::renameat2(AT_FDCWD, temp_.c_str(), AT_FDCWD, path_.c_str(), RENAME_NOREPLACE) !=
               0) {
      if (errno == EEXIST) {
        Abort();
        return false;
      }
      if (errno != EINVAL && errno != ENOSYS) {
        throw StorageError(SysErrorText("cannot rename into " + path_, errno));
      }
      // File systems without RENAME_NOREPLACE: link() refuses an existing name atomically.
      if (::link(temp_.c_str(), path_.c_str()) != 0) {
        if (errno == EEXIST) {
          Abort();
          return false;
        }
        throw StorageError(SysErrorText("cannot link into " + path_, errno));
      }
      ::unlink(temp_.c_str());
    }
    temp_.clear();
    if (options_.durable) FsyncDir(ParentDir(path_));
  } catch (...) {
    Abort();
    throw;
  }
  return true;
}

std::optional<Bytes> TryReadFileBytes(const std::string& path) {
  if (::access(path.c_str(), F_OK) != 0 && errno == ENOENT) return std::nullopt;
  return ReadFileBytes(path);  // a file removed in between is an error, not absence
}

Bytes ReadFileBytes(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    if (errno == ENOENT) throw NotFoundError("no such file: " + path);
    throw StorageError(SysErrorText("cannot open " + path, errno));
  }
  Bytes out;
  struct stat st {};
  if (::fstat(fd, &st) == 0 && st.st_size > 0) out.reserve(static_cast<std::size_t>(st.st_size));
  std::uint8_t buf[1 << 16];
  for (;;) {
    ssize_t n = ::read(fd, buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      int err = errno;
      ::close(fd);
      throw StorageError(SysErrorText("cannot read " + path, err));
    }
    if (n == 0) break;
    out.insert(out.end(), buf, buf + n);
  }
  ::close(fd);
  return out;
}

MappedFile::MappedFile(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    if (errno == ENOENT) throw NotFoundError("no such file: " + path);
    throw StorageError(SysErrorText("cannot open " + path, errno));
  }
  struct stat st {};
  if (::fstat(fd, &st) != 0) {
    int err = errno;
    ::close(fd);
    throw StorageError(SysErrorText("cannot stat " + path, err));
  }
  size_ = static_cast<std::size_t>(st.st_size);
  if (size_ > 0) {
    addr_ = ::mmap(nullptr, size_, PROT_READ, MAP_PRIVATE | MAP_POPULATE, fd, 0);
    if (addr_ == MAP_FAILED) {
      int err = errno;
      addr_ = nullptr;
      ::close(fd);
      throw StorageError(SysErrorText("cannot map " + path, err));
    }
  }
  ::close(fd);
}

MappedFile::~MappedFile() {
  if (addr_ != nullptr) ::munmap(addr_, size_);
}

}  // namespace gravl::io
