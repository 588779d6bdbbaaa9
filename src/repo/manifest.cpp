#include "repo/manifest.h"

#include "common/error.h"
#include "repo/layout.h"
#include "repo/metadata.h"

namespace gravl::repo {

bool IsValidUtf8(std::string_view s) {
  static constexpr std::uint32_t kMin[] = {0, 0x80, 0x800, 0x10000};  // no overlong forms
  std::size_t i = 0;
  while (i < s.size()) {
    auto c = static_cast<unsigned char>(s[i]);
    std::size_t n = 0;  // continuation bytes
    std::uint32_t cp = 0;
    if (c < 0x80) {
      ++i;
      continue;
    } else if ((c & 0xE0) == 0xC0) {
      n = 1, cp = c & 0x1Fu;
    } else if ((c & 0xF0) == 0xE0) {
      n = 2, cp = c & 0x0Fu;
    } else if ((c & 0xF8) == 0xF0) {
      n = 3, cp = c & 0x07u;
    } else {
      return false;
    }
    if (s.size() - i <= n) return false;
    for (std::size_t k = 1; k <= n; ++k) {
      auto cc = static_cast<unsigned char>(s[i + k]);
      if ((cc & 0xC0) != 0x80) return false;
      cp = cp << 6 | (cc & 0x3Fu);
    }
    if (cp < kMin[n] || (cp >= 0xD800 && cp <= 0xDFFF) || cp > 0x10FFFF) return false;
    i += n + 1;
  }
  return true;
}

void SetName(nlohmann::json& entry, const std::string& key, const std::string& raw) {
  if (IsValidUtf8(raw)) {
    entry[key] = raw;
  } else {
    entry[key + "_hex"] = HexEncode(AsBytes(raw));
  }
}

std::string GetName(const nlohmann::json& entry, const std::string& key) {
  if (auto it = entry.find(key); it != entry.end()) return it->get<std::string>();
  Bytes raw = HexDecode(entry.at(key + "_hex").get<std::string>());
  return std::string(raw.begin(), raw.end());
}

void WriteManifest(Repository& repo, const std::string& label, nlohmann::json manifest) {
  std::string text = SerializeMetadata(std::move(manifest));
  ObjectWriter writer(repo.storage(), ManifestKey(repo.stanza(), label),
                      repo.Format(CompressionType::kZstd, 3),
                      storage::PutOptions{.if_absent = true});
  writer.Write(AsBytes(text));
  writer.Finish();
}

namespace {
nlohmann::json ReadManifestDropping(Repository& repo, const std::string& label,
                                    const std::vector<std::string>& drop) {
  if (repo.Stanza().encryption && repo.key() == nullptr) {
    throw ConfigError("stanza '" + repo.stanza() + "' in " + repo.Describe() +
                      " is encrypted: set encryption.passphrase_file or "
                      "GRAVL_DR_ENCRYPTION_PASSPHRASE to read its backups");
  }
  std::string key = ManifestKey(repo.stanza(), label);
  io::BufferSink out;
  // The embedded checksum verifies the content; the object itself has no external hash.
  ReadObject(repo.storage(), key, ObjectFormat{CompressionType::kZstd, 0, repo.key()},
             Expected{"", std::nullopt}, out);
  nlohmann::json m =
      ParseMetadata(AsChars(out.data()), repo.storage().Describe() + "/" + key, drop);
  // Bind the content to its place: a manifest copied over another backup's is refused.
  if (m.value("label", label) != label || m.value("stanza", repo.stanza()) != repo.stanza()) {
    throw IntegrityError(repo.storage().Describe() + "/" + key + " describes backup '" +
                         m.value("label", "") + "' of stanza '" + m.value("stanza", "") +
                         "', not '" + label + "': the repository was tampered with");
  }
  return m;
}
}  // namespace

nlohmann::json ReadManifest(Repository& repo, const std::string& label) {
  return ReadManifestDropping(repo, label, {});
}

nlohmann::json ReadManifestSummary(Repository& repo, const std::string& label) {
  return ReadManifestDropping(repo, label, {"files", "tables"});
}

std::vector<std::string> ListIncompleteBackups(Repository& repo) {
  std::vector<std::string> out;
  std::string prefix = BackupsPrefix(repo.stanza());
  for (const auto& p : storage::ListPrefixes(repo.storage(), prefix)) {
    std::string label = p.substr(prefix.size(), p.size() - prefix.size() - 1);
    if (!repo.storage().Stat(ManifestKey(repo.stanza(), label))) out.push_back(label);
  }
  return out;
}

std::vector<BackupEntry> ListBackups(Repository& repo, std::vector<std::string>* incomplete) {
  std::vector<BackupEntry> out;
  std::string prefix = BackupsPrefix(repo.stanza());
  for (const auto& p : storage::ListPrefixes(repo.storage(), prefix)) {
    std::string label = p.substr(prefix.size(), p.size() - prefix.size() - 1);
    if (!repo.storage().Stat(ManifestKey(repo.stanza(), label))) {
      if (incomplete) incomplete->push_back(label);
      continue;
    }
    out.push_back({label, ReadManifestSummary(repo, label)});
  }
  return out;
}

}  // namespace gravl::repo
