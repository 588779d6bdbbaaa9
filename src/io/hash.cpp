#include "io/hash.h"

#include <openssl/evp.h>

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

void HashSink::Write(ByteView data) {
  sha_.Update(data);
  next_.Write(data);
}

void HashSink::Finish() {
  hex_ = sha_.FinalHex();
  next_.Finish();
}

void VerifySink::Write(ByteView data) {
  sha_.Update(data);
  next_.Write(data);
}

void VerifySink::Finish() {
  std::string actual = sha_.FinalHex();
  if (actual != expected_) {
    throw IntegrityError(what_ + ": SHA-256 mismatch (expected " + expected_ + ", got " + actual +
                         "); the stored copy is corrupt -- restore it from another "
                         "repository or take a new backup");
  }
  next_.Finish();
}

}  // namespace gravl::io
