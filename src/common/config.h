#pragma once
// Configuration: one YAML file, overridden by environment variables, overridden by flags
// (flag > env > file > default). Every scalar option is declared once in OptionSpecs(),
// which drives validation, the CLI flags, the environment names and the docs.
//
// Errors (unknown key, wrong type, missing required value, unreadable secret) are thrown as
// ConfigError with a one-line message naming the key and the file.

#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <vector>

namespace gravl {

enum class CompressionType { kNone, kZstd, kLz4, kGzip };
const char* CompressionName(CompressionType type);
// Throws ConfigError on an unknown name.
CompressionType ParseCompression(const std::string& name);
int DefaultCompressionLevel(CompressionType type);

// An S3 (or S3-compatible) repository. See docs/configuration.md for every key.
struct S3RepoConfig {
  std::string bucket;
  std::string region;
  std::string prefix;              // without leading or trailing '/'; may be empty
  std::string endpoint;            // empty: https://s3.<region>.amazonaws.com
  std::string uri_style = "host";  // "host" (bucket.endpoint/key) or "path" (endpoint/bucket/key)
  std::string storage_class;       // empty: the bucket's default (STANDARD)
  std::string sse;                 // "", "AES256" or "aws:kms"
  std::string sse_kms_key_id;
  std::string ca_file;  // extra CA bundle for the endpoint's TLS certificate
  bool verify_tls = true;
  // Credentials; when none are given here the AWS chain is used (environment, shared
  // credentials file and profile, web identity).
  std::string access_key_id;
  std::optional<std::string> secret_access_key;  // secret: from secret_access_key_file
  std::optional<std::string> session_token;      // secret: from session_token_file
  std::string profile;                           // shared credentials file profile
  std::string sts_endpoint;                      // empty: https://sts.<region>.amazonaws.com
  int part_size_mib = 8;       // first multipart part; grows for very large objects
  int upload_concurrency = 4;  // parts in flight per object
  int retry_timeout = 120;     // seconds one request may spend retrying
  int max_attempts = 10;       // tries per request
  // S3 Object Lock (the bucket must have it enabled): every backup and WAL object is written
  // with this retention mode and a retain-until date from the retention policy
  // (docs/retention.md); empty: no Object Lock.
  std::string object_lock_mode;
  // Backups kept only for the monthly or yearly tier are moved (copied in place) to this
  // storage class by expire; empty: they stay where they are.
  std::string archive_storage_class;
};

struct RepoConfig {
  std::string name;
  std::string type;  // "posix" or "s3"
  std::string path;  // posix: absolute directory
  S3RepoConfig s3;   // s3
};

struct DrillCheck {
  std::string name;
  std::string database = "postgres";
  std::string sql;  // must return a single true
};

// Retention (docs/retention.md): what `expire` keeps. Without any tier or window configured
// nothing is ever expired.
struct RetentionConfig {
  bool configured = false;  // a full-backup tier or pitr_window is set
  int daily = 0, weekly = 0, monthly = 0, yearly = 0;
  std::int64_t pitr_window_s = 0;
  int min_full = 2;
  int logical_daily = 0, logical_weekly = 0, logical_monthly = 0, logical_yearly = 0;
  bool auto_expire = true;  // `backup` runs `expire` on its repository after it succeeds
};

// A webhook notifications go to (notify.targets).
struct NotifyTarget {
  std::string name;
  std::string format = "json";  // "slack" (Slack-compatible {"text": ...}) or "json"
  std::string url;              // secret, registered for redaction
  std::string url_source;       // where it came from, for messages
  // Which events: "backup.failure", "drill.*", "*.failure", "*" (kinds: backup, expire,
  // verify, drill, sync, failover, switchover, failback, standby-create).
  std::vector<std::string> events{"*.failure"};
};

struct NotifyConfig {
  std::vector<NotifyTarget> targets;
  int timeout_s = 10;  // per request
  int retries = 3;     // after the first attempt, with backoff
};

struct ExporterConfig {
  std::string listen = "127.0.0.1:9187";
  int interval_s = 60;
  int full_listing_interval_s = 3600;
};

// One region of a two-region deployment (`regions:`, the primary region first): its
// repository and its PostgreSQL server (docs/failover.md).
struct RegionConfig {
  std::string name;
  std::string repo;      // the configured repository in that region
  std::string conninfo;  // the region's server (libpq); a password is a secret
  // The server's data directory, where gravl-dr runs on its host (switchover restarts,
  // rewind, fencing by stopping it); empty elsewhere.
  std::string data_dir;
  // archive_command set on this region's server when it becomes primary (ALTER SYSTEM), e.g.
  // "gravl-dr --repo us-east-1 archive-push %p"; empty: left as it is.
  std::string archive_command;
};

// Failover policy (failover:).
struct FailoverConfig {
  // Hooks, argv without a shell; "{region}", "{host}", "{port}", "{conninfo}" in an argument
  // are replaced (conninfo without its password); without any placeholder the region's name
  // and host are appended. Exit 0 means done.
  std::vector<std::string> fence_command;     // fences the old primary's region
  std::vector<std::string> endpoint_command;  // points the applications at the new primary
  std::string max_loss = "16MB";              // bytes ("16MB", "0") or a duration ("30s")
  bool backup = true;                         // full backup of a new primary after failover
  int timeout_s = 300;       // catch-up, promotion, archiving of the history file, streaming
  int hook_timeout_s = 120;  // per hook run
};

// Automatic failover (ha:, docs/automatic-failover.md): the `watch` agent of each region and
// the etcd cluster they agree through.
struct HaConfig {
  std::string region;  // the region this agent runs in (or watch --region)
  std::vector<std::string> etcd_endpoints;
  std::string etcd_prefix;  // default "/gravl-dr/<stanza>"
  std::string etcd_ca_file, etcd_cert_file, etcd_key_file;
  int lease_ttl_s = 30;                  // the leader key's lease
  int failover_after_s = 300;            // the leader key gone this long: the standby takes over
  int clock_margin_s = 2;                // the primary fences this long before its lease can expire
  std::string max_loss;                  // empty: failover.max_loss
  std::string mode = "automatic";        // or "manual": detect, notify, recommend; never act
  std::string self_fence = "read-only";  // or "stop" (read-only, then a fast stop)
  bool failsafe = false;  // etcd unreachable: keep the primary writable (docs: the risk)
  std::string listen = "127.0.0.1:9188";  // /healthz, /metrics, /status
  bool configured() const { return !etcd_endpoints.empty(); }
};

// The WAL streaming receiver (wal_receive:, docs/wal-receive.md).
struct WalReceiveConfig {
  std::string conninfo;  // empty: pg.conninfo (a primary, or a cascading standby)
  std::string slot = "gravl_dr";
  std::string application_name = "gravl_dr";  // what synchronous_standby_names lists
  bool synchronous = true;  // acknowledge what the repository holds (else: the spool)
  std::string spool_path = "/var/lib/gravl-dr/receive";
  int partial_interval_ms = 1000;  // asynchronous mode: uploads of the partial segment
  int max_spool_segments = 64;     // completed segments waiting to be pushed before it waits
  std::string listen = "127.0.0.1:9189";
};

struct Config {
  std::string source;  // the file the configuration came from, or "(no config file)"
  std::string stanza = "main";
  std::string pg_conninfo;
  std::string pg_bin_dir;  // empty: ask pg_config --bindir
  std::vector<RepoConfig> repos;
  CompressionType compression = CompressionType::kZstd;
  int compression_level = 1;
  std::optional<std::string> passphrase;  // secret, registered for redaction
  int parallel = 2;
  std::string log_level = "info";

  // WAL archiving (archive-push / archive-get).
  bool archive_async = false;  // batch other .ready segments / prefetch ahead
  std::string spool_path = "/var/spool/gravl-dr";
  int archive_batch = 32;     // segments per archive-push call in async mode
  int archive_prefetch = 16;  // segments archive-get fetches ahead in async mode
  int archive_timeout = 60;   // seconds `check` waits for a switched segment

  // Restore drills (test-restore).
  int drill_row_tolerance_pct = 10;  // allowed row-count drift per table vs backup time
  int drill_timeout = 3600;          // seconds recovery may take before the drill fails
  std::vector<DrillCheck> drill_checks;

  RetentionConfig retention;
  // backup.copy_to: repositories a successful backup is synced to (repo-sync).
  std::vector<std::string> backup_copy_to;
  NotifyConfig notify;
  ExporterConfig exporter;
  std::vector<RegionConfig> regions;
  FailoverConfig failover;
  HaConfig ha;
  WalReceiveConfig wal_receive;

  // The region named `name`; throws ConfigError listing the configured ones.
  const RegionConfig& Region(const std::string& name) const;

  // The repositories a command works on: all, or the one named by --repo.
  // Throws ConfigError when the name matches none.
  std::vector<RepoConfig> SelectRepos(const std::optional<std::string>& name) const;
};

enum class OptionType { kString, kInt, kChoice, kPath, kBool };

struct OptionSpec {
  std::string key;   // dotted YAML path, e.g. "compression.type"
  std::string env;   // GRAVL_DR_...
  std::string flag;  // --...
  OptionType type;
  std::string default_text;  // for help and docs
  std::string help;
  std::vector<std::string> choices;
  int min = 0, max = 0;  // kInt bounds
};

// The scalar options (repos are a list and handled separately).
const std::vector<OptionSpec>& OptionSpecs();

inline constexpr const char* kDefaultConfigPath = "/etc/gravl-dr/gravl-dr.yaml";

struct ConfigInputs {
  // --config FILE, if given. Otherwise GRAVL_DR_CONFIG, otherwise kDefaultConfigPath
  // (which may be absent; an explicitly named file must exist).
  std::optional<std::string> config_path;
  // Flag values by option key ("stanza", "compression.type", ..., and "repo_path").
  std::map<std::string, std::string> flags;
  // Environment lookup; defaults to ::getenv.
  std::function<std::optional<std::string>(const std::string&)> getenv;
};

Config LoadConfig(const ConfigInputs& inputs);

}  // namespace gravl
