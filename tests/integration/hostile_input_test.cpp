// Restores on hosts where the server's user, or whoever can write the repository, is not
// trusted with root's writes (issue 14, items 3-5): --delta never writes through a link the
// backup does not have; a manifest cannot choose where a restore writes; backups that carry
// their WAL restore with --delta.

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <functional>
#include <nlohmann/json.hpp>
#include <thread>

#include "pg/instance.h"
#include "repo/file_list.h"
#include "repo/layout.h"
#include "repo/manifest.h"
#include "repo/repository.h"
#include "storage/factory.h"
#include "support/cli.h"
#include "support/manifest_util.h"
#include "support/restoring_fixture.h"
#include "support/test_util.h"

namespace gravl {
namespace {

namespace fs = std::filesystem;

class HostileInput : public test::RestoringFixture {
 protected:
  std::string Label(const RunResult& r) { return nlohmann::json::parse(r.out)["label"]; }
  std::size_t CountEntries(const fs::path& dir) {
    std::size_t n = 0;
    for (auto it = fs::recursive_directory_iterator(dir); it != fs::recursive_directory_iterator();
         ++it) {
      ++n;
    }
    return n;
  }
  // Rewrites backup `label` as someone who can write an unencrypted repository could: the
  // manifest (and, with `edit_files`, the file list) changed, every checksum recomputed.
  void Forge(const std::string& label, const std::function<void(nlohmann::json&)>& edit,
             const std::function<void(repo::FileList&)>& edit_files = {}) {
    RepoConfig rc{"local", "posix", dir_ / "repo", {}};
    repo::Repository repo(rc, storage::OpenStorage(rc), "main");
    repo.Stanza();
    nlohmann::json m = repo::ReadManifestDocument(repo, label);
    edit(m);
    if (edit_files) {
      repo::FileList files = repo::ReadFileList(repo, repo::ReadManifest(repo, label));
      edit_files(files);
      repo.storage().DeleteMany({repo::BackupObjectPrefix("main", label) + "file_list"});
      repo::StoredObject stored = repo::WriteFileList(repo, label, files);
      repo::FileListRecord record = repo::MakeFileListRecord(stored, files.size());
      m["file_list"] = {{"object", record.object.object},
                        {"compression", "zstd"},
                        {"sha256", record.object.sha256},
                        {"size", record.object.size},
                        {"stored_size", *record.object.stored_size},
                        {"entries", record.entries}};
    }
    test::WriteManifestDocument(repo, label, m);
    Chown(dir_ / "repo");
  }
};

TEST_F(HostileInput, DeltaNeverWritesThroughALinkTheBackupDoesNotHave) {
  Query("CREATE TABLE t AS SELECT g FROM generate_series(1, 1000) g");
  ASSERT_EQ(Cli({"backup"}).exit_code, 0);
  std::string pgdata = dir_ / "restored";
  ASSERT_EQ(Cli({"restore", "--pgdata", pgdata, "--target", "immediate"}).exit_code, 0);
  // The server's user replaces base/ with a link to a directory of its choice.
  fs::path outside = dir_ / "outside";
  fs::rename(pgdata + "/base", outside);
  ::chmod(outside.c_str(), 0755);
  fs::create_symlink(outside, pgdata + "/base");
  std::size_t before = CountEntries(outside);
  RunResult r = Cli({"restore", "--pgdata", pgdata, "--delta", "--target", "immediate"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(fs::symlink_status(pgdata + "/base").type(), fs::file_type::directory);
  EXPECT_EQ(CountEntries(outside), before);
  struct stat st {};
  ASSERT_EQ(::stat(outside.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0755u);
  auto restored = StartRestored(pgdata, "restored-run");
  EXPECT_EQ(Query(*restored, "SELECT count(*) FROM t"), "1000");
}

TEST_F(HostileInput, AForgedManifestCannotChooseWhereARestoreWrites) {
  fs::create_directories(dir_ / "ts");
  pg::GiveToServerUser(dir_ / "ts");
  Query("CREATE TABLESPACE ts LOCATION '" + (dir_ / "ts") + "'");
  Query("CREATE TABLE tt TABLESPACE ts AS SELECT g FROM generate_series(1, 100) g");
  RunResult b = Cli({"backup", "--output", "json"});
  ASSERT_EQ(b.exit_code, 0) << b.err;
  std::string label = Label(b);
  std::string pgdata = dir_ / "forged";
  auto refused = [&](const std::string& expected) {
    RunResult r = Cli({"restore", "--pgdata", pgdata, "--tablespace-map-all", dir_ / "ts-all"});
    EXPECT_EQ(r.exit_code, 6) << r.err;
    EXPECT_NE(r.err.find(expected), std::string::npos) << r.err;
    EXPECT_FALSE(fs::exists(pgdata));
    EXPECT_FALSE(fs::exists(dir_ / "ts-all"));
  };
  std::string original;
  // A relative location.
  Forge(label, [&](nlohmann::json& m) {
    original = m["tablespaces"][0]["location"];
    m["tablespaces"][0]["location"] = "../outside/x";
  });
  refused("not a normalised absolute path");
  // An absolute one the backup's own tablespace link does not point to.
  Forge(label, [&](nlohmann::json& m) { m["tablespaces"][0]["location"] = dir_ / "elsewhere"; });
  refused("places tablespace");
  // A link where PostgreSQL has none, and an entry listed twice.
  Forge(
      label, [&](nlohmann::json& m) { m["tablespaces"][0]["location"] = original; },
      [](repo::FileList& files) {
        repo::FileEntry link;
        link.type = repo::FileEntry::Type::kLink;
        link.path = "escape";
        link.target = "/etc";
        link.mode = 0777;
        files.Add(link);
      });
  refused("symbolic link 'escape' -> '/etc'");
  Forge(
      label, [](nlohmann::json&) {},
      [](repo::FileList& files) {
        repo::FileList kept(files.format());
        for (const auto& f : files) {
          if (f.path != "escape") kept.Add(f);
        }
        repo::FileEntry dup;
        dup.type = repo::FileEntry::Type::kDir;
        dup.path = "base";
        dup.mode = 0700;
        kept.Add(dup);
        files = std::move(kept);
      });
  refused("'base' twice");
}

// A manifest that passes its checksum but lacks a field is that backup's clear error (exit 6
// naming the field), never an unexpected one; the other backups stay usable.
TEST_F(HostileInput, AManifestMissingAFieldIsAClearErrorOfThatBackup) {
  RunResult b1 = Cli({"backup", "--output", "json"});
  ASSERT_EQ(b1.exit_code, 0) << b1.err;
  std::this_thread::sleep_for(std::chrono::milliseconds(1100));
  RunResult b2 = Cli({"backup", "--output", "json"});
  ASSERT_EQ(b2.exit_code, 0) << b2.err;
  Forge(Label(b2), [](nlohmann::json& m) { m.erase("stop_time"); });
  for (std::vector<std::string> args : {std::vector<std::string>{"info"},
                                        {"verify"},
                                        {"restore", "--pgdata", dir_ / "x", "--set", Label(b2)}}) {
    RunResult r = Cli(args);
    EXPECT_EQ(r.exit_code, 6) << args[0] << ": " << r.out << r.err;
    EXPECT_NE((r.out + r.err).find("field 'stop_time' is missing"), std::string::npos)
        << args[0] << ": " << r.out << r.err;
  }
  RunResult older = Cli({"restore", "--pgdata", dir_ / "older", "--target", "immediate"});
  EXPECT_EQ(older.exit_code, 0) << older.err;
  EXPECT_NE(older.out.find("backup " + Label(b1)), std::string::npos) << older.out;
}

// The PostgreSQL password never appears in the process list: pg_dump and pg_dumpall get it
// in a temporary passfile (issue 14, item 8). The list is sampled while the backup runs.
TEST_F(HostileInput, ALogicalBackupNeverShowsThePasswordInPs) {
  const std::string secret = "Pr0cessL1st-Secret";
  Query("CREATE ROLE dumper LOGIN SUPERUSER PASSWORD '" + secret + "'");
  Query("CREATE TABLE big AS SELECT g, md5(g::text) FROM generate_series(1, 300000) g");
  std::string conninfo = "host=127.0.0.1 port=" + std::to_string(cluster_->port()) +
                         " user=dumper password=" + secret + " dbname=postgres";
  pid_t pid = ::fork();
  if (pid == 0) {
    ::setenv("GRAVL_DR_PG_CONNINFO", conninfo.c_str(), 1);
    std::vector<std::string> argv = {
        test::GravlBinary(), "--config", config_, "backup", "--type", "logical"};
    std::vector<char*> args;
    for (auto& a : argv) args.push_back(a.data());
    args.push_back(nullptr);
    int null = ::open("/dev/null", O_WRONLY);
    ::dup2(null, 1);
    ::dup2(null, 2);
    ::execv(args[0], args.data());
    ::_exit(127);
  }
  int samples_with_pg_dump = 0, leaks = 0, status = 0;
  std::string leaked;
  while (::waitpid(pid, &status, WNOHANG) == 0) {
    for (const auto& e : fs::directory_iterator("/proc")) {
      std::string cmdline = test::ReadFileOrEmpty(e.path() / "cmdline");
      for (auto& c : cmdline) {
        if (c == '\0') c = ' ';
      }
      if (cmdline.find("pg_dump") != std::string::npos) ++samples_with_pg_dump;
      if (cmdline.find(secret) != std::string::npos) {
        ++leaks;
        leaked = cmdline;
      }
    }
  }
  ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << status;
  EXPECT_GT(samples_with_pg_dump, 0) << "the sampling never saw pg_dump running";
  EXPECT_EQ(leaks, 0) << leaked;
  for (const auto& e :
       fs::directory_iterator(std::getenv("TMPDIR") ? std::getenv("TMPDIR") : "/tmp")) {
    EXPECT_EQ(e.path().filename().string().find("gravl-dr-pgpass-"), std::string::npos)
        << e.path() << " left behind";
  }
}

// A backup that carries its WAL (no gravl-dr archiving) restores over itself with --delta;
// so does a restore over what a failed restore left behind.
class DeltaWithIncludedWal : public test::RestoringFixture {
 protected:
  void SetUp() override { ArchivingFixture::SetUp(); }  // archive_command stays empty
};

TEST_F(DeltaWithIncludedWal, RestoresOverItself) {
  Query("CREATE TABLE t AS SELECT g FROM generate_series(1, 500) g");
  RunResult b = Cli({"backup", "--output", "json"});
  ASSERT_EQ(b.exit_code, 0) << b.err;
  ASSERT_TRUE(nlohmann::json::parse(b.out)["wal_included"].get<bool>());
  std::string pgdata = dir_ / "restored";
  ASSERT_EQ(Cli({"restore", "--pgdata", pgdata}).exit_code, 0);
  RunResult again = Cli({"restore", "--pgdata", pgdata, "--delta"});
  ASSERT_EQ(again.exit_code, 0) << again.err;
  auto restored = StartRestored(pgdata, "restored-run");
  EXPECT_EQ(Query(*restored, "SELECT count(*) FROM t"), "500");
}

}  // namespace
}  // namespace gravl
