// archive-get: PostgreSQL's restore_command. Fetches a WAL file from the first repository
// that has it, verified, and writes it atomically to the requested path.
//
// Exit codes, chosen for PostgreSQL: 0 found; 4 not in any repository (recovery may end
// there); any real error (corrupt object, unreachable repository, wrong key) exits 126 so
// that PostgreSQL stops recovery instead of ending it early at the wrong point -- unless
// --standby, where the error's own code lets a standby keep retrying.
//
// Async mode (archive.async) prefetches the next `archive.prefetch` segments in parallel
// into <spool>/<stanza>/archive-get/, so recovery is not bound by one round trip per
// segment; prefetched files were verified when fetched.

#include <dirent.h>
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <filesystem>
#include <set>

#include "commands/cli.h"
#include "commands/commands.h"
#include "common/error.h"
#include "common/log.h"
#include "io/file.h"
#include "io/workers.h"
#include "repo/partial.h"
#include "repo/wal_archive.h"

namespace gravl::commands {
namespace {

constexpr int kRecoveryMustStop = 126;

// Moves a verified spool file to the destination (rename, or copy across file systems).
void MoveFile(const std::string& from, const std::string& to) {
  if (::rename(from.c_str(), to.c_str()) == 0) return;
  if (errno != EXDEV) throw StorageError(SysErrorText("cannot move " + from + " to " + to, errno));
  Bytes data = io::ReadFileBytes(from);
  io::AtomicFileSink out(to, io::AtomicFileOptions{.durable = false});
  out.Write(data);
  out.Finish();
  ::unlink(from.c_str());
}

int Fetch(const Context& ctx, const ArchiveGetOptions& options, const repo::WalFileName& file) {
  const std::string spool = ctx.config.spool_path + "/" + ctx.config.stanza + "/archive-get";
  bool prefetch = ctx.config.archive_async && ctx.config.archive_prefetch > 0 &&
                  file.kind == repo::WalFileKind::kSegment;
  auto owned = ctx.OpenRepos();
  if (prefetch && ::access((spool + "/" + file.name).c_str(), F_OK) == 0) {
    // Prefetched files were verified when fetched, but the spool may outlive the cluster
    // it was filled for (a stanza recreated under the same name): check that the segment
    // belongs to this stanza before PostgreSQL sees it.
    try {
      std::optional<repo::StanzaInfo> stanza;
      for (auto& r : owned) {
        if ((stanza = r->FindStanza())) break;
      }
      if (!stanza) throw NotFoundError("no repository holds stanza '" + ctx.config.stanza + "'");
      {
        io::MappedFile spooled(spool + "/" + file.name);
        repo::ValidateSegmentHeader(spooled.data(), spool + "/" + file.name,
                                    stanza->system_identifier, stanza->wal_segment_size);
      }
      MoveFile(spool + "/" + file.name, options.destination);
      spdlog::info("{} restored from the prefetch spool", file.name);
      ctx.Emit({{"file", file.name}, {"found", true}, {"prefetched", true}}, "");
      return 0;
    } catch (const Error& e) {
      spdlog::warn("discarding the prefetch spool: {}", Redact(e.what()));
      std::error_code ec;
      std::filesystem::remove_all(spool, ec);
    }
  }

  std::vector<repo::Repository*> repos;
  std::exception_ptr unlock_error;
  for (auto& r : owned) {
    try {
      r->Stanza();
      r->Unlock(ctx.config.passphrase);
      repos.push_back(r.get());
    } catch (const Error& e) {
      // A repository that cannot be opened is skipped (the next region may have the file);
      // FetchWalFile's rule applies: "not archived" needs every repository's word.
      spdlog::warn("{}: {}", r->Describe(), Redact(e.what()));
      if (!unlock_error) unlock_error = std::current_exception();
    }
  }

  std::vector<repo::WalFileName> names = {file};
  std::set<std::string> window;
  if (prefetch) {
    std::uint64_t seg_size =
        repos.empty() ? kDefaultWalSegmentSize : repos.front()->Stanza().wal_segment_size;
    auto seg = *WalSegment::ParseName(file.name, seg_size);
    io::MakeDirs(spool, io::InheritedOwner(spool));
    for (int i = 1; i <= ctx.config.archive_prefetch; ++i) {
      WalSegment next{seg.timeline, seg.segno + static_cast<std::uint64_t>(i)};
      std::string n = next.Name(seg_size);
      window.insert(n);
      if (::access((spool + "/" + n).c_str(), F_OK) == 0) continue;
      names.push_back(repo::WalFileName{n, repo::WalFileKind::kSegment, seg.timeline});
    }
    // Drop spooled files outside the window (recovery moved on, or to another timeline).
    if (DIR* dir = ::opendir(spool.c_str())) {
      while (dirent* e = ::readdir(dir)) {
        std::string n = e->d_name;
        if (n != "." && n != ".." && !window.count(n)) ::unlink((spool + "/" + n).c_str());
      }
      ::closedir(dir);
    }
  }

  std::vector<std::optional<std::string>> found(names.size());
  auto errors = io::RunParallel(names.size(), ctx.config.parallel, [&](std::size_t i) {
    std::string target = i == 0 ? options.destination : spool + "/" + names[i].name;
    found[i] = repo::FetchWalFile(repos, names[i], [&] {
      return std::make_unique<io::AtomicFileSink>(target, io::AtomicFileOptions{.durable = i > 0});
    });
  });
  std::size_t prefetched = 0;
  for (std::size_t i = 1; i < names.size(); ++i)
    if (found[i] && !errors[i]) ++prefetched;

  if (errors[0]) std::rethrow_exception(errors[0]);
  if (!found[0]) {
    if (unlock_error) std::rethrow_exception(unlock_error);
    // No repository holds the complete segment: the newest partial segment the receiver
    // uploaded (repo/partial.h), so that "latest" is the last acknowledged commit.
    if (file.kind == repo::WalFileKind::kSegment && !repos.empty()) {
      const std::uint64_t seg_size = repos.front()->Stanza().wal_segment_size;
      auto seg = WalSegment::ParseName(file.name, seg_size);
      if (auto partial = seg ? repo::FindPartialSegment(repos, *seg, seg_size) : std::nullopt) {
        io::AtomicFileSink out(options.destination, io::AtomicFileOptions{.durable = false});
        repo::ReadPartialSegment(*partial, seg_size, out);
        spdlog::info(
            "restored {} from a partial segment in repository '{}': {} bytes of WAL in {} "
            "chunk(s), the rest zeros (recovery ends inside it)",
            file.name, partial->repo->config().name, partial->bytes, partial->chain.size());
        ctx.Emit({{"file", file.name},
                  {"found", true},
                  {"repo", partial->repo->config().name},
                  {"partial", true},
                  {"partial_bytes", partial->bytes}},
                 "");
        return 0;
      }
    }
    spdlog::info("{} is not in the archive", file.name);
    ctx.Emit({{"file", file.name}, {"found", false}}, "");
    return ToInt(ExitCode::kNotFound);
  }
  spdlog::info("restored {} from repository '{}'{}", file.name, *found[0],
               prefetched ? " (+" + std::to_string(prefetched) + " prefetched)" : "");
  ctx.Emit({{"file", file.name},
            {"found", true},
            {"repo", *found[0]},
            {"prefetched", false},
            {"prefetched_ahead", prefetched}},
           "");
  return 0;
}

}  // namespace

int ArchiveGet(const Context& ctx, const ArchiveGetOptions& options) {
  auto file = repo::ParseWalFileName(options.name);
  if (!file) {
    throw UsageError("'" + options.name +
                     "' is not a WAL file name (restore_command must pass %f)");
  }
  try {
    return Fetch(ctx, options, *file);
  } catch (const Error& e) {
    if (options.standby) throw;
    spdlog::error("cannot restore {}: {} -- stopping recovery rather than ending it early",
                  options.name, Redact(e.what()));
    ctx.Emit(
        {{"file", options.name}, {"error", Redact(e.what())}, {"kind", ExitCodeName(e.code())}},
        "");
    std::fprintf(stderr, "gravl-dr: error: %s\n", Redact(e.what()).c_str());
    return kRecoveryMustStop;
  } catch (const std::exception& e) {
    // Anything unexpected is a real error too: never let it look like "not archived".
    if (options.standby) throw;
    std::fprintf(stderr, "gravl-dr: error: cannot restore %s: %s\n", options.name.c_str(),
                 Redact(e.what()).c_str());
    return kRecoveryMustStop;
  }
}

void AddArchiveGet(CLI::App& app, Invocation& inv) {
  auto options = std::make_shared<ArchiveGetOptions>();
  auto* cmd = app.add_subcommand(
      "archive-get",
      "restore_command: fetch a WAL file from the first repository that has it "
      "(restore_command = 'gravl-dr archive-get %f %p'). Exit 0 found, 4 not archived, "
      "126 error (recovery stops)");
  cmd->add_option("name", options->name, "the file name (%f)")->required();
  cmd->add_option("destination", options->destination, "where to write it (%p)")->required();
  cmd->add_flag("--standby", options->standby,
                "on errors exit with the error's code (so a standby retries) instead of 126");
  cmd->callback([&inv, options] { inv.result = ArchiveGet(inv.MakeContext(), *options); });
}

}  // namespace gravl::commands
