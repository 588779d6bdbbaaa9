#include "support/cli.h"

#include <unistd.h>

#include <cstdlib>
#include <filesystem>

namespace gravl::test {

// PostgreSQL runs archive_command and restore_command as its own OS user. When the tests
// run as root from a checkout that user cannot enter (/root/...), the binary is copied once
// per test process into a world-readable temporary directory, removed at exit.
const char* GravlBinary() {
  static const std::string path = [] {
    if (::geteuid() != 0) return std::string(GRAVL_DR_BINARY);
    std::string dir = "/tmp/gravl-dr-bin-" + std::to_string(::getpid());
    std::filesystem::create_directories(dir);
    std::filesystem::permissions(dir, std::filesystem::perms(0755));
    std::string bin = dir + "/gravl-dr";
    std::filesystem::copy_file(GRAVL_DR_BINARY, bin,
                               std::filesystem::copy_options::overwrite_existing);
    std::filesystem::permissions(bin, std::filesystem::perms(0755));
    static const std::string remove_dir = dir;
    std::atexit([] {
      std::error_code ec;
      std::filesystem::remove_all(remove_dir, ec);
    });
    return bin;
  }();
  return path.c_str();
}

RunResult Cli(const std::vector<std::string>& args, const std::vector<std::string>& env) {
  std::vector<std::string> argv = {GravlBinary()};
  argv.insert(argv.end(), args.begin(), args.end());
  RunOptions options;
  // Tests must not pick up a machine-wide configuration: unless the test names a config
  // file, point GRAVL_DR_CONFIG at an empty one.
  bool has_config = false;
  for (const auto& e : env) has_config |= e.rfind("GRAVL_DR_CONFIG=", 0) == 0;
  bool has_flag = false;
  for (const auto& a : args) has_flag |= a == "--config";
  if (!has_config && !has_flag) options.env.push_back("GRAVL_DR_CONFIG=/dev/null");
  options.env.insert(options.env.end(), env.begin(), env.end());
  options.timeout = std::chrono::minutes(5);
  return Run(argv, options);
}

}  // namespace gravl::test
