#pragma once
// Ephemeral PostgreSQL instances: initdb into a directory, start on a free port on
// 127.0.0.1, stop. Used by the test fixtures, the quick-start demo and restore drills.
// PostgreSQL refuses to run as root, so as root every server program runs as the
// `postgres` OS user (runuser), and the directories are handed to that user.

#include <memory>
#include <string>
#include <vector>

namespace gravl::pg {

// The configured bin dir, or `pg_config --bindir`. Throws ConfigError if neither works.
std::string ResolveBinDir(const std::string& configured);

// argv prefixed with "runuser -u postgres --" when running as root.
std::vector<std::string> AsServerUser(std::vector<std::string> argv);
// Gives a path to the server user (chown) when running as root; no-op otherwise.
void GiveToServerUser(const std::string& path);

// A port on 127.0.0.1 that was free a moment ago.
int FindFreePort();

struct InstanceOptions {
  std::string bin_dir;                      // empty: ResolveBinDir("")
  std::string base_dir;                     // empty: a new mkdtemp directory under $TMPDIR or /tmp
  std::vector<std::string> settings;        // extra postgresql.conf lines (Create only)
  std::vector<std::string> server_options;  // "name=value", passed as -c at every start
  bool keep_files = false;                  // keep base_dir after the instance is destroyed
};

class Instance {
 public:
  // initdb (superuser "postgres", trust auth on 127.0.0.1) and start. Throws Error on failure
  // with the server log's tail.
  static std::unique_ptr<Instance> Create(InstanceOptions options);
  // Starts an existing data directory (e.g. a restored one) on a free port.
  static std::unique_ptr<Instance> Adopt(InstanceOptions options, const std::string& data_dir);
  ~Instance();  // stops the server (immediate) if running; removes base_dir unless keep_files
  Instance(const Instance&) = delete;
  Instance& operator=(const Instance&) = delete;

  void Start();
  void Stop(bool immediate = false);
  bool running() const { return running_; }
  int port() const { return port_; }
  const std::string& data_dir() const { return data_dir_; }
  const std::string& base_dir() const { return base_dir_; }
  const std::string& bin_dir() const { return bin_dir_; }
  std::string conninfo(const std::string& dbname = "postgres") const;
  std::string Bin(const std::string& program) const { return bin_dir_ + "/" + program; }
  // Runs SQL through psql as the server user; returns stdout. Throws on failure.
  std::string Psql(const std::string& sql, const std::string& dbname = "postgres") const;
  // Appends lines to postgresql.conf (takes effect at the next start/reload).
  void AppendConfig(const std::vector<std::string>& lines);
  std::string LogTail() const;

 private:
  explicit Instance(InstanceOptions options);
  InstanceOptions options_;
  std::string bin_dir_;
  std::string base_dir_;
  std::string data_dir_;
  std::string log_file_;
  int port_ = 0;
  bool running_ = false;
  bool owns_base_ = false;
};

}  // namespace gravl::pg
