#pragma once
// Fencing the repository: after a failover or switchover the repository records that the old
// timeline ended where the new one began (a timeline fence, <stanza>/fences/<TTTTTTTT>.json),
// so that WAL an old primary still pushes on that timeline beyond the fork -- transactions
// that are not part of the new history -- never mixes with the archive a restore reads. Such
// files go to <stanza>/quarantine/wal/<TTTTTTTT>/ (stored, encrypted and checksummed like
// any WAL object, never read by archive-get, restore or drills), and are reported by `info`
// and the exporter. The push still succeeds: the old primary may recycle the file, and
// nothing it wrote is lost.
//
// A fence is write-once; writing the same fence again is a no-op (a failover re-run), a
// different one for the same timeline is a ConflictError.

#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "common/bytes.h"
#include "common/config.h"
#include "common/lsn.h"
#include "common/time_util.h"
#include "repo/wal.h"
#include "storage/storage.h"

namespace gravl::repo {

class Repository;

struct TimelineFence {
  TimelineId timeline = 0;  // the timeline that ended
  Lsn end;                  // where it ended: the switch point of its successor
  TimelineId successor = 0;
  SystemTime at{};
  std::string reason;  // "failover", "switchover", or "failback" (written from the history)
  std::string region;  // the region promoted
  std::string token;   // the run that wrote it (the token in its report's details)

  nlohmann::json ToJson() const;
  static TimelineFence FromJson(const nlohmann::json& doc, const std::string& what);
};

std::string FenceKey(const std::string& stanza, TimelineId timeline);
inline std::string QuarantinePrefix(const std::string& stanza) {
  return stanza + "/quarantine/wal/";
}

// Stores the fence unless the same is stored; ConflictError when another fence of the
// timeline exists (its end or successor differ).
void WriteFence(Repository& repo, const TimelineFence& fence);
// The fence of `timeline`, verified; nullopt when there is none.
std::optional<TimelineFence> ReadFence(storage::Storage& storage, const std::string& stanza,
                                       TimelineId timeline);
// Every fence, by timeline.
std::vector<TimelineFence> ReadFences(storage::Storage& storage, const std::string& stanza);

// Whether `file` holds WAL of the fenced timeline beyond its end: a segment (complete) that
// starts at or after the end, or the one the end falls inside (its content after the end
// diverges). Partial segments (the new primary's copy of the old timeline's last segment),
// history and backup label files are never beyond a fence.
bool BeyondFence(const TimelineFence& fence, const WalFileName& file, std::uint64_t segment_size);

// Stores `data` (the whole file, SHA-256 `sha256`) under the quarantine prefix; returns its
// key. Idempotent like archiving.
std::string QuarantineWalFile(Repository& repo, const WalFileName& file, ByteView data,
                              const std::string& sha256, CompressionType compression, int level);

// The quarantined files (keys), oldest timeline and segment first.
std::vector<storage::ObjectInfo> ListQuarantine(storage::Storage& storage,
                                                const std::string& stanza);

}  // namespace gravl::repo
