#pragma once
// One configured repository seen through one stanza: its storage, its stanza.json, and the
// key that unlocks its encrypted objects.

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "common/config.h"
#include "common/lsn.h"
#include "io/crypto.h"
#include "io/file.h"
#include "repo/object_io.h"
#include "repo/stanza.h"
#include "storage/storage.h"

namespace gravl::repo {

class Repository {
 public:
  Repository(RepoConfig config, std::unique_ptr<storage::Storage> storage, std::string stanza);

  const RepoConfig& config() const { return config_; }
  storage::Storage& storage() { return *storage_; }
  const std::string& stanza() const { return stanza_; }
  std::string Describe() const;  // "repository 'local' (posix:/var/lib/...)"

  // nullopt when the stanza does not exist here; verified stanza.json otherwise.
  std::optional<StanzaInfo> FindStanza();
  // Like FindStanza, but throws NotFoundError telling to run stanza-create.
  const StanzaInfo& Stanza();

  // Derives and checks the key when the stanza is encrypted. Throws ConfigError when a
  // passphrase is needed but not configured (or configured for an unencrypted stanza),
  // CryptoError when it is wrong.
  void Unlock(const std::optional<std::string>& passphrase);
  // Format for new objects: configured compression, and the key if encrypted.
  ObjectFormat Format(CompressionType compression, int level) const;
  const io::Key* key() const { return key_.empty() ? nullptr : &key_; }

  // Local repositories: temporary files of writers that are gone (killed mid-write) under
  // the stanza's `subdir` ("" for all of it), removed when `remove`. Nothing for S3, whose
  // unfinished uploads are never visible and are aborted by their writers.
  io::StaleTemporaries StaleTemporaries(const std::string& subdir, bool remove);

 private:
  RepoConfig config_;
  std::unique_ptr<storage::Storage> storage_;
  std::string stanza_;
  std::optional<StanzaInfo> info_;
  io::Key key_;
};

// Builds new encryption settings: fresh salt, default KDF cost, key check.
EncryptionInfo NewEncryption(const std::string& passphrase, io::Key& key_out,
                             const io::KdfParams& params = {});
// Throws CryptoError unless passphrase matches; returns the derived key.
io::Key UnlockEncryption(const EncryptionInfo& info, const std::string& passphrase,
                         const std::string& what);

// Stanza names present in a storage ("<name>/stanza.json").
std::vector<std::string> ListStanzas(storage::Storage& storage);

}  // namespace gravl::repo
