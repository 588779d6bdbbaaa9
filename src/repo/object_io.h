#pragma once
// Objects through the pipeline.
//
// Write: plaintext -> SHA-256 + size -> compress -> encrypt -> stored size -> Storage.Put.
// Read:  Storage.Get -> decrypt -> decompress -> SHA-256 + size verified -> destination.
// Objects of backups of manifest format 3 have their SHA-256 taken of the stored bytes
// instead (ObjectFormat::sha256_of_stored): verified as they come from storage, before
// decryption and decompression; their content is checked by size and XXH128 (the file list's).
// The destination sink is finished only after verification succeeded, so a destination that
// publishes on Finish() (a storage write, an atomic file) never publishes unverified data.

#include <cstdint>
#include <memory>
#include <optional>
#include <string>

#include "common/config.h"
#include "io/crypto.h"
#include "io/hash.h"
#include "io/pipeline.h"
#include "storage/storage.h"

namespace gravl::repo {

struct ObjectFormat {
  CompressionType compression = CompressionType::kNone;
  int level = 0;
  const io::Key* key = nullptr;   // non-null: encrypted with this repository key
  int workers = 0;                // background compression threads (large objects)
  bool sha256_of_stored = false;  // the SHA-256 covers the stored bytes (backups, format 3)
};

struct StoredObject {
  std::string sha256;  // of the original content, or of the stored bytes (sha256_of_stored)
  std::uint64_t size = 0;
  std::uint64_t stored_size = 0;  // after compression and encryption
};

// A sink that stores what it receives as one object. Finish() commits the object and
// makes result() valid; destruction without Finish() leaves no object.
class ObjectWriter final : public io::Sink {
  // The chain's last stage: commits the object, keeping whether it was created.
  class CommitSink final : public io::Sink {
   public:
    explicit CommitSink(storage::WriteStream& out) : out_(out) {}
    void Write(ByteView data) override { out_.Write(data); }
    void Finish() override { created_ = out_.Commit(); }
    bool created() const { return created_; }

   private:
    storage::WriteStream& out_;
    bool created_ = false;
  };

 public:
  // `known_sha256`: the caller already hashed the content (e.g. to name the object); the
  // writer then skips its own hash pass and reports this value.
  ObjectWriter(storage::Storage& storage, const std::string& key, const ObjectFormat& format,
               const storage::PutOptions& options = {},
               std::optional<std::string> known_sha256 = std::nullopt);
  void Write(ByteView data) override;
  // Commits the object. With PutOptions::if_absent and an existing key: false, nothing
  // written (a concurrent writer won) -- a value; result() is then not valid.
  bool Commit();
  // Commit(), where an existing key is an error (ConflictError).
  void Finish() override;
  const StoredObject& result() const { return result_; }

 private:
  std::unique_ptr<storage::WriteStream> out_;
  CommitSink commit_;
  io::FilterChain chain_;
  io::CountingSink* stored_count_ = nullptr;
  io::HashSink* hash_ = nullptr;
  io::CountingSink* count_ = nullptr;
  std::optional<std::string> known_sha256_;
  StoredObject result_;
};

StoredObject WriteObject(storage::Storage& storage, const std::string& key, io::Source& source,
                         const ObjectFormat& format, const storage::PutOptions& options = {});

struct Expected {
  // Empty only for objects whose content carries its own checksum (manifests).
  std::string sha256;
  std::optional<std::uint64_t> size;
  std::optional<std::uint64_t> stored_size;  // checked with sha256_of_stored
  std::string xxh128;                        // of the content, when not empty
};

// Streams the object into `destination` and verifies it; throws IntegrityError naming the
// key on any mismatch (before finishing `destination`), NotFoundError if absent.
void ReadObject(storage::Storage& storage, const std::string& key, const ObjectFormat& format,
                const Expected& expected, io::Sink& destination);

// For objects whose SHA-256 covers their stored bytes (backups of manifest format 3): reads
// the object and checks that SHA-256 and the stored size, without decrypting or
// decompressing -- what proves the stored bytes are those written (verify's default; the
// content itself is checked by restores, drills and verify --full). Throws like ReadObject.
void CheckStoredObject(storage::Storage& storage, const std::string& key, const Expected& expected);

}  // namespace gravl::repo
