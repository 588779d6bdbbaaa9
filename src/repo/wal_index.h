#pragma once
// The WAL archive of a stanza, indexed from one listing of <stanza>/wal/: the segments of
// every timeline, the timeline history files (read, verified and parsed once), and what
// recovery can reach from a given start along a timeline's history.
//
// Recovery reads, for each segment, the copy of the newest timeline on the target's path
// whose start is at or before that segment (as PostgreSQL's XLogFileReadAnyTLI does), so a
// segment in which a timeline switch happened is taken from the child timeline. WalIndex
// follows the same rule; `SegmentsFrom` lists exactly the objects recovery would read, in
// order, up to the first missing one.
//
// Memory: about 64 bytes per segment (no key strings are kept; keys are rebuilt on demand).

#include <array>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/config.h"
#include "common/lsn.h"
#include "common/time_util.h"
#include "repo/wal.h"
#include "storage/storage.h"

namespace gravl::repo {

class Repository;

// One line of a timeline history file: timeline `parent` ended at `switch_lsn`, where its
// child began.
struct HistoryEntry {
  TimelineId parent = 0;
  Lsn switch_lsn;
};
// Parses "parentTLI<TAB>switchpoint<TAB>reason" lines (comments and blank lines skipped).
// Throws IntegrityError naming `what` for a line that is neither.
std::vector<HistoryEntry> ParseHistory(std::string_view text, const std::string& what);

// One step of the path recovery follows to a target timeline: WAL of `timeline` from `begin`
// to `end` (exclusive; nullopt for the target timeline itself, which has no end).
struct TimelineStep {
  TimelineId timeline = 0;
  Lsn begin;
  std::optional<Lsn> end;
};

// How far recovery can go with the archived WAL.
struct WalReach {
  Lsn end;                        // end of the last contiguous segment (an upper bound)
  TimelineId timeline = 0;        // the timeline of that segment
  std::optional<WalSegment> gap;  // the first missing segment when newer WAL exists after it
  std::optional<SystemTime> newest_time;  // newest archiving time of the segments reached
  std::uint64_t segments = 0;             // segments read from the archive
  // Non-empty when `target`'s path does not contain the start (the timeline does not
  // descend from the backup's): nothing is reached.
  std::string problem;
};

class WalIndex {
 public:
  struct Segment {
    std::array<std::uint8_t, 32> sha256{};  // of the original file
    CompressionType compression = CompressionType::kNone;
    std::uint64_t stored_size = 0;
    std::int64_t modified = 0;  // archiving time, seconds since the epoch (0: unknown)
  };
  struct Timeline {
    std::map<std::uint64_t, Segment> segments;  // by segment number
    std::optional<WalObject> history_object;
    std::optional<std::vector<HistoryEntry>> history;  // parsed, once read
    std::string history_problem;                       // why it could not be read
  };

  explicit WalIndex(std::string stanza, std::uint64_t segment_size);
  // One listing of the stanza's WAL, then every history file read and verified (a damaged one
  // is recorded in its Timeline's history_problem, not thrown). With `last_key`, the
  // greatest key listed is left there (for AddNewer).
  static WalIndex Build(Repository& repo, std::string* last_key = nullptr);
  // An incremental listing: adds the WAL objects whose keys sort after *last_key (S3's
  // start-after), updates *last_key, reads new history files; returns how many were listed.
  // WAL is archived in key order, so this sees every new segment of the newest timelines; a
  // late addition before *last_key or a deletion is seen only by the next Build.
  std::size_t AddNewer(Repository& repo, std::string* last_key);
  // Reads and verifies the history files not read yet.
  void ReadHistories(Repository& repo);

  // Adds one listed object; keys that are not WAL objects (temporary files) are ignored.
  void Add(const storage::ObjectInfo& info);
  // Records timeline `tli`'s parsed history (Build reads them; tests set them).
  void SetHistory(TimelineId tli, std::vector<HistoryEntry> history);

  std::uint64_t segment_size() const { return segment_size_; }
  const std::map<TimelineId, Timeline>& timelines() const { return timelines_; }
  // Other files: .partial segments and .backup labels.
  const std::vector<WalObject>& others() const { return others_; }
  // Same name archived twice with different content (never overwritten; a conflict).
  const std::vector<std::string>& conflicts() const { return conflicts_; }
  std::uint64_t segment_count() const;

  // The object of segment `segno` on timeline `tli`; nullopt when not archived.
  std::optional<WalObject> Find(TimelineId tli, std::uint64_t segno) const;
  // The newest segment of the archive (highest timeline, then highest segment).
  std::optional<WalSegment> Newest() const;

  // PostgreSQL's recovery_target_timeline = 'latest' from `start`: the highest timeline
  // reached by consecutive history files start+1, start+2, ...
  TimelineId LatestFrom(TimelineId start) const;
  // The path to `target`, oldest step first. Throws NotFoundError when the history file of
  // `target` (or a timeline other than 1) is not archived, IntegrityError when it is damaged.
  std::vector<TimelineStep> Path(TimelineId target) const;

  // The segments recovery reads from the archive, starting at the segment of `from` on
  // timeline `start_tli`, towards `target`, in order, up to the first one missing. Throws
  // ConflictError when `target`'s path does not contain `start_tli` at `from` (the timeline
  // does not descend from the backup's).
  std::vector<WalObject> SegmentsFrom(TimelineId start_tli, Lsn from, TimelineId target) const;
  // How far those segments reach (`end` is `from` when the first one is missing); a path that
  // does not contain the start is reported in `problem`, not thrown.
  WalReach ReachFrom(TimelineId start_tli, Lsn from, TimelineId target) const;

 private:
  struct Candidate {
    TimelineId timeline;
    std::uint64_t first_segno;
    std::optional<std::uint64_t> last_segno;
  };
  // With `visit`, every segment is visited; without, contiguous runs are jumped over, so that
  // the reach of 1,000 backups over 200,000 segments takes milliseconds.
  template <typename Visit>
  WalReach Walk(TimelineId start_tli, Lsn from, TimelineId target, Visit* visit) const;
  // Why recovery from `from` on `start_tli` cannot follow `target`'s path; nullopt if it can.
  std::optional<std::string> PathProblem(TimelineId start_tli, Lsn from, TimelineId target) const;
  // The last segment number of the contiguous run of `tli`'s segments holding `segno`.
  std::uint64_t RunEnd(TimelineId tli, std::uint64_t segno) const;
  WalObject ObjectOf(TimelineId tli, std::uint64_t segno, const Segment& s) const;

  std::string stanza_;
  std::uint64_t segment_size_;
  std::map<TimelineId, Timeline> timelines_;
  std::vector<WalObject> others_;
  std::vector<std::string> conflicts_;
  // Contiguous runs of segments per timeline (first -> last), built when first needed.
  mutable std::map<TimelineId, std::map<std::uint64_t, std::uint64_t>> runs_;
};

}  // namespace gravl::repo
