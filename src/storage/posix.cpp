#include "storage/posix.h"

#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <functional>

#include "common/error.h"
#include "io/file.h"

namespace gravl::storage {
namespace {

// A storage write is an atomic, durable local file: temp file (0600), fsync, rename
// (refusing to replace for if_absent), fsync of the directory.
class PosixWrite final : public WriteStream {
 public:
  PosixWrite(const std::string& path, bool if_absent, std::optional<io::FileOwner> owner)
      : file_(path, io::AtomicFileOptions{.mode = 0600,
                                          .durable = true,
                                          .no_replace = if_absent,
                                          .make_dirs = true,
                                          .direct_io = true,
                                          .owner = owner}) {}
  void Write(ByteView data) override { file_.Write(data); }
  bool Commit() override { return file_.Commit(); }
  std::string Name() const override { return file_.path(); }

 private:
  io::AtomicFileSink file_;
};

class PosixRead final : public ReadStream {
 public:
  PosixRead(std::string path, int fd, std::optional<std::uint64_t> remaining)
      : path_(std::move(path)), fd_(fd), remaining_(remaining) {}
  ~PosixRead() override { ::close(fd_); }

  std::size_t Read(MutableByteView buf) override {
    std::size_t want = buf.size();
    if (remaining_) want = static_cast<std::size_t>(std::min<std::uint64_t>(want, *remaining_));
    if (want == 0) return 0;
    for (;;) {
      ssize_t n = ::read(fd_, buf.data(), want);
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) throw StorageError(SysErrorText("cannot read " + path_, errno), true);
      if (remaining_) *remaining_ -= static_cast<std::uint64_t>(n);
      return static_cast<std::size_t>(n);
    }
  }

 private:
  std::string path_;
  int fd_;
  std::optional<std::uint64_t> remaining_;
};

class PosixStorage final : public Storage {
 public:
  explicit PosixStorage(std::string root) : root_(std::move(root)) {
    while (root_.size() > 1 && root_.back() == '/') root_.pop_back();
  }

  // Run as root, new files and directories take the owner of the repository's root
  // directory (or of its nearest existing parent), so that a backup by root never locks the
  // server's user (archive_command) out of folders it created. Other users create what they own.
  std::optional<io::FileOwner> Owner() const { return io::InheritedOwner(root_); }

  std::unique_ptr<WriteStream> Put(const std::string& key, const PutOptions& options) override {
    ValidateKey(key);
    return std::make_unique<PosixWrite>(PathOf(key), options.if_absent, Owner());
  }

  std::unique_ptr<ReadStream> TryGet(const std::string& key,
                                     const std::optional<Range>& range) override {
    ValidateKey(key);
    std::string path = PathOf(key);
    int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
      if (errno == ENOENT || errno == ENOTDIR) return nullptr;
      throw StorageError(SysErrorText("cannot open " + path, errno));
    }
    std::optional<std::uint64_t> remaining;
    if (range) {
      if (::lseek(fd, static_cast<off_t>(range->offset), SEEK_SET) < 0) {
        int err = errno;
        ::close(fd);
        throw StorageError(SysErrorText("cannot seek in " + path, err));
      }
      remaining = range->length;
    }
    return std::make_unique<PosixRead>(path, fd, remaining);
  }

  std::optional<ObjectInfo> Stat(const std::string& key) override {
    ValidateKey(key);
    struct stat st {};
    if (::stat(PathOf(key).c_str(), &st) != 0) {
      if (errno == ENOENT || errno == ENOTDIR) return std::nullopt;
      throw StorageError(SysErrorText("cannot stat " + PathOf(key), errno));
    }
    if (!S_ISREG(st.st_mode)) return std::nullopt;
    return Info(key, st);
  }

  ListPage List(const std::string& prefix, const ListOptions& options) override {
    ListPage page;
    auto slash = prefix.rfind('/');
    std::string dir_key = slash == std::string::npos ? "" : prefix.substr(0, slash);
    std::vector<Listed> found;
    Walk(dir_key, prefix, options.token ? *options.token : options.start_after.value_or(""),
         options.limit + 1, options.delimited, found);
    if (found.size() > options.limit) {
      found.resize(options.limit);
      page.next_token = found.back().info.key;
    }
    for (auto& f : found) {
      if (f.is_prefix) {
        page.common_prefixes.push_back(std::move(f.info.key));
      } else {
        page.objects.push_back(std::move(f.info));
      }
    }
    return page;
  }

  void DeleteMany(const std::vector<std::string>& keys) override {
    for (const auto& key : keys) {
      ValidateKey(key);
      if (::unlink(PathOf(key).c_str()) != 0 && errno != ENOENT) {
        throw StorageError(SysErrorText("cannot delete " + PathOf(key), errno));
      }
      // Remove directories left empty, so listings do not show deleted folders. A writer
      // racing with this recreates its directory (AtomicFileSink retries on ENOENT).
      for (auto slash = key.rfind('/'); slash != std::string::npos && slash > 0;
           slash = key.rfind('/', slash - 1)) {
        if (::rmdir(PathOf(key.substr(0, slash)).c_str()) != 0) break;
      }
    }
  }

  void Persist(const std::string& key) override {
    ValidateKey(key);
    std::string path = PathOf(key);
    int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
      if (errno == ENOENT) throw NotFoundError(Describe() + ": no object " + key);
      throw StorageError(SysErrorText("cannot open " + path, errno));
    }
    int rc = ::fsync(fd);
    int err = errno;
    ::close(fd);
    if (rc != 0) throw StorageError(SysErrorText("cannot fsync " + path, err));
    io::FsyncDir(io::ParentDir(path));
  }

  void DeletePrefix(const std::string& prefix) override {
    if (prefix.empty() || prefix.back() != '/')
      throw StorageError("DeletePrefix needs a folder prefix");
    ValidateKey(prefix.substr(0, prefix.size() - 1));
    std::error_code ec;
    std::filesystem::remove_all(PathOf(prefix.substr(0, prefix.size() - 1)), ec);
    if (ec) throw StorageError("cannot delete " + PathOf(prefix) + ": " + ec.message());
  }

  std::string Describe() const override { return "posix:" + root_; }

 private:
  std::string PathOf(const std::string& key) const { return root_ + "/" + key; }

  static ObjectInfo Info(const std::string& key, const struct stat& st) {
    auto modified = SystemTime(std::chrono::seconds(st.st_mtim.tv_sec) +
                               std::chrono::duration_cast<SystemTime::duration>(
                                   std::chrono::nanoseconds(st.st_mtim.tv_nsec)));
    return ObjectInfo{key, static_cast<std::uint64_t>(st.st_size), modified};
  }

  // Depth-first walk in key order: entries sorted by name, with directories compared as
  // "name/" so that "a-b" sorts before "a/x" exactly as full keys do. Subtrees wholly at or
  // before `after` are skipped without being read.
  struct Listed {
    ObjectInfo info;  // for a common prefix, only key ("dir/") is set
    bool is_prefix = false;
  };

  void Walk(const std::string& dir_key, const std::string& prefix, const std::string& after,
            std::size_t want, bool delimited, std::vector<Listed>& out) {
    std::string dir_path = dir_key.empty() ? root_ : PathOf(dir_key);
    DIR* dir = ::opendir(dir_path.c_str());
    if (dir == nullptr) {
      if (errno == ENOENT || errno == ENOTDIR) return;
      throw StorageError(SysErrorText("cannot list " + dir_path, errno));
    }
    // Only names that can still be listed are kept (not before `after`, under the prefix),
    // and only their names: a later page of a directory of 200,000 objects holds little.
    struct Entry {
      std::string name;
      bool is_dir;
    };
    const std::string base = dir_key.empty() ? "" : dir_key + "/";
    auto key_of = [&](const Entry& e) { return base + e.name + (e.is_dir ? "/" : ""); };
    std::vector<Entry> entries;
    while (dirent* e = ::readdir(dir)) {
      std::string name = e->d_name;
      if (name == "." || name == ".." || io::IsTempFileName(name)) continue;
      bool is_dir = e->d_type == DT_DIR;
      if (e->d_type == DT_UNKNOWN || e->d_type == DT_LNK) {
        struct stat st {};
        if (::stat(PathOf(base + name).c_str(), &st) != 0) continue;
        is_dir = S_ISDIR(st.st_mode);
      }
      Entry entry{std::move(name), is_dir};
      std::string key = key_of(entry);
      if (!is_dir) {
        if (key.compare(0, prefix.size(), prefix) != 0) continue;
        if (!after.empty() && key <= after) continue;
      } else {
        // A subtree that cannot hold a key under the prefix, or lies wholly before `after`.
        std::size_t n = std::min(key.size(), prefix.size());
        if (key.compare(0, n, prefix, 0, n) != 0) continue;
        if (!after.empty() && after.compare(0, key.size(), key) > 0) continue;
      }
      entries.push_back(std::move(entry));
    }
    ::closedir(dir);
    // Directories sort as "name/", so that "a-b" comes before "a/x" as full keys do.
    std::sort(entries.begin(), entries.end(), [](const Entry& a, const Entry& b) {
      std::size_t n = std::min(a.name.size(), b.name.size());
      int c = a.name.compare(0, n, b.name, 0, n);
      if (c != 0) return c < 0;
      auto at = [](const Entry& e, std::size_t i) -> int {
        if (i < e.name.size()) return static_cast<unsigned char>(e.name[i]);
        if (i == e.name.size() && e.is_dir) return '/';
        return -1;  // ended
      };
      return at(a, n) < at(b, n);
    });
    for (const auto& e : entries) {
      if (out.size() >= want) return;
      std::string key = key_of(e);
      if (e.is_dir) {
        const std::string& sub = key;  // "dir/"
        if (delimited && sub.size() > prefix.size()) {
          // Rolled up: the directory lies wholly beyond the prefix.
          if (!after.empty() && sub <= after) continue;
          out.push_back({ObjectInfo{sub, 0, std::nullopt}, true});
          continue;
        }
        Walk(sub.substr(0, sub.size() - 1), prefix, after, want, delimited, out);
        continue;
      }
      struct stat st {};
      if (::stat(PathOf(key).c_str(), &st) != 0 || !S_ISREG(st.st_mode)) continue;
      out.push_back({Info(key, st), false});
    }
  }

  std::string root_;
};

}  // namespace

std::unique_ptr<Storage> MakePosixStorage(const std::string& root) {
  if (root.empty() || root.front() != '/') {
    throw ConfigError("posix repository path must be absolute, got '" + root + "'");
  }
  return std::make_unique<PosixStorage>(root);
}

std::vector<std::string> DirectoriesNotWritableBy(const std::string& root, unsigned uid,
                                                  unsigned gid, int depth, std::size_t limit) {
  std::vector<std::string> out;
  auto writable = [&](const struct stat& st) {
    if (uid == 0) return true;
    if (st.st_uid == uid) return (st.st_mode & S_IWUSR) && (st.st_mode & S_IXUSR);
    if (st.st_gid == gid) return (st.st_mode & S_IWGRP) && (st.st_mode & S_IXGRP);
    return (st.st_mode & S_IWOTH) && (st.st_mode & S_IXOTH);
  };
  std::function<void(const std::string&, int)> visit = [&](const std::string& dir, int level) {
    if (out.size() >= limit) return;
    struct stat st {};
    if (::lstat(dir.c_str(), &st) != 0 || !S_ISDIR(st.st_mode)) return;
    if (!writable(st)) {
      out.push_back(dir);
      return;
    }
    if (level >= depth) return;
    DIR* d = ::opendir(dir.c_str());
    if (d == nullptr) return;
    std::vector<std::string> children;
    while (dirent* e = ::readdir(d)) {
      std::string name = e->d_name;
      if (name == "." || name == ".." || name[0] == '.') continue;
      children.push_back(dir + "/" + name);
    }
    ::closedir(d);
    std::sort(children.begin(), children.end());
    for (const auto& c : children) visit(c, level + 1);
  };
  visit(root, 0);
  return out;
}

}  // namespace gravl::storage
