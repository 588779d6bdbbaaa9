#include "pg/backup_manifest.h"

#include <nlohmann/json.hpp>

#include "common/bytes.h"
#include "common/error.h"

namespace gravl::pg {
namespace {

constexpr std::string_view kChecksumLine = "\"Manifest-Checksum\": \"";

bool StartsWith(std::string_view s, std::string_view prefix) {
  return s.substr(0, prefix.size()) == prefix;
}

}  // namespace

void ManifestChecksumFilter::Write(ByteView data) {
  lines_.Feed(AsChars(data), [this](std::string_view line) { Line(line); });
}

void ManifestChecksumFilter::Finish() {
  if (!lines_.partial().empty() || !done_) {
    throw IntegrityError("the server's backup_manifest is truncated (no Manifest-Checksum line)");
  }
  if (!saw_files_) {
    // A layout this filter does not know: better to fail than to store a manifest without
    // checksums, which pg_verifybackup would only check by size.
    throw IntegrityError("the server's backup_manifest has no \"Files\": [ line gravl-dr knows");
  }
  next_.Finish();
}

void ManifestChecksumFilter::Emit(const std::string& line, bool hashed) {
  ByteView bytes(reinterpret_cast<const std::uint8_t*>(line.data()), line.size());
  if (hashed) checksum_.Update(bytes);
  next_.Write(bytes);
}

void ManifestChecksumFilter::Line(std::string_view line) {
  if (done_) throw IntegrityError("the server's backup_manifest goes on after its checksum");
  if (StartsWith(line, kChecksumLine)) {
    // The checksum covers every byte before this line (as pg_verifybackup computes it).
    Emit(std::string(kChecksumLine) + checksum_.FinalHex() + "\"}\n", false);
    done_ = true;
    return;
  }
  if (in_files_ && StartsWith(line, "]")) in_files_ = false;
  if (in_files_) {
    Emit(FileLine(line) + "\n", true);
    return;
  }
  if (line == "\"Files\": [") in_files_ = saw_files_ = true;
  Emit(std::string(line) + "\n", true);
}

// A file entry is one line: { "Path": "...", "Size": N, "Last-Modified": "..." } with a comma
// after it unless it is the last.
std::string ManifestChecksumFilter::FileLine(std::string_view line) {
  if (line.empty()) return "";  // the blank line after "Files": [ of an empty list
  bool comma = line.back() == ',';
  std::string_view body = comma ? line.substr(0, line.size() - 1) : line;
  nlohmann::json entry = nlohmann::json::parse(body, nullptr, false);
  if (entry.is_discarded() || !entry.is_object() || body.size() < 4 ||
      body.substr(body.size() - 2) != " }") {
    throw IntegrityError("the server's backup_manifest has a file entry gravl-dr cannot read: " +
                         std::string(line.substr(0, 200)));
  }
  if (entry.contains("Checksum")) return std::string(line);  // the server's own checksum
  std::string path;
  if (entry.contains("Path") && entry["Path"].is_string()) {
    path = entry["Path"].get<std::string>();
  } else if (entry.contains("Encoded-Path") && entry["Encoded-Path"].is_string()) {
    Bytes raw = HexDecode(entry["Encoded-Path"].get<std::string>());
    path.assign(raw.begin(), raw.end());
  } else {
    throw IntegrityError("the server's backup_manifest has a file entry without a path: " +
                         std::string(line.substr(0, 200)));
  }
  std::optional<std::string> checksum = checksum_of_(path);
  if (!checksum) {
    throw IntegrityError("the server's backup_manifest lists " + path +
                         ", which the backup stream did not contain");
  }
  ++files_;
  return std::string(body.substr(0, body.size() - 2)) + ", \"Checksum-Algorithm\": \"" +
         algorithm_ + "\", \"Checksum\": \"" + *checksum + "\" }" + (comma ? "," : "");
}

}  // namespace gravl::pg
