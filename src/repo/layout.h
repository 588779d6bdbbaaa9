#pragma once
// Repository format v1: where everything lives, relative to the repository root.
//
//   <stanza>/stanza.json                          cluster identity, format, key check
//   <stanza>/locks/<kind>.lock                    lease of the process holding the lock
//   <stanza>/backups/<label>/manifest.json        written last: the backup's commit point
//   <stanza>/backups/<label>/files/...            file objects
//   <stanza>/wal/<TTTTTTTT>/<segment>[.ext]       archived WAL, <TTTTTTTT>.history
//   <stanza>/reports/<kind>/<timestamp>.json      restore drills, verify runs
//   <stanza>/pins/<label>/<timestamp>-<id>.json   pins: write-once, removed by unpin

#include <string>

namespace gravl::repo {

inline constexpr int kRepoFormat = 1;

inline std::string StanzaKey(const std::string& stanza) { return stanza + "/stanza.json"; }
inline std::string LockKey(const std::string& stanza, const std::string& kind) {
  return stanza + "/locks/" + kind + ".lock";
}
inline std::string BackupsPrefix(const std::string& stanza) { return stanza + "/backups/"; }
inline std::string ManifestKey(const std::string& stanza, const std::string& label) {
  return BackupsPrefix(stanza) + label + "/manifest.json";
}
inline std::string WalPrefix(const std::string& stanza) { return stanza + "/wal/"; }
inline std::string PinsPrefix(const std::string& stanza) { return stanza + "/pins/"; }
inline std::string ReportsPrefix(const std::string& stanza, const std::string& kind) {
  return stanza + "/reports/" + kind + "/";
}

}  // namespace gravl::repo
