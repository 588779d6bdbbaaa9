#include "pg/server.h"

#include <dirent.h>
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <regex>
#include <sstream>

#include "common/error.h"
#include "common/subprocess.h"
#include "io/file.h"
#include "pg/connection.h"
#include "pg/instance.h"
#include "pg/wal_records.h"

namespace gravl::pg {
namespace fs = std::filesystem;

namespace {

std::string Trim(std::string s) {
  while (!s.empty() && (s.back() == ' ' || s.back() == '\n' || s.back() == '\r')) s.pop_back();
  std::size_t b = s.find_first_not_of(' ');
  return b == std::string::npos ? "" : s.substr(b);
}

std::string Tail(const std::string& text, std::size_t lines) {
  std::size_t pos = text.size();
  for (std::size_t n = 0; n <= lines && pos > 0; ++n) {
    pos = text.rfind('\n', pos - 1);
    if (pos == std::string::npos) return text;
  }
  return text.substr(pos + 1);
}

}  // namespace

ControlData ParseControlData(const std::string& text) {
  std::map<std::string, std::string> fields;
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line)) {
    auto colon = line.find(':');
    if (colon == std::string::npos) continue;
    fields[Trim(line.substr(0, colon))] = Trim(line.substr(colon + 1));
  }
  auto need = [&](const std::string& key) -> const std::string& {
    auto it = fields.find(key);
    if (it == fields.end()) throw PgError("pg_controldata printed no '" + key + "' line");
    return it->second;
  };
  ControlData c;
  c.state = need("Database cluster state");
  c.system_identifier = need("Database system identifier");
  c.checkpoint = Lsn::Parse(need("Latest checkpoint location"));
  c.redo = Lsn::Parse(need("Latest checkpoint's REDO location"));
  c.timeline = static_cast<TimelineId>(std::stoul(need("Latest checkpoint's TimeLineID")));
  c.min_recovery_end = Lsn::Parse(need("Minimum recovery ending location"));
  c.min_recovery_timeline =
      static_cast<TimelineId>(std::stoul(need("Min recovery ending loc's timeline")));
  c.data_checksum_version = std::stoi(need("Data page checksum version"));
  if (auto it = fields.find("wal_log_hints setting"); it != fields.end()) {
    c.wal_log_hints = it->second == "on";
  }
  c.segment_size = std::stoull(need("Bytes per WAL segment"));
  return c;
}

std::vector<WalCommit> ParseWaldumpCommits(const std::string& text) {
  // rmgr: Transaction len (rec/tot):     34/    34, tx:        735, lsn: 0/03000060, prev
  // 0/03000028, desc: COMMIT 2026-12-01 02:00:00.000000 UTC
  static const std::regex kLine(
      R"(rmgr: Transaction .*tx:\s*(\d+), lsn: ([0-9A-Fa-f]+/[0-9A-Fa-f]+),.*desc: (COMMIT|ABORT) ([0-9-]+ [0-9:.]+ ?[A-Z+0-9:-]*))");
  std::vector<WalCommit> out;
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line)) {
    std::smatch m;
    if (!std::regex_search(line, m, kLine)) continue;
    if (m[3] != "COMMIT") continue;
    out.push_back({Lsn::Parse(m[2].str()), m[1].str(), Trim(m[4].str())});
  }
  return out;
}

LocalServer::LocalServer(std::string bin_dir, std::string data_dir)
    : bin_dir_(std::move(bin_dir)),
      data_dir_(std::move(data_dir)),
      log_file_(data_dir_ + "/log/gravl-dr-server.log") {}

bool LocalServer::Running() const {
  std::error_code ec;
  if (!fs::exists(data_dir_ + "/PG_VERSION", ec)) {
    throw PgError(data_dir_ + " is not a PostgreSQL data directory (no PG_VERSION)");
  }
  // postmaster.pid names the postmaster; a process that is gone, or a zombie nobody reaped
  // yet (a killed server whose parent is a container's init), is not a running server --
  // `pg_ctl status` counts a zombie as running.
  std::ifstream pid_file(data_dir_ + "/postmaster.pid");
  long pid = 0;
  if (!(pid_file >> pid) || pid <= 0) return false;
  auto ps = ReadProcessStat(pid);
  return ps && ps->state != 'Z' && ps->state != 'X';
}

bool LocalServer::RemoveStalePid() const {
  if (Running()) throw PgError("a PostgreSQL server runs on " + data_dir_);
  std::error_code ec;
  bool removed = fs::remove(data_dir_ + "/postmaster.pid", ec);
  if (ec) throw PgError("cannot remove " + data_dir_ + "/postmaster.pid: " + ec.message());
  return removed;
}

void LocalServer::Start(std::chrono::seconds timeout) const {
  io::MakeDirs(data_dir_ + "/log", std::nullopt);
  GiveToServerUser(data_dir_ + "/log");
  RunResult r = Run(AsServerUser({Bin("pg_ctl"), "-D", data_dir_, "-l", log_file_, "-w", "-t",
                                  std::to_string(timeout.count()), "start"}));
  if (!r.ok()) {
    throw PgError("PostgreSQL did not start in " + data_dir_ + ": " + Trim(r.err + r.out) +
                  "\nserver log (" + log_file_ + "):\n" + LogTail());
  }
}

void LocalServer::Stop(const std::string& mode, std::chrono::seconds timeout) const {
  RunResult r = Run(AsServerUser({Bin("pg_ctl"), "-D", data_dir_, "-m", mode, "-w", "-t",
                                  std::to_string(timeout.count()), "stop"}));
  if (!r.ok()) {
    throw PgError("pg_ctl stop -m " + mode + " failed for " + data_dir_ + ": " +
                  Trim(r.err + r.out));
  }
}

ControlData LocalServer::Control() const {
  RunResult r = Run({Bin("pg_controldata"), "-D", data_dir_});
  if (!r.ok()) {
    throw PgError("pg_controldata -D " + data_dir_ + " failed: " + Trim(r.err + r.out));
  }
  return ParseControlData(r.out);
}

std::optional<Lsn> LocalServer::WalEnd(std::uint64_t segment_size) const {
  std::vector<WalSegment> segments;
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(data_dir_ + "/pg_wal", ec)) {
    if (auto s = WalSegment::ParseName(e.path().filename().string(), segment_size)) {
      segments.push_back(*s);
    }
  }
  if (ec) throw PgError("cannot list " + data_dir_ + "/pg_wal: " + ec.message());
  if (segments.empty()) return std::nullopt;
  std::sort(segments.begin(), segments.end());
  const TimelineId tli = segments.back().timeline;
  // From the newest down: recycled segments ahead of the end hold no valid page of their own
  // address, so the first one that does holds the end.
  for (auto it = segments.rbegin(); it != segments.rend() && it->timeline == tli; ++it) {
    const std::string path = data_dir_ + "/pg_wal/" + it->Name(segment_size);
    // A recycled segment's first page carries another address: skip it without reading
    // 16 MB (pg_wal may hold many of them).
    {
      std::ifstream in(path, std::ios::binary);
      unsigned char header[16] = {};
      if (!in.read(reinterpret_cast<char*>(header), sizeof header)) continue;
      std::uint64_t pageaddr = 0;
      for (int i = 7; i >= 0; --i) pageaddr = (pageaddr << 8) | header[8 + i];
      if (pageaddr != it->StartLsn(segment_size).value) continue;
    }
    WalRecordScanner scanner(segment_size);
    auto bytes = io::ReadFileBytes(path);
    scanner.AddSegment(*it, bytes);
    if (scanner.end() > it->StartLsn(segment_size)) return scanner.end();
  }
  return segments.back().StartLsn(segment_size);
}

std::vector<WalCommit> LocalServer::Commits(TimelineId timeline, Lsn from, Lsn to,
                                            std::size_t limit, std::size_t* total,
                                            std::string* why) const {
  RunResult r = Run({Bin("pg_waldump"), "-p", data_dir_ + "/pg_wal", "-t", std::to_string(timeline),
                     "-s", from.ToString(), "-e", to.ToString(), "-r", "Transaction"},
                    RunOptions{.timeout = std::chrono::seconds(120)});
  auto commits = ParseWaldumpCommits(r.out);
  if (total) *total = commits.size();
  if (commits.size() > limit)
    commits.erase(commits.begin(), commits.end() - static_cast<std::ptrdiff_t>(limit));
  // pg_waldump ends with an error at the end of valid WAL; only an empty result is a problem.
  if (commits.empty() && !r.ok() && why) *why = Trim(Tail(r.err, 3));
  return commits;
}

void LocalServer::Rewind(const std::string& source_conninfo, std::chrono::seconds timeout) const {
  ChildCredentials creds(source_conninfo);
  RunOptions options;
  options.env = creds.env();
  options.timeout = timeout;
  for (const auto& e : options.env) {
    if (e.rfind("PGPASSFILE=", 0) == 0) GiveToServerUser(e.substr(11));
  }
  RunResult r = Run(AsServerUser({Bin("pg_rewind"), "--target-pgdata", data_dir_, "--source-server",
                                  creds.conninfo(), "--restore-target-wal", "--progress"}),
                    options);
  if (!r.ok()) {
    throw PgError("pg_rewind of " + data_dir_ + " failed: " + Tail(r.err + r.out, 8));
  }
}

std::map<std::string, std::string> LocalServer::SaveConfigFiles() const {
  std::map<std::string, std::string> files;
  for (const char* name :
       {"postgresql.conf", "pg_hba.conf", "pg_ident.conf", "postgresql.auto.conf"}) {
    if (auto bytes = io::TryReadFileBytes(data_dir_ + "/" + name)) {
      files[name] = std::string(AsChars(*bytes));
    }
  }
  return files;
}

void LocalServer::RestoreConfigFiles(const std::map<std::string, std::string>& files) const {
  for (const auto& [name, text] : files) {
    std::string path = data_dir_ + "/" + name;
    io::AtomicFileSink out(path, io::AtomicFileOptions{.mode = 0600});
    out.Write(AsBytes(text));
    out.Finish();
    GiveToServerUser(path);
  }
}

std::string LocalServer::LogTail() const {
  auto bytes = io::TryReadFileBytes(log_file_);
  return bytes ? Tail(std::string(AsChars(*bytes)), 20) : "(no log at " + log_file_ + ")";
}

}  // namespace gravl::pg
