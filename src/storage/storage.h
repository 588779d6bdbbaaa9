#pragma once
// The Storage interface: a flat key -> object store (local directory, S3, memory).
//
// Keys are relative, '/'-separated paths without "." or ".." components. Objects are
// write-once in normal use: writers create them completely or not at all.
//
// Contract every driver honours (tests/unit/storage/contract_test.cpp checks it):
// - Put() returns a WriteStream; nothing is visible under the key until Finish() returns.
//   Destroying a WriteStream without Finish(), or a Finish() that throws, leaves the previous
//   state (no object, or the old one) -- never a partial object.
// - With PutOptions::if_absent, Commit() returns false (and writes nothing) if the key
//   already exists, atomically with respect to other writers where the backend allows;
//   Finish() is Commit() for callers to whom an existing key is an error (ConflictError).
// - TryGet() returns nullptr for a missing key (Get() throws NotFoundError); a range reads
//   [offset, offset + length) and is clipped at the end of the object.
// - List() returns keys under a prefix in lexicographic order, at most `limit` per page,
//   with a continuation token while more remain.
// - DeleteMany() ignores keys that do not exist.
// - Failures throw StorageError; retryable() is true when trying again may help.
// Thread safety: a Storage may be used from several threads at once; each stream by one.

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "common/time_util.h"
#include "io/stream.h"

namespace gravl::storage {

struct ObjectInfo {
  std::string key;
  std::uint64_t size = 0;
  std::optional<SystemTime> modified;
  // Stat() only, on stores with Object Lock: the object cannot be deleted before this time.
  std::optional<SystemTime> retain_until;
  // Stat() only, on S3: the storage class ("STANDARD" when S3 names none).
  std::string storage_class;
};

struct ListOptions {
  std::optional<std::string> token;  // from the previous page's next_token
  // Only keys after this one (S3's start-after); for incremental listings of write-once keys
  // that sort by time (the WAL archive). Ignored when `token` is given.
  std::optional<std::string> start_after;
  std::size_t limit = 1000;  // objects + prefixes per page
  // S3's delimiter '/': keys with a further '/' after the prefix are rolled up into
  // common_prefixes ("wal/00000001/") instead of being listed one by one.
  bool delimited = false;
};

struct ListPage {
  std::vector<ObjectInfo> objects;
  std::vector<std::string> common_prefixes;  // only when delimited; each ends with '/'
  std::optional<std::string> next_token;     // pass in ListOptions for the next page
};

struct Range {
  std::uint64_t offset = 0;
  std::optional<std::uint64_t> length;  // nullopt: to the end
};

struct PutOptions {
  bool if_absent = false;  // never replace an existing object (Commit() returns false)
  // Object Lock: the store refuses to delete or overwrite the object before this time (S3 with
  // object_lock configured; other drivers ignore it).
  std::optional<SystemTime> retain_until;
};

class ReadStream : public io::Source {};

class WriteStream : public io::Sink {
 public:
  // Makes the object visible (atomic and durable for posix). Returns false when the key
  // already exists and the stream was opened with if_absent: nothing was written -- an
  // expected outcome (a concurrent writer won), a value. Other failures throw StorageError.
  virtual bool Commit() = 0;
  // Commit(), where an existing key is an error: throws ConflictError naming `Name()`.
  void Finish() final;
  // The object's name for messages (driver and key).
  virtual std::string Name() const = 0;
};

class Storage {
 public:
  Storage() = default;
  virtual ~Storage() = default;
  Storage(const Storage&) = delete;
  Storage& operator=(const Storage&) = delete;

  virtual std::unique_ptr<WriteStream> Put(const std::string& key,
                                           const PutOptions& options = {}) = 0;
  // The object's bytes, or nullptr when there is no such object -- an expected outcome, a
  // value, not an exception. Other failures throw StorageError.
  virtual std::unique_ptr<ReadStream> TryGet(const std::string& key,
                                             const std::optional<Range>& range = std::nullopt) = 0;
  // The same for callers to whom a missing object is a failure: NotFoundError.
  std::unique_ptr<ReadStream> Get(const std::string& key,
                                  const std::optional<Range>& range = std::nullopt);
  virtual std::optional<ObjectInfo> Stat(const std::string& key) = 0;
  virtual ListPage List(const std::string& prefix, const ListOptions& options = {}) = 0;
  virtual void DeleteMany(const std::vector<std::string>& keys) = 0;
  // Makes an existing object durable: for posix, fsync of the file and its directory (an
  // object found by a listing may come from a writer that crashed before its directory
  // fsync). A no-op where every completed write is durable. NotFoundError if absent.
  virtual void Persist(const std::string& key) = 0;
  // Removes everything under a folder-like prefix (ending in '/'), including what a driver
  // keeps for unfinished writes (posix temporary files). For cleaning up abandoned work.
  virtual void DeletePrefix(const std::string& prefix) = 0;
  // Object Lock: keeps an existing object until `until` (a retention is only ever extended).
  // false where the store has no Object Lock (posix, memory, S3 without object_lock).
  virtual bool ExtendRetention(const std::string& key, SystemTime until) {
    (void)key;
    (void)until;
    return false;
  }
  // Moves an existing object to another storage class, in place (S3 CopyObject onto itself).
  // false where the store has no storage classes.
  virtual bool ChangeStorageClass(const std::string& key, const std::string& storage_class) {
    (void)key;
    (void)storage_class;
    return false;
  }
  // For messages: "posix:/var/lib/gravl-dr/repo".
  virtual std::string Describe() const = 0;
};

// Every page of List().
std::vector<ObjectInfo> ListAll(Storage& storage, const std::string& prefix);
// The same, one object at a time, without holding the whole listing: pages of up to
// `page_size` objects (drivers cap it: S3 answers at most 1000) are handed to `visit` as
// they come. For large prefixes (a WAL archive of 200,000 objects). With `start_after`, only
// the keys after it.
void ForEachObject(Storage& storage, const std::string& prefix,
                   const std::function<void(ObjectInfo&&)>& visit, std::size_t page_size = 100000,
                   const std::optional<std::string>& start_after = std::nullopt);
// Every common prefix one level below `prefix` ("a/" -> "a/x/", "a/y/").
std::vector<std::string> ListPrefixes(Storage& storage, const std::string& prefix);

// Small-object helpers (whole object in memory).
void PutBytes(Storage& storage, const std::string& key, ByteView data,
              const PutOptions& options = {});
// Writes the object unless the key exists; false (nothing written) when it does.
bool PutBytesIfAbsent(Storage& storage, const std::string& key, ByteView data);
Bytes GetBytes(Storage& storage, const std::string& key);
// nullopt when the object does not exist.
std::optional<Bytes> TryGetBytes(Storage& storage, const std::string& key);

// Throws StorageError unless key is a valid relative key (no "..", no leading '/').
void ValidateKey(const std::string& key);

}  // namespace gravl::storage
