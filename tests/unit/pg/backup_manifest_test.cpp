#include "pg/backup_manifest.h"

#include <gtest/gtest.h>

#include <map>
#include <nlohmann/json.hpp>

#include "common/error.h"
#include "repo/manifest.h"

namespace gravl::pg {
namespace {

// As PostgreSQL 15 writes it with MANIFEST_CHECKSUMS 'NONE'.
const std::string kHead = "{ \"PostgreSQL-Backup-Manifest-Version\": 1,\n\"Files\": [";
const std::string kFiles =
    "\n{ \"Path\": \"backup_label\", \"Size\": 227, \"Last-Modified\": \"2026-11-24 10:00:00 GMT\" "
    "},"
    "\n{ \"Path\": \"base/5/16396\", \"Size\": 8192, \"Last-Modified\": \"2026-11-24 10:00:00 "
    "GMT\" },"
    "\n{ \"Encoded-Path\": \"6261ff\", \"Size\": 3, \"Last-Modified\": \"2026-11-24 10:00:00 GMT\" "
    "},"
    "\n{ \"Path\": \"pg_tblspc/16384/PG_15_202209061/5/16400\", \"Size\": 0, \"Last-Modified\": "
    "\"2026-11-24 10:00:00 GMT\" }";
const std::string kTail =
    "\n],\n\"WAL-Ranges\": [\n{ \"Timeline\": 1, \"Start-LSN\": \"0/2000028\", \"End-LSN\": "
    "\"0/2000100\" }\n],\n\"Manifest-Checksum\": \"00ff\"}\n";

const std::map<std::string, std::string> kHashes = {
    {"backup_label", std::string(8, 'a')},
    {"base/5/16396", std::string(8, 'b')},
    {std::string("ba\xff"), std::string(8, 'c')},
    {"pg_tblspc/16384/PG_15_202209061/5/16400", std::string(8, 'd')},
};

std::string Filter(const std::string& manifest, std::size_t piece,
                   const std::map<std::string, std::string>& hashes = kHashes) {
  io::BufferSink out;
  ManifestChecksumFilter filter(out, "CRC32C",
                                [&](const std::string& path) -> std::optional<std::string> {
                                  auto it = hashes.find(path);
                                  if (it == hashes.end()) return std::nullopt;
                                  return it->second;
                                });
  for (std::size_t pos = 0; pos < manifest.size(); pos += piece) {
    std::string part = manifest.substr(pos, piece);
    filter.Write(ByteView(reinterpret_cast<const std::uint8_t*>(part.data()), part.size()));
  }
  filter.Finish();
  EXPECT_EQ(filter.files(), 4u);
  return std::string(out.data().begin(), out.data().end());
}

TEST(ManifestChecksumFilter, AddsEveryFilesCrc32cAndTheChecksumPgVerifybackupExpects) {
  for (std::size_t piece : {1UL, 7UL, 100UL, 100000UL}) {
    std::string out = Filter(kHead + kFiles + kTail, piece);
    EXPECT_NE(out.find("{ \"Path\": \"backup_label\", \"Size\": 227, \"Last-Modified\": "
                       "\"2026-11-24 10:00:00 GMT\", \"Checksum-Algorithm\": \"CRC32C\", "
                       "\"Checksum\": \"" +
                       std::string(8, 'a') + "\" },\n"),
              std::string::npos)
        << out;
    EXPECT_NE(out.find("\"Encoded-Path\": \"6261ff\", \"Size\": 3, \"Last-Modified\": "
                       "\"2026-11-24 10:00:00 GMT\", \"Checksum-Algorithm\": \"CRC32C\", "
                       "\"Checksum\": \"" +
                       std::string(8, 'c') + "\" },"),
              std::string::npos);
    EXPECT_NE(out.find(std::string(8, 'd') + "\" }\n],\n\"WAL-Ranges\""), std::string::npos);
    // Still one JSON document, and its checksum is the SHA-256 of every byte before the last
    // line (pg_verifybackup's rule).
    auto json = nlohmann::json::parse(out);
    EXPECT_EQ(json["Files"].size(), 4u);
    auto last_line = out.rfind('\n', out.size() - 2);
    ASSERT_NE(last_line, std::string::npos);
    std::string covered = out.substr(0, last_line + 1);
    EXPECT_EQ(json["Manifest-Checksum"],
              io::Sha256Hex(
                  ByteView(reinterpret_cast<const std::uint8_t*>(covered.data()), covered.size())));
    EXPECT_EQ(out.substr(last_line + 1),
              "\"Manifest-Checksum\": \"" + json["Manifest-Checksum"].get<std::string>() + "\"}\n");
  }
}

TEST(ManifestChecksumFilter, KeepsChecksumsTheServerComputed) {
  std::string with_crc =
      "\n{ \"Path\": \"x\", \"Size\": 1, \"Last-Modified\": \"2026-11-24 10:00:00 GMT\", "
      "\"Checksum-Algorithm\": \"SHA256\", \"Checksum\": \"01020304\" }";
  io::BufferSink out;
  ManifestChecksumFilter filter(out, "CRC32C", [](const std::string&) { return std::nullopt; });
  std::string in = kHead + with_crc + kTail;
  filter.Write(ByteView(reinterpret_cast<const std::uint8_t*>(in.data()), in.size()));
  filter.Finish();
  std::string text(out.data().begin(), out.data().end());
  EXPECT_NE(text.find("\"SHA256\", \"Checksum\": \"01020304\" }\n"), std::string::npos);
  EXPECT_EQ(filter.files(), 0u);
}

TEST(ManifestChecksumFilter, AFileWithoutHashOrADamagedManifestIsAnError) {
  auto missing = kHashes;
  missing.erase("base/5/16396");
  try {
    Filter(kHead + kFiles + kTail, 64, missing);
    FAIL() << "no error";
  } catch (const IntegrityError& e) {
    EXPECT_NE(std::string(e.what()).find("base/5/16396"), std::string::npos) << e.what();
  }
  std::string full = kHead + kFiles + kTail;
  EXPECT_THROW(Filter(full.substr(0, full.size() - 30), 64), IntegrityError);  // truncated
  EXPECT_THROW(Filter(full + "{}\n", 64), IntegrityError);  // data after the checksum
  // A layout without the "Files": [ line would go through without any checksum: refused.
  EXPECT_THROW(
      Filter("{ \"PostgreSQL-Backup-Manifest-Version\": 9,\n\"Entries\": [" + kFiles + kTail, 64),
      IntegrityError);
  std::string broken = kHead + "\n{ \"Path\": \"backup_label\", \"Size\": 227" + kTail;
  EXPECT_THROW(Filter(broken, 64), IntegrityError);
}

TEST(ManifestNames, NamesThatAreNotUtf8AreStoredInHex) {
  EXPECT_TRUE(repo::IsValidUtf8("base/5/16396"));
  EXPECT_TRUE(repo::IsValidUtf8("caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80"));
  for (const char* bad :
       {"a\xff", "\xc3", "\xc0\xaf", "\xed\xa0\x80", "\xf4\x90\x80\x80", "\xe2\x82", "\x80"}) {
    EXPECT_FALSE(repo::IsValidUtf8(bad)) << bad;
  }
  nlohmann::json entry;
  repo::SetName(entry, "path", "ok/name");
  EXPECT_EQ(entry["path"], "ok/name");
  std::string raw = "odd-\xff\xfe-name";
  nlohmann::json odd;
  repo::SetName(odd, "path", raw);
  EXPECT_FALSE(odd.contains("path"));
  EXPECT_EQ(odd["path_hex"], "6f64642dfffe2d6e616d65");
  EXPECT_NO_THROW(odd.dump());  // a raw invalid string would make dump() throw
  EXPECT_EQ(repo::GetName(odd, "path"), raw);
  EXPECT_EQ(repo::GetName(entry, "path"), "ok/name");
}

}  // namespace
}  // namespace gravl::pg
