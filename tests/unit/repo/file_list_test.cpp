#include "repo/file_list.h"

#include <gtest/gtest.h>
#include <malloc.h>

#include "common/error.h"
#include "repo/layout.h"
#include "repo/manifest.h"
#include "repo/metadata.h"
#include "storage/memory.h"

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

FileEntry File(std::string path, std::uint64_t size, std::string object, bool bundled) {
  FileEntry e;
  e.path = std::move(path);
  e.size = size;
  e.mode = 0600;
  e.mtime = 1767225600;
  e.object = std::move(object);
  e.bundled = bundled;
  e.offset = bundled ? 8192 : 0;
  e.stored_size = bundled ? 0 : size / 3;
  for (std::size_t i = 0; i < e.sha256.size(); ++i) {
    e.sha256[i] = static_cast<std::uint8_t>(i * 7 + e.path.size());
  }
  return e;
}

FileList Sample() {
  FileList files;
  FileEntry dir;
  dir.type = FileEntry::Type::kDir;
  dir.path = "base/5";
  dir.mode = 0700;
  files.push_back(dir);
  files.push_back(File("base/5/16384", 1 << 20, "files/000001", false));
  files.push_back(File("base/5/PG_VERSION", 3, "bundles/000001", true));
  files.push_back(File(std::string("odd\xff\xfe name", 12), 10, "bundles/000001", true));
  FileEntry in_tablespace = File("PG_15_202209061/5/16390", 0, "bundles/000001", true);
  in_tablespace.tablespace = 16389;
  files.push_back(in_tablespace);
  FileEntry link;
  link.type = FileEntry::Type::kLink;
  link.path = "pg_tblspc/16389";
  link.target = std::string("/srv/ts\x80", 8);
  link.mode = 0777;
  files.push_back(link);
  return files;
}

void ExpectSame(const FileEntry& a, const FileEntry& b) {
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
    EXPECT_EQ(a.sha256, b.sha256);
  }
}

nlohmann::json Summary(const StoredObject& stored, std::size_t entries) {
  return {{"format", kManifestFormat},
          {"type", "full"},
          {"file_list", FileListRecord(stored, entries)}};
}

TEST(FileList, RoundTripsEveryKindOfEntryThroughItsOwnObject) {
  auto repo = MemoryRepo();
  FileList files = Sample();
  StoredObject stored = WriteFileList(*repo, kLabel, files);
  EXPECT_EQ(stored.sha256.size(), 64u);
  EXPECT_TRUE(repo->storage().Stat(BackupObjectPrefix("main", kLabel) + "file_list"));

  FileList back = ReadFileList(*repo, kLabel, Summary(stored, files.size()));
  ASSERT_EQ(back.size(), files.size());
  for (std::size_t i = 0; i < files.size(); ++i) ExpectSame(files[i], back[i]);
}

TEST(FileList, DamageAMissingObjectAndAWrongCountAreErrors) {
  auto repo = MemoryRepo();
  FileList files = Sample();
  StoredObject stored = WriteFileList(*repo, kLabel, files);
  std::string key = BackupObjectPrefix("main", kLabel) + "file_list";

  EXPECT_THROW(ReadFileList(*repo, kLabel, Summary(stored, files.size() + 1)), IntegrityError);
  StoredObject other = stored;
  other.sha256 = std::string(64, '0');
  EXPECT_THROW(ReadFileList(*repo, kLabel, Summary(other, files.size())), IntegrityError);
  // An empty checksum would mean "the content carries its own": never accepted here.
  other.sha256 = "";
  EXPECT_THROW(ReadFileList(*repo, kLabel, Summary(other, files.size())), IntegrityError);

  Bytes object = storage::GetBytes(repo->storage(), key);
  object[object.size() / 2] ^= 1;
  storage::PutBytes(repo->storage(), key, object);
  EXPECT_THROW(ReadFileList(*repo, kLabel, Summary(stored, files.size())), IntegrityError);

  repo->storage().DeleteMany({key});
  EXPECT_THROW(ReadFileList(*repo, kLabel, Summary(stored, files.size())), NotFoundError);
}

TEST(FileList, ReadsFormatOneManifestsAndRefusesNewerFormats) {
  auto repo = MemoryRepo();
  FileList files = Sample();
  nlohmann::json list = nlohmann::json::array();
  for (const auto& f : files) list.push_back(ToJson(f));
  WriteManifest(
      *repo, kLabel,
      {{"format", 1}, {"label", kLabel}, {"stanza", "main"}, {"type", "full"}, {"files", list}});
  // From the summary a listing gives (no "files"): the manifest is read again.
  FileList back = ReadFileList(*repo, kLabel, ReadManifestSummary(*repo, kLabel));
  ASSERT_EQ(back.size(), files.size());
  for (std::size_t i = 0; i < files.size(); ++i) ExpectSame(files[i], back[i]);

  nlohmann::json newer = {{"format", kManifestFormat + 1}, {"type", "full"}};
  try {
    ReadFileList(*repo, kLabel, newer);
    FAIL();
  } catch (const ConflictError& e) {
    EXPECT_NE(std::string(e.what()).find("upgrade gravl-dr"), std::string::npos);
  }
}

TEST(FileList, DamagedEntriesNameTheirLine) {
  nlohmann::json j = ToJson(File("base/5/1", 1, "files/000001", false));
  j.erase("sha256");
  try {
    FileEntryFromJson(j, "list, line 7");
    FAIL();
  } catch (const IntegrityError& e) {
    EXPECT_NE(std::string(e.what()).find("list, line 7"), std::string::npos) << e.what();
  }
  j = ToJson(File("base/5/1", 1, "files/000001", false));
  j["sha256"] = "xyz";
  EXPECT_THROW(FileEntryFromJson(j, "list"), IntegrityError);
  j = ToJson(File("base/5/1", 1, "files/000001", false));
  j["type"] = "fifo";
  EXPECT_THROW(FileEntryFromJson(j, "list"), IntegrityError);
  j = ToJson(File("base/5/1", 1, "files/000001", false));
  j["tablespace"] = "12a";
  EXPECT_THROW(FileEntryFromJson(j, "list"), IntegrityError);
}

#if defined(__SANITIZE_ADDRESS__)
#define GRAVL_UNDER_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define GRAVL_UNDER_ASAN 1
#endif
#endif

// 200,000 entries, as many as a database with 50,000 tables has files: the list read back
// takes a few hundred bytes per entry (a JSON tree of it took about 1 KB per entry), and
// reading it never holds its text.
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
      files.push_back(File("base/16384/" + std::to_string(100000 + i), 8192,
                           "bundles/" + std::to_string(i / 4000), true));
    }
    stored = WriteFileList(*repo, kLabel, files);
  }
  ::malloc_trim(0);
  std::size_t before = ::mallinfo2().uordblks;
  FileList back = ReadFileList(*repo, kLabel, Summary(stored, kEntries));
  std::size_t used = ::mallinfo2().uordblks - before;
  ASSERT_EQ(back.size(), kEntries);
  EXPECT_EQ(back[123456].path, "base/16384/223456");
  EXPECT_LT(used / kEntries, 300u) << used << " bytes for " << kEntries << " entries";
#endif
}

}  // namespace
}  // namespace gravl::repo
