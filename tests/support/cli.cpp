#include "support/cli.h"

namespace gravl::test {

const char* GravlBinary() { return GRAVL_DR_BINARY; }

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
