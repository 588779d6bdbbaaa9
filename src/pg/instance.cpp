#include "pg/instance.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <pwd.h>
#include <spdlog/spdlog.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "common/error.h"
#include "common/subprocess.h"

namespace gravl::pg {
namespace fs = std::filesystem;

std::string ResolveBinDir(const std::string& configured) {
  if (!configured.empty()) {
    if (!fs::exists(configured + "/pg_ctl")) {
      throw ConfigError("pg.bin_dir " + configured +
                        " has no pg_ctl: point it at the "
                        "directory of the PostgreSQL server programs");
    }
    return configured;
  }
  try {
    std::string out = RunChecked({"pg_config", "--bindir"});
    while (!out.empty() && (out.back() == '\n' || out.back() == ' ')) out.pop_back();
    return out;
  } catch (const Error&) {
    throw ConfigError(
        "cannot find the PostgreSQL programs: pg_config is not in PATH; set "
        "pg.bin_dir (e.g. /usr/lib/postgresql/15/bin)");
  }
}

std::vector<std::string> AsServerUser(std::vector<std::string> argv) {
  // Run from "/" so that a working directory the server user cannot enter (/root/...)
  // does not matter.
  if (::geteuid() != 0) return argv;
  std::vector<std::string> out = {"runuser", "-u", "postgres", "--", "env", "-C", "/"};
  out.insert(out.end(), argv.begin(), argv.end());
  return out;
}

void GiveToServerUser(const std::string& path) {
  if (::geteuid() != 0) return;
  struct passwd* pw = ::getpwnam("postgres");
  if (pw == nullptr) {
    throw Error(ExitCode::kError,
                "running as root, but there is no 'postgres' user to run "
                "PostgreSQL as (install postgresql or create the user)");
  }
  if (::chown(path.c_str(), pw->pw_uid, pw->pw_gid) != 0) {
    throw Error(ExitCode::kError, SysErrorText("cannot chown " + path + " to postgres", errno));
  }
}

int FindFreePort() {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) throw Error(ExitCode::kError, SysErrorText("socket", errno));
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  socklen_t len = sizeof addr;
  if (::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 ||
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
    int err = errno;
    ::close(fd);
    throw Error(ExitCode::kError, SysErrorText("cannot find a free port", err));
  }
  ::close(fd);
  return ntohs(addr.sin_port);
}

Instance::Instance(InstanceOptions options) : options_(std::move(options)) {
  bin_dir_ = ResolveBinDir(options_.bin_dir);
  if (options_.base_dir.empty()) {
    const char* tmp = std::getenv("TMPDIR");
    std::string templ = std::string(tmp && *tmp ? tmp : "/tmp") + "/gravl-pg-XXXXXX";
    if (::mkdtemp(templ.data()) == nullptr) {
      throw Error(ExitCode::kError, SysErrorText("cannot create a temporary directory", errno));
    }
    base_dir_ = templ;
    owns_base_ = !options_.keep_files;
  } else {
    base_dir_ = options_.base_dir;
    fs::create_directories(base_dir_);
  }
  GiveToServerUser(base_dir_);
  log_file_ = base_dir_ + "/server.log";
}

std::unique_ptr<Instance> Instance::Create(InstanceOptions options) {
  std::unique_ptr<Instance> inst(new Instance(std::move(options)));
  inst->data_dir_ = inst->base_dir_ + "/data";
  RunChecked(AsServerUser({inst->Bin("initdb"), "-D", inst->data_dir_, "-U", "postgres",
                           "--auth=trust", "--no-sync", "-E", "UTF8", "--locale=C"}));
  inst->AppendConfig(inst->options_.settings);
  inst->Start();
  return inst;
}

std::unique_ptr<Instance> Instance::Adopt(InstanceOptions options, const std::string& data_dir) {
  std::unique_ptr<Instance> inst(new Instance(std::move(options)));
  inst->data_dir_ = data_dir;
  inst->Start();
  return inst;
}

Instance::~Instance() {
  try {
    if (running_) Stop(true);
  } catch (const std::exception& e) {
    spdlog::warn("could not stop PostgreSQL in {}: {}", data_dir_, e.what());
  }
  if (owns_base_) {
    std::error_code ec;
    fs::remove_all(base_dir_, ec);
  }
}

void Instance::Start() {
  std::string last_error;
  for (int attempt = 0; attempt < 3; ++attempt) {
    port_ = FindFreePort();
    std::vector<std::string> opts = {"-c listen_addresses=127.0.0.1",
                                     "-c port=" + std::to_string(port_),
                                     "-c unix_socket_directories=" + base_dir_};
    for (const auto& opt : options_.server_options) opts.push_back("-c " + opt);
    std::string o;
    for (const auto& s : opts) o += s + " ";
    std::vector<std::string> argv = {Bin("pg_ctl"), "-D", data_dir_, "-l",   log_file_, "-o", o,
                                     "-w",          "-t", "120",     "start"};
    RunResult r = Run(AsServerUser(argv));
    if (r.ok()) {
      running_ = true;
      return;
    }
    last_error = r.err + r.out;
    // The port may have been taken between FindFreePort and the bind: try another.
    if (LogTail().find("could not bind") == std::string::npos) break;
  }
  throw Error(ExitCode::kError, "PostgreSQL did not start in " + data_dir_ + ": " + last_error +
                                    "\nserver log:\n" + LogTail());
}

void Instance::Stop(bool immediate) {
  if (!running_) return;
  RunResult r = Run(AsServerUser({Bin("pg_ctl"), "-D", data_dir_, "-m",
                                  immediate ? "immediate" : "fast", "-w", "-t", "120", "stop"}));
  running_ = false;
  if (!r.ok()) {
    throw Error(ExitCode::kError, "pg_ctl stop failed for " + data_dir_ + ": " + r.err);
  }
}

std::string Instance::conninfo(const std::string& dbname) const {
  return "host=127.0.0.1 port=" + std::to_string(port_) + " user=postgres dbname=" + dbname;
}

std::string Instance::Psql(const std::string& sql, const std::string& dbname) const {
  return RunChecked({Bin("psql"), "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-d",
                     conninfo(dbname), "-c", sql});
}

void Instance::AppendConfig(const std::vector<std::string>& lines) {
  std::ofstream out(data_dir_ + "/postgresql.conf", std::ios::app);
  for (const auto& l : lines) out << l << "\n";
  if (!out) throw Error(ExitCode::kError, "cannot append to " + data_dir_ + "/postgresql.conf");
}

std::string Instance::LogTail() const {
  std::ifstream in(log_file_);
  std::stringstream ss;
  ss << in.rdbuf();
  std::string s = ss.str();
  return s.size() > 4000 ? s.substr(s.size() - 4000) : s;
}

}  // namespace gravl::pg
