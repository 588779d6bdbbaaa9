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

BackupManifest BackupManifest::FromJson(nlohmann::json doc, const std::string& what) {
  BackupManifest m;
  std::string field;
  auto fail = [&](const std::string& why) {
    throw IntegrityError(what + ": field '" + field + "' " + why +
                         ": the manifest is damaged (take a new backup; other backups are "
                         "not affected)");
  };
  auto get = [&](const nlohmann::json& obj, const char* name) -> const nlohmann::json& {
    field = name;
    auto it = obj.find(name);
    if (it == obj.end()) fail("is missing");
    return *it;
  };
  auto text = [&](const nlohmann::json& obj, const char* name) {
    const auto& v = get(obj, name);
    if (!v.is_string()) fail("is not a string");
    return v.get<std::string>();
  };
  auto number = [&](const nlohmann::json& obj, const char* name) {
    const auto& v = get(obj, name);
    if (!v.is_number_unsigned()) fail("is not a non-negative integer");
    return v.get<std::uint64_t>();
  };
  auto flag = [&](const nlohmann::json& obj, const char* name) {
    const auto& v = get(obj, name);
    if (!v.is_boolean()) fail("is not true or false");
    return v.get<bool>();
  };
  auto time = [&](const nlohmann::json& obj, const char* name) {
    std::string t = text(obj, name);
    try {
      return ParseIso8601(t);
    } catch (const Error&) {
      fail("is not a time ('" + t.substr(0, 40) + "')");
    }
    return SystemTime{};
  };
  auto lsn = [&](const nlohmann::json& obj, const char* name) {
    std::string t = text(obj, name);
    try {
      return Lsn::Parse(t);
    } catch (const Error&) {
      fail("is not an LSN ('" + t.substr(0, 40) + "')");
    }
    return Lsn{};
  };
  if (!doc.is_object())
    throw IntegrityError(what + " is not a JSON object: the manifest is damaged");
  if (doc.contains("format")) m.format = static_cast<int>(number(doc, "format"));
  m.label = text(doc, "label");
  m.type = text(doc, "type");
  if (m.type != "full" && m.type != "logical") fail("is neither 'full' nor 'logical'");
  if (doc.contains("stanza")) m.stanza = text(doc, "stanza");
  if (doc.contains("system_identifier")) m.system_identifier = text(doc, "system_identifier");
  if (doc.contains("pg_version_num"))
    m.pg_version_num = static_cast<int>(number(doc, "pg_version_num"));
  m.start_time = time(doc, "start_time");
  m.stop_time = time(doc, "stop_time");
  std::string compression = text(doc, "compression");
  try {
    m.compression = ParseCompression(compression);
  } catch (const Error&) {
    fail("names an unknown compression ('" + compression.substr(0, 20) + "')");
  }
  if (doc.contains("encrypted")) m.encrypted = flag(doc, "encrypted");
  if (doc.contains("size")) m.size = number(doc, "size");
  if (doc.contains("stored_size")) m.stored_size = number(doc, "stored_size");
  if (m.full()) {
    m.start_lsn = lsn(doc, "start_lsn");
    m.stop_lsn = lsn(doc, "stop_lsn");
    if (m.stop_lsn < m.start_lsn) fail("is before start_lsn");
    std::uint64_t tli = number(doc, "timeline");
    if (tli == 0 || tli > 0xFFFFFFFFu) fail("is not a timeline");
    m.timeline = static_cast<TimelineId>(tli);
    m.stop_timeline = m.timeline;
    if (doc.contains("stop_timeline")) {
      std::uint64_t stop = number(doc, "stop_timeline");
      if (stop == 0 || stop > 0xFFFFFFFFu) fail("is not a timeline");
      m.stop_timeline = static_cast<TimelineId>(stop);
    }
    const auto& wal = get(doc, "wal");
    if (!wal.is_object()) fail("is not an object");
    m.wal_included = flag(wal, "included");
    if (doc.contains("next_xid")) {
      std::string x = text(doc, "next_xid");
      try {
        std::size_t end = 0;
        m.next_xid = std::stoull(x, &end);
        if (end != x.size()) throw std::invalid_argument(x);
      } catch (const std::exception&) {
        field = "next_xid";
        fail("is not a transaction id");
      }
    }
    field = "bundles";
    if (!get(doc, "bundles").is_array()) fail("is not a list");
    if (!get(doc, "backup_manifest").is_object()) fail("is not an object");
  } else {
    if (!get(doc, "databases").is_array()) fail("is not a list");
    if (!get(doc, "globals").is_object()) fail("is not an object");
  }
  m.raw = std::move(doc);
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
    BackupEntry entry{label, std::nullopt, "", ExitCode::kSuccess};
    std::string what = repo.storage().Describe() + "/" + ManifestKey(repo.stanza(), label);
    try {
      entry.manifest = BackupManifest::FromJson(ReadManifestSummary(repo, label), what);
    } catch (const ConfigError&) {
      throw;  // no passphrase for an encrypted stanza: every backup alike, not this one's
    } catch (const Error& e) {
      entry.problem = e.what();
      entry.problem_code = e.code();
    }
    out.push_back(std::move(entry));
  }
  return out;
}
}  // namespace gravl::repo
