#pragma once
// Local files: atomic creation, whole-file reads, directory sync.

#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "common/bytes.h"
#include "io/stream.h"

namespace gravl::io {

// Who new files and directories belong to (chown when running as root); nullopt: whoever
// creates them.
struct FileOwner {
  unsigned uid = 0;
  unsigned gid = 0;
};

// For a process running as root: the owner of `path`, or of its nearest existing ancestor,
// unless that is root -- what files and folders created there should belong to, so that the
// server's user is never locked out of a repository or spool by a command run as root.
// nullopt when not running as root or when the owner is root.
std::optional<FileOwner> InheritedOwner(const std::string& path);

struct AtomicFileOptions {
  unsigned mode = 0600;
  bool durable = true;      // fsync the file before the rename and the directory after it
  bool no_replace = false;  // never replace: Commit() returns false if the path exists
  bool make_dirs = false;   // create missing parent directories (mode 0700)
  // Files of 1 MiB and more are written with O_DIRECT in 1 MiB blocks (the tail buffered):
  // no copy into the page cache (fewer CPU cycles per byte, and other data's cache is not
  // evicted). File systems without direct I/O, and network file systems, get buffered writes.
  bool direct_io = false;
  std::optional<FileOwner> owner;  // the file and directories it creates go to this owner
};

// Writes to a hidden temporary file beside `path` and renames it into place on Finish(), so
// `path` is either absent (or its old content) or complete -- also after a crash. Destroying
// it unfinished removes the temporary file. Durable files start the writeback of every
// 8 MiB as they are written (sync_file_range), so the fsync at the end waits
// for the last few megabytes rather than the whole file.
class AtomicFileSink final : public Sink {
 public:
  AtomicFileSink(std::string path, const AtomicFileOptions& options = {});
  ~AtomicFileSink() override;
  void Write(ByteView data) override;
  // Puts the file in place. With no_replace and an existing path: false, the temporary file
  // removed, nothing replaced. Other failures throw StorageError.
  bool Commit();
  // Commit(), where an existing path is an error (ConflictError).
  void Finish() override;
  const std::string& path() const { return path_; }

 private:
  void Abort();
  void WriteOut(ByteView data);  // write(2) at the current offset
  void FlushStage();             // writes what is staged (the tail buffered)
  bool SetDirect(bool on);       // false: O_DIRECT cannot be changed here
  struct FreeDeleter {
    void operator()(std::uint8_t* p) const { std::free(p); }
  };
  std::string path_;
  std::string temp_;
  AtomicFileOptions options_;
  int fd_ = -1;
  std::uint64_t written_ = 0;
  std::uint64_t writeback_started_ = 0;  // durable files: bytes handed to writeback so far
  std::unique_ptr<std::uint8_t, FreeDeleter> stage_;  // direct_io: aligned, 1 MiB
  std::size_t staged_ = 0;
  bool direct_ = false;
  bool direct_refused_ = false;  // by the file system (or a network one): buffered from then on
};

// Marker in the names of temporary files: "<dir>/.<name>.gravl-tmp-<boot>-<pid>-<random>"
// (<boot>: 8 hex digits of this machine's boot id; older versions wrote only <random>).
inline constexpr const char* kTempMarker = ".gravl-tmp-";
bool IsTempFileName(const std::string& name);

// Temporary files of writers that are gone, under `dir` (recursively): written on this boot
// by a process that no longer runs, or untouched for `idle_limit` (a writer on another host
// of a shared file system, or before a reboot, keeps its file changing). Removed when
// `remove`; returned either way (paths and total bytes).
struct StaleTemporaries {
  std::vector<std::string> paths;
  std::uint64_t bytes = 0;
};
StaleTemporaries FindStaleTemporaries(const std::string& dir, bool remove,
                                      std::chrono::seconds idle_limit = std::chrono::hours(1));

// mkdir -p with mode 0700, fsyncing the parent of each directory it creates.
void MakeDirs(const std::string& dir, const std::optional<FileOwner>& owner = std::nullopt);
void FsyncDir(const std::string& dir);
std::string ParentDir(const std::string& path);

// Reads a whole file; throws StorageError (NotFoundError if absent).
Bytes ReadFileBytes(const std::string& path);
// The same; nullopt when there is no such file.
std::optional<Bytes> TryReadFileBytes(const std::string& path);

// A read-only memory mapping of a whole file: no copy, pages come from the page cache.
// Throws like ReadFileBytes. The file must not be truncated while mapped.
class MappedFile {
 public:
  explicit MappedFile(const std::string& path);
  ~MappedFile();
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;
  ByteView data() const { return {static_cast<const std::uint8_t*>(addr_), size_}; }

 private:
  void* addr_ = nullptr;
  std::size_t size_ = 0;
};

}  // namespace gravl::io
