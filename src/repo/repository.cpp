#include "repo/repository.h"

#include <spdlog/spdlog.h>

#include <map>
#include <set>

#include "common/error.h"
#include "repo/layout.h"
#include "repo/manifest.h"
#include "repo/metadata.h"
#include "repo/wal.h"

namespace gravl::repo {

Repository::Repository(RepoConfig config, std::unique_ptr<storage::Storage> storage,
                       std::string stanza)
    : config_(std::move(config)), storage_(std::move(storage)), stanza_(std::move(stanza)) {}

std::string Repository::Describe() const {
  return "repository '" + config_.name + "' (" + storage_->Describe() + ")";
}

std::optional<StanzaInfo> Repository::FindStanza() {
  if (info_) return info_;
  std::string key = StanzaKey(stanza_);
  std::optional<nlohmann::json> doc = TryReadMetadata(*storage_, key);
  if (!doc) return std::nullopt;
  info_ = StanzaInfo::FromJson(*doc, storage_->Describe() + "/" + key);
  if (info_->stanza != stanza_) {
    throw IntegrityError(storage_->Describe() + "/" + key + " names stanza '" + info_->stanza +
                         "', not '" + stanza_ + "': the repository layout is damaged");
  }
  return info_;
}

const StanzaInfo& Repository::Stanza() {
  if (!FindStanza()) {
    throw NotFoundError("stanza '" + stanza_ + "' does not exist in " + Describe() +
                        ": run 'gravl-dr stanza-create' first (or check --stanza and the "
                        "repository path)");
  }
  return *info_;
}

void Repository::Unlock(const std::optional<std::string>& passphrase) {
  const StanzaInfo& info = Stanza();
  if (!info.encryption) {
    if (passphrase) {
      throw ConfigError("stanza '" + stanza_ + "' in " + Describe() +
                        " is not encrypted, but a passphrase is configured; remove "
                        "encryption.passphrase_file (a stanza's encryption is fixed when it "
                        "is created)");
    }
    return;
  }
  if (!passphrase) {
    throw ConfigError("stanza '" + stanza_ + "' in " + Describe() +
                      " is encrypted: set encryption.passphrase_file or "
                      "GRAVL_DR_ENCRYPTION_PASSPHRASE");
  }
  key_ = UnlockEncryption(*info.encryption, *passphrase, Describe());
}

io::StaleTemporaries Repository::StaleTemporaries(const std::string& subdir, bool remove) {
  if (config_.type != "posix") return {};
  std::string dir = config_.path + "/" + stanza_ + (subdir.empty() ? "" : "/" + subdir);
  io::StaleTemporaries found = io::FindStaleTemporaries(dir, remove);
  if (remove && !found.paths.empty()) {
    spdlog::info("removed {} temporary file(s) ({}) of writers that are gone from {}",
                 found.paths.size(), FormatBytes(found.bytes), dir);
  }
  return found;
}

ObjectFormat Repository::Format(CompressionType compression, int level) const {
  return ObjectFormat{compression, level, key()};
}

EncryptionInfo NewEncryption(const std::string& passphrase, io::Key& key_out,
                             const io::KdfParams& params) {
  EncryptionInfo info;
  info.kdf = params;
  info.kdf.salt = RandomBytes(32);
  key_out = io::DeriveKey(passphrase, info.kdf);
  info.key_check = io::KeyCheck(key_out);
  return info;
}

io::Key UnlockEncryption(const EncryptionInfo& info, const std::string& passphrase,
                         const std::string& what) {
  if (info.cipher != "aes-256-gcm") {
    throw CryptoError(what + " uses cipher '" + info.cipher + "', which this build does not know");
  }
  io::Key key = io::DeriveKey(passphrase, info.kdf);
  if (!ConstantTimeEqual(AsBytes(io::KeyCheck(key)), AsBytes(info.key_check))) {
    throw CryptoError("wrong passphrase for " + what +
                      ": the key derived from it does not match the stanza's key check "
                      "(check encryption.passphrase_file / GRAVL_DR_ENCRYPTION_PASSPHRASE)");
  }
  return key;
}

std::vector<std::string> ListStanzas(storage::Storage& storage) {
  std::vector<std::string> names;
  for (const auto& prefix : storage::ListPrefixes(storage, "")) {
    std::string name = prefix.substr(0, prefix.size() - 1);
    if (storage.Stat(StanzaKey(name))) names.push_back(name);
  }
  return names;
}

}  // namespace gravl::repo
