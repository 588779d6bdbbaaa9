#pragma once
// PostgreSQL's backup_manifest, completed by gravl-dr. BASE_BACKUP is run with
// MANIFEST_CHECKSUMS 'NONE', so the database server spends no CPU on per-file checksums;
// gravl-dr hashes every file anyway (SHA-256, as it arrives), and this filter writes those
// hashes into the server's manifest and recomputes its Manifest-Checksum. pg_verifybackup then
// verifies a restored data directory against SHA-256 checksums.

#include <functional>
#include <optional>
#include <string>

#include "io/hash.h"
#include "io/stream.h"

namespace gravl::pg {

// Streams a backup_manifest (format version 1 or 2) into `next`, adding
// "Checksum-Algorithm": "SHA256" and "Checksum" to every file entry that has no checksum.
// `sha256_of(path)` gives the hex SHA-256 of a file by its manifest path (relative to the
// data directory; tablespace files as pg_tblspc/<oid>/...), or nullopt when the backup holds
// no such file. Throws IntegrityError on a manifest it cannot parse, a file it has no hash
// for, or a manifest that does not end with its checksum line.
class ManifestSha256Filter final : public io::Sink {
 public:
  using Lookup = std::function<std::optional<std::string>(const std::string& path)>;
  ManifestSha256Filter(io::Sink& next, Lookup sha256_of)
      : next_(next), sha256_of_(std::move(sha256_of)) {}
  void Write(ByteView data) override;
  void Finish() override;
  std::size_t files() const { return files_; }

 private:
  void Line(std::string_view line);  // without its '\n'
  std::string FileLine(std::string_view line);
  void Emit(const std::string& line, bool hashed);

  io::Sink& next_;
  Lookup sha256_of_;
  io::LineSplitter lines_;
  io::Sha256 checksum_;  // of everything before the Manifest-Checksum line
  bool in_files_ = false;
  bool saw_files_ = false;
  bool done_ = false;  // the Manifest-Checksum line was written
  std::size_t files_ = 0;
};

}  // namespace gravl::pg
