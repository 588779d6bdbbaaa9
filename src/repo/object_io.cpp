#include "repo/object_io.h"

#include "common/error.h"
#include "io/compress.h"

namespace gravl::repo {
namespace {

// Checks the plaintext size at Finish(), before finishing the next sink.
class SizeCheckSink final : public io::Sink {
 public:
  SizeCheckSink(io::Sink& next, std::uint64_t expected, std::string what)
      : next_(next), expected_(expected), what_(std::move(what)) {}
  void Write(ByteView data) override {
    seen_ += data.size();
    // Longer than recorded: stop before passing on more unverified bytes (a damaged object,
    // or one that decompresses to far more than it should).
    if (seen_ > expected_) Mismatch();
    next_.Write(data);
  }
  void Finish() override {
    if (seen_ != expected_) Mismatch();
    next_.Finish();
  }

 private:
  [[noreturn]] void Mismatch() const {
    throw IntegrityError(what_ + ": size mismatch (expected " + std::to_string(expected_) +
                         " bytes, got " + (seen_ > expected_ ? "at least " : "") +
                         std::to_string(seen_) + ")");
  }
  io::Sink& next_;
  std::uint64_t expected_;
  std::uint64_t seen_ = 0;
  std::string what_;
};

// Streams the object through `chain`; an IntegrityError always names the object.
void PumpObject(storage::Storage& storage, const std::string& key, const std::string& what,
                io::FilterChain& chain) {
  auto in = storage.Get(key);
  try {
    io::Pump(*in, chain.head());
  } catch (const IntegrityError& e) {
    std::string msg = e.what();
    if (msg.find(what) == std::string::npos) msg = what + ": " + msg;
    throw IntegrityError(msg);
  }
}

}  // namespace

ObjectWriter::ObjectWriter(storage::Storage& storage, const std::string& key,
                           const ObjectFormat& format, const storage::PutOptions& options,
                           std::optional<std::string> known_sha256)
    : out_(storage.Put(key, options)),
      commit_(*out_),
      chain_(commit_),
      known_sha256_(std::move(known_sha256)) {
  stored_count_ = &chain_.Prepend<io::CountingSink>();
  if (format.sha256_of_stored) hash_ = &chain_.Prepend<io::HashSink>();
  if (format.key != nullptr) {
    chain_.PrependWith([&](io::Sink& next) { return io::MakeEncryptor(*format.key, next); });
  }
  chain_.PrependWith([&](io::Sink& next) {
    return io::MakeCompressor(format.compression, format.level, next, format.workers);
  });
  count_ = &chain_.Prepend<io::CountingSink>();
  if (!known_sha256_ && !format.sha256_of_stored) hash_ = &chain_.Prepend<io::HashSink>();
}

void ObjectWriter::Write(ByteView data) { chain_.head().Write(data); }

bool ObjectWriter::Commit() {
  chain_.head().Finish();
  if (!commit_.created()) return false;
  result_ =
      StoredObject{hash_ ? hash_->hex() : *known_sha256_, count_->count(), stored_count_->count()};
  return true;
}

void ObjectWriter::Finish() {
  if (!Commit()) throw ConflictError(out_->Name() + " already exists");
}

StoredObject WriteObject(storage::Storage& storage, const std::string& key, io::Source& source,
                         const ObjectFormat& format, const storage::PutOptions& options) {
  ObjectWriter writer(storage, key, format, options);
  io::Pump(source, writer);
  return writer.result();
}

void ReadObject(storage::Storage& storage, const std::string& key, const ObjectFormat& format,
                const Expected& expected, io::Sink& destination) {
  std::string what = storage.Describe() + "/" + key;
  io::FilterChain chain(destination);
  if (!expected.xxh128.empty()) {
    chain.Prepend<io::VerifySink>(expected.xxh128, what, io::DigestType::kXxh128);
  }
  if (expected.size) chain.Prepend<SizeCheckSink>(*expected.size, what);
  if (!expected.sha256.empty() && !format.sha256_of_stored) {
    chain.Prepend<io::VerifySink>(expected.sha256, what);
  }
  chain.PrependWith([&](io::Sink& next) { return io::MakeDecompressor(format.compression, next); });
  if (format.key != nullptr) {
    chain.PrependWith([&](io::Sink& next) { return io::MakeDecryptor(*format.key, next, what); });
  }
  if (format.sha256_of_stored) {
    // Stored bytes: checked before anything decodes them (the verdict at their end comes
    // before the decoders', and so before the destination is finished).
    if (expected.stored_size) {
      chain.Prepend<SizeCheckSink>(*expected.stored_size, what + " (stored bytes)");
    }
    if (!expected.sha256.empty()) chain.Prepend<io::VerifySink>(expected.sha256, what);
  }
  PumpObject(storage, key, what, chain);
}

void CheckStoredObject(storage::Storage& storage, const std::string& key,
                       const Expected& expected) {
  std::string what = storage.Describe() + "/" + key;
  if (expected.sha256.empty() || !expected.stored_size) {
    throw IntegrityError(what + ": the manifest records no SHA-256 and size of its stored bytes");
  }
  io::NullSink discard;
  io::FilterChain chain(discard);
  chain.Prepend<SizeCheckSink>(*expected.stored_size, what + " (stored bytes)");
  chain.Prepend<io::VerifySink>(expected.sha256, what);
  PumpObject(storage, key, what, chain);
}

}  // namespace gravl::repo
