// Client programs get the connection string without its password, which goes to a temporary
// passfile instead (argv is visible to every user in ps).

#include <gtest/gtest.h>

#include <filesystem>

#include "common/error.h"
#include "pg/connection.h"
#include "support/test_util.h"

namespace gravl::pg {
namespace {

TEST(ChildCredentials, ThePasswordLeavesTheConnectionStringForAPassfile) {
  std::string passfile;
  {
    ChildCredentials c("host=db.example port=5433 user=backup password='s3cr:et\\\\x' dbname=app");
    EXPECT_EQ(c.conninfo().find("s3cr"), std::string::npos) << c.conninfo();
    EXPECT_NE(c.conninfo().find("host='db.example'"), std::string::npos) << c.conninfo();
    EXPECT_NE(c.conninfo().find("user='backup'"), std::string::npos) << c.conninfo();
    ASSERT_EQ(c.env().size(), 1u);
    passfile = c.env()[0].substr(std::string("PGPASSFILE=").size());
    EXPECT_EQ(test::ReadFile(passfile), "*:*:*:*:s3cr\\:et\\\\x\n");
    EXPECT_EQ(std::filesystem::status(passfile).permissions(),
              std::filesystem::perms::owner_read | std::filesystem::perms::owner_write);
  }
  EXPECT_FALSE(std::filesystem::exists(passfile));  // removed with the object

  ChildCredentials uri("postgresql://u:pw@127.0.0.1:5432/shop");
  EXPECT_EQ(uri.conninfo().find("pw"), std::string::npos) << uri.conninfo();
  EXPECT_NE(uri.conninfo().find("dbname='shop'"), std::string::npos) << uri.conninfo();
  EXPECT_EQ(uri.env().size(), 1u);

  ChildCredentials none("host=127.0.0.1 user=postgres");
  EXPECT_TRUE(none.env().empty());
  ChildCredentials bare("shop");
  EXPECT_EQ(bare.conninfo(), "dbname='shop'");
  EXPECT_THROW(ChildCredentials("host=a 'unterminated"), ConfigError);
}

}  // namespace
}  // namespace gravl::pg
