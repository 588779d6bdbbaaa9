// archive-push: PostgreSQL's archive_command. Success only when every repository holds the
// file durably; PostgreSQL keeps the file and retries otherwise.
//
// Async mode (archive.async): one call also pushes the other segments waiting in
// pg_wal/archive_status (*.ready) with `parallel` workers and records each success as
// <spool>/<stanza>/archive-push/<name>.ok holding the file's SHA-256. When PostgreSQL then
// asks for such a file, the call only re-hashes the file and compares -- no repository
// round trip, no key derivation.

#include <dirent.h>
#include <spdlog/spdlog.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <map>
#include <sstream>

#include "commands/cli.h"
#include "commands/commands.h"
#include "common/error.h"
#include "common/log.h"
#include "io/file.h"
#include "io/hash.h"
#include "io/workers.h"
#include "repo/fence.h"
#include "repo/wal_archive.h"
#include "storage/factory.h"

namespace gravl::commands {
namespace {

std::string BaseName(const std::string& path) {
  auto slash = path.rfind('/');
  return slash == std::string::npos ? path : path.substr(slash + 1);
}

std::vector<std::string> ReadyFiles(const std::string& wal_dir) {
  std::vector<std::string> names;
  std::string status_dir = wal_dir + "/archive_status";
  DIR* dir = ::opendir(status_dir.c_str());
  if (dir == nullptr) return names;  // not a data directory's pg_wal: nothing to batch
  while (dirent* e = ::readdir(dir)) {
    std::string n = e->d_name;
    if (n.size() > 6 && n.compare(n.size() - 6, 6, ".ready") == 0) {
      names.push_back(n.substr(0, n.size() - 6));
    }
  }
  ::closedir(dir);
  // PostgreSQL archives history files first, then the oldest segments.
  std::sort(names.begin(), names.end(), [](const std::string& a, const std::string& b) {
    bool ha = a.find(".history") != std::string::npos;
    bool hb = b.find(".history") != std::string::npos;
    return ha != hb ? ha : a < b;
  });
  return names;
}

// What a pushed-ahead record vouches for: the file (identified by inode, size and
// modification time -- PostgreSQL never rewrites a completed segment in place, so this
// spares reading and hashing it again), its checksum, and the object that holds it in each
// configured repository. The fast path re-checks that every object still exists (one stat
// per repository, no key derivation), so a wiped or replaced repository never gets a gap.
std::string FileIdentity(const std::string& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0)
    throw StorageError(SysErrorText("cannot stat " + path, errno));
  return std::to_string(st.st_ino) + ":" + std::to_string(st.st_size) + ":" +
         std::to_string(st.st_mtim.tv_sec) + "." + std::to_string(st.st_mtim.tv_nsec);
}

// True when the record matches this file and every configured repository still holds the
// recorded object.
bool StillArchived(const nlohmann::json& record, const std::string& identity, const Context& ctx) {
  if (!record.is_object() || record.value("file", "") != identity) return false;
  const auto& objects = record.value("objects", nlohmann::json::object());
  auto repos = ctx.config.SelectRepos(ctx.repo_name);
  if (objects.size() != repos.size()) return false;
  for (const auto& rc : repos) {
    auto it = objects.find(rc.name + " " + rc.type + ":" + rc.path);
    if (it == objects.end()) return false;
    if (!storage::OpenStorage(rc)->Stat(it->get<std::string>())) return false;
  }
  return true;
}

struct Pushed {
  std::string name;
  std::string sha256;
  std::uint64_t size = 0;
  std::vector<repo::RepoPushStatus> repos;
};

}  // namespace

int ArchivePush(const Context& ctx, const ArchivePushOptions& options) {
  auto start = std::chrono::steady_clock::now();
  const std::string name = BaseName(options.path);
  auto file = repo::ParseWalFileName(name);
  if (!file) {
    throw UsageError("'" + name + "' is not a WAL file name (archive_command must pass %p)");
  }
  const std::string wal_dir = io::ParentDir(options.path);
  const std::string spool = ctx.config.spool_path + "/" + ctx.config.stanza + "/archive-push";

  // Run as root (by hand), what goes into the spool belongs to the spool's owner.
  const std::optional<io::FileOwner> spool_owner = io::InheritedOwner(spool);
  // Fast path: pushed ahead by an earlier call.
  if (ctx.config.archive_async) {
    std::string ok_path = spool + "/" + name + ".ok";
    std::optional<Bytes> ok_record;
    try {
      ok_record = io::TryReadFileBytes(ok_path);
    } catch (const Error& e) {
      // An unreadable spool only costs the shortcut: the file is pushed as usual.
      spdlog::warn("cannot read the spool: {}; pushing {} directly", Redact(e.what()), name);
    }
    if (ok_record) {
      auto record = nlohmann::json::parse(AsChars(*ok_record), nullptr, false);
      std::string identity = FileIdentity(options.path);
      ::unlink(ok_path.c_str());
      if (StillArchived(record, identity, ctx)) {
        std::string sha = record.value("sha256", "");
        spdlog::info("{} was already pushed ahead (SHA-256 {})", name, sha.substr(0, 12));
        ctx.Emit({{"file", name}, {"sha256", sha}, {"pushed_ahead", true}}, "");
        return 0;
      }
      spdlog::warn(
          "{} changed since it was pushed ahead, or a repository no longer holds it; "
          "pushing it again",
          name);
    }
  }

  if (ctx.dry_run) {
    ctx.Emit({{"file", name}, {"dry_run", true}}, "would archive " + name + "\n");
    return 0;
  }

  Context::WalTargets targets = ctx.OpenWalTargets();
  const std::vector<repo::Repository*>& repos = targets.repos;
  const std::string& sysid = targets.system_identifier;
  const std::uint64_t seg_size = targets.segment_size;

  std::vector<std::string> batch = {name};
  if (ctx.config.archive_async) {
    io::MakeDirs(spool, spool_owner);
    for (const auto& ready : ReadyFiles(wal_dir)) {
      if (static_cast<int>(batch.size()) >= ctx.config.archive_batch) break;
      if (ready == name || !repo::ParseWalFileName(ready)) continue;
      if (::access((spool + "/" + ready + ".ok").c_str(), F_OK) == 0) continue;
      batch.push_back(ready);
    }
  }

  // Timeline fences (repo/fence.h): WAL of an ended timeline beyond its end goes to quarantine.
  std::map<std::pair<std::size_t, TimelineId>, std::optional<repo::TimelineFence>> fences;
  for (const auto& n : batch) {
    auto wal = repo::ParseWalFileName(n);
    if (!wal || wal->kind != repo::WalFileKind::kSegment) continue;
    for (std::size_t r = 0; r < repos.size(); ++r) {
      auto key = std::make_pair(r, wal->timeline);
      if (!fences.count(key)) {
        fences[key] = repo::ReadFence(repos[r]->storage(), repos[r]->stanza(), wal->timeline);
      }
    }
  }
  std::atomic<int> quarantined{0};

  std::vector<Pushed> results(batch.size());
  auto errors = io::RunParallel(batch.size(), ctx.config.parallel, [&](std::size_t i) {
    const std::string path = wal_dir + "/" + batch[i];
    auto wal = repo::ParseWalFileName(batch[i]);
    io::MappedFile mapped(path);
    ByteView data = mapped.data();
    if (wal->kind == repo::WalFileKind::kSegment || wal->kind == repo::WalFileKind::kPartial) {
      repo::ValidateSegmentHeader(data, path, sysid, seg_size);
      if (wal->kind == repo::WalFileKind::kSegment && seg_size != 0 && data.size() != seg_size) {
        throw IntegrityError(path + " has " + std::to_string(data.size()) +
                             " bytes, but a WAL segment has " + std::to_string(seg_size));
      }
    }
    Pushed& p = results[i];
    p.name = batch[i];
    p.size = data.size();
    p.sha256 = io::Sha256Hex(data);
    std::vector<repo::Repository*> normal;
    std::vector<repo::RepoPushStatus> fenced;
    for (std::size_t r = 0; r < repos.size(); ++r) {
      auto it = fences.find({r, wal->timeline});
      if (it != fences.end() && it->second && repo::BeyondFence(*it->second, *wal, seg_size)) {
        std::string key = repo::QuarantineWalFile(
            *repos[r], *wal, data, p.sha256, ctx.config.compression, ctx.config.compression_level);
        spdlog::error(
            "{}: {} is WAL of timeline {} beyond {}, where that timeline ended ({} to {} at "
            "{}): this server kept writing after another one was promoted. The file is kept "
            "in quarantine ({}) and is never served to a restore; fence this server (see "
            "docs/failover.md)",
            repos[r]->Describe(), batch[i], wal->timeline, it->second->end.ToString(),
            it->second->reason, it->second->region, FormatIso8601(it->second->at), key);
        fenced.push_back({repos[r]->config().name, key, true});
        ++quarantined;
      } else {
        normal.push_back(repos[r]);
      }
    }
    auto stored = repo::PushWalFile(normal, *wal, data, p.sha256, ctx.config.compression,
                                    ctx.config.compression_level);
    // In the order of the repositories.
    for (auto* r : repos) {
      for (auto* list : {&stored, &fenced}) {
        for (auto& st : *list) {
          if (st.repo == r->config().name) p.repos.push_back(st);
        }
      }
    }
    if (i > 0) {
      io::AtomicFileSink ok(spool + "/" + batch[i] + ".ok",
                            io::AtomicFileOptions{.durable = false, .owner = spool_owner});
      nlohmann::json objects = nlohmann::json::object();
      for (std::size_t r = 0; r < repos.size(); ++r) {
        const auto& rc = repos[r]->config();
        objects[rc.name + " " + rc.type + ":" + rc.path] = p.repos[r].key;
      }
      nlohmann::json record = {
          {"sha256", p.sha256}, {"file", FileIdentity(path)}, {"objects", objects}};
      ok.Write(AsBytes(record.dump()));
      ok.Finish();
    }
  });

  std::size_t ahead = 0;
  for (std::size_t i = 1; i < batch.size(); ++i) {
    if (errors[i]) {
      try {
        std::rethrow_exception(errors[i]);
      } catch (const std::exception& e) {
        spdlog::warn("pushing {} ahead failed (it will be retried when PostgreSQL asks): {}",
                     batch[i], Redact(e.what()));
      }
    } else {
      ++ahead;
    }
  }
  if (errors[0]) std::rethrow_exception(errors[0]);
  // Now and then (every 16th segment), temporary files that killed pushes left in the
  // timeline's folder are removed.
  if (auto seg = WalSegment::ParseName(name, seg_size ? seg_size : kDefaultWalSegmentSize);
      seg && seg->segno % 16 == 0) {
    for (auto& r : repos) {
      try {
        r->StaleTemporaries("wal/" + TimelineHex(seg->timeline), true);
      } catch (const std::exception& e) {
        spdlog::warn("{}: cleaning temporary files: {}", r->Describe(), Redact(e.what()));
      }
    }
  }

  double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  const Pushed& p = results[0];
  nlohmann::json repos_json = nlohmann::json::array();
  std::ostringstream text;
  for (const auto& s : p.repos) {
    bool in_quarantine = s.key.find("/quarantine/") != std::string::npos;
    repos_json.push_back({{"repo", s.repo},
                          {"status", in_quarantine ? "quarantined"
                                     : s.stored    ? "stored"
                                                   : "already-archived"}});
  }
  spdlog::info("archived {} ({}) to {} repositor{}{} in {:.3f}s", name, FormatBytes(p.size),
               p.repos.size(), p.repos.size() == 1 ? "y" : "ies",
               ahead ? " (+" + std::to_string(ahead) + " pushed ahead)" : "", seconds);
  ctx.Emit({{"file", name},
            {"sha256", p.sha256},
            {"size", p.size},
            {"repos", repos_json},
            {"pushed_ahead", false},
            {"also_pushed", ahead},
            {"seconds", seconds}},
           "");
  return 0;
}

void AddArchivePush(CLI::App& app, Invocation& inv) {
  auto options = std::make_shared<ArchivePushOptions>();
  auto* cmd =
      app.add_subcommand("archive-push",
                         "archive_command: store a WAL file in every repository (archive_command = "
                         "'gravl-dr archive-push %p')");
  cmd->add_option("path", options->path, "the file (%p)")->required();
  cmd->add_flag("--dry-run", inv.dry_run, "check the file and configuration, store nothing");
  cmd->callback([&inv, options] { inv.result = ArchivePush(inv.MakeContext(), *options); });
}

}  // namespace gravl::commands
