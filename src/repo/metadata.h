#pragma once
// Small JSON metadata objects (stanza.json, manifests, reports) stored with an embedded
// SHA-256 of their content, so that every metadata byte read back is verified.
//
// Stored form: the JSON object with one extra member "checksum", the SHA-256 (hex) of the
// object serialized without it (nlohmann::json's canonical, key-sorted dump).

#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "storage/storage.h"

namespace gravl::repo {

// Writes `doc` (an object without "checksum") under key.
void WriteMetadata(storage::Storage& storage, const std::string& key, nlohmann::json doc,
                   const storage::PutOptions& options = {});
// The same unless the key exists: false (nothing written) when it does.
bool WriteMetadataIfAbsent(storage::Storage& storage, const std::string& key, nlohmann::json doc);

// Reads and verifies; throws NotFoundError, or IntegrityError naming the key when the
// content is not JSON or its checksum does not match. Returns the doc without "checksum".
nlohmann::json ReadMetadata(storage::Storage& storage, const std::string& key);
// The same; nullopt when there is no such object.
std::optional<nlohmann::json> TryReadMetadata(storage::Storage& storage, const std::string& key);

// The verification alone, for bytes obtained elsewhere; `what` names them in errors. Members
// named in `drop` (top level) are left out of the result; in the compact form they are not
// even built (a summary of a manifest with 200,000 files needs no memory for them).
nlohmann::json ParseMetadata(std::string_view text, const std::string& what,
                             const std::vector<std::string>& drop = {});
std::string SerializeMetadata(nlohmann::json doc);

}  // namespace gravl::repo
