#include "repo/stanza.h"

#include "common/error.h"
#include "repo/layout.h"

namespace gravl::repo {

nlohmann::json StanzaInfo::ToJson() const {
  nlohmann::json doc = {
      {"format", format},
      {"stanza", stanza},
      {"system_identifier", system_identifier},
      {"pg_version_num", pg_version_num},
      {"pg_major", pg_major},
      {"wal_segment_size", wal_segment_size},
      {"created_at", created_at},
      {"created_by", created_by},
  };
  if (encryption) {
    doc["encryption"] = {
        {"cipher", encryption->cipher},
        {"kdf",
         {{"algorithm", encryption->kdf.algorithm},
          {"n", encryption->kdf.n},
          {"r", encryption->kdf.r},
          {"p", encryption->kdf.p},
          {"salt", HexEncode(encryption->kdf.salt)}}},
        {"key_check", encryption->key_check},
    };
  } else {
    doc["encryption"] = nullptr;
  }
  return doc;
}

StanzaInfo StanzaInfo::FromJson(const nlohmann::json& doc, const std::string& what) {
  StanzaInfo s;
  try {
    s.format = doc.at("format").get<int>();
    if (s.format > kRepoFormat) {
      throw ConflictError(what + " uses repository format " + std::to_string(s.format) +
                          ", newer than this gravl-dr understands (" + std::to_string(kRepoFormat) +
                          "): upgrade gravl-dr");
    }
    s.stanza = doc.at("stanza").get<std::string>();
    s.system_identifier = doc.at("system_identifier").get<std::string>();
    s.pg_version_num = doc.at("pg_version_num").get<int>();
    s.pg_major = doc.at("pg_major").get<int>();
    s.wal_segment_size = doc.at("wal_segment_size").get<std::uint64_t>();
    s.created_at = doc.at("created_at").get<std::string>();
    s.created_by = doc.at("created_by").get<std::string>();
    const auto& enc = doc.at("encryption");
    if (!enc.is_null()) {
      EncryptionInfo e;
      e.cipher = enc.at("cipher").get<std::string>();
      const auto& kdf = enc.at("kdf");
      e.kdf.algorithm = kdf.at("algorithm").get<std::string>();
      e.kdf.n = kdf.at("n").get<std::uint64_t>();
      e.kdf.r = kdf.at("r").get<std::uint32_t>();
      e.kdf.p = kdf.at("p").get<std::uint32_t>();
      e.kdf.salt = HexDecode(kdf.at("salt").get<std::string>());
      e.key_check = enc.at("key_check").get<std::string>();
      s.encryption = std::move(e);
    }
  } catch (const nlohmann::json::exception& e) {
    throw IntegrityError(what + " is missing a field or has a wrong type: " + e.what());
  } catch (const std::invalid_argument& e) {
    throw IntegrityError(what + " has an invalid value: " + e.what());
  }
  return s;
}

}  // namespace gravl::repo
