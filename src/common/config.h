#pragma once
// Configuration: one YAML file, overridden by environment variables, overridden by flags
// (flag > env > file > default). Every scalar option is declared once in OptionSpecs(),
// which drives validation, the CLI flags, the environment names and the docs.
//
// Errors (unknown key, wrong type, missing required value, unreadable secret) are thrown as
// ConfigError with a one-line message naming the key and the file.

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

struct RepoConfig {
  std::string name;
  std::string type;  // "posix"
  std::string path;  // posix: absolute directory
};

struct DrillCheck {
  std::string name;
  std::string database = "postgres";
  std::string sql;  // must return a single true
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
