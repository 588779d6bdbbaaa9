#pragma once
// stanza.json: which PostgreSQL cluster a stanza belongs to, and how it is encrypted.

#include <cstdint>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>

#include "io/crypto.h"

namespace gravl::repo {

struct EncryptionInfo {
  std::string cipher = "aes-256-gcm";
  io::KdfParams kdf;
  std::string key_check;  // hex HMAC of a fixed string under the derived key
};

struct StanzaInfo {
  int format = 1;
  std::string stanza;
  std::string system_identifier;  // decimal, as PostgreSQL prints it (uint64)
  int pg_version_num = 0;         // e.g. 150020
  int pg_major = 0;               // e.g. 15
  std::uint64_t wal_segment_size = 0;
  std::string created_at;
  std::string created_by;
  std::optional<EncryptionInfo> encryption;

  nlohmann::json ToJson() const;
  // Throws IntegrityError naming `what` when a field is missing or of the wrong type, and
  // ConflictError when the format is newer than this build understands.
  static StanzaInfo FromJson(const nlohmann::json& doc, const std::string& what);
};

}  // namespace gravl::repo
