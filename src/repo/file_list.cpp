#include "repo/file_list.h"

#include <algorithm>
#include <charconv>
#include <cstdio>
#include <cstring>
#include <map>

#include "common/error.h"
#include "repo/manifest.h"

namespace gravl::repo {

namespace {

constexpr const char* kFileListObject = "file_list";
constexpr std::size_t kWriteBatch = 256 * 1024;
constexpr std::size_t kNameBlock = 64 * 1024;
// Names are at most a few kB (MAXPGPATH): a longer line is damage, not worth buffering.
constexpr std::size_t kMaxLine = 1 << 20;

const char* TypeName(FileEntry::Type type) {
  switch (type) {
    case FileEntry::Type::kDir:
      return "dir";
    case FileEntry::Type::kLink:
      return "link";
    case FileEntry::Type::kFile:
      break;
  }
  return "file";
}

// "files/000012" -> 12; only the names ObjectName() writes.
std::uint32_t ParseObjectName(const std::string& name, bool bundle, const std::string& what) {
  std::string_view prefix = bundle ? "bundles/" : "files/";
  std::uint32_t n = 0;
  if (name.starts_with(prefix)) {
    const char* first = name.data() + prefix.size();
    auto [end, ec] = std::from_chars(first, name.data() + name.size(), n);
    if (ec == std::errc() && end == name.data() + name.size() && ObjectName(bundle, n) == name) {
      return n;
    }
  }
  throw IntegrityError(what + ": '" + name + "' is not a " + (bundle ? "bundle" : "file") +
                       " object name");
}

// A relative path that stays inside its directory: not absolute, no ".." component, no NUL.
// ("./pg_wal/archive_status" is how the server names some directories.)
bool IsSafeRelativePath(std::string_view path) {
  if (path.starts_with('/') || path.find('\0') != std::string_view::npos) return false;
  for (;;) {
    std::size_t slash = path.find('/');
    if (path.substr(0, slash) == "..") return false;
    if (slash == std::string_view::npos) return true;
    path.remove_prefix(slash + 1);
  }
}

std::uint32_t ParseOid(const std::string& text, const std::string& what) {
  std::uint32_t oid = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), oid);
  if (ec != std::errc() || end != text.data() + text.size() || oid == 0) {
    throw IntegrityError(what + ": tablespace '" + text + "' is not an OID");
  }
  return oid;
}

// Parses JSON Lines into entries as the bytes arrive. Whatever it built is only handed out
// after Finish(), which ReadObject calls once the object's SHA-256 and size are verified.
class FileListParser final : public io::Sink {
 public:
  FileListParser(FileList& out, std::string what) : out_(out), what_(std::move(what)) {}
  void Write(ByteView data) override {
    lines_.Feed(AsChars(data), [this](std::string_view line) { Line(line); });
    if (lines_.partial().size() > kMaxLine) {
      throw IntegrityError(what_ + ": line " + std::to_string(line_ + 1) + " is longer than " +
                           std::to_string(kMaxLine) + " bytes: the file list is damaged");
    }
  }
  void Finish() override {
    if (!lines_.partial().empty()) throw IntegrityError(what_ + " ends inside an entry");
    finished_ = true;
  }
  bool finished() const { return finished_; }

 private:
  void Line(std::string_view line) {
    ++line_;
    nlohmann::json json = nlohmann::json::parse(line, nullptr, false);
    if (json.is_discarded() || !json.is_object()) {
      throw IntegrityError(what_ + ": line " + std::to_string(line_) + " is not a JSON object");
    }
    try {
      AddFromJson(out_, json, what_);
    } catch (const IntegrityError& e) {
      throw IntegrityError(std::string(e.what()) + " (line " + std::to_string(line_) + ")");
    }
  }
  FileList& out_;
  std::string what_;
  io::LineSplitter lines_;
  std::size_t line_ = 0;
  bool finished_ = false;
};

}  // namespace

std::string ObjectName(bool bundle, std::uint32_t number) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%s/%06u", bundle ? "bundles" : "files", number);
  return buf;
}

std::string FileEntry::ObjectName() const { return repo::ObjectName(bundled, object); }

std::string_view FileList::Keep(std::string_view name) {
  if (name.empty()) return {};
  if (name.size() > block_left_) {
    std::size_t size = std::max(kNameBlock, name.size());
    blocks_.push_back(std::make_unique<char[]>(size));
    block_next_ = blocks_.back().get();
    block_left_ = size;
  }
  char* at = block_next_;
  std::memcpy(at, name.data(), name.size());
  block_next_ += name.size();
  block_left_ -= name.size();
  return {at, name.size()};
}

FileEntry& FileList::Add(const FileEntry& entry) {
  FileEntry& e = entries_.emplace_back(entry);
  e.path = Keep(entry.path);
  e.target = Keep(entry.target);
  return e;
}

namespace {
// Lowercase hex of exactly out.size() bytes into `out`; else IntegrityError naming `kind`.
void SetHex(std::span<std::uint8_t> out, std::string_view hex, const char* kind) {
  if (hex.size() != 2 * out.size() ||
      hex.find_first_not_of("0123456789abcdef") != std::string_view::npos) {
    throw IntegrityError("'" + std::string(hex.substr(0, 80)) + "' is not " + kind);
  }
  Bytes raw = HexDecode(hex);
  std::copy(raw.begin(), raw.end(), out.begin());
}
}  // namespace

std::string FileEntry::Sha256Hex() const { return HexEncode(sha256); }
void FileEntry::SetSha256Hex(std::string_view hex) { SetHex(sha256, hex, "a SHA-256"); }
std::string FileEntry::Xxh128Hex() const { return HexEncode(xxh128); }
void FileEntry::SetXxh128Hex(std::string_view hex) { SetHex(xxh128, hex, "an XXH128"); }

ObjectFormat BackupObjectFormat(ObjectFormat format, int manifest_format) {
  format.sha256_of_stored = manifest_format >= 3;
  return format;
}

std::string ManifestPath(const FileEntry& e) {
  std::string path(e.path);
  return e.tablespace == 0 ? path : "pg_tblspc/" + std::to_string(e.tablespace) + "/" + path;
}

const FileEntry* ManifestPathLookup::Find(const std::string& path) {
  for (std::size_t i = cursor_; i < std::min(files_.size(), cursor_ + kLookAhead); ++i) {
    const FileEntry& f = files_[i];
    if (f.type == FileEntry::Type::kFile &&
        (f.tablespace == 0 ? f.path == path : ManifestPath(f) == path)) {
      cursor_ = i + 1;
      return &f;
    }
  }
  if (!indexed_) {
    indexed_ = true;
    for (std::size_t i = 0; i < files_.size(); ++i) {
      if (files_[i].type == FileEntry::Type::kFile) by_path_.emplace(ManifestPath(files_[i]), i);
    }
  }
  auto it = by_path_.find(path);
  return it == by_path_.end() ? nullptr : &files_[it->second];
}

std::vector<ObjectToRead> PlanObjects(const FileList& files,
                                      const std::vector<ObjectRecord>& bundles,
                                      const std::function<void(const FileEntry&)>& orphan) {
  std::vector<ObjectToRead> out;
  std::map<std::string, std::size_t> bundle_at;
  const bool v3 = files.format() >= 3;
  for (const auto& b : bundles) {
    bundle_at[b.object] = out.size();
    ObjectToRead& o = out.emplace_back();
    o.object = b.object;
    o.size = b.size;
    o.sha256 = b.sha256;
    if (v3) o.stored_size = b.stored_size;
  }
  for (std::size_t i = 0; i < files.size(); ++i) {
    const FileEntry& f = files[i];
    if (f.type != FileEntry::Type::kFile) continue;
    if (!f.bundled) {
      ObjectToRead& o = out.emplace_back();
      o.object = f.ObjectName();
      o.size = f.size;
      o.sha256 = f.Sha256Hex();
      if (v3) {
        o.stored_size = f.stored_size;
        o.xxh128 = f.Xxh128Hex();
      }
      o.file = &f;
    } else if (auto it = bundle_at.find(f.ObjectName()); it != bundle_at.end()) {
      out[it->second].parts.push_back(static_cast<std::uint32_t>(i));
    } else {
      orphan(f);
    }
  }
  return out;
}

nlohmann::json ToJson(const FileEntry& e, int format) {
  nlohmann::json j = {{"type", TypeName(e.type)}, {"mode", e.mode}, {"mtime", e.mtime}};
  SetName(j, "path", std::string(e.path));
  if (e.tablespace != 0) j["tablespace"] = std::to_string(e.tablespace);
  switch (e.type) {
    case FileEntry::Type::kDir:
      break;
    case FileEntry::Type::kLink:
      SetName(j, "target", std::string(e.target));
      break;
    case FileEntry::Type::kFile:
      j["size"] = e.size;
      if (format >= 3) {
        j["xxh128"] = e.Xxh128Hex();
      } else {
        j["sha256"] = e.Sha256Hex();
      }
      if (e.bundled) {
        j["bundle"] = e.ObjectName();
        j["offset"] = e.offset;
      } else {
        j["object"] = e.ObjectName();
        j["stored_size"] = e.stored_size;
        if (format >= 3) j["sha256"] = e.Sha256Hex();  // of the stored bytes
      }
      break;
  }
  return j;
}

FileEntry& AddFromJson(FileList& list, const nlohmann::json& j, const std::string& what) {
  FileEntry e;
  std::string path, target;  // e's names point here until the list has copies
  try {
    const std::string& type = j.at("type").get_ref<const std::string&>();
    path = GetName(j, "path");
    if (!IsSafeRelativePath(path)) {
      throw IntegrityError(what + ": path '" + path.substr(0, 200) +
                           "' leads outside its directory: the file list is damaged or forged");
    }
    e.path = path;
    e.mode = j.at("mode").get<std::uint32_t>();
    e.mtime = j.value("mtime", std::int64_t{0});
    if (auto it = j.find("tablespace"); it != j.end()) {
      e.tablespace = ParseOid(it->get<std::string>(), what);
    }
    if (type == "dir") {
      e.type = FileEntry::Type::kDir;
    } else if (type == "link") {
      e.type = FileEntry::Type::kLink;
      target = GetName(j, "target");
      e.target = target;
    } else if (type == "file") {
      e.type = FileEntry::Type::kFile;
      e.size = j.at("size").get<std::uint64_t>();
      const bool v3 = list.format() >= 3;
      if (v3) e.SetXxh128Hex(j.at("xxh128").get_ref<const std::string&>());
      if (auto it = j.find("bundle"); it != j.end()) {
        e.bundled = true;
        e.object = ParseObjectName(it->get<std::string>(), true, what);
        e.offset = j.at("offset").get<std::uint64_t>();
      } else {
        e.object = ParseObjectName(j.at("object").get<std::string>(), false, what);
        e.stored_size = v3 ? j.at("stored_size").get<std::uint64_t>()
                           : j.value("stored_size", std::uint64_t{0});
      }
      if (!v3 || !e.bundled) e.SetSha256Hex(j.at("sha256").get_ref<const std::string&>());
    } else {
      throw IntegrityError(what + ": unknown entry type '" + type + "'");
    }
  } catch (const nlohmann::json::exception& ex) {
    throw IntegrityError(what + ": entry " + j.dump().substr(0, 200) +
                         " is incomplete or damaged (" + ex.what() + ")");
  } catch (const IntegrityError& ex) {
    if (std::string_view(ex.what()).starts_with(what)) throw;
    throw IntegrityError(what + ": " + ex.what());
  }
  return list.Add(e);
}

StoredObject WriteFileList(Repository& repo, const std::string& label, const FileList& files) {
  ObjectWriter writer(repo.storage(), BackupObjectPrefix(repo.stanza(), label) + kFileListObject,
                      BackupObjectFormat(repo.Format(CompressionType::kZstd, 3), files.format()));
  std::string batch;
  for (const auto& e : files) {
    batch += ToJson(e, files.format()).dump();
    batch += '\n';
    if (batch.size() >= kWriteBatch) {
      writer.Write(AsBytes(batch));
      batch.clear();
    }
  }
  writer.Write(AsBytes(batch));
  writer.Finish();
  return writer.result();
}

FileListRecord MakeFileListRecord(const StoredObject& stored, std::size_t entries) {
  return FileListRecord{
      ObjectRecord{kFileListObject, stored.sha256, stored.size, stored.stored_size},
      CompressionType::kZstd, entries};
}

FileList ReadFileList(Repository& repo, const BackupManifest& manifest) {
  std::string what = repo.Describe() + ": backup " + manifest.label;
  FileList files(manifest.format);
  if (!manifest.file_list) {
    if (manifest.format >= 2) {
      throw IntegrityError(what + ": the manifest (format " + std::to_string(manifest.format) +
                           ") has no file_list record: it is damaged");
    }
    // Format 1: the entries are in the manifest document.
    nlohmann::json full = ReadManifestDocument(repo, manifest.label);
    auto list_it = full.find("files");
    if (list_it == full.end() || !list_it->is_array()) {
      throw IntegrityError(what +
                           ": the manifest has neither a file_list record nor files: it "
                           "is damaged");
    }
    const auto& list = *list_it;
    for (std::size_t i = 0; i < list.size(); ++i) {
      AddFromJson(files, list[i], what + ", manifest entry " + std::to_string(i));
    }
    return files;
  }
  const FileListRecord& record = *manifest.file_list;
  if (record.object.object != kFileListObject) {
    throw IntegrityError(what + ": the manifest's file_list record is damaged (its object is not " +
                         std::string(kFileListObject) + ")");
  }
  std::string key = BackupObjectPrefix(repo.stanza(), manifest.label) + kFileListObject;
  FileListParser parser(files, repo.storage().Describe() + "/" + key);
  ReadObject(repo.storage(), key,
             BackupObjectFormat({record.compression, 0, repo.key()}, manifest.format),
             record.object.expected(manifest.format), parser);
  if (!parser.finished()) throw IntegrityError(what + ": the file list was not verified");
  if (files.size() != record.entries) {
    throw IntegrityError(what + ": the file list has " + std::to_string(files.size()) +
                         " entries, the manifest says " + std::to_string(record.entries));
  }
  return files;
}

}  // namespace gravl::repo
