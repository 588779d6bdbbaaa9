#include "repo/manifest.h"

#include "common/error.h"
#include "repo/layout.h"
#include "repo/metadata.h"

namespace gravl::repo {

void WriteManifest(Repository& repo, const std::string& label, const nlohmann::json& manifest) {
  std::string text = SerializeMetadata(manifest);
  ObjectWriter writer(repo.storage(), ManifestKey(repo.stanza(), label),
                      repo.Format(CompressionType::kZstd, 3),
                      storage::PutOptions{.if_absent = true});
  writer.Write(AsBytes(text));
  writer.Finish();
}

nlohmann::json ReadManifest(Repository& repo, const std::string& label) {
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
  nlohmann::json m = ParseMetadata(AsChars(out.data()), repo.storage().Describe() + "/" + key);
  // Bind the content to its place: a manifest copied over another backup's is refused.
  if (m.value("label", label) != label || m.value("stanza", repo.stanza()) != repo.stanza()) {
    throw IntegrityError(repo.storage().Describe() + "/" + key + " describes backup '" +
                         m.value("label", "") + "' of stanza '" + m.value("stanza", "") +
                         "', not '" + label + "': the repository was tampered with");
  }
  return m;
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
    out.push_back({label, ReadManifest(repo, label)});
  }
  return out;
}

}  // namespace gravl::repo
