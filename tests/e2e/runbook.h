#pragma once
// A runbook's commands, run as written. A runbook (docs/runbooks/*.md) marks each shell block
// an operator types with the comment line before it:
//   <!-- e2e: ID -->          the end-to-end test runs this block (Step("ID"))
//   <!-- manual: REASON -->   it cannot run here (kubectl against a cluster, a cloud console);
//                             the reason is stated
// A block is run by bash (-e -u -o pipefail) from the repository's root, as the database's OS
// user (postgres) when the tests run as root, like the operator who types it -- with the
// variables the runbook tells the operator to set, the built gravl-dr first on PATH, and the
// variables earlier blocks set (one shell session, as the operator's). Each step
// is timed: the times are printed ("runbook data-deletion.md step restore: 2.1 s") and are the
// ones the runbooks state.

#include <gtest/gtest.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <regex>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "common/subprocess.h"
#include "pg/instance.h"
#include "support/cli.h"
#include "support/test_util.h"

namespace gravl::test {

struct StepResult {
  int exit_code = -1;
  std::string out;
  std::string err;
  double seconds = 0;
};

class Runbook {
 public:
  explicit Runbook(const std::string& name) : name_(name) {
    pg::GiveToServerUser(state_.path());
    std::ifstream in(std::string(GRAVL_SOURCE_DIR) + "/docs/runbooks/" + name);
    if (!in) throw std::runtime_error("no runbook docs/runbooks/" + name);
    std::string line, marker;
    bool in_block = false;
    std::string block;
    int lineno = 0;
    while (std::getline(in, line)) {
      ++lineno;
      const std::string trimmed = Trim(line);
      if (in_block) {
        if (trimmed.rfind("```", 0) == 0) {
          in_block = false;
          if (marker.rfind("e2e:", 0) == 0) {
            blocks_[Trim(marker.substr(4))] = block;
          } else if (marker.rfind("manual:", 0) != 0 || Trim(marker.substr(7)).empty()) {
            unmarked_.push_back(name + ":" + std::to_string(lineno));
          }
          marker.clear();
        } else {
          block += line + "\n";
        }
        continue;
      }
      std::smatch m;
      static const std::regex kMarker(R"(^\s*<!--\s*(.*?)\s*-->\s*$)");
      if (std::regex_match(line, m, kMarker)) {
        marker = m[1];
      } else if (trimmed.rfind("```sh", 0) == 0 || trimmed.rfind("```bash", 0) == 0) {
        in_block = true;
        block.clear();
      } else if (trimmed.rfind("```", 0) == 0) {
        // Output shown to the operator (```text): not a command block.
        while (std::getline(in, line) && Trim(line).rfind("```", 0) != 0) ++lineno;
        ++lineno;
        marker.clear();
      } else if (!trimmed.empty()) {
        marker.clear();
      }
    }
  }

  // Shell blocks with neither an e2e id nor a manual reason ("file:line" of their end).
  const std::vector<std::string>& Unmarked() const { return unmarked_; }
  std::set<std::string> Ids() const {
    std::set<std::string> ids;
    for (const auto& [id, b] : blocks_) ids.insert(id);
    return ids;
  }
  std::set<std::string> Ran() const { return ran_; }

  // Runs block `id` with the variables in `env` ("NAME=value").
  StepResult Step(const std::string& id, const std::vector<std::string>& env) {
    auto it = blocks_.find(id);
    if (it == blocks_.end()) {
      ADD_FAILURE() << name_ << " has no block marked <!-- e2e: " << id << " -->";
      return {};
    }
    ran_.insert(id);
    std::vector<std::string> argv;
    if (::geteuid() == 0) argv = {"runuser", "-u", "postgres", "--"};
    for (const char* s : {"env", "-C", GRAVL_SOURCE_DIR}) argv.push_back(s);
    std::string bin_dir = std::filesystem::path(GravlBinary()).parent_path();
    argv.push_back("PATH=" + bin_dir + ":/usr/lib/postgresql/15/bin:/usr/sbin:/usr/bin:/sbin:/bin");
    for (const auto& e : env) argv.push_back(e);
    for (const char* s : {"bash", "-euo", "pipefail", "-c"}) argv.push_back(s);
    // One shell session across the steps, like the operator's: variables a block sets (set -a
    // exports them) are there for the next blocks.
    const std::string state = state_.path() + "/variables";
    argv.push_back("set -a; [ ! -r '" + state + "' ] || . '" + state + "'\n" + it->second +
                   "\nexport -p | grep -Ev '^declare -x (PWD|OLDPWD|SHLVL|_)=' > '" + state +
                   "'\n");
    RunOptions options;
    options.timeout = std::chrono::minutes(10);
    auto t0 = std::chrono::steady_clock::now();
    RunResult r = Run(argv, options);
    StepResult s{r.exit_code, r.out, r.err,
                 std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count()};
    std::ostringstream line;
    line.precision(1);
    line << std::fixed << "runbook " << name_ << " step " << id << ": " << s.seconds << " s (exit "
         << s.exit_code << ")";
    std::printf("%s\n", line.str().c_str());
    if (std::getenv("GRAVL_E2E_VERBOSE")) std::printf("%s%s", s.out.c_str(), s.err.c_str());
    std::fflush(stdout);
    ::testing::Test::RecordProperty("step_" + id + "_seconds", std::to_string(s.seconds));
    return s;
  }

  // Runs block `id` and fails the test (with its output) unless it exits 0.
  StepResult MustStep(const std::string& id, const std::vector<std::string>& env) {
    StepResult s = Step(id, env);
    EXPECT_EQ(s.exit_code, 0) << name_ << " step " << id << ":\n" << s.out << s.err;
    return s;
  }

 private:
  static std::string Trim(const std::string& s) {
    auto b = s.find_first_not_of(" \t");
    auto e = s.find_last_not_of(" \t");
    return b == std::string::npos ? "" : s.substr(b, e - b + 1);
  }
  std::string name_;
  TempDir state_;  // the session's variables, between steps
  std::map<std::string, std::string> blocks_;
  std::vector<std::string> unmarked_;
  std::set<std::string> ran_;
};

}  // namespace gravl::test
