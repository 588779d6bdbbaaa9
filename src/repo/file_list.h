#pragma once
// The file list of a full backup: one entry per file, directory and symbolic link of the data
// directory and its tablespaces.
//
// Stored as an object of its own, <backup>/file_list, through the pipeline like any object
// (compressed, encrypted when the stanza is), its SHA-256, size and entry count recorded in the
// manifest (formats 2 and 3). Its content is JSON Lines: one entry per line, the same members
// as the entries of a format-1 manifest's "files" array.
//
// What checks a file's content: in formats 1 and 2 its SHA-256 ("sha256"), which is also its
// own object's. In format 3 the XXH128 of its content ("xxh128": end-to-end checks, delta
// restore), while every object's SHA-256 covers its stored bytes (a file's own object: the
// entry's "sha256"; a bundle: the manifest's bundles; the file list: its record). It is written and
// read as a stream into compact records (FileList), so that a database with hundreds of thousands
// of files is backed up, restored and verified in little memory, and manifests stay small.

#include <array>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include "repo/manifest.h"
#include "repo/object_io.h"
#include "repo/repository.h"

namespace gravl::repo {

// One entry. Its names are views: into the FileList that holds it, or, for an entry being
// built, into the caller's strings until FileList::Add() copies them.
struct FileEntry {
  enum class Type : std::uint8_t { kDir, kFile, kLink };
  std::string_view path;    // raw bytes (not necessarily UTF-8), relative to its directory
  std::string_view target;  // links: raw bytes
  std::uint64_t size = 0;
  union {                       // one or the other, by `bundled`
    std::uint64_t offset = 0;   // bundled: in the bundle
    std::uint64_t stored_size;  // own objects: after compression and encryption
  };
  std::int64_t mtime = 0;
  std::uint32_t mode = 0;
  std::uint32_t tablespace = 0;  // OID; 0 for the data directory
  std::uint32_t object = 0;      // files: the number of their own object or of their bundle
  std::uint32_t crc32c = 0;      // files, while a backup runs (not stored)
  Type type = Type::kFile;
  bool bundled = false;
  // Files. Formats 1-2: of the content. Format 3: of the stored bytes of the file's own object
  // (zero for bundled files).
  std::array<std::uint8_t, 32> sha256{};
  std::array<std::uint8_t, 16> xxh128{};  // files, format 3: of the content

  // "files/<n>" or "bundles/<n>", as stored (at least six digits).
  std::string ObjectName() const;
  std::string Sha256Hex() const;
  void SetSha256Hex(std::string_view hex);  // throws IntegrityError unless 64 hex digits
  std::string Xxh128Hex() const;
  void SetXxh128Hex(std::string_view hex);  // throws IntegrityError unless 32 hex digits
};

// Object names of a backup: "files/000012", "bundles/000003".
std::string ObjectName(bool bundle, std::uint32_t number);

// Entries in compact records (about 110 bytes each plus their names, against about 1 KB as
// a JSON tree): names are packed into shared blocks, entries kept in a deque (no
// reallocation spikes while it grows; references stay valid).
class FileList {
 public:
  FileList() = default;
  explicit FileList(int format) : format_(format) {}
  // A moved-from list is empty and writes its next names into blocks of its own.
  FileList(FileList&& other) noexcept { *this = std::move(other); }
  FileList& operator=(FileList&& other) noexcept {
    format_ = other.format_;
    entries_ = std::move(other.entries_);
    blocks_ = std::move(other.blocks_);
    block_left_ = std::exchange(other.block_left_, 0);
    block_next_ = std::exchange(other.block_next_, nullptr);
    other.entries_.clear();
    other.blocks_.clear();
    return *this;
  }
  FileList(const FileList&) = delete;
  FileList& operator=(const FileList&) = delete;

  // Copies `entry` and its names into the list; returns the stored entry.
  FileEntry& Add(const FileEntry& entry);
  std::size_t size() const { return entries_.size(); }
  bool empty() const { return entries_.empty(); }
  FileEntry& operator[](std::size_t i) { return entries_[i]; }
  const FileEntry& operator[](std::size_t i) const { return entries_[i]; }
  auto begin() const { return entries_.begin(); }
  auto end() const { return entries_.end(); }
  int format() const { return format_; }
  // What checks a file's content, and its value for `entry`.
  io::DigestType content_digest() const {
    return format_ >= 3 ? io::DigestType::kXxh128 : io::DigestType::kSha256;
  }
  std::string ContentHex(const FileEntry& entry) const {
    return format_ >= 3 ? entry.Xxh128Hex() : entry.Sha256Hex();
  }

 private:
  std::string_view Keep(std::string_view name);
  int format_ = kManifestFormat;
  std::deque<FileEntry> entries_;
  std::vector<std::unique_ptr<char[]>> blocks_;
  std::size_t block_left_ = 0;
  char* block_next_ = nullptr;
};

// The path PostgreSQL's backup_manifest gives an entry: tablespace files as
// "pg_tblspc/<oid>/<path>".
std::string ManifestPath(const FileEntry& entry);

// Files of a list by their backup_manifest path. The server lists files in the order it sent
// them, which is the list's, leaving some out (the WAL segments a backup includes): a cursor
// finds them, looking a little ahead; a map of all paths is built only should the orders
// differ more than that.
class ManifestPathLookup {
 public:
  explicit ManifestPathLookup(const FileList& files) : files_(files) {}
  const FileEntry* Find(const std::string& path);  // nullptr: no such file
  bool indexed() const { return indexed_; }        // the map had to be built

 private:
  static constexpr std::size_t kLookAhead = 256;
  const FileList& files_;
  std::size_t cursor_ = 0;
  bool indexed_ = false;
  std::unordered_map<std::string, std::size_t> by_path_;
};

// The objects of a full backup and what each holds, for restore and verify: a file of its own,
// or a bundle of small files (indexes into the list, in bundle order). `bundles` is the
// manifest's; a file in a bundle it does not describe goes to `orphan` and is left out
// (orphan may throw).
struct ObjectToRead {
  std::string object;
  std::uint64_t size = 0;
  std::string sha256;                        // of the content, or of the stored bytes (format 3)
  std::optional<std::uint64_t> stored_size;  // format 3
  std::string xxh128;                        // format 3, own objects: of the content
  std::vector<std::uint32_t> parts;          // bundles
  const FileEntry* file = nullptr;           // own objects
  Expected expected() const { return {sha256, size, stored_size, xxh128}; }
};
std::vector<ObjectToRead> PlanObjects(const FileList& files,
                                      const std::vector<ObjectRecord>& bundles,
                                      const std::function<void(const FileEntry&)>& orphan);

nlohmann::json ToJson(const FileEntry& entry, int format = kManifestFormat);
// Appends the entry `json` describes to `list`. Throws IntegrityError naming `what` when a
// member is missing or has the wrong type, or when its path could lead outside its directory
// (empty, absolute, a "." or ".." component, a NUL byte).
FileEntry& AddFromJson(FileList& list, const nlohmann::json& json, const std::string& what);

// The format of objects of a backup of manifest format `format` (its SHA-256s of the stored
// bytes from format 3 on).
ObjectFormat BackupObjectFormat(ObjectFormat format, int manifest_format);

// Stores `files` as <backup>/file_list; the result goes into the manifest's file_list (see
// MakeFileListRecord).
StoredObject WriteFileList(Repository& repo, const std::string& label, const FileList& files);
FileListRecord MakeFileListRecord(const StoredObject& stored, std::size_t entries);

// The file list of the full backup `manifest` (a summary is enough): streamed from its object
// and verified (SHA-256, size, entry count) before it is returned; for format-1 manifests, read
// from the manifest document itself. Throws IntegrityError on damage, NotFoundError when the
// object is missing.
FileList ReadFileList(Repository& repo, const BackupManifest& manifest);

}  // namespace gravl::repo
