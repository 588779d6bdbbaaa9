#include "repo/manifest.h"

#include <algorithm>

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

namespace {

// Reads typed fields of a JSON object, naming the field of the first problem.
class Fields {
 public:
  Fields(const nlohmann::json& obj, std::string what, std::string path = "")
      : obj_(obj), what_(std::move(what)), path_(std::move(path)) {
    if (!obj_.is_object()) Fail(path_.empty() ? "(the document)" : path_, "is not an object");
  }
  [[noreturn]] void Fail(const std::string& field, const std::string& why) const {
    throw IntegrityError(what_ + ": field '" + field + "' " + why +
                         ": the manifest is damaged (take a new backup; other backups are "
                         "not affected)");
  }
  std::string Name(const char* key) const { return path_.empty() ? key : path_ + "." + key; }
  bool Has(const char* key) const { return obj_.contains(key); }
  const nlohmann::json& Get(const char* key) const {
    auto it = obj_.find(key);
    if (it == obj_.end()) Fail(Name(key), "is missing");
    return *it;
  }
  std::string Text(const char* key) const {
    const auto& v = Get(key);
    if (!v.is_string()) Fail(Name(key), "is not a string");
    return v.get<std::string>();
  }
  std::string TextOr(const char* key, const std::string& fallback) const {
    return Has(key) ? Text(key) : fallback;
  }
  std::uint64_t Number(const char* key) const {
    const auto& v = Get(key);
    if (!v.is_number_unsigned() && !(v.is_number_integer() && v.get<std::int64_t>() >= 0)) {
      Fail(Name(key), "is not a non-negative integer");
    }
    return v.get<std::uint64_t>();
  }
  bool Flag(const char* key) const {
    const auto& v = Get(key);
    if (!v.is_boolean()) Fail(Name(key), "is not true or false");
    return v.get<bool>();
  }
  SystemTime Time(const char* key) const {
    std::string t = Text(key);
    try {
      return ParseIso8601(t);
    } catch (const Error&) {
      Fail(Name(key), "is not a time ('" + t.substr(0, 40) + "')");
    }
  }
  Lsn LsnOf(const char* key) const {
    std::string t = Text(key);
    try {
      return Lsn::Parse(t);
    } catch (const Error&) {
      Fail(Name(key), "is not an LSN ('" + t.substr(0, 40) + "')");
    }
  }
  TimelineId Timeline(const char* key) const {
    std::uint64_t v = Number(key);
    if (v == 0 || v > 0xFFFFFFFFu) Fail(Name(key), "is not a timeline");
    return static_cast<TimelineId>(v);
  }
  const nlohmann::json& Array(const char* key) const {
    const auto& v = Get(key);
    if (!v.is_array()) Fail(Name(key), "is not a list");
    return v;
  }
  Fields Object(const char* key) const { return Fields(Get(key), what_, Name(key)); }
  Fields Element(const char* key, std::size_t i) const {
    return Fields(Array(key)[i], what_, Name(key) + "[" + std::to_string(i) + "]");
  }
  const std::string& what() const { return what_; }

 private:
  const nlohmann::json& obj_;
  std::string what_;
  std::string path_;
};

bool IsSha256Hex(const std::string& s) {
  return s.size() == 64 && std::all_of(s.begin(), s.end(), [](char c) {
           return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f');
         });
}

ObjectRecord ReadRecord(const Fields& f, bool stored_size) {
  ObjectRecord r;
  r.object = f.Text("object");
  r.sha256 = f.Text("sha256");
  if (!IsSha256Hex(r.sha256)) f.Fail(f.Name("sha256"), "is not a SHA-256");
  r.size = f.Number("size");
  if (stored_size || f.Has("stored_size")) r.stored_size = f.Number("stored_size");
  return r;
}

nlohmann::json RecordJson(const ObjectRecord& r, bool with_stored_size) {
  nlohmann::json j = {{"object", r.object}, {"sha256", r.sha256}, {"size", r.size}};
  if (with_stored_size && r.stored_size) j["stored_size"] = *r.stored_size;
  return j;
}

CompressionType CompressionOf(const Fields& f, const char* key) {
  std::string name = f.Text(key);
  try {
    return ParseCompression(name);
  } catch (const Error&) {
    f.Fail(f.Name(key), "names an unknown compression ('" + name.substr(0, 20) + "')");
  }
}

}  // namespace

Expected ObjectRecord::expected(int format) const {
  // Never empty: that would mean "the content carries its own checksum" and skip verification.
  if (!IsSha256Hex(sha256)) {
    throw IntegrityError("object " + object + ": the manifest records no valid SHA-256 for it");
  }
  Expected e{sha256, size, std::nullopt, ""};
  if (format >= 3) e.stored_size = stored_size;
  return e;
}

BackupManifest BackupManifest::FromJson(const nlohmann::json& doc, const std::string& what) {
  Fields f(doc, what);
  BackupManifest m;
  m.format = f.Has("format") ? static_cast<int>(f.Number("format")) : 1;
  m.label = f.Text("label");
  m.type = f.Text("type");
  if (m.type != "full" && m.type != "logical") f.Fail("type", "is neither 'full' nor 'logical'");
  if (m.full() && m.format > kManifestFormat) {
    throw ConflictError(what + " has manifest format " + std::to_string(m.format) +
                        ", newer than this gravl-dr understands (" +
                        std::to_string(kManifestFormat) + "): upgrade gravl-dr");
  }
  m.stanza = f.TextOr("stanza", "");
  m.system_identifier = f.TextOr("system_identifier", "");
  if (f.Has("pg_version_num")) m.pg_version_num = static_cast<int>(f.Number("pg_version_num"));
  m.created_by = f.TextOr("created_by", "");
  m.start_time = f.Time("start_time");
  m.stop_time = f.Time("stop_time");
  m.compression = CompressionOf(f, "compression");
  if (f.Has("encrypted")) m.encrypted = f.Flag("encrypted");
  if (f.Has("size")) m.size = f.Number("size");
  if (f.Has("stored_size")) m.stored_size = f.Number("stored_size");

  if (!m.full()) {
    for (std::size_t i = 0; i < f.Array("databases").size(); ++i) {
      Fields d = f.Element("databases", i);
      m.databases.push_back({d.Text("name"), ReadRecord(d, false)});
    }
    m.globals = ReadRecord(f.Object("globals"), false);
    return m;
  }
  const bool v3 = m.format >= 3;
  m.start_lsn = f.LsnOf("start_lsn");
  m.stop_lsn = f.LsnOf("stop_lsn");
  if (m.stop_lsn < m.start_lsn) f.Fail("stop_lsn", "is before start_lsn");
  m.timeline = f.Timeline("timeline");
  m.stop_timeline = f.Has("stop_timeline") ? f.Timeline("stop_timeline") : m.timeline;
  if (f.Has("from_standby")) m.from_standby = f.Flag("from_standby");
  Fields wal = f.Object("wal");
  m.wal_included = wal.Flag("included");
  m.wal_start_segment = wal.TextOr("start_segment", "");
  m.wal_stop_segment = wal.TextOr("stop_segment", "");
  if (f.Has("next_xid")) {
    std::string x = f.Text("next_xid");
    std::size_t end = 0;
    try {
      m.next_xid = std::stoull(x, &end);
    } catch (const std::exception&) {
      end = std::string::npos;
    }
    if (end != x.size()) f.Fail("next_xid", "is not a transaction id");
  }
  if (f.Has("file_count")) m.file_count = f.Number("file_count");
  if (f.Has("tablespaces")) {
    for (std::size_t i = 0; i < f.Array("tablespaces").size(); ++i) {
      Fields t = f.Element("tablespaces", i);
      TablespaceRecord r;
      std::string oid = t.Text("oid");
      std::uint64_t value = 0;
      try {
        std::size_t end = 0;
        value = std::stoull(oid, &end);
        if (end != oid.size()) value = 0;
      } catch (const std::exception&) {
        value = 0;
      }
      if (value == 0 || value > 0xFFFFFFFFu) t.Fail(t.Name("oid"), "is not an OID");
      r.oid = static_cast<std::uint32_t>(value);
      r.location = t.Text("location");
      r.name = t.TextOr("name", "");
      m.tablespaces.push_back(std::move(r));
    }
  }
  for (std::size_t i = 0; i < f.Array("bundles").size(); ++i) {
    m.bundles.push_back(ReadRecord(f.Element("bundles", i), v3));
  }
  m.backup_manifest = ReadRecord(f.Object("backup_manifest"), v3);
  if (m.format >= 2) {
    Fields l = f.Object("file_list");
    FileListRecord r;
    r.object = ReadRecord(l, v3);
    r.compression = l.Has("compression") ? CompressionOf(l, "compression") : CompressionType::kZstd;
    r.entries = l.Number("entries");
    m.file_list = std::move(r);
  }
  if (f.Has("tables")) {
    std::vector<TableRecord> tables;
    for (std::size_t i = 0; i < f.Array("tables").size(); ++i) {
      Fields t = f.Element("tables", i);
      tables.push_back({t.Text("database"), t.Text("schema"), t.Text("table"), t.Number("rows"),
                        t.Has("exact") ? t.Flag("exact") : true});
    }
    m.tables = std::move(tables);
  }
  return m;
}

nlohmann::json BackupManifest::ToJson() const {
  nlohmann::json j = {{"format", format},
                      {"label", label},
                      {"type", type},
                      {"stanza", stanza},
                      {"system_identifier", system_identifier},
                      {"pg_version_num", pg_version_num},
                      {"created_by", created_by},
                      {"start_time", FormatIso8601(start_time)},
                      {"stop_time", FormatIso8601(stop_time)},
                      {"compression", CompressionName(compression)},
                      {"encrypted", encrypted},
                      {"size", size},
                      {"stored_size", stored_size}};
  if (!full()) {
    nlohmann::json dbs = nlohmann::json::array();
    for (const auto& d : databases) {
      nlohmann::json e = RecordJson(d.object, true);
      e["name"] = d.name;
      dbs.push_back(std::move(e));
    }
    j["databases"] = std::move(dbs);
    j["globals"] = RecordJson(globals, false);
    return j;
  }
  const bool v3 = format >= 3;
  j["start_lsn"] = start_lsn.ToString();
  j["stop_lsn"] = stop_lsn.ToString();
  j["timeline"] = timeline;
  j["stop_timeline"] = stop_timeline;
  j["from_standby"] = from_standby;
  j["wal"] = {{"included", wal_included},
              {"start_segment", wal_start_segment},
              {"stop_segment", wal_stop_segment}};
  j["file_count"] = file_count;
  nlohmann::json ts = nlohmann::json::array();
  for (const auto& t : tablespaces) {
    nlohmann::json e = {{"oid", std::to_string(t.oid)}, {"location", t.location}};
    if (!t.name.empty()) e["name"] = t.name;
    ts.push_back(std::move(e));
  }
  j["tablespaces"] = std::move(ts);
  nlohmann::json bundle_list = nlohmann::json::array();
  for (const auto& b : bundles) bundle_list.push_back(RecordJson(b, v3));
  j["bundles"] = std::move(bundle_list);
  j["backup_manifest"] = RecordJson(backup_manifest, v3);
  nlohmann::json table_list = nlohmann::json::array();
  if (tables) {
    for (const auto& t : *tables) {
      table_list.push_back({{"database", t.database},
                            {"schema", t.schema},
                            {"table", t.table},
                            {"rows", t.rows},
                            {"exact", t.exact}});
    }
  }
  j["tables"] = std::move(table_list);
  if (file_list) {
    nlohmann::json l = RecordJson(file_list->object, v3);
    l["compression"] = CompressionName(file_list->compression);
    l["entries"] = file_list->entries;
    j["file_list"] = std::move(l);
    // Where format 1 had the list: versions that only know format 1 fail on this string
    // instead of finding no files to restore or verify.
    j["files"] =
        "in the object file_list (manifest format 2 and later): upgrade gravl-dr to read it";
  }
  if (next_xid) j["next_xid"] = std::to_string(*next_xid);
  return j;
}

void WriteManifest(Repository& repo, const BackupManifest& manifest) {
  std::string text = SerializeMetadata(manifest.ToJson());
  ObjectWriter writer(repo.storage(), ManifestKey(repo.stanza(), manifest.label),
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

std::string ManifestWhat(Repository& repo, const std::string& label) {
  return repo.storage().Describe() + "/" + ManifestKey(repo.stanza(), label);
}
}  // namespace

nlohmann::json ReadManifestDocument(Repository& repo, const std::string& label) {
  return ReadManifestDropping(repo, label, {});
}

BackupManifest ReadManifest(Repository& repo, const std::string& label) {
  return BackupManifest::FromJson(ReadManifestDropping(repo, label, {"files"}),
                                  ManifestWhat(repo, label));
}

BackupManifest ReadManifestSummary(Repository& repo, const std::string& label) {
  return BackupManifest::FromJson(ReadManifestDropping(repo, label, {"files", "tables"}),
                                  ManifestWhat(repo, label));
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

std::vector<BackupEntry> ListBackups(Repository& repo, std::vector<std::string>* incomplete,
                                     const std::map<std::string, BackupEntry>* known) {
  std::vector<BackupEntry> out;
  std::string prefix = BackupsPrefix(repo.stanza());
  for (const auto& p : storage::ListPrefixes(repo.storage(), prefix)) {
    std::string label = p.substr(prefix.size(), p.size() - prefix.size() - 1);
    if (known != nullptr) {
      // A manifest is write-once: a summary read before is still true.
      auto it = known->find(label);
      if (it != known->end() && it->second.ok()) {
        out.push_back(it->second);
        continue;
      }
    }
    if (!repo.storage().Stat(ManifestKey(repo.stanza(), label))) {
      if (incomplete) incomplete->push_back(label);
      continue;
    }
    BackupEntry entry{label, std::nullopt, "", ExitCode::kSuccess};
    try {
      entry.manifest = ReadManifestSummary(repo, label);
    } catch (const ConfigError&) {
      throw;  // no passphrase for an encrypted stanza: every backup alike, not this one's
    } catch (const StorageError&) {
      throw;  // the store failed to answer: that says nothing of this backup
    } catch (const Error& e) {
      entry.problem = e.what();
      entry.problem_code = e.code();
    }
    out.push_back(std::move(entry));
  }
  return out;
}

}  // namespace gravl::repo
