#include "repo/metadata.h"

#include <algorithm>

#include "common/error.h"
#include "io/hash.h"

namespace gravl::repo {

namespace {
constexpr std::string_view kChecksumStart = "{\"checksum\":\"";
constexpr std::size_t kPrettyLimit = 1 << 20;
}  // namespace

// Small documents are written indented, for people; large ones (manifests of backups with
// many files) compact, with the checksum first so that readers can verify the text without
// rebuilding it, and without a second copy of the document in memory.
std::string SerializeMetadata(nlohmann::json doc) {
  doc.erase("checksum");
  std::string body = doc.dump();
  std::string checksum = io::Sha256Hex(AsBytes(body));
  if (body.size() < kPrettyLimit) {
    doc["checksum"] = checksum;
    return doc.dump(2) + "\n";
  }
  doc = nlohmann::json();  // free it before the text grows
  body.replace(0, 1, std::string(kChecksumStart) + checksum + "\",");
  body += '\n';
  return body;
}

void WriteMetadata(storage::Storage& storage, const std::string& key, nlohmann::json doc,
                   const storage::PutOptions& options) {
  std::string text = SerializeMetadata(std::move(doc));
  storage::PutBytes(storage, key, AsBytes(text), options);
}

bool WriteMetadataIfAbsent(storage::Storage& storage, const std::string& key, nlohmann::json doc) {
  std::string text = SerializeMetadata(std::move(doc));
  return storage::PutBytesIfAbsent(storage, key, AsBytes(text));
}

nlohmann::json ParseMetadata(std::string_view text, const std::string& what,
                             const std::vector<std::string>& drop) {
  // Compact form: {"checksum":"<64 hex>",<the rest of the body>}\n, the body being
  // "{" + <the rest>: verified on the text itself.
  std::size_t head = kChecksumStart.size() + 64 + 2;
  bool compact = text.size() > head && text.substr(0, kChecksumStart.size()) == kChecksumStart &&
                 text.substr(head - 2, 2) == "\",";
  if (compact) {
    std::string expected(text.substr(kChecksumStart.size(), 64));
    std::string_view rest = text.substr(head);
    while (!rest.empty() && rest.back() == '\n') rest.remove_suffix(1);
    io::Sha256 sha;
    sha.Update(AsBytes("{"));
    sha.Update(AsBytes(rest));
    std::string actual = sha.FinalHex();
    if (actual != expected) {
      throw IntegrityError(what + ": checksum mismatch (recorded " + expected + ", content " +
                           actual + "): the file was modified or damaged");
    }
    auto keep = [&](int depth, nlohmann::json::parse_event_t event, nlohmann::json& parsed) {
      return !(depth == 1 && event == nlohmann::json::parse_event_t::key &&
               std::find(drop.begin(), drop.end(), parsed.get<std::string>()) != drop.end());
    };
    nlohmann::json doc = nlohmann::json::parse(text, keep, false);
    if (doc.is_discarded() || !doc.is_object()) {
      throw IntegrityError(what + " is not valid JSON: the file is damaged");
    }
    doc.erase("checksum");
    return doc;
  }
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
  for (const auto& key : drop) doc.erase(key);
  return doc;
}

nlohmann::json ReadMetadata(storage::Storage& storage, const std::string& key) {
  Bytes data = storage::GetBytes(storage, key);
  return ParseMetadata(AsChars(data), storage.Describe() + "/" + key);
}

std::optional<nlohmann::json> TryReadMetadata(storage::Storage& storage, const std::string& key) {
  std::optional<Bytes> data = storage::TryGetBytes(storage, key);
  if (!data) return std::nullopt;
  return ParseMetadata(AsChars(*data), storage.Describe() + "/" + key);
}

}  // namespace gravl::repo
