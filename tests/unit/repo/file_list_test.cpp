#include "repo/file_list.h"

#include <gtest/gtest.h>
#include <malloc.h>

#include <functional>

#include "common/error.h"
#include "repo/layout.h"
#include "repo/manifest.h"
#include "repo/metadata.h"
#include "storage/memory.h"
#include "support/manifest_util.h"

namespace gravl::repo {
namespace {

constexpr const char* kLabel = "20260101T000000Z-full";

std::unique_ptr<Repository> MemoryRepo() {
  auto mem = storage::MakeMemoryStorage();
  StanzaInfo info;
  info.stanza = "main";
  info.system_identifier = "1";
  WriteMetadata(*mem, StanzaKey("main"), info.ToJson());
  return std::make_unique<Repository>(RepoConfig{"mem", "memory", ""}, std::move(mem), "main");
}

// Entries built here point at these names until a FileList copies them.
FileEntry File(std::string_view path, std::uint64_t size, std::uint32_t object, bool bundled) {
  FileEntry e;
  e.path = path;
  e.size = size;
  e.mode = 0600;
  e.mtime = 1767225600;
  e.object = object;
  e.bundled = bundled;
  if (bundled) {
    e.offset = 8192;
  } else {
    e.stored_size = size / 3;
  }
  for (std::size_t i = 0; i < e.sha256.size(); ++i) {
    e.sha256[i] = static_cast<std::uint8_t>(i * 7 + e.path.size());
  }
  for (std::size_t i = 0; i < e.xxh128.size(); ++i) {
    e.xxh128[i] = static_cast<std::uint8_t>(i * 5 + e.path.size());
  }
  return e;
}

const std::string kOddName("odd\xff\xfe name", 10);
const std::string kOddTarget("/srv/ts\x80", 8);

FileList Sample() {
  FileList files;
  FileEntry dir;
  dir.type = FileEntry::Type::kDir;
  dir.path = "base/5";
  dir.mode = 0700;
  files.Add(dir);
  files.Add(File("base/5/16384", 1 << 20, 1, false));
  files.Add(File("base/5/PG_VERSION", 3, 1, true));
  files.Add(File(kOddName, 10, 1, true));
  FileEntry in_tablespace = File("PG_15_202209061/5/16390", 0, 1, true);
  in_tablespace.tablespace = 16389;
  files.Add(in_tablespace);
  FileEntry link;
  link.type = FileEntry::Type::kLink;
  link.path = "pg_tblspc/16389";
  link.target = kOddTarget;
  link.mode = 0777;
  files.Add(link);
  return files;
}

// What a list of manifest format `format` keeps of an entry: format 3 keeps the XXH128 of every
// file and the SHA-256 of own objects only; formats 1-2 the SHA-256 of every file.
void ExpectSame(const FileEntry& a, const FileEntry& b, int format = kManifestFormat) {
  EXPECT_EQ(a.path, b.path);
  EXPECT_EQ(a.target, b.target);
  EXPECT_EQ(a.object, b.object);
  EXPECT_EQ(a.size, b.size);
  EXPECT_EQ(a.offset, b.offset);
  EXPECT_EQ(a.stored_size, b.stored_size);
  EXPECT_EQ(a.mtime, b.mtime);
  EXPECT_EQ(a.mode, b.mode);
  EXPECT_EQ(a.tablespace, b.tablespace);
  EXPECT_EQ(a.type, b.type);
  EXPECT_EQ(a.bundled, b.bundled);
  if (a.type == FileEntry::Type::kFile) {
    if (format < 3 || !a.bundled) {
      EXPECT_EQ(a.sha256, b.sha256);
    }
    if (format >= 3) {
      EXPECT_EQ(a.xxh128, b.xxh128);
    }
  }
}

BackupManifest Summary(const StoredObject& stored, std::size_t entries) {
  BackupManifest m = test::SampleFullManifest(kLabel);
  m.file_list = MakeFileListRecord(stored, entries);
  return m;
}

TEST(FileList, RoundTripsEveryKindOfEntryThroughItsOwnObject) {
  auto repo = MemoryRepo();
  FileList files = Sample();
  StoredObject stored = WriteFileList(*repo, kLabel, files);
  EXPECT_EQ(stored.sha256.size(), 64u);
  EXPECT_TRUE(repo->storage().Stat(BackupObjectPrefix("main", kLabel) + "file_list"));

  FileList back = ReadFileList(*repo, Summary(stored, files.size()));
  ASSERT_EQ(back.size(), files.size());
  for (std::size_t i = 0; i < files.size(); ++i) ExpectSame(files[i], back[i]);
}

TEST(FileList, DamageAMissingObjectAndAWrongCountAreErrors) {
  auto repo = MemoryRepo();
  FileList files = Sample();
  StoredObject stored = WriteFileList(*repo, kLabel, files);
  std::string key = BackupObjectPrefix("main", kLabel) + "file_list";

  EXPECT_THROW(ReadFileList(*repo, Summary(stored, files.size() + 1)), IntegrityError);
  StoredObject other = stored;
  other.sha256 = std::string(64, '0');
  EXPECT_THROW(ReadFileList(*repo, Summary(other, files.size())), IntegrityError);
  // An empty checksum would mean "the content carries its own": never accepted here.
  other.sha256 = "";
  EXPECT_THROW(ReadFileList(*repo, Summary(other, files.size())), IntegrityError);

  Bytes object = storage::GetBytes(repo->storage(), key);
  object[object.size() / 2] ^= 1;
  storage::PutBytes(repo->storage(), key, object);
  EXPECT_THROW(ReadFileList(*repo, Summary(stored, files.size())), IntegrityError);

  repo->storage().DeleteMany({key});
  EXPECT_THROW(ReadFileList(*repo, Summary(stored, files.size())), NotFoundError);
}

TEST(FileList, ReadsFormatOneManifestsAndRefusesNewerFormats) {
  auto repo = MemoryRepo();
  FileList files = Sample();
  EXPECT_EQ(files[1].ObjectName(), "files/000001");
  EXPECT_EQ(files[2].ObjectName(), "bundles/000001");
  nlohmann::json list = nlohmann::json::array();
  for (const auto& f : files) list.push_back(ToJson(f, 1));
  // A format-1 manifest as version 1 wrote it: the list inside.
  nlohmann::json doc = test::SampleFullManifest(kLabel).ToJson();
  doc["format"] = 1;
  doc.erase("file_list");
  doc["files"] = list;
  for (auto& b : doc["bundles"]) b.erase("stored_size");
  doc["backup_manifest"].erase("stored_size");
  test::WriteManifestDocument(*repo, kLabel, doc);
  // From the summary a listing gives (no "files"): the manifest is read again.
  FileList back = ReadFileList(*repo, ReadManifestSummary(*repo, kLabel));
  ASSERT_EQ(back.size(), files.size());
  EXPECT_EQ(back.format(), 1);
  EXPECT_EQ(back.content_digest(), io::DigestType::kSha256);
  for (std::size_t i = 0; i < files.size(); ++i) ExpectSame(files[i], back[i], 1);
  EXPECT_EQ(back.ContentHex(back[2]), files[2].Sha256Hex());

  // A newer format is refused when the manifest is read, naming what to do.
  nlohmann::json newer = test::SampleFullManifest(kLabel).ToJson();
  newer["format"] = kManifestFormat + 1;
  try {
    BackupManifest::FromJson(newer, "m");
    FAIL();
  } catch (const ConflictError& e) {
    EXPECT_NE(std::string(e.what()).find("upgrade gravl-dr"), std::string::npos);
  }
}

TEST(FileList, DamagedEntriesNameTheirLine) {
  FileList list;
  auto damaged = [&](const std::function<void(nlohmann::json&)>& change) {
    nlohmann::json j = ToJson(File("base/5/1", 1, 1, false));
    change(j);
    EXPECT_THROW(AddFromJson(list, j, "list"), IntegrityError) << j.dump();
  };
  nlohmann::json j = ToJson(File("base/5/1", 1, 1, false));
  j.erase("sha256");
  try {
    AddFromJson(list, j, "list, line 7");
    FAIL();
  } catch (const IntegrityError& e) {
    EXPECT_NE(std::string(e.what()).find("list, line 7"), std::string::npos) << e.what();
  }
  damaged([](nlohmann::json& e) { e["sha256"] = "xyz"; });
  damaged([](nlohmann::json& e) { e["xxh128"] = std::string(64, 'a'); });  // 32 digits
  damaged([](nlohmann::json& e) { e.erase("xxh128"); });
  damaged([](nlohmann::json& e) { e.erase("stored_size"); });  // format 3: required
  {
    nlohmann::json bundled = ToJson(File("base/5/2", 1, 1, true));
    EXPECT_FALSE(bundled.contains("sha256"));  // format 3: bundles have the objects' SHA-256
    bundled.erase("xxh128");
    EXPECT_THROW(AddFromJson(list, bundled, "list"), IntegrityError);
  }
  {
    FileList old(2);  // formats 1-2: every file's content SHA-256
    nlohmann::json bundled = ToJson(File("base/5/2", 1, 1, true), 2);
    EXPECT_FALSE(bundled.contains("xxh128"));
    AddFromJson(old, bundled, "list");
    bundled.erase("sha256");
    EXPECT_THROW(AddFromJson(old, bundled, "list"), IntegrityError);
  }
  damaged([](nlohmann::json& e) { e["type"] = "fifo"; });
  damaged([](nlohmann::json& e) { e["tablespace"] = "12a"; });
  // Object names are only those the backup writes.
  damaged([](nlohmann::json& e) { e["object"] = "files/1"; });
  damaged([](nlohmann::json& e) { e["object"] = "bundles/000001"; });
  damaged([](nlohmann::json& e) { e["object"] = "files/../../x"; });
  damaged([](nlohmann::json& e) { e["object"] = "files/99999999999"; });
  // Paths that would lead outside the data directory.
  for (const char* path : {"/etc/passwd", "../x", "base/../../x", "a/..", ".."}) {
    damaged([&](nlohmann::json& e) { e["path"] = path; });
  }
  damaged([](nlohmann::json& e) { e["path"] = std::string("a\0b", 3); });
  EXPECT_TRUE(list.empty());
  j = ToJson(File("base/5/1", 1, 1234567, false));
  EXPECT_EQ(j["object"], "files/1234567");
  EXPECT_EQ(AddFromJson(list, j, "list").object, 1234567u);
}

// The names live in the list, not in the strings an entry was built from.
TEST(FileList, KeepsItsOwnCopiesOfNames) {
  FileList list;
  {
    std::string path = "base/5/" + std::string(100, 'p');
    std::string long_target(100000, 't');  // longer than a block of names
    FileEntry e = File(path, 1, 1, false);
    e.target = long_target;
    list.Add(e);
    path.assign(path.size(), 'x');
    long_target.assign(long_target.size(), 'x');
  }
  EXPECT_EQ(list[0].path, "base/5/" + std::string(100, 'p'));
  EXPECT_EQ(list[0].target, std::string(100000, 't'));
  FileList moved = std::move(list);
  EXPECT_EQ(moved[0].path, "base/5/" + std::string(100, 'p'));
  // The moved-from list is empty and writes its names elsewhere.
  EXPECT_TRUE(list.empty());  // NOLINT(bugprone-use-after-move): defined state, tested
  list.Add(File("base/5/" + std::string(100, 'q'), 1, 2, false));
  EXPECT_EQ(moved[0].path, "base/5/" + std::string(100, 'p'));
  EXPECT_EQ(list[0].path, "base/5/" + std::string(100, 'q'));
}

TEST(FileList, ManifestPathsAreFoundInOrderWithoutAnIndex) {
  FileList files;
  FileEntry dir;
  dir.type = FileEntry::Type::kDir;
  dir.path = "base";
  files.Add(dir);
  files.Add(File("base/1", 1, 1, true));
  files.Add(File("pg_wal/000000010000000000000002", 1, 1, false));  // not in backup_manifest
  files.Add(File("pg_wal/archive_status/000000010000000000000002.done", 0, 1, true));
  FileEntry in_tablespace = File("PG_15_202209061/5/1", 1, 1, true);
  in_tablespace.tablespace = 16384;
  files.Add(in_tablespace);

  ManifestPathLookup lookup(files);
  EXPECT_EQ(lookup.Find("base/1"), &files[1]);
  EXPECT_EQ(lookup.Find("pg_wal/archive_status/000000010000000000000002.done"), &files[3]);
  EXPECT_EQ(lookup.Find("pg_tblspc/16384/PG_15_202209061/5/1"), &files[4]);
  EXPECT_FALSE(lookup.indexed()) << "in order, with a gap: no map of all paths";
  // Out of order, or absent: the map answers.
  EXPECT_EQ(lookup.Find("base/1"), &files[1]);
  EXPECT_TRUE(lookup.indexed());
  EXPECT_EQ(lookup.Find("pg_wal/000000010000000000000002"), &files[2]);
  EXPECT_EQ(lookup.Find("PG_15_202209061/5/1"), nullptr);  // tablespace files by pg_tblspc/
  EXPECT_EQ(lookup.Find("base"), nullptr);                 // directories are not files
  EXPECT_EQ(lookup.Find("nope"), nullptr);
}

TEST(FileList, PlanObjectsGroupsBundlesInOrderAndReportsOrphans) {
  FileList files = Sample();  // files/000001 of its own; three files in bundles/000001
  files.Add(File("base/5/lost", 1, 7, true));  // a bundle the manifest does not describe
  std::vector<ObjectRecord> bundles = {{"bundles/000001", "ab", 13, 9}};
  std::vector<std::string> orphans;
  auto plan = PlanObjects(files, bundles,
                          [&](const FileEntry& f) { orphans.push_back(std::string(f.path)); });
  ASSERT_EQ(plan.size(), 2u);
  EXPECT_EQ(plan[0].object, "bundles/000001");
  EXPECT_EQ(plan[0].parts, (std::vector<std::uint32_t>{2, 3, 4}));
  EXPECT_EQ(plan[0].file, nullptr);
  EXPECT_EQ(plan[1].object, "files/000001");
  EXPECT_EQ(plan[1].file, &files[1]);
  // Format 3: objects' SHA-256 of the stored bytes and stored size, content by XXH128.
  EXPECT_EQ(plan[0].sha256, "ab");
  EXPECT_EQ(plan[0].stored_size, 9u);
  EXPECT_EQ(plan[0].xxh128, "");
  EXPECT_EQ(plan[1].sha256, files[1].Sha256Hex());
  EXPECT_EQ(plan[1].stored_size, files[1].stored_size);
  EXPECT_EQ(plan[1].xxh128, files[1].Xxh128Hex());
  EXPECT_EQ(orphans, std::vector<std::string>{"base/5/lost"});
  // Format 2: the SHA-256 of the content, which is also the object's; no stored size.
  FileList old(2);
  old.Add(File("base/5/16384", 1 << 20, 1, false));
  auto old_plan = PlanObjects(old, {}, [](const FileEntry&) {});
  ASSERT_EQ(old_plan.size(), 1u);
  EXPECT_EQ(old_plan[0].sha256, old[0].Sha256Hex());
  EXPECT_FALSE(old_plan[0].stored_size);
  EXPECT_EQ(old_plan[0].xxh128, "");
}

// Backups written before format 3 (objects' SHA-256 of their content, every file's content
// SHA-256 in the list) are still read and verified as they were written: and read as format 3,
// their checksums would not match.
TEST(FileList, FormatTwoBackupsAreReadWithTheirContentSha256) {
  auto repo = MemoryRepo();
  const std::string prefix = BackupObjectPrefix("main", kLabel);
  const ObjectFormat zstd{CompressionType::kZstd, 1, nullptr};
  Bytes large(200000, 7), small_a = {'a', 'b', 'c'}, small_b = {'x', 'y'};
  io::BufferSource large_src(large);
  StoredObject large_obj = WriteObject(repo->storage(), prefix + "files/000001", large_src, zstd);
  Bytes bundle = small_a;
  bundle.insert(bundle.end(), small_b.begin(), small_b.end());
  io::BufferSource bundle_src(bundle);
  StoredObject bundle_obj =
      WriteObject(repo->storage(), prefix + "bundles/000001", bundle_src, zstd);

  FileList old(2);
  FileEntry f = File("base/5/16384", large.size(), 1, false);
  f.SetSha256Hex(large_obj.sha256);  // the content's, also the object's
  f.stored_size = large_obj.stored_size;
  old.Add(f);
  FileEntry a = File("base/5/1", small_a.size(), 1, true);
  a.offset = 0;
  a.SetSha256Hex(io::Sha256Hex(small_a));
  old.Add(a);
  FileEntry b = File("base/5/2", small_b.size(), 1, true);
  b.offset = small_a.size();
  b.SetSha256Hex(io::Sha256Hex(small_b));
  old.Add(b);
  StoredObject list_obj = WriteFileList(*repo, kLabel, old);
  // Written as format 2: the list's SHA-256 is its content's, not its stored bytes'.
  EXPECT_NE(list_obj.sha256,
            io::Sha256Hex(storage::GetBytes(repo->storage(), prefix + "file_list")));
  // A format-2 manifest as it was written (no stored sizes), read back through the type.
  nlohmann::json doc = test::SampleFullManifest(kLabel).ToJson();
  doc["format"] = 2;
  doc["file_list"] = {{"object", "file_list"},
                      {"compression", "zstd"},
                      {"sha256", list_obj.sha256},
                      {"size", list_obj.size},
                      {"entries", old.size()}};
  doc["backup_manifest"].erase("stored_size");
  BackupManifest summary = BackupManifest::FromJson(doc, "m");
  EXPECT_FALSE(summary.file_list->object.stored_size);

  FileList back = ReadFileList(*repo, summary);
  ASSERT_EQ(back.size(), 3u);
  EXPECT_EQ(back.content_digest(), io::DigestType::kSha256);
  std::vector<ObjectRecord> bundles = {
      {"bundles/000001", bundle_obj.sha256, bundle.size(), bundle_obj.stored_size}};
  auto plan = PlanObjects(back, bundles, [](const FileEntry&) { FAIL(); });
  ASSERT_EQ(plan.size(), 2u);
  for (const auto& o : plan) {
    io::BufferSink out;
    ReadObject(repo->storage(), prefix + o.object, BackupObjectFormat(zstd, 2), o.expected(), out);
    EXPECT_TRUE(out.finished()) << o.object;
    // As format 3, the same SHA-256 would be taken for the stored bytes': refused.
    ObjectToRead as_v3 = o;
    as_v3.stored_size.reset();
    io::BufferSink refused;
    EXPECT_THROW(ReadObject(repo->storage(), prefix + o.object, BackupObjectFormat(zstd, 3),
                            as_v3.expected(), refused),
                 IntegrityError)
        << o.object;
  }
  EXPECT_EQ(back.ContentHex(back[2]), io::Sha256Hex(small_b));
}

#if defined(__SANITIZE_ADDRESS__)
#define GRAVL_UNDER_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define GRAVL_UNDER_ASAN 1
#endif
#endif

// 200,000 entries, as many as a database with 50,000 tables has files: the list read back
// takes about 155 bytes per entry, 128 of them the record (a JSON tree of it took about 1 KB
// per entry, records with strings of their own 240), and reading it never holds its text.
TEST(FileList, TwoHundredThousandEntriesStayCompact) {
#ifdef GRAVL_UNDER_ASAN
  GTEST_SKIP() << "the sanitizer's allocator is not seen by mallinfo2()";
#else
  constexpr std::size_t kEntries = 200000;
  auto repo = MemoryRepo();
  StoredObject stored;
  {
    FileList files;
    for (std::size_t i = 0; i < kEntries; ++i) {
      std::string path = "base/16384/" + std::to_string(100000 + i);
      files.Add(File(path, 8192, static_cast<std::uint32_t>(i / 4000), true));
    }
    stored = WriteFileList(*repo, kLabel, files);
  }
  ::malloc_trim(0);
  std::size_t before = ::mallinfo2().uordblks;
  FileList back = ReadFileList(*repo, Summary(stored, kEntries));
  std::size_t used = ::mallinfo2().uordblks - before;
  ASSERT_EQ(back.size(), kEntries);
  EXPECT_EQ(back[123456].path, "base/16384/223456");
  EXPECT_LT(used / kEntries, 160u) << used << " bytes for " << kEntries << " entries";
#endif
}

}  // namespace
}  // namespace gravl::repo
