#include "io/crypto.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include <algorithm>
#include <cstring>

#include "common/error.h"

namespace gravl::io {
namespace {

constexpr char kMagic[8] = {'G', 'R', 'V', 'L', 'A', 'E', '0', '1'};
constexpr std::size_t kMaxChunk = 16 * 1024 * 1024;
constexpr std::string_view kObjectKeyLabel = "gravl-dr object key v1";

Bytes ObjectKey(const Key& master, ByteView salt) {
  Bytes msg(kObjectKeyLabel.begin(), kObjectKeyLabel.end());
  msg.insert(msg.end(), salt.begin(), salt.end());
  return HmacSha256(master.bytes(), msg);
}

void MakeNonce(std::uint64_t index, std::uint8_t nonce[12]) {
  std::memset(nonce, 0, 4);
  for (int i = 0; i < 8; ++i) nonce[4 + i] = static_cast<std::uint8_t>(index >> (56 - 8 * i));
}

class GcmContext {
 public:
  GcmContext(ByteView key, bool encrypt) : encrypt_(encrypt) {
    ctx_ = EVP_CIPHER_CTX_new();
    if (ctx_ == nullptr) throw CryptoError("cannot create a cipher context");
    int ok = encrypt ? EVP_EncryptInit_ex(ctx_, EVP_aes_256_gcm(), nullptr, nullptr, nullptr)
                     : EVP_DecryptInit_ex(ctx_, EVP_aes_256_gcm(), nullptr, nullptr, nullptr);
    if (ok != 1 || EVP_CIPHER_CTX_ctrl(ctx_, EVP_CTRL_GCM_SET_IVLEN, 12, nullptr) != 1) {
      throw CryptoError("cannot initialize AES-256-GCM");
    }
    key_.assign(key.begin(), key.end());
  }
  ~GcmContext() {
    OPENSSL_cleanse(key_.data(), key_.size());
    EVP_CIPHER_CTX_free(ctx_);
  }
  GcmContext(const GcmContext&) = delete;
  GcmContext& operator=(const GcmContext&) = delete;

  // Encrypts `in` into `out` (same size) and writes the tag; or, when decrypting, checks
  // `tag` and returns false on authentication failure.
  bool Seal(std::uint64_t index, ByteView aad, ByteView in, std::uint8_t* out, std::uint8_t* tag) {
    std::uint8_t nonce[12];
    MakeNonce(index, nonce);
    int len = 0;
    if (encrypt_) {
      if (EVP_EncryptInit_ex(ctx_, nullptr, nullptr, key_.data(), nonce) != 1 ||
          EVP_EncryptUpdate(ctx_, nullptr, &len, aad.data(), static_cast<int>(aad.size())) != 1 ||
          (!in.empty() &&
           EVP_EncryptUpdate(ctx_, out, &len, in.data(), static_cast<int>(in.size())) != 1) ||
          EVP_EncryptFinal_ex(ctx_, out + in.size(), &len) != 1 ||
          EVP_CIPHER_CTX_ctrl(ctx_, EVP_CTRL_GCM_GET_TAG, kGcmTagSize, tag) != 1) {
        throw CryptoError("AES-256-GCM encryption failed");
      }
      return true;
    }
    if (EVP_DecryptInit_ex(ctx_, nullptr, nullptr, key_.data(), nonce) != 1 ||
        EVP_DecryptUpdate(ctx_, nullptr, &len, aad.data(), static_cast<int>(aad.size())) != 1 ||
        (!in.empty() &&
         EVP_DecryptUpdate(ctx_, out, &len, in.data(), static_cast<int>(in.size())) != 1) ||
        EVP_CIPHER_CTX_ctrl(ctx_, EVP_CTRL_GCM_SET_TAG, kGcmTagSize, tag) != 1) {
      throw CryptoError("AES-256-GCM decryption failed");
    }
    return EVP_DecryptFinal_ex(ctx_, out + in.size(), &len) == 1;
  }

 private:
  EVP_CIPHER_CTX* ctx_ = nullptr;
  bool encrypt_;
  Bytes key_;
};

class Encryptor final : public Sink {
 public:
  Encryptor(const Key& key, Sink& next, std::size_t chunk_size)
      : next_(next), chunk_size_(chunk_size) {
    if (key.bytes().size() != kKeySize) throw CryptoError("encryption key must be 256 bits");
    Bytes salt = RandomBytes(32);
    header_.assign(kMagic, kMagic + 8);
    header_.insert(header_.end(), salt.begin(), salt.end());
    for (int i = 3; i >= 0; --i) {
      header_.push_back(static_cast<std::uint8_t>(chunk_size >> (8 * i)));
    }
    Bytes object_key = ObjectKey(key, salt);
    gcm_ = std::make_unique<GcmContext>(object_key, true);
    OPENSSL_cleanse(object_key.data(), object_key.size());
    pending_.reserve(chunk_size);
    out_.resize(chunk_size + kGcmTagSize);
    aad_ = header_;
    aad_.push_back(0);
  }

  void Write(ByteView data) override {
    if (!header_written_) {
      next_.Write(header_);
      header_written_ = true;
    }
    while (!data.empty()) {
      // A full chunk is sealed only when more data follows, so the last chunk is always
      // the one sealed with the final flag in Finish().
      if (pending_.size() == chunk_size_) SealChunk(false);
      std::size_t take = std::min(data.size(), chunk_size_ - pending_.size());
      pending_.insert(pending_.end(), data.begin(), data.begin() + static_cast<long>(take));
      data = data.subspan(take);
    }
  }

  void Finish() override {
    if (!header_written_) {
      next_.Write(header_);
      header_written_ = true;
    }
    SealChunk(true);
    next_.Finish();
  }

 private:
  void SealChunk(bool final) {
    aad_.back() = final ? 1 : 0;
    gcm_->Seal(index_++, aad_, pending_, out_.data(), out_.data() + pending_.size());
    next_.Write(ByteView(out_.data(), pending_.size() + kGcmTagSize));
    pending_.clear();
  }

  Sink& next_;
  std::size_t chunk_size_;
  Bytes header_;
  Bytes aad_;
  Bytes pending_;
  Bytes out_;
  std::unique_ptr<GcmContext> gcm_;
  std::uint64_t index_ = 0;
  bool header_written_ = false;
};

class Decryptor final : public Sink {
 public:
  Decryptor(const Key& key, Sink& next, std::string what)
      : master_(key), next_(next), what_(std::move(what)) {}

  void Write(ByteView data) override {
    while (!data.empty()) {
      if (!gcm_) {
        std::size_t take = std::min(data.size(), kEncryptionHeaderSize - header_.size());
        header_.insert(header_.end(), data.begin(), data.begin() + static_cast<long>(take));
        data = data.subspan(take);
        if (header_.size() == kEncryptionHeaderSize) ParseHeader();
        continue;
      }
      std::size_t frame = chunk_size_ + kGcmTagSize;
      // Keep one byte beyond a full frame before opening it: only then is it known not
      // to be the final chunk.
      if (buffer_.size() == frame + 1) {
        OpenChunk(ByteView(buffer_.data(), frame), false);
        buffer_.erase(buffer_.begin(), buffer_.begin() + static_cast<long>(frame));
      }
      std::size_t take = std::min(data.size(), frame + 1 - buffer_.size());
      buffer_.insert(buffer_.end(), data.begin(), data.begin() + static_cast<long>(take));
      data = data.subspan(take);
    }
  }

  void Finish() override {
    if (!gcm_) Fail("too short to be an encrypted object (truncated header)");
    std::size_t frame = chunk_size_ + kGcmTagSize;
    if (buffer_.size() > frame) {
      OpenChunk(ByteView(buffer_.data(), frame), false);
      buffer_.erase(buffer_.begin(), buffer_.begin() + static_cast<long>(frame));
    }
    if (buffer_.size() < kGcmTagSize) Fail("truncated (the final chunk is missing)");
    OpenChunk(buffer_, true);
    buffer_.clear();
    next_.Finish();
  }

 private:
  [[noreturn]] void Fail(const std::string& why) {
    throw IntegrityError(what_ + ": encrypted data is " + why +
                         "; the stored copy is damaged or was modified");
  }

  void ParseHeader() {
    if (!std::equal(kMagic, kMagic + 8, header_.begin())) {
      Fail("not in gravl-dr's encrypted format (bad header)");
    }
    std::uint32_t cs = 0;
    for (int i = 0; i < 4; ++i) cs = cs << 8 | header_[40 + static_cast<std::size_t>(i)];
    if (cs == 0 || cs > kMaxChunk) Fail("not valid (chunk size out of range)");
    chunk_size_ = cs;
    Bytes object_key = ObjectKey(master_, ByteView(header_.data() + 8, 32));
    gcm_ = std::make_unique<GcmContext>(object_key, false);
    OPENSSL_cleanse(object_key.data(), object_key.size());
    aad_ = header_;
    aad_.push_back(0);
    out_.resize(chunk_size_);
    buffer_.reserve(chunk_size_ + kGcmTagSize + 1);
  }

  void OpenChunk(ByteView frame, bool final) {
    std::size_t n = frame.size() - kGcmTagSize;
    aad_.back() = final ? 1 : 0;
    Bytes tag(frame.end() - kGcmTagSize, frame.end());
    if (!gcm_->Seal(index_, aad_, frame.first(n), out_.data(), tag.data())) {
      Fail("not authentic at chunk " + std::to_string(index_) +
           (final ? " (the object may be truncated or extended)" : "") +
           " -- modified, truncated, reordered, or written with another key");
    }
    ++index_;
    next_.Write(ByteView(out_.data(), n));
  }

  const Key& master_;
  Sink& next_;
  std::string what_;
  Bytes header_;
  Bytes aad_;
  Bytes buffer_;
  Bytes out_;
  std::size_t chunk_size_ = 0;
  std::unique_ptr<GcmContext> gcm_;
  std::uint64_t index_ = 0;
};

}  // namespace

Key::Key(Bytes bytes) : bytes_(std::move(bytes)) {}
Key::~Key() {
  if (!bytes_.empty()) OPENSSL_cleanse(bytes_.data(), bytes_.size());
}
Key::Key(Key&& other) noexcept : bytes_(std::move(other.bytes_)) { other.bytes_.clear(); }
Key& Key::operator=(Key&& other) noexcept {
  if (this != &other) {
    if (!bytes_.empty()) OPENSSL_cleanse(bytes_.data(), bytes_.size());
    bytes_ = std::move(other.bytes_);
    other.bytes_.clear();
  }
  return *this;
}

Key DeriveKey(std::string_view passphrase, const KdfParams& params) {
  if (params.algorithm != "scrypt") {
    throw CryptoError("unsupported key derivation '" + params.algorithm + "' (expected scrypt)");
  }
  if (params.salt.size() < 16) throw CryptoError("key derivation salt is too short");
  Bytes out(kKeySize);
  std::uint64_t maxmem = 128ULL * params.n * params.r * params.p + (64ULL << 20);
  if (EVP_PBE_scrypt(passphrase.data(), passphrase.size(), params.salt.data(), params.salt.size(),
                     params.n, params.r, params.p, maxmem, out.data(), out.size()) != 1) {
    throw CryptoError("scrypt key derivation failed (N=" + std::to_string(params.n) +
                      ", r=" + std::to_string(params.r) + ", p=" + std::to_string(params.p) + ")");
  }
  return Key(std::move(out));
}

Bytes HmacSha256(ByteView key, ByteView data) {
  Bytes out(32);
  unsigned int len = 0;
  if (HMAC(EVP_sha256(), key.data(), static_cast<int>(key.size()), data.data(), data.size(),
           out.data(), &len) == nullptr) {
    throw CryptoError("HMAC-SHA256 failed");
  }
  return out;
}

std::string KeyCheck(const Key& key) {
  return HexEncode(HmacSha256(key.bytes(), AsBytes("gravl-dr key check v1")));
}

std::unique_ptr<Sink> MakeEncryptor(const Key& key, Sink& next, std::size_t chunk_size) {
  if (chunk_size == 0 || chunk_size > kMaxChunk) throw CryptoError("invalid encryption chunk");
  return std::make_unique<Encryptor>(key, next, chunk_size);
}

std::unique_ptr<Sink> MakeDecryptor(const Key& key, Sink& next, std::string what) {
  return std::make_unique<Decryptor>(key, next, std::move(what));
}

std::uint64_t EncryptedSize(std::uint64_t n, std::size_t chunk_size) {
  std::uint64_t chunks = n / chunk_size + 1;
  if (n > 0 && n % chunk_size == 0) chunks = n / chunk_size;
  return kEncryptionHeaderSize + n + chunks * kGcmTagSize;
}

}  // namespace gravl::io
