#include "io/hash.h"

#include <openssl/evp.h>
#include <xxhash.h>

#include "common/error.h"

namespace gravl::io {

struct Sha256::Impl {
  EVP_MD_CTX* ctx = nullptr;
  bool final = false;
};

Sha256::Sha256() : impl_(std::make_unique<Impl>()) {
  impl_->ctx = EVP_MD_CTX_new();
  if (impl_->ctx == nullptr || EVP_DigestInit_ex(impl_->ctx, EVP_sha256(), nullptr) != 1) {
    EVP_MD_CTX_free(impl_->ctx);
    throw CryptoError("cannot initialize SHA-256");
  }
}

Sha256::~Sha256() { EVP_MD_CTX_free(impl_->ctx); }

void Sha256::Update(ByteView data) {
  if (impl_->final) throw Error(ExitCode::kError, "SHA-256 updated after finalization");
  if (!data.empty() && EVP_DigestUpdate(impl_->ctx, data.data(), data.size()) != 1) {
    throw CryptoError("SHA-256 update failed");
  }
}

std::string Sha256::FinalHex() {
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  if (EVP_DigestFinal_ex(impl_->ctx, md, &len) != 1) throw CryptoError("SHA-256 final failed");
  impl_->final = true;
  return HexEncode(ByteView(md, len));
}

std::string Sha256Hex(ByteView data) {
  Sha256 sha;
  sha.Update(data);
  return sha.FinalHex();
}

struct Xxh128::Impl {
  XXH3_state_t* state = nullptr;
};

Xxh128::Xxh128() : impl_(std::make_unique<Impl>()) {
  impl_->state = XXH3_createState();
  if (impl_->state == nullptr || XXH3_128bits_reset(impl_->state) != XXH_OK) {
    XXH3_freeState(impl_->state);
    throw Error(ExitCode::kError, "cannot initialize XXH128");
  }
}

Xxh128::~Xxh128() { XXH3_freeState(impl_->state); }

void Xxh128::Update(ByteView data) {
  if (!data.empty() && XXH3_128bits_update(impl_->state, data.data(), data.size()) != XXH_OK) {
    throw Error(ExitCode::kError, "XXH128 update failed");
  }
}

std::string Xxh128::FinalHex() {
  XXH128_canonical_t canonical;
  XXH128_canonicalFromHash(&canonical, XXH3_128bits_digest(impl_->state));
  return HexEncode(ByteView(canonical.digest, sizeof canonical.digest));
}

const char* DigestName(DigestType type) {
  return type == DigestType::kSha256 ? "SHA-256" : "XXH128";
}

Digest::Digest(DigestType type) : type_(type) {
  if (type == DigestType::kSha256) {
    sha256_ = std::make_unique<Sha256>();
  } else {
    xxh128_ = std::make_unique<Xxh128>();
  }
}

void Digest::Update(ByteView data) {
  if (sha256_) {
    sha256_->Update(data);
  } else {
    xxh128_->Update(data);
  }
}

std::string Digest::FinalHex() { return sha256_ ? sha256_->FinalHex() : xxh128_->FinalHex(); }

std::string DigestHex(DigestType type, ByteView data) {
  Digest d(type);
  d.Update(data);
  return d.FinalHex();
}

void HashSink::Write(ByteView data) {
  sha_.Update(data);
  next_.Write(data);
}

void HashSink::Finish() {
  hex_ = sha_.FinalHex();
  next_.Finish();
}

void VerifySink::Write(ByteView data) {
  digest_.Update(data);
  next_.Write(data);
}

void VerifySink::Finish() {
  std::string actual = digest_.FinalHex();
  if (actual != expected_) {
    throw IntegrityError(what_ + ": " + DigestName(digest_.type()) + " mismatch (expected " +
                         expected_ + ", got " + actual +
                         "); the stored copy is corrupt -- restore it from another "
                         "repository or take a new backup");
  }
  next_.Finish();
}

}  // namespace gravl::io
