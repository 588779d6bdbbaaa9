#include "common/config.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>
#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <charconv>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <regex>
#include <set>
#include <sstream>

#include "common/error.h"
#include "common/log.h"
#include "common/time_util.h"

namespace gravl {

const char* CompressionName(CompressionType type) {
  switch (type) {
    case CompressionType::kNone:
      return "none";
    case CompressionType::kZstd:
      return "zstd";
    case CompressionType::kLz4:
      return "lz4";
    case CompressionType::kGzip:
      return "gzip";
  }
  return "none";
}

CompressionType ParseCompression(const std::string& name) {
  if (name == "none") return CompressionType::kNone;
  if (name == "zstd") return CompressionType::kZstd;
  if (name == "lz4") return CompressionType::kLz4;
  if (name == "gzip") return CompressionType::kGzip;
  throw ConfigError("unknown compression type '" + name + "': use zstd, lz4, gzip or none");
}

int DefaultCompressionLevel(CompressionType type) {
  switch (type) {
    case CompressionType::kZstd:
      return 1;
    case CompressionType::kLz4:
      return 1;
    case CompressionType::kGzip:
      return 6;
    case CompressionType::kNone:
      return 0;
  }
  return 0;
}

const std::vector<OptionSpec>& OptionSpecs() {
  static const std::vector<OptionSpec> kSpecs = {
      {"stanza",
       "GRAVL_DR_STANZA",
       "--stanza",
       OptionType::kString,
       "main",
       "name of the PostgreSQL cluster's backup set in the repository",
       {},
       0,
       0},
      {"pg.conninfo",
       "GRAVL_DR_PG_CONNINFO",
       "--pg-conninfo",
       OptionType::kString,
       "(libpq defaults and PG* variables)",
       "libpq connection string of the cluster; put passwords in ~/.pgpass or PGPASSWORD",
       {},
       0,
       0},
      {"pg.bin_dir",
       "GRAVL_DR_PG_BIN_DIR",
       "--pg-bin-dir",
       OptionType::kPath,
       "(pg_config --bindir)",
       "directory of the PostgreSQL programs (pg_ctl, pg_dump, ...)",
       {},
       0,
       0},
      {"compression.type",
       "GRAVL_DR_COMPRESSION_TYPE",
       "--compression-type",
       OptionType::kChoice,
       "zstd",
       "compression of stored objects",
       {"zstd", "lz4", "gzip", "none"},
       0,
       0},
      {"compression.level",
       "GRAVL_DR_COMPRESSION_LEVEL",
       "--compression-level",
       OptionType::kInt,
       "1 (zstd, lz4), 6 (gzip)",
       "compression level",
       {},
       0,
       19},
      {"encryption.passphrase_file",
       "GRAVL_DR_ENCRYPTION_PASSPHRASE_FILE",
       "--encryption-passphrase-file",
       OptionType::kPath,
       "(no encryption)",
       "file holding the repository passphrase (or set GRAVL_DR_ENCRYPTION_PASSPHRASE)",
       {},
       0,
       0},
      {"parallel",
       "GRAVL_DR_PARALLEL",
       "--parallel",
       OptionType::kInt,
       "2",
       "worker threads for transfers",
       {},
       1,
       64},
      {"log_level",
       "GRAVL_DR_LOG_LEVEL",
       "--log-level",
       OptionType::kChoice,
       "info",
       "log verbosity on stderr",
       {"trace", "debug", "info", "warn", "error", "off"},
       0,
       0},
      {"archive.async",
       "GRAVL_DR_ARCHIVE_ASYNC",
       "--archive-async",
       OptionType::kBool,
       "false",
       "archive-push also pushes the other ready segments in parallel; archive-get prefetches",
       {},
       0,
       0},
      {"archive.spool_path",
       "GRAVL_DR_ARCHIVE_SPOOL_PATH",
       "--archive-spool-path",
       OptionType::kPath,
       "/var/spool/gravl-dr",
       "local directory for async archiving state and prefetched WAL (writable by postgres)",
       {},
       0,
       0},
      {"archive.batch",
       "GRAVL_DR_ARCHIVE_BATCH",
       "--archive-batch",
       OptionType::kInt,
       "32",
       "most segments one archive-push call pushes in async mode",
       {},
       1,
       1000},
      {"archive.prefetch",
       "GRAVL_DR_ARCHIVE_PREFETCH",
       "--archive-prefetch",
       OptionType::kInt,
       "16",
       "segments archive-get fetches ahead in async mode",
       {},
       0,
       1000},
      {"archive.timeout",
       "GRAVL_DR_ARCHIVE_TIMEOUT",
       "--archive-timeout",
       OptionType::kInt,
       "60",
       "seconds 'check' and 'backup' wait for WAL segments to reach the repository",
       {},
       1,
       86400},
      {"drill.row_count_tolerance_pct",
       "GRAVL_DR_DRILL_ROW_COUNT_TOLERANCE_PCT",
       "--drill-row-count-tolerance-pct",
       OptionType::kInt,
       "10",
       "test-restore: allowed difference (percent) between a table's rows at backup time and "
       "after recovery",
       {},
       0,
       100},
      {"drill.timeout",
       "GRAVL_DR_DRILL_TIMEOUT",
       "--drill-timeout",
       OptionType::kInt,
       "3600",
       "test-restore: seconds recovery may take",
       {},
       10,
       604800},
      {"retention.daily",
       "GRAVL_DR_RETENTION_DAILY",
       "--retention-daily",
       OptionType::kInt,
       "0",
       "expire: keep the newest full backup of each of the last N days (UTC)",
       {},
       0,
       100000},
      {"retention.weekly",
       "GRAVL_DR_RETENTION_WEEKLY",
       "--retention-weekly",
       OptionType::kInt,
       "0",
       "expire: keep the newest full backup of each of the last N ISO weeks (UTC)",
       {},
       0,
       100000},
      {"retention.monthly",
       "GRAVL_DR_RETENTION_MONTHLY",
       "--retention-monthly",
       OptionType::kInt,
       "0",
       "expire: keep the newest full backup of each of the last N calendar months (UTC)",
       {},
       0,
       100000},
      {"retention.yearly",
       "GRAVL_DR_RETENTION_YEARLY",
       "--retention-yearly",
       OptionType::kInt,
       "0",
       "expire: keep the newest full backup of each of the last N calendar years (UTC)",
       {},
       0,
       100000},
      {"retention.pitr_window",
       "GRAVL_DR_RETENTION_PITR_WINDOW",
       "--retention-pitr-window",
       OptionType::kString,
       "(none)",
       "expire: every moment of this last period stays restorable, e.g. 7d, 36h",
       {},
       0,
       0},
      {"retention.min_full",
       "GRAVL_DR_RETENTION_MIN_FULL",
       "--retention-min-full",
       OptionType::kInt,
       "2",
       "expire: never fewer valid full backups than this",
       {},
       0,
       100000},
      {"retention.logical.daily",
       "GRAVL_DR_RETENTION_LOGICAL_DAILY",
       "--retention-logical-daily",
       OptionType::kInt,
       "0",
       "expire: keep the newest logical backup of each of the last N days (none set: keep all)",
       {},
       0,
       100000},
      {"retention.logical.weekly",
       "GRAVL_DR_RETENTION_LOGICAL_WEEKLY",
       "--retention-logical-weekly",
       OptionType::kInt,
       "0",
       "expire: keep the newest logical backup of each of the last N ISO weeks (none set: keep "
       "all)",
       {},
       0,
       100000},
      {"retention.logical.monthly",
       "GRAVL_DR_RETENTION_LOGICAL_MONTHLY",
       "--retention-logical-monthly",
       OptionType::kInt,
       "0",
       "expire: keep the newest logical backup of each of the last N calendar months (none set: "
       "keep all)",
       {},
       0,
       100000},
      {"retention.logical.yearly",
       "GRAVL_DR_RETENTION_LOGICAL_YEARLY",
       "--retention-logical-yearly",
       OptionType::kInt,
       "0",
       "expire: keep the newest logical backup of each of the last N calendar years (none set: "
       "keep all)",
       {},
       0,
       100000},
      {"retention.auto",
       "GRAVL_DR_RETENTION_AUTO",
       "--retention-auto",
       OptionType::kBool,
       "true",
       "backup runs expire on its repository after it succeeds",
       {},
       0,
       0},
      {"backup.copy_to",
       "GRAVL_DR_BACKUP_COPY_TO",
       "--copy-to",
       OptionType::kString,
       "",
       "backup: after a backup succeeds, repo-sync these repositories (names, comma-separated "
       "or a YAML list) from the one it went to",
       {},
       0,
       0},
      {"notify.timeout",
       "GRAVL_DR_NOTIFY_TIMEOUT",
       "--notify-timeout",
       OptionType::kInt,
       "10",
       "notifications: seconds one webhook request may take",
       {},
       1,
       300},
      {"notify.retries",
       "GRAVL_DR_NOTIFY_RETRIES",
       "--notify-retries",
       OptionType::kInt,
       "3",
       "notifications: attempts per webhook after the first (with backoff)",
       {},
       0,
       10},
      {"failover.max_loss",
       "GRAVL_DR_FAILOVER_MAX_LOSS",
       "--max-loss",
       OptionType::kString,
       "16MB",
       "failover: the most WAL (bytes, e.g. 16MB or 0) or time (e.g. 30s) a failover may lose "
       "without --force",
       {},
       0,
       0},
      {"failover.backup",
       "GRAVL_DR_FAILOVER_BACKUP",
       "--failover-backup",
       OptionType::kBool,
       "true",
       "failover: take a full backup of the new primary into its region's repository",
       {},
       0,
       0},
      {"failover.timeout",
       "GRAVL_DR_FAILOVER_TIMEOUT",
       "--failover-timeout",
       OptionType::kInt,
       "300",
       "failover, switchover, failback: seconds each wait may take (catch-up, promotion, "
       "archiving of the history file, a standby reaching the primary)",
       {},
       1,
       86400},
      {"failover.hook_timeout",
       "GRAVL_DR_FAILOVER_HOOK_TIMEOUT",
       "--hook-timeout",
       OptionType::kInt,
       "120",
       "failover: seconds a fence_command or endpoint_command may run",
       {},
       1,
       3600},
      {"exporter.listen",
       "GRAVL_DR_EXPORTER_LISTEN",
       "--listen",
       OptionType::kString,
       "127.0.0.1:9187",
       "exporter: address and port /metrics and /healthz are served on",
       {},
       0,
       0},
      {"exporter.interval",
       "GRAVL_DR_EXPORTER_INTERVAL",
       "--interval",
       OptionType::kInt,
       "60",
       "exporter: seconds between refreshes of the repositories and PostgreSQL",
       {},
       1,
       86400},
      {"ha.region",
       "GRAVL_DR_HA_REGION",
       "--ha-region",
       OptionType::kString,
       "(none)",
       "watch: the region this agent runs in (one of regions[].name)",
       {},
       0,
       0},
      {"ha.etcd.endpoints",
       "GRAVL_DR_HA_ETCD_ENDPOINTS",
       "--etcd-endpoints",
       OptionType::kString,
       "(none)",
       "watch: etcd client URLs (a YAML list or comma-separated), e.g. https://etcd-1:2379; "
       "setting them enables automatic failover",
       {},
       0,
       0},
      {"ha.etcd.prefix",
       "GRAVL_DR_HA_ETCD_PREFIX",
       "--etcd-prefix",
       OptionType::kString,
       "/gravl-dr/<stanza>",
       "watch: the etcd key prefix of this cluster's leader key and primary record",
       {},
       0,
       0},
      {"ha.etcd.ca_file",
       "GRAVL_DR_HA_ETCD_CA_FILE",
       "--etcd-ca-file",
       OptionType::kPath,
       "(system CAs)",
       "watch: CA certificate file for https etcd endpoints",
       {},
       0,
       0},
      {"ha.etcd.cert_file",
       "GRAVL_DR_HA_ETCD_CERT_FILE",
       "--etcd-cert-file",
       OptionType::kPath,
       "(none)",
       "watch: client certificate file for etcd (--client-cert-auth)",
       {},
       0,
       0},
      {"ha.etcd.key_file",
       "GRAVL_DR_HA_ETCD_KEY_FILE",
       "--etcd-key-file",
       OptionType::kPath,
       "(none)",
       "watch: the client certificate's private key file",
       {},
       0,
       0},
      {"ha.lease_ttl",
       "GRAVL_DR_HA_LEASE_TTL",
       "--lease-ttl",
       OptionType::kString,
       "30s",
       "watch: the leader key's lease; the primary's agent renews it every third of it while "
       "PostgreSQL answers",
       {},
       0,
       0},
      {"ha.failover_after",
       "GRAVL_DR_HA_FAILOVER_AFTER",
       "--failover-after",
       OptionType::kString,
       "5m",
       "watch: how long the leader key must be gone before the standby's agent takes over (e.g. "
       "5m, 30s)",
       {},
       0,
       0},
      {"ha.clock_margin",
       "GRAVL_DR_HA_CLOCK_MARGIN",
       "--clock-margin",
       OptionType::kString,
       "2s",
       "watch: the primary fences itself this long before its lease can expire (clock-rate drift "
       "and fencing time); less than half of ha.lease_ttl",
       {},
       0,
       0},
      {"ha.max_loss",
       "GRAVL_DR_HA_MAX_LOSS",
       "--ha-max-loss",
       OptionType::kString,
       "(failover.max_loss)",
       "watch: the most WAL (bytes or time) an automatic failover may lose; above it the agent "
       "only notifies",
       {},
       0,
       0},
      {"ha.mode",
       "GRAVL_DR_HA_MODE",
       "--ha-mode",
       OptionType::kChoice,
       "automatic",
       "watch: automatic (take over and fail over) or manual (detect, notify, recommend; never "
       "act)",
       {"automatic", "manual"},
       0,
       0},
      {"ha.self_fence",
       "GRAVL_DR_HA_SELF_FENCE",
       "--self-fence",
       OptionType::kChoice,
       "read-only",
       "watch: what a primary that cannot renew its lease does before it expires: read-only, or "
       "stop (read-only, then a fast stop of a server on this host)",
       {"read-only", "stop"},
       0,
       0},
      {"ha.failsafe",
       "GRAVL_DR_HA_FAILSAFE",
       "--failsafe",
       OptionType::kBool,
       "false",
       "watch: with etcd unreachable, the primary stays writable instead of fencing itself "
       "(docs/automatic-failover.md: the risk)",
       {},
       0,
       0},
      {"ha.listen",
       "GRAVL_DR_HA_LISTEN",
       "--ha-listen",
       OptionType::kString,
       "127.0.0.1:9188",
       "watch: address and port of the agent's /healthz, /metrics and /status",
       {},
       0,
       0},
      {"wal_receive.conninfo",
       "GRAVL_DR_WAL_RECEIVE_CONNINFO",
       "--receive-conninfo",
       OptionType::kString,
       "(pg.conninfo)",
       "wal-receive: the server to stream from (libpq), a primary or a cascading standby; "
       "several hosts with target_session_attrs=primary follow a failover",
       {},
       0,
       0},
      {"wal_receive.slot",
       "GRAVL_DR_WAL_RECEIVE_SLOT",
       "--slot",
       OptionType::kString,
       "gravl_dr",
       "wal-receive: the physical replication slot streamed from (created with --create-slot)",
       {},
       0,
       0},
      {"wal_receive.application_name",
       "GRAVL_DR_WAL_RECEIVE_APPLICATION_NAME",
       "--application-name",
       OptionType::kString,
       "gravl_dr",
       "wal-receive: the receiver's application_name, as synchronous_standby_names lists it",
       {},
       0,
       0},
      {"wal_receive.synchronous",
       "GRAVL_DR_WAL_RECEIVE_SYNCHRONOUS",
       "--synchronous",
       OptionType::kBool,
       "true",
       "wal-receive: acknowledge to the server only what every repository holds (RPO 0 when "
       "synchronous_standby_names lists the receiver); false: what the spool holds",
       {},
       0,
       0},
      {"wal_receive.spool_path",
       "GRAVL_DR_WAL_RECEIVE_SPOOL_PATH",
       "--receive-spool-path",
       OptionType::kPath,
       "/var/lib/gravl-dr/receive",
       "wal-receive: directory (a persistent volume) for the segments being received",
       {},
       0,
       0},
      {"wal_receive.partial_interval",
       "GRAVL_DR_WAL_RECEIVE_PARTIAL_INTERVAL",
       "--partial-interval",
       OptionType::kString,
       "1s",
       "wal-receive: asynchronous mode uploads the segment being received this often (e.g. "
       "1s, 500ms); synchronous mode uploads at once",
       {},
       0,
       0},
      {"wal_receive.max_spool_segments",
       "GRAVL_DR_WAL_RECEIVE_MAX_SPOOL_SEGMENTS",
       "--max-spool-segments",
       OptionType::kInt,
       "64",
       "wal-receive: completed segments the spool may hold before they are archived; beyond, "
       "streaming waits (the slot keeps the WAL on the server)",
       {},
       1,
       100000},
      {"wal_receive.listen",
       "GRAVL_DR_WAL_RECEIVE_LISTEN",
       "--receive-listen",
       OptionType::kString,
       "127.0.0.1:9189",
       "wal-receive: address and port of the receiver's /healthz, /metrics and /status",
       {},
       0,
       0},
      {"exporter.full_listing_interval",
       "GRAVL_DR_EXPORTER_FULL_LISTING_INTERVAL",
       "--full-listing-interval",
       OptionType::kInt,
       "3600",
       "exporter: seconds between complete listings of the WAL archive (others list only "
       "what is new)",
       {},
       1,
       604800},
  };
  return kSpecs;
}

const RegionConfig& Config::Region(const std::string& name) const {
  std::string known;
  for (const auto& r : regions) {
    if (r.name == name) return r;
    known += (known.empty() ? "" : ", ") + r.name;
  }
  if (regions.empty()) {
    throw ConfigError("no regions configured in " + source +
                      ": add a 'regions' list (docs/failover.md) to use '" + name + "'");
  }
  throw ConfigError("no region named '" + name + "' in " + source + " (configured: " + known + ")");
}

std::vector<RepoConfig> Config::SelectRepos(const std::optional<std::string>& name) const {
  if (!name) return repos;
  for (const auto& r : repos) {
    if (r.name == *name) return {r};
  }
  std::string names;
  for (const auto& r : repos) names += (names.empty() ? "" : ", ") + r.name;
  throw ConfigError("no repository named '" + *name + "' in " + source +
                    " (configured: " + (names.empty() ? "none" : names) + ")");
}

namespace {

struct RawValue {
  std::string text;
  std::string where;  // "FILE line N", "environment variable X", "flag --x"
};

const OptionSpec* FindSpec(const std::string& key) {
  for (const auto& s : OptionSpecs()) {
    if (s.key == key) return &s;
  }
  return nullptr;
}

std::string Where(const std::string& file, const YAML::Node& node) {
  const YAML::Mark m = node.Mark();
  if (m.line < 0) return file;
  return file + " line " + std::to_string(m.line + 1);
}

// A value echoed in a message: at most 80 bytes of it, and its length beyond.
std::string Echo(const std::string& value) {
  if (value.size() <= 80) return value;
  return value.substr(0, 80) + "... (" + std::to_string(value.size()) + " bytes)";
}

// Configuration and secret files are small: a directory, or anything of more than 1 MiB (a
// file of megabytes, /dev/zero) is refused, reading no more than that.
constexpr std::size_t kMaxConfigFileSize = 1 << 20;

std::string ReadWholeFile(const std::string& path, const std::string& what) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) throw ConfigError("cannot read " + what + " " + path + ": " + std::strerror(errno));
  struct stat st {};
  if (::fstat(fd, &st) != 0 || S_ISDIR(st.st_mode)) {
    ::close(fd);
    throw ConfigError(what + " " + path + " is a directory: name a file");
  }
  if (S_ISREG(st.st_mode) && static_cast<std::uint64_t>(st.st_size) > kMaxConfigFileSize) {
    ::close(fd);
    throw ConfigError(what + " " + path + " is larger than 1 MiB (" + std::to_string(st.st_size) +
                      " bytes): is it the right file?");
  }
  std::string text;
  char buf[65536];
  for (;;) {
    ssize_t n = ::read(fd, buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      int err = errno;
      ::close(fd);
      throw ConfigError("cannot read " + what + " " + path + ": " + std::strerror(err));
    }
    if (n == 0) break;
    text.append(buf, static_cast<std::size_t>(n));
    if (text.size() > kMaxConfigFileSize) {
      ::close(fd);
      throw ConfigError(what + " " + path + " is larger than 1 MiB: is it the right file?");
    }
  }
  ::close(fd);
  return text;
}

std::string ScalarOrThrow(const YAML::Node& node, const std::string& key,
                          const std::string& where) {
  if (!node.IsScalar()) {
    throw ConfigError(where + ": '" + key + "' must be a single value, not a " +
                      (node.IsMap()        ? "map"
                       : node.IsSequence() ? "list"
                                           : "null value"));
  }
  return node.Scalar();
}

// The keys whose values are lists or maps of their own, parsed apart from the scalar options.
const std::set<std::string>& StructuredKeys() {
  static const std::set<std::string> kKeys = {
      "repos",   "drill.checks",           "notify.targets",
      "regions", "failover.fence_command", "failover.endpoint_command"};
  return kKeys;
}

void FlattenMap(const YAML::Node& map, const std::string& prefix, const std::string& file,
                std::map<std::string, RawValue>& out, std::map<std::string, YAML::Node>& lists) {
  for (const auto& item : map) {
    std::string name = item.first.as<std::string>();
    std::string key = prefix.empty() ? name : prefix + "." + name;
    std::string where = Where(file, item.first);
    if (StructuredKeys().count(key) != 0) {
      lists[key] = item.second;
      continue;
    }
    bool is_section = false;
    for (const auto& s : OptionSpecs()) {
      if (s.key.rfind(key + ".", 0) == 0) is_section = true;
    }
    if (is_section) {
      if (!item.second.IsMap()) {
        throw ConfigError(where + ": '" + key + "' must be a map of options");
      }
      FlattenMap(item.second, key, file, out, lists);
      continue;
    }
    if (FindSpec(key) == nullptr) {
      std::string known = "repos, regions, failover.fence_command, failover.endpoint_command";
      for (const auto& s : OptionSpecs()) known += ", " + s.key;
      throw ConfigError(where + ": unknown key '" + key + "' (known keys: " + known + ")");
    }
    if ((key == "backup.copy_to" || key == "ha.etcd.endpoints") && item.second.IsSequence()) {
      // A list of repository names, or the same as one comma-separated string.
      std::string joined;
      for (const auto& entry : item.second) {
        joined += (joined.empty() ? "" : ",") + ScalarOrThrow(entry, key, where);
      }
      out[key] = RawValue{joined, where};
      continue;
    }
    out[key] = RawValue{ScalarOrThrow(item.second, key, where), where};
  }
}

// Reads the secret in a *_file key of an S3 repository.
std::string ReadSecretKeyFile(const std::string& path, const std::string& what) {
  std::string text = ReadWholeFile(path, what);
  while (!text.empty() && (text.back() == '\n' || text.back() == '\r' || text.back() == ' ')) {
    text.pop_back();
  }
  if (text.empty()) throw ConfigError(what + " " + path + " is empty");
  RegisterSecret(text);
  return text;
}

void ParseS3Repo(const std::map<std::string, std::string>& values, const std::string& where,
                 const std::string& label, std::set<std::string>& allowed, S3RepoConfig& s3) {
  auto key = [&](const std::string& k) {
    allowed.insert(k);
    auto it = values.find(k);
    return it == values.end() ? std::optional<std::string>() : std::optional(it->second);
  };
  auto fail = [&](const std::string& k, const std::string& what) {
    throw ConfigError(where + ": '" + label + "." + k + "' " + what);
  };
  auto required = [&](const std::string& k) {
    auto v = key(k);
    if (!v || v->empty()) fail(k, "is required for an s3 repository");
    return *v;
  };
  auto integer = [&](const std::string& k, int lo, int hi, int& out) {
    auto v = key(k);
    if (!v) return;
    int n = 0;
    auto [ptr, ec] = std::from_chars(v->data(), v->data() + v->size(), n);
    if (ec != std::errc() || ptr != v->data() + v->size() || n < lo || n > hi) {
      fail(k, "must be an integer from " + std::to_string(lo) + " to " + std::to_string(hi) +
                  ", got '" + Echo(*v) + "'");
    }
    out = n;
  };
  auto choice = [&](const std::string& k, const std::vector<std::string>& choices,
                    std::string& out) {
    auto v = key(k);
    if (!v) return;
    if (std::find(choices.begin(), choices.end(), *v) == choices.end()) {
      std::string list;
      for (const auto& c : choices) list += (list.empty() ? "" : ", ") + c;
      fail(k, "is '" + *v + "'; choose one of: " + list);
    }
    out = *v;
  };

  s3.bucket = required("bucket");
  for (char c : s3.bucket) {
    if (!(std::islower(static_cast<unsigned char>(c)) ||
          std::isdigit(static_cast<unsigned char>(c)) || c == '-' || c == '.')) {
      fail("bucket", "'" + s3.bucket +
                         "' is not a valid bucket name (lower-case letters, digits, '-' and '.')");
    }
  }
  s3.region = required("region");
  if (auto v = key("prefix")) {
    std::string p = *v;
    while (!p.empty() && p.front() == '/') p.erase(p.begin());
    while (!p.empty() && p.back() == '/') p.pop_back();
    if (p.find("//") != std::string::npos) fail("prefix", "must not contain '//'");
    s3.prefix = p;
  }
  if (auto v = key("endpoint")) {
    if (v->rfind("http://", 0) != 0 && v->rfind("https://", 0) != 0) {
      fail("endpoint", "must start with https:// (or http://), got '" + Echo(*v) + "'");
    }
    s3.endpoint = *v;
    while (!s3.endpoint.empty() && s3.endpoint.back() == '/') s3.endpoint.pop_back();
  }
  choice("uri_style", {"host", "path"}, s3.uri_style);
  choice("storage_class",
         {"STANDARD", "STANDARD_IA", "ONEZONE_IA", "INTELLIGENT_TIERING", "GLACIER_IR",
          "REDUCED_REDUNDANCY", "GLACIER", "DEEP_ARCHIVE"},
         s3.storage_class);
  if (s3.storage_class == "GLACIER" || s3.storage_class == "DEEP_ARCHIVE") {
    fail("storage_class", "is " + s3.storage_class +
                              ", whose objects cannot be read without a restore request that "
                              "takes hours; use GLACIER_IR for archive backups that must stay "
                              "restorable at once");
  }
  choice("sse", {"AES256", "aws:kms"}, s3.sse);
  if (auto v = key("sse_kms_key_id")) {
    if (s3.sse != "aws:kms") fail("sse_kms_key_id", "needs sse: aws:kms");
    s3.sse_kms_key_id = *v;
  }
  if (auto v = key("ca_file")) {
    if (!std::filesystem::is_regular_file(*v)) {
      fail("ca_file", "names '" + *v + "', which is not a readable file");
    }
    s3.ca_file = *v;
  }
  if (auto v = key("verify_tls")) {
    if (*v == "true") {
      s3.verify_tls = true;
    } else if (*v == "false") {
      s3.verify_tls = false;
    } else {
      fail("verify_tls", "must be true or false, got '" + Echo(*v) + "'");
    }
  }
  if (auto v = key("access_key_id")) s3.access_key_id = *v;
  if (auto v = key("secret_access_key_file")) {
    s3.secret_access_key = ReadSecretKeyFile(*v, label + ".secret_access_key_file");
  }
  if (auto v = key("session_token_file")) {
    s3.session_token = ReadSecretKeyFile(*v, label + ".session_token_file");
  }
  if (values.count("secret_access_key") || values.count("session_token")) {
    throw ConfigError(where + ": secrets are not accepted inline in '" + label +
                      "': put the secret access key in a file and name it with "
                      "secret_access_key_file (or use AWS_SECRET_ACCESS_KEY)");
  }
  if (s3.access_key_id.empty() != !s3.secret_access_key.has_value()) {
    throw ConfigError(where + ": '" + label +
                      "' needs both access_key_id and secret_access_key_file, or neither "
                      "(then the AWS credential chain is used)");
  }
  if (s3.session_token && s3.access_key_id.empty()) {
    fail("session_token_file", "needs access_key_id and secret_access_key_file");
  }
  if (auto v = key("profile")) s3.profile = *v;
  if (auto v = key("sts_endpoint")) s3.sts_endpoint = *v;
  integer("part_size_mib", 5, 5120, s3.part_size_mib);
  integer("upload_concurrency", 1, 64, s3.upload_concurrency);
  integer("retry_timeout", 1, 86400, s3.retry_timeout);
  integer("max_attempts", 1, 100, s3.max_attempts);
  choice("object_lock.mode", {"GOVERNANCE", "COMPLIANCE"}, s3.object_lock_mode);
  choice("archive_storage_class",
         {"STANDARD_IA", "ONEZONE_IA", "INTELLIGENT_TIERING", "GLACIER_IR"},
         s3.archive_storage_class);
}

std::vector<RepoConfig> ParseRepos(const YAML::Node& node, const std::string& file) {
  std::string where = Where(file, node);
  if (!node.IsSequence()) throw ConfigError(where + ": 'repos' must be a list of repositories");
  std::vector<RepoConfig> repos;
  std::set<std::string> names;
  std::size_t index = 0;
  for (const auto& entry : node) {
    std::string ewhere = Where(file, entry);
    std::string label = "repos[" + std::to_string(index++) + "]";
    if (!entry.IsMap()) throw ConfigError(ewhere + ": '" + label + "' must be a map");
    RepoConfig repo;
    std::map<std::string, std::string> values;
    for (const auto& kv : entry) {
      std::string k = kv.first.as<std::string>();
      if (kv.second.IsMap()) {  // one level of nesting: object_lock: {mode: ...}
        for (const auto& sub : kv.second) {
          std::string sk = k + "." + sub.first.as<std::string>();
          values[sk] = ScalarOrThrow(sub.second, label + "." + sk, Where(file, sub.first));
        }
        continue;
      }
      values[k] = ScalarOrThrow(kv.second, label + "." + k, Where(file, kv.first));
    }
    auto require = [&](const std::string& k) {
      auto it = values.find(k);
      if (it == values.end() || it->second.empty()) {
        throw ConfigError(ewhere + ": '" + label + "." + k + "' is required");
      }
      return it->second;
    };
    repo.name = require("name");
    repo.type = require("type");
    std::set<std::string> allowed{"name", "type"};
    if (repo.type == "posix") {
      repo.path = require("path");
      if (repo.path.front() != '/') {
        throw ConfigError(ewhere + ": '" + label + ".path' must be an absolute path, got '" +
                          repo.path + "'");
      }
      allowed.insert("path");
    } else if (repo.type == "s3") {
      ParseS3Repo(values, ewhere, label, allowed, repo.s3);
    } else {
      throw ConfigError(ewhere + ": '" + label + ".type' is '" + repo.type +
                        "'; supported repository types: posix, s3");
    }
    for (const auto& [k, v] : values) {
      if (!allowed.count(k)) {
        throw ConfigError(ewhere + ": unknown key '" + label + "." + k + "' for a " + repo.type +
                          " repository");
      }
    }
    if (!names.insert(repo.name).second) {
      throw ConfigError(ewhere + ": repository name '" + repo.name + "' is used twice");
    }
    repos.push_back(std::move(repo));
  }
  return repos;
}

std::vector<DrillCheck> ParseChecks(const YAML::Node& node, const std::string& file) {
  std::string where = Where(file, node);
  if (!node.IsSequence()) {
    throw ConfigError(where + ": 'drill.checks' must be a list of {name, database, sql}");
  }
  std::vector<DrillCheck> checks;
  std::size_t index = 0;
  for (const auto& entry : node) {
    std::string label = "drill.checks[" + std::to_string(index++) + "]";
    std::string ewhere = Where(file, entry);
    if (!entry.IsMap()) throw ConfigError(ewhere + ": '" + label + "' must be a map");
    DrillCheck c;
    for (const auto& kv : entry) {
      std::string k = kv.first.as<std::string>();
      std::string v = ScalarOrThrow(kv.second, label + "." + k, Where(file, kv.first));
      if (k == "name") {
        c.name = v;
      } else if (k == "database") {
        c.database = v;
      } else if (k == "sql") {
        c.sql = v;
      } else {
        throw ConfigError(Where(file, kv.first) + ": unknown key '" + label + "." + k +
                          "' (known: name, database, sql)");
      }
    }
    if (c.name.empty() || c.sql.empty()) {
      throw ConfigError(ewhere + ": '" + label + "' needs a name and an sql query");
    }
    checks.push_back(std::move(c));
  }
  return checks;
}

// notify.targets: webhooks, their payload format, the events they get, and where their URL
// (a secret: Slack's carries the token) is read from -- a file or the environment, never the
// configuration itself.
std::vector<NotifyTarget> ParseNotifyTargets(
    const YAML::Node& node, const std::string& file,
    const std::function<std::optional<std::string>(const std::string&)>& getenv) {
  std::string where = Where(file, node);
  if (!node.IsSequence()) {
    throw ConfigError(where +
                      ": 'notify.targets' must be a list of {name, format, url_file or url_env, "
                      "events}");
  }
  std::vector<NotifyTarget> targets;
  std::size_t index = 0;
  for (const auto& entry : node) {
    std::string label = "notify.targets[" + std::to_string(index++) + "]";
    std::string ewhere = Where(file, entry);
    if (!entry.IsMap()) throw ConfigError(ewhere + ": '" + label + "' must be a map");
    NotifyTarget t;
    std::string url_file, url_env;
    for (const auto& kv : entry) {
      std::string k = kv.first.as<std::string>();
      std::string kwhere = Where(file, kv.first);
      if (k == "events") {
        if (!kv.second.IsSequence()) {
          throw ConfigError(kwhere + ": '" + label +
                            ".events' must be a list such as [backup.failure, drill.*]");
        }
        t.events.clear();
        for (const auto& e : kv.second) {
          std::string ev = ScalarOrThrow(e, label + ".events", kwhere);
          static const std::regex kEvent(R"(^(\*|[a-z-]+)\.(\*|success|failure)$|^\*$)");
          if (!std::regex_match(ev, kEvent)) {
            throw ConfigError(kwhere + ": '" + label + ".events' has '" + Echo(ev) +
                              "': use KIND.success, KIND.failure, KIND.*, *.failure or * "
                              "(kinds: backup, expire, verify, drill, sync, failover, switchover, "
                              "failback, standby-create)");
          }
          t.events.push_back(ev);
        }
        continue;
      }
      std::string v = ScalarOrThrow(kv.second, label + "." + k, kwhere);
      if (k == "name") {
        t.name = v;
      } else if (k == "format") {
        if (v != "slack" && v != "json") {
          throw ConfigError(kwhere + ": '" + label + ".format' must be slack or json, got '" +
                            Echo(v) + "'");
        }
        t.format = v;
      } else if (k == "url_file") {
        url_file = v;
      } else if (k == "url_env") {
        url_env = v;
      } else if (k == "url") {
        throw ConfigError(kwhere + ": '" + label +
                          ".url' is not accepted: a webhook URL is a secret; put it in a file "
                          "(url_file) or an environment variable (url_env)");
      } else {
        throw ConfigError(kwhere + ": unknown key '" + label + "." + k +
                          "' (known: name, format, url_file, url_env, events)");
      }
    }
    if (t.name.empty()) throw ConfigError(ewhere + ": '" + label + "' needs a name");
    if (url_file.empty() == url_env.empty()) {
      throw ConfigError(ewhere + ": '" + label + "' needs exactly one of url_file and url_env");
    }
    if (!url_file.empty()) {
      t.url = ReadSecretKeyFile(url_file, label + ".url_file");
      t.url_source = "file " + url_file;
    } else {
      auto v = getenv(url_env);
      if (!v || v->empty()) {
        throw ConfigError(ewhere + ": '" + label + ".url_env' names " + url_env +
                          ", which is not set in the environment");
      }
      RegisterSecret(*v);
      t.url = *v;
      t.url_source = "environment variable " + url_env;
    }
    if (t.url.rfind("https://", 0) != 0 && t.url.rfind("http://", 0) != 0) {
      throw ConfigError(ewhere + ": '" + label + "': the URL in " + t.url_source +
                        " must start with https:// (or http://)");
    }
    targets.push_back(std::move(t));
  }
  return targets;
}

// regions: [{name, repo, pg: {conninfo, data_dir, archive_command}}], the primary region
// first.
std::vector<RegionConfig> ParseRegions(const YAML::Node& node, const std::string& file) {
  std::string where = Where(file, node);
  if (!node.IsSequence()) {
    throw ConfigError(where +
                      ": 'regions' must be a list of {name, repo, pg: {conninfo, data_dir}}, "
                      "the primary region first");
  }
  std::vector<RegionConfig> regions;
  std::size_t index = 0;
  for (const auto& entry : node) {
    std::string label = "regions[" + std::to_string(index++) + "]";
    std::string ewhere = Where(file, entry);
    if (!entry.IsMap()) throw ConfigError(ewhere + ": '" + label + "' must be a map");
    RegionConfig r;
    for (const auto& kv : entry) {
      std::string k = kv.first.as<std::string>();
      std::string kwhere = Where(file, kv.first);
      if (k == "pg") {
        if (!kv.second.IsMap()) {
          throw ConfigError(kwhere + ": '" + label +
                            ".pg' must be a map of conninfo, data_dir, archive_command");
        }
        for (const auto& pkv : kv.second) {
          std::string pk = pkv.first.as<std::string>();
          std::string pwhere = Where(file, pkv.first);
          std::string v = ScalarOrThrow(pkv.second, label + ".pg." + pk, pwhere);
          if (pk == "conninfo") {
            r.conninfo = v;
            // A password in the connection string is a secret like any other.
            static const std::regex kPassword(R"(password\s*=\s*('((?:[^'\\]|\\.)*)'|([^\s']+)))");
            std::smatch m;
            if (std::regex_search(v, m, kPassword)) {
              RegisterSecret(m[2].matched ? m[2].str() : m[3].str());
            }
          } else if (pk == "data_dir") {
            if (!v.empty() && v.front() != '/') {
              throw ConfigError(pwhere + ": '" + label + ".pg.data_dir' must be an absolute path");
            }
            r.data_dir = v;
          } else if (pk == "archive_command") {
            r.archive_command = v;
          } else {
            throw ConfigError(pwhere + ": unknown key '" + label + ".pg." + pk +
                              "' (known: conninfo, data_dir, archive_command)");
          }
        }
        continue;
      }
      std::string v = ScalarOrThrow(kv.second, label + "." + k, kwhere);
      if (k == "name") {
        r.name = v;
      } else if (k == "repo") {
        r.repo = v;
      } else {
        throw ConfigError(kwhere + ": unknown key '" + label + "." + k +
                          "' (known: name, repo, pg)");
      }
    }
    if (r.name.empty()) throw ConfigError(ewhere + ": '" + label + "' needs a name");
    if (r.repo.empty()) {
      throw ConfigError(ewhere + ": '" + label + "' (" + Echo(r.name) +
                        ") needs repo: the repository in that region");
    }
    if (r.conninfo.empty()) {
      throw ConfigError(ewhere + ": '" + label + "' (" + Echo(r.name) +
                        ") needs pg.conninfo: how to reach the region's server");
    }
    for (const auto& other : regions) {
      if (other.name == r.name) {
        throw ConfigError(ewhere + ": region '" + Echo(r.name) + "' is configured twice");
      }
    }
    regions.push_back(std::move(r));
  }
  return regions;
}

// A hook: argv as a YAML list of strings, run without a shell.
std::vector<std::string> ParseArgv(const YAML::Node& node, const std::string& key,
                                   const std::string& file) {
  std::string where = Where(file, node);
  if (!node.IsSequence() || node.size() == 0) {
    throw ConfigError(where + ": '" + key +
                      "' must be a non-empty list of arguments (argv, run without a shell), "
                      "e.g. [kubectl, scale, statefulset/db, --replicas=0]");
  }
  std::vector<std::string> argv;
  for (const auto& a : node) argv.push_back(ScalarOrThrow(a, key, where));
  return argv;
}

int ParseInt(const OptionSpec& spec, const RawValue& v) {
  int out = 0;
  const char* begin = v.text.data();
  const char* end = begin + v.text.size();
  auto [ptr, ec] = std::from_chars(begin, end, out);
  if (ec != std::errc() || ptr != end || out < spec.min || out > spec.max) {
    throw ConfigError(v.where + ": '" + spec.key + "' must be an integer from " +
                      std::to_string(spec.min) + " to " + std::to_string(spec.max) + ", got '" +
                      Echo(v.text) + "'");
  }
  return out;
}

bool ParseBool(const OptionSpec& spec, const RawValue& v) {
  static const std::set<std::string> kTrue{"true", "yes", "on", "1"};
  static const std::set<std::string> kFalse{"false", "no", "off", "0"};
  if (kTrue.count(v.text)) return true;
  if (kFalse.count(v.text)) return false;
  throw ConfigError(v.where + ": '" + spec.key + "' must be true or false, got '" + Echo(v.text) +
                    "'");
}

template <typename Get>
void LoadRetention(RetentionConfig& r, const Get& get) {
  auto tier = [&](const std::string& key, int& field) {
    if (auto v = get(key)) field = ParseInt(*FindSpec(key), *v);
  };
  tier("retention.daily", r.daily);
  tier("retention.weekly", r.weekly);
  tier("retention.monthly", r.monthly);
  tier("retention.yearly", r.yearly);
  tier("retention.min_full", r.min_full);
  tier("retention.logical.daily", r.logical_daily);
  tier("retention.logical.weekly", r.logical_weekly);
  tier("retention.logical.monthly", r.logical_monthly);
  tier("retention.logical.yearly", r.logical_yearly);
  if (auto v = get("retention.pitr_window")) {
    r.pitr_window_s = ParseDuration(v->text, v->where + ": 'retention.pitr_window'").count();
  }
  if (auto v = get("retention.auto")) r.auto_expire = ParseBool(*FindSpec("retention.auto"), *v);
  r.configured =
      r.daily > 0 || r.weekly > 0 || r.monthly > 0 || r.yearly > 0 || r.pitr_window_s > 0;
}

}  // namespace

// ha: the watch agent's settings; durations as "30s", "5m".
template <typename Get>
void LoadHa(Config& config, const Get& get) {
  HaConfig& ha = config.ha;
  if (auto v = get("ha.region")) ha.region = v->text;
  if (auto v = get("ha.etcd.endpoints")) {
    std::istringstream list(v->text);
    std::string url;
    while (std::getline(list, url, ',')) {
      url.erase(0, std::min(url.find_first_not_of(' '), url.size()));
      while (!url.empty() && (url.back() == ' ' || url.back() == '/')) url.pop_back();
      if (url.empty()) continue;
      if (url.rfind("http://", 0) != 0 && url.rfind("https://", 0) != 0) {
        throw ConfigError(v->where + ": 'ha.etcd.endpoints' entry '" + url +
                          "' must be a URL starting with http:// or https://");
      }
      ha.etcd_endpoints.push_back(url);
    }
  }
  ha.etcd_prefix = "/gravl-dr/" + config.stanza;
  if (auto v = get("ha.etcd.prefix")) {
    ha.etcd_prefix = v->text;
    while (ha.etcd_prefix.size() > 1 && ha.etcd_prefix.back() == '/') ha.etcd_prefix.pop_back();
    if (ha.etcd_prefix.empty() || ha.etcd_prefix.front() != '/') {
      throw ConfigError(v->where + ": 'ha.etcd.prefix' must start with '/', got '" + v->text + "'");
    }
  }
  if (auto v = get("ha.etcd.ca_file")) ha.etcd_ca_file = v->text;
  if (auto v = get("ha.etcd.cert_file")) ha.etcd_cert_file = v->text;
  if (auto v = get("ha.etcd.key_file")) ha.etcd_key_file = v->text;
  auto duration = [&](const char* key, int& out) {
    if (auto v = get(key)) {
      out = static_cast<int>(ParseDuration(v->text, v->where + ": '" + key + "'").count());
    }
  };
  duration("ha.lease_ttl", ha.lease_ttl_s);
  duration("ha.failover_after", ha.failover_after_s);
  duration("ha.clock_margin", ha.clock_margin_s);
  if (ha.lease_ttl_s < 2) {
    throw ConfigError("'ha.lease_ttl' must be at least 2s (etcd's shortest lease), got " +
                      std::to_string(ha.lease_ttl_s) + "s");
  }
  if (ha.failover_after_s < 1) throw ConfigError("'ha.failover_after' must be at least 1s");
  if (ha.clock_margin_s < 1 || 2 * ha.clock_margin_s >= ha.lease_ttl_s) {
    throw ConfigError("'ha.clock_margin' (" + std::to_string(ha.clock_margin_s) +
                      "s) must be at least 1s and less than half of 'ha.lease_ttl' (" +
                      std::to_string(ha.lease_ttl_s) +
                      "s): the primary fences itself that long "
                      "before its lease can expire");
  }
  if (auto v = get("ha.max_loss")) ha.max_loss = v->text;
  if (auto v = get("ha.mode")) ha.mode = v->text;
  if (auto v = get("ha.self_fence")) ha.self_fence = v->text;
  if (auto v = get("ha.failsafe")) ha.failsafe = ParseBool(*FindSpec("ha.failsafe"), *v);
  if (auto v = get("ha.listen")) ha.listen = v->text;
}

// wal_receive: the streaming receiver's settings.
template <typename Get>
void LoadWalReceive(Config& config, const Get& get) {
  WalReceiveConfig& w = config.wal_receive;
  if (auto v = get("wal_receive.conninfo")) w.conninfo = v->text;
  auto name = [&](const char* key, std::string& out) {
    if (auto v = get(key)) {
      const std::string& t = v->text;
      bool ok = !t.empty() && t.size() <= 63;
      for (char c : t)
        ok = ok && (std::islower(static_cast<unsigned char>(c)) ||
                    std::isdigit(static_cast<unsigned char>(c)) || c == '_');
      if (!ok) {
        throw ConfigError(v->where + ": '" + key +
                          "' must be 1-63 lower-case letters, digits "
                          "or underscores (a replication slot's rules), got '" +
                          Echo(t) + "'");
      }
      out = t;
    }
  };
  name("wal_receive.slot", w.slot);
  name("wal_receive.application_name", w.application_name);
  if (auto v = get("wal_receive.synchronous")) {
    w.synchronous = ParseBool(*FindSpec("wal_receive.synchronous"), *v);
  }
  if (auto v = get("wal_receive.spool_path")) w.spool_path = v->text;
  if (auto v = get("wal_receive.partial_interval")) {
    const std::string& t = v->text;
    if (t.size() > 2 && t.compare(t.size() - 2, 2, "ms") == 0) {
      int ms = 0;
      auto [end, ec] = std::from_chars(t.data(), t.data() + t.size() - 2, ms);
      if (ec != std::errc() || end != t.data() + t.size() - 2 || ms < 10) {
        throw ConfigError(v->where +
                          ": 'wal_receive.partial_interval' must be a duration of at "
                          "least 10ms (e.g. 500ms, 1s), got '" +
                          Echo(t) + "'");
      }
      w.partial_interval_ms = ms;
    } else {
      auto secs = ParseDuration(t, v->where + ": 'wal_receive.partial_interval'").count();
      if (secs < 1 || secs > 3600) {
        throw ConfigError(v->where +
                          ": 'wal_receive.partial_interval' must be between 10ms "
                          "and 1h, got '" +
                          Echo(t) + "'");
      }
      w.partial_interval_ms = static_cast<int>(secs * 1000);
    }
  }
  if (auto v = get("wal_receive.max_spool_segments")) {
    w.max_spool_segments = ParseInt(*FindSpec("wal_receive.max_spool_segments"), *v);
  }
  if (auto v = get("wal_receive.listen")) w.listen = v->text;
}

Config LoadConfig(const ConfigInputs& inputs) {
  auto getenv = inputs.getenv ? inputs.getenv : [](const std::string& name) {
    const char* v = std::getenv(name.c_str());
    return v ? std::optional<std::string>(v) : std::nullopt;
  };

  Config config;
  std::optional<std::string> path = inputs.config_path;
  bool must_exist = true;
  if (!path) path = getenv("GRAVL_DR_CONFIG");
  if (!path) {
    path = kDefaultConfigPath;
    must_exist = false;
  }

  std::map<std::string, RawValue> raw;
  config.source = "(no config file)";
  std::optional<std::vector<RepoConfig>> file_repos;
  std::error_code ec;
  if (must_exist || std::filesystem::exists(*path, ec)) {
    std::string text = ReadWholeFile(*path, "config file");
    config.source = *path;
    YAML::Node root;
    try {
      root = YAML::Load(text);
    } catch (const YAML::Exception& e) {
      throw ConfigError(*path + " line " + std::to_string(e.mark.line + 1) +
                        ": invalid YAML: " + e.msg);
    }
    if (root.IsDefined() && !root.IsNull()) {
      if (!root.IsMap()) throw ConfigError(*path + ": the top level must be a map of options");
      std::map<std::string, YAML::Node> lists;
      FlattenMap(root, "", *path, raw, lists);
      if (lists.count("repos")) file_repos = ParseRepos(lists["repos"], *path);
      if (lists.count("drill.checks"))
        config.drill_checks = ParseChecks(lists["drill.checks"], *path);
      if (lists.count("notify.targets")) {
        config.notify.targets = ParseNotifyTargets(lists["notify.targets"], *path, getenv);
      }
      if (lists.count("regions")) config.regions = ParseRegions(lists["regions"], *path);
      for (const char* hook : {"failover.fence_command", "failover.endpoint_command"}) {
        if (!lists.count(hook)) continue;
        auto argv = ParseArgv(lists[hook], hook, *path);
        (std::string(hook) == "failover.fence_command" ? config.failover.fence_command
                                                       : config.failover.endpoint_command) =
            std::move(argv);
      }
    }
  }

  for (const auto& spec : OptionSpecs()) {
    if (auto v = getenv(spec.env)) raw[spec.key] = RawValue{*v, "environment variable " + spec.env};
    if (auto it = inputs.flags.find(spec.key); it != inputs.flags.end()) {
      raw[spec.key] = RawValue{it->second, "flag " + spec.flag};
    }
  }

  for (const auto& [key, value] : raw) {
    const OptionSpec& spec = *FindSpec(key);
    if (spec.type == OptionType::kChoice &&
        std::find(spec.choices.begin(), spec.choices.end(), value.text) == spec.choices.end()) {
      std::string choices;
      for (const auto& c : spec.choices) choices += (choices.empty() ? "" : ", ") + c;
      throw ConfigError(value.where + ": '" + key + "' must be one of " + choices + ", got '" +
                        value.text + "'");
    }
    if (spec.type == OptionType::kPath && !value.text.empty() && value.text.front() != '/') {
      throw ConfigError(value.where + ": '" + key + "' must be an absolute path, got '" +
                        Echo(value.text) + "'");
    }
    if ((spec.type == OptionType::kString || spec.type == OptionType::kPath) &&
        value.text.empty() && key == "stanza") {
      throw ConfigError(value.where + ": 'stanza' must not be empty");
    }
  }

  auto get = [&](const std::string& key) -> const RawValue* {
    auto it = raw.find(key);
    return it == raw.end() ? nullptr : &it->second;
  };
  if (auto v = get("stanza")) {
    config.stanza = v->text;
    bool ok = std::all_of(config.stanza.begin(), config.stanza.end(), [](char c) {
      return std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_';
    });
    if (!ok || config.stanza.size() > 64) {
      throw ConfigError(v->where + ": 'stanza' must be 1-64 letters, digits, '-' or '_', got '" +
                        Echo(config.stanza) + "'");
    }
  }
  if (auto v = get("pg.conninfo")) config.pg_conninfo = v->text;
  if (auto v = get("pg.bin_dir")) config.pg_bin_dir = v->text;
  if (auto v = get("compression.type")) config.compression = ParseCompression(v->text);
  config.compression_level = DefaultCompressionLevel(config.compression);
  if (auto v = get("compression.level")) {
    OptionSpec spec = *FindSpec("compression.level");
    switch (config.compression) {
      case CompressionType::kZstd:
        spec.min = 1;
        spec.max = 19;
        break;
      case CompressionType::kLz4:
        spec.min = 0;
        spec.max = 12;
        break;
      case CompressionType::kGzip:
        spec.min = 1;
        spec.max = 9;
        break;
      case CompressionType::kNone:
        spec.min = 0;
        spec.max = 0;
        break;
    }
    config.compression_level = ParseInt(spec, *v);
  }
  if (auto v = get("parallel")) config.parallel = ParseInt(*FindSpec("parallel"), *v);
  if (auto v = get("log_level")) config.log_level = v->text;
  if (auto v = get("archive.async"))
    config.archive_async = ParseBool(*FindSpec("archive.async"), *v);
  if (auto v = get("archive.spool_path")) config.spool_path = v->text;
  if (auto v = get("archive.batch"))
    config.archive_batch = ParseInt(*FindSpec("archive.batch"), *v);
  if (auto v = get("archive.prefetch")) {
    config.archive_prefetch = ParseInt(*FindSpec("archive.prefetch"), *v);
  }
  if (auto v = get("drill.row_count_tolerance_pct")) {
    config.drill_row_tolerance_pct = ParseInt(*FindSpec("drill.row_count_tolerance_pct"), *v);
  }
  if (auto v = get("drill.timeout"))
    config.drill_timeout = ParseInt(*FindSpec("drill.timeout"), *v);
  std::string copy_to_where;
  if (auto v = get("backup.copy_to")) {
    copy_to_where = v->where;
    std::stringstream names(v->text);
    std::string name;
    while (std::getline(names, name, ',')) {
      name.erase(0, std::min(name.find_first_not_of(' '), name.size()));
      while (!name.empty() && name.back() == ' ') name.pop_back();
      if (!name.empty()) config.backup_copy_to.push_back(name);
    }
  }
  if (auto v = get("notify.timeout")) {
    config.notify.timeout_s = ParseInt(*FindSpec("notify.timeout"), *v);
  }
  if (auto v = get("notify.retries")) {
    config.notify.retries = ParseInt(*FindSpec("notify.retries"), *v);
  }
  if (auto v = get("exporter.listen")) config.exporter.listen = v->text;
  if (auto v = get("exporter.interval")) {
    config.exporter.interval_s = ParseInt(*FindSpec("exporter.interval"), *v);
  }
  if (auto v = get("exporter.full_listing_interval")) {
    config.exporter.full_listing_interval_s =
        ParseInt(*FindSpec("exporter.full_listing_interval"), *v);
  }
  if (auto v = get("archive.timeout")) {
    config.archive_timeout = ParseInt(*FindSpec("archive.timeout"), *v);
  }
  LoadRetention(config.retention, get);
  if (auto v = get("failover.max_loss")) config.failover.max_loss = v->text;
  if (auto v = get("failover.backup")) {
    config.failover.backup = ParseBool(*FindSpec("failover.backup"), *v);
  }
  if (auto v = get("failover.timeout")) {
    config.failover.timeout_s = ParseInt(*FindSpec("failover.timeout"), *v);
  }
  if (auto v = get("failover.hook_timeout")) {
    config.failover.hook_timeout_s = ParseInt(*FindSpec("failover.hook_timeout"), *v);
  }
  LoadHa(config, get);
  LoadWalReceive(config, get);

  // Secrets: from the environment or a file, never from the command line.
  if (auto pass = getenv("GRAVL_DR_ENCRYPTION_PASSPHRASE")) {
    if (pass->empty()) {
      throw ConfigError("environment variable GRAVL_DR_ENCRYPTION_PASSPHRASE is set but empty");
    }
    config.passphrase = *pass;
  } else if (auto v = get("encryption.passphrase_file")) {
    std::string text = ReadWholeFile(v->text, "encryption.passphrase_file (from " + v->where + ")");
    while (!text.empty() && (text.back() == '\n' || text.back() == '\r')) text.pop_back();
    if (text.empty()) {
      throw ConfigError("encryption.passphrase_file " + v->text + " (from " + v->where +
                        ") is empty: put the passphrase in it");
    }
    config.passphrase = std::move(text);
  }
  if (config.passphrase) RegisterSecret(*config.passphrase);

  std::optional<std::string> repo_path;
  if (auto v = getenv("GRAVL_DR_REPO_PATH")) repo_path = *v;
  if (auto it = inputs.flags.find("repo_path"); it != inputs.flags.end()) repo_path = it->second;
  if (repo_path) {
    if (repo_path->empty() || repo_path->front() != '/') {
      throw ConfigError("--repo-path / GRAVL_DR_REPO_PATH must be an absolute path, got '" +
                        Echo(*repo_path) + "'");
    }
    config.repos = {RepoConfig{"local", "posix", *repo_path}};
  } else if (file_repos) {
    config.repos = std::move(*file_repos);
  }
  for (const auto& name : config.backup_copy_to) {
    bool known = std::any_of(config.repos.begin(), config.repos.end(),
                             [&](const RepoConfig& r) { return r.name == name; });
    if (!known) {
      throw ConfigError(copy_to_where + ": 'backup.copy_to' names '" + Echo(name) +
                        "', which is not a configured repository");
    }
  }

  for (const auto& region : config.regions) {
    bool known = std::any_of(config.repos.begin(), config.repos.end(),
                             [&](const RepoConfig& r) { return r.name == region.repo; });
    if (!known) {
      throw ConfigError(config.source + ": region '" + Echo(region.name) + "' names repository '" +
                        Echo(region.repo) + "', which is not configured in 'repos'");
    }
  }

  if (config.repos.empty()) {
    throw ConfigError("no repository configured: add a 'repos' list to " +
                      (config.source == "(no config file)" ? std::string(*path) : config.source) +
                      ", or pass --repo-path DIR (or set GRAVL_DR_REPO_PATH)");
  }
  return config;
}

}  // namespace gravl
