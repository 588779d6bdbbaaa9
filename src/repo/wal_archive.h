#pragma once
// Pushing WAL files to, and fetching them from, a set of repositories.

#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "io/stream.h"
#include "repo/repository.h"
#include "repo/wal.h"

namespace gravl::repo {

struct RepoPushStatus {
  std::string repo;
  std::string key;      // the object holding the file
  bool stored = false;  // false: it was already archived with the same checksum
};

// Stores `data` (the whole file) as `file` in every repository, or verifies it is already
// there with the same SHA-256. Throws on the first repository that fails -- the caller
// must then report failure, so PostgreSQL keeps the file and retries. Throws
// ConflictError naming both checksums when a different file is archived under the name.
std::vector<RepoPushStatus> PushWalFile(const std::vector<Repository*>& repos,
                                        const WalFileName& file, ByteView data,
                                        const std::string& sha256, CompressionType compression,
                                        int level);

// Fetches `file` from the first repository that has it, verified, into a sink made by
// `make_destination` (a fresh one per attempt, finished only on success, so a failed
// attempt never leaves bytes behind). Returns the repository's name, or nullopt when no repository
// has it and none failed. When a repository fails and no later one has the file, rethrows
// that failure: "not archived" is only reported when every repository said so.
std::optional<std::string> FetchWalFile(
    const std::vector<Repository*>& repos, const WalFileName& file,
    const std::function<std::unique_ptr<io::Sink>()>& make_destination);

}  // namespace gravl::repo

namespace gravl::repo {

// PushWalFile for a file streamed or archived from a server, with the repository's timeline
// fences (repo/fence.h) applied: in a repository whose fence of the file's timeline the file
// lies beyond, it goes to quarantine instead (status key under the quarantine prefix) and an
// error is logged naming the fence. `segment_size` is the stanza's.
std::vector<RepoPushStatus> ArchiveWalFile(const std::vector<Repository*>& repos,
                                           const WalFileName& file, ByteView data,
                                           const std::string& sha256, CompressionType compression,
                                           int level, std::uint64_t segment_size);

}  // namespace gravl::repo
