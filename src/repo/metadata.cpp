#include "repo/metadata.h"

#include "common/error.h"
#include "io/hash.h"

namespace gravl::repo {

std::string SerializeMetadata(nlohmann::json doc) {
  doc.erase("checksum");
  std::string body = doc.dump();
  doc["checksum"] = io::Sha256Hex(AsBytes(body));
  return doc.dump(2) + "\n";
}

void WriteMetadata(storage::Storage& storage, const std::string& key, nlohmann::json doc,
                   const storage::PutOptions& options) {
  std::string text = SerializeMetadata(std::move(doc));
  storage::PutBytes(storage, key, AsBytes(text), options);
}

nlohmann::json ParseMetadata(std::string_view text, const std::string& what) {
  nlohmann::json doc = nlohmann::json::parse(text, nullptr, false);
  if (doc.is_discarded() || !doc.is_object()) {
    throw IntegrityError(what + " is not valid JSON: the file is damaged");
  }
  auto it = doc.find("checksum");
  if (it == doc.end() || !it->is_string()) {
    throw IntegrityError(what + " has no checksum: it was not written by gravl-dr or is damaged");
  }
  std::string expected = *it;
  doc.erase(it);
  std::string actual = io::Sha256Hex(AsBytes(doc.dump()));
  if (actual != expected) {
    throw IntegrityError(what + ": checksum mismatch (recorded " + expected + ", content " +
                         actual + "): the file was modified or damaged");
  }
  return doc;
}

nlohmann::json ReadMetadata(storage::Storage& storage, const std::string& key) {
  Bytes data = storage::GetBytes(storage, key);
  return ParseMetadata(AsChars(data), storage.Describe() + "/" + key);
}

}  // namespace gravl::repo
