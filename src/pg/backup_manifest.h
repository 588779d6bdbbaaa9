#pragma once
// PostgreSQL's backup_manifest, completed by gravl-dr. BASE_BACKUP is run with
// MANIFEST_CHECKSUMS 'NONE', so the database server spends no CPU on per-file checksums;
// gravl-dr checksums every file anyway (CRC-32C, PostgreSQL's default, as it arrives), and
// this filter writes those checksums into the server's manifest and recomputes its
// Manifest-Checksum. pg_verifybackup then verifies a restored data directory against them.

#include <functional>
#include <optional>
#include <string>

#include "io/hash.h"
#include "io/stream.h"

namespace gravl::pg {

// Streams a backup_manifest (format version 1 or 2) into `next`, adding
// "Checksum-Algorithm": `algorithm` (as PostgreSQL names it: "CRC32C", "SHA256", ...) and
// "Checksum" to every file entry that has no checksum. `checksum_of(path)` gives a file's
// checksum in hex, as PostgreSQL writes it, by its manifest path (relative to the data
// directory; tablespace files as pg_tblspc/<oid>/...), or nullopt when the backup holds no
// such file. Throws IntegrityError on a manifest it cannot parse, a file it has no checksum
// for, or a manifest that does not end with its checksum line.
class ManifestChecksumFilter final : public io::Sink {
 public:
  using Lookup = std::function<std::optional<std::string>(const std::string& path)>;
  ManifestChecksumFilter(io::Sink& next, std::string algorithm, Lookup checksum_of)
      : next_(next), algorithm_(std::move(algorithm)), checksum_of_(std::move(checksum_of)) {}
  void Write(ByteView data) override;
  void Finish() override;
  std::size_t files() const { return files_; }

 private:
  void Line(std::string_view line);  // without its '\n'
  std::string FileLine(std::string_view line);
  void Emit(const std::string& line, bool hashed);

  io::Sink& next_;
  std::string algorithm_;
  Lookup checksum_of_;
  io::LineSplitter lines_;
  io::Sha256 checksum_;  // of everything before the Manifest-Checksum line
  bool in_files_ = false;
  bool saw_files_ = false;
  bool done_ = false;  // the Manifest-Checksum line was written
  std::size_t files_ = 0;
};

}  // namespace gravl::pg
