// The named PostgreSQL operations (pg/queries.h) against a real server: each returns what
// the catalog and the functions it wraps say.

#include <gtest/gtest.h>

#include <chrono>
#include <thread>

#include "common/error.h"
#include "pg/connection.h"
#include "pg/queries.h"
#include "support/pg_fixture.h"

namespace gravl::pg {
namespace {

class PgQueries : public ::testing::Test {
 protected:
  // One cluster per test: a failure here fails the test (an exception in SetUpTestSuite would
  // only make ctest report the tests as skipped).
  void SetUp() override {
    cluster_ = test::StartCluster({"archive_mode = on", "archive_command = '/bin/false'"});
    cluster_->Psql("CREATE DATABASE other");
    cluster_->Psql(
        "CREATE TABLE parent(id int PRIMARY KEY); INSERT INTO parent SELECT generate_series(1, "
        "10); "
        "CREATE TABLE child(id int, parent_id int REFERENCES parent(id)); "
        "INSERT INTO child SELECT g, g % 10 + 1 FROM generate_series(1, 100) g; "
        "ALTER TABLE child DISABLE TRIGGER ALL; INSERT INTO child VALUES (1000, 77), (1001, NULL); "
        "ALTER TABLE child ENABLE TRIGGER ALL; "
        "CREATE TABLE \"Odd Name\"(x int); INSERT INTO \"Odd Name\" VALUES (1), (2), (3); "
        "CREATE UNLOGGED TABLE scratch(x int); ANALYZE");
  }
  std::unique_ptr<Connection> Open(const std::string& db = "postgres") {
    return Connection::Open(cluster_->conninfo(db));
  }
  std::unique_ptr<Instance> cluster_;
};

TEST_F(PgQueries, SettingsDatabasesAndTablespaces) {
  auto conn = Open();
  ArchiveSettings s = GetArchiveSettings(*conn);
  EXPECT_EQ(s.archive_mode, "on");
  EXPECT_EQ(s.archive_command, "/bin/false");
  EXPECT_EQ(s.wal_level, "replica");
  EXPECT_GT(s.max_wal_senders, 0);
  auto dbs = Databases(*conn);
  EXPECT_EQ(dbs, (std::vector<std::string>{"other", "postgres"}));
  EXPECT_TRUE(DatabaseExists(*conn, "other"));
  EXPECT_FALSE(DatabaseExists(*conn, "other'; DROP DATABASE other; --"));
  auto ts = TablespaceNames(*conn);
  EXPECT_EQ(ts.size(), 2u);  // pg_default, pg_global
}

TEST_F(PgQueries, WalSwitchesRestorePointsTransactionIdsAndReplayState) {
  auto conn = Open();
  std::uint64_t before = NextTransactionId(*conn);
  conn.reset();
  cluster_->Psql("CREATE TABLE bump(x int); DROP TABLE bump");
  conn = Open();
  EXPECT_GT(NextTransactionId(*conn), before);
  CreateRestorePoint(*conn, "it's a point");
  std::string segment = SwitchWal(*conn);
  EXPECT_EQ(segment.size(), 24u);
  ReplayState r = GetReplayState(*conn);
  EXPECT_FALSE(r.in_recovery);
  EXPECT_FALSE(r.paused);
  EXPECT_EQ(r.timeline, 1u);
  EXPECT_GT(r.replayed.value, 0u);
  // The archiver fails (archive_command is /bin/false): its status says so.
  for (int i = 0; i < 100 && GetArchiverStatus(*conn).failed_count == 0; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  ArchiverStatus a = GetArchiverStatus(*conn);
  EXPECT_GT(a.failed_count, 0u);
  EXPECT_FALSE(a.last_failed_wal.empty());
}

TEST_F(PgQueries, TablesAndRowCountsInBatches) {
  auto conn = Open();
  auto tables = UserTables(*conn);
  std::vector<std::string> names;
  for (const auto& t : tables) names.push_back(t.quoted);
  EXPECT_EQ(names,
            (std::vector<std::string>{"public.\"Odd Name\"", "public.child", "public.parent"}));
  auto existing = ExistingTables(*conn);
  EXPECT_EQ(existing.at({"public", "Odd Name"}), "public.\"Odd Name\"");
  // More tables than one batch holds: the same three, 600 times.
  std::vector<RowCountRequest> requests;
  for (int i = 0; i < 600; ++i) {
    requests.push_back({"public.\"Odd Name\"", false});
    requests.push_back({"public.child", i % 2 == 0});
  }
  auto counts = CountRows(*conn, requests);
  ASSERT_EQ(counts.size(), requests.size());
  for (std::size_t i = 0; i < counts.size(); i += 2) {
    EXPECT_EQ(counts[i], 3u);
    EXPECT_EQ(counts[i + 1], (i / 2) % 2 == 0 ? 1u : 102u);
  }
  EXPECT_TRUE(CountRows(*conn, {}).empty());
}

TEST_F(PgQueries, ForeignKeysOrphansAndAmcheck) {
  auto conn = Open();
  auto keys = ForeignKeys(*conn);
  ASSERT_EQ(keys.size(), 1u);
  EXPECT_EQ(keys[0].table, "public.child");
  EXPECT_EQ(keys[0].referenced, "public.parent");
  EXPECT_EQ(keys[0].columns, (std::vector<std::string>{"parent_id"}));
  EXPECT_EQ(CountOrphans(*conn, keys[0]), 1u);  // 77 has no parent; NULL is no reference
  ASSERT_TRUE(EnsureAmcheck(*conn));
  auto indexes = BtreeIndexes(*conn);
  ASSERT_FALSE(indexes.empty());
  EXPECT_TRUE(IndexesSound(*conn, indexes));
  EXPECT_NO_THROW(CheckIndex(*conn, indexes.front()));
  auto heaps = HeapRelations(*conn);
  bool scratch = false;
  for (const auto& h : heaps) scratch |= h.name == "scratch";
  EXPECT_FALSE(scratch) << "unlogged tables are not in a backup";
  EXPECT_TRUE(HeapsSound(*conn, heaps));
  EXPECT_TRUE(HeapProblems(*conn, heaps.front()).empty());
  EXPECT_EQ(RunCustomCheck(*conn, "SELECT count(*) = 3 FROM \"Odd Name\""), "t");
  EXPECT_THROW(RunCustomCheck(*conn, "SELECT FROM nowhere"), PgError);
}

}  // namespace
}  // namespace gravl::pg
