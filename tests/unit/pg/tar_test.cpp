#include "pg/tar.h"

#include <gtest/gtest.h>

#include <map>

#include "common/error.h"
#include "common/subprocess.h"
#include "support/test_util.h"

namespace gravl::pg {
namespace {

struct Collected {
  TarEntry entry;
  std::string data;
};

class Collector final : public TarHandler {
 public:
  void OnEntry(const TarEntry& e) override { entries.push_back({e, ""}); }
  void OnData(ByteView d) override { entries.back().data += std::string(AsChars(d)); }
  void OnEntryEnd() override { ++ended; }
  std::vector<Collected> entries;
  int ended = 0;
};

// A tar made by GNU tar in ustar format, fed in odd-sized pieces.
TEST(TarReader, ReadsFilesDirectoriesAndSymlinks) {
  test::TempDir dir;
  std::string root = dir / "src";
  RunChecked({"mkdir", "-p", root + "/base/1", root + "/empty"});
  test::WriteFile(root + "/base/1/1259", std::string(70000, 'x'));
  test::WriteFile(root + "/PG_VERSION", "15\n");
  test::WriteFile(root + "/zero", "");
  RunChecked({"ln", "-s", "/somewhere/else", root + "/link"});
  RunChecked({"tar", "--format=ustar", "-C", root, "-cf", dir / "a.tar", "."});
  std::string tar = test::ReadFile(dir / "a.tar");

  Collector c;
  TarReader reader(c);
  for (std::size_t pos = 0; pos < tar.size(); pos += 777) {
    reader.Write(AsBytes(std::string_view(tar).substr(pos, 777)));
  }
  reader.Finish();
  std::map<std::string, Collected> by_path;
  for (auto& e : c.entries) by_path[e.entry.path] = e;
  EXPECT_EQ(c.ended, static_cast<int>(c.entries.size()));
  ASSERT_TRUE(by_path.count("./base/1/1259"));
  EXPECT_EQ(by_path["./base/1/1259"].data, std::string(70000, 'x'));
  EXPECT_EQ(by_path["./PG_VERSION"].data, "15\n");
  EXPECT_EQ(by_path["./zero"].entry.size, 0u);
  EXPECT_EQ(by_path["./empty"].entry.type, TarEntryType::kDirectory);
  EXPECT_EQ(by_path["./link"].entry.type, TarEntryType::kSymlink);
  EXPECT_EQ(by_path["./link"].entry.link_target, "/somewhere/else");

  // Truncated streams and damaged headers are errors.
  Collector c2;
  TarReader cut(c2);
  cut.Write(AsBytes(std::string_view(tar).substr(0, 512 + 100)));
  EXPECT_THROW(cut.Finish(), IntegrityError);
  std::string bad = tar;
  bad[10] ^= 1;
  Collector c3;
  TarReader damaged(c3);
  EXPECT_THROW(damaged.Write(AsBytes(bad)), IntegrityError);
}

}  // namespace
}  // namespace gravl::pg
