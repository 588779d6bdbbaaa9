// Hooks (fence_command, endpoint_command) and the step log.

#include <spdlog/spdlog.h>

#include <cstdio>
#include <sstream>

#include "common/error.h"
#include "common/log.h"
#include "common/subprocess.h"
#include "ha/ha.h"
#include "pg/connection.h"

namespace gravl::ha {

namespace {

std::string TailLines(const std::string& text, std::size_t max_chars) {
  std::string t = text;
  while (!t.empty() && (t.back() == '\n' || t.back() == ' ')) t.pop_back();
  return t.size() <= max_chars ? t : "..." + t.substr(t.size() - max_chars);
}

}  // namespace

std::map<std::string, std::string> HookVars(const RegionConfig& region) {
  Address a = AddressOf(region.conninfo);
  // The connection string without its password (ChildCredentials leaves it out).
  pg::ChildCredentials creds(region.conninfo);
  return {
      {"region", region.name}, {"host", a.host}, {"port", a.port}, {"conninfo", creds.conninfo()}};
}

std::vector<std::string> ExpandHook(const std::vector<std::string>& argv,
                                    const std::map<std::string, std::string>& vars) {
  std::vector<std::string> out;
  bool placeholder = false;
  for (std::string arg : argv) {
    for (const auto& [name, value] : vars) {
      const std::string token = "{" + name + "}";
      for (auto pos = arg.find(token); pos != std::string::npos;
           pos = arg.find(token, pos + value.size())) {
        arg.replace(pos, token.size(), value);
        placeholder = true;
      }
    }
    out.push_back(std::move(arg));
  }
  if (!placeholder) {
    if (auto it = vars.find("region"); it != vars.end()) out.push_back(it->second);
    if (auto it = vars.find("host"); it != vars.end()) out.push_back(it->second);
  }
  return out;
}

HookResult RunHook(const std::vector<std::string>& argv,
                   const std::map<std::string, std::string>& vars, std::chrono::seconds timeout) {
  HookResult result;
  auto expanded = ExpandHook(argv, vars);
  result.command = Redact(FormatCommand(expanded));
  auto start = std::chrono::steady_clock::now();
  try {
    RunResult r = Run(expanded, RunOptions{.timeout = timeout, .capture_limit = 64 * 1024});
    result.exit_code = r.exit_code;
    result.output = Redact(TailLines(r.out + r.err, 2000));
  } catch (const std::exception& e) {
    result.exit_code = -1;
    result.output = Redact(e.what());
  }
  result.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  spdlog::info("hook {} exited {} after {:.1f} s{}{}", result.command, result.exit_code,
               result.seconds, result.output.empty() ? "" : ": ", result.output);
  return result;
}

StepLog::StepLog() : start_(std::chrono::steady_clock::now()) {}

double StepLog::Elapsed() const {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
}

void StepLog::Run(const std::string& name, const std::function<std::string()>& body) {
  Step step;
  step.name = name;
  step.started = Elapsed();
  spdlog::info("step {}: started", name);
  try {
    step.detail = body();
    step.outcome = "done";
  } catch (const Error& e) {
    step.outcome = e.code() == ExitCode::kRefused ? "refused" : "failed";
    step.detail = Redact(e.what());
    step.seconds = Elapsed() - step.started;
    spdlog::error("step {}: {} after {:.2f} s: {}", name, step.outcome, step.seconds, step.detail);
    steps_.push_back(std::move(step));
    throw;
  } catch (const std::exception& e) {
    step.outcome = "failed";
    step.detail = Redact(e.what());
    step.seconds = Elapsed() - step.started;
    steps_.push_back(std::move(step));
    throw;
  }
  step.seconds = Elapsed() - step.started;
  spdlog::info("step {}: done in {:.2f} s{}{}", name, step.seconds, step.detail.empty() ? "" : ": ",
               step.detail);
  steps_.push_back(std::move(step));
}

void StepLog::Skip(const std::string& name, const std::string& why) {
  steps_.push_back({name, Elapsed(), 0, "skipped", why});
  spdlog::info("step {}: skipped: {}", name, why);
}

std::optional<double> StepLog::Until(const std::string& name) const {
  for (const auto& s : steps_) {
    if (s.name == name && s.outcome == "done") return s.started + s.seconds;
  }
  return std::nullopt;
}

nlohmann::json StepLog::ToJson() const {
  nlohmann::json out = nlohmann::json::array();
  for (const auto& s : steps_) {
    out.push_back({{"step", s.name},
                   {"started", s.started},
                   {"seconds", s.seconds},
                   {"outcome", s.outcome},
                   {"detail", s.detail}});
  }
  return out;
}

std::string StepLog::Text() const {
  std::ostringstream out;
  for (const auto& s : steps_) {
    char line[160];
    std::snprintf(line, sizeof line, "  %-16s %-8s %7.2f s  ", s.name.c_str(), s.outcome.c_str(),
                  s.seconds);
    out << line << s.detail << "\n";
  }
  return out.str();
}

std::optional<double> StepLog::StartOf(const std::string& name) const {
  for (const auto& s : steps_) {
    if (s.name == name) return s.started;
  }
  return std::nullopt;
}

void StepLog::Finish(nlohmann::json& details, repo::RunReport* run) const {
  details["steps"] = ToJson();
  details["total_seconds"] = Elapsed();
  if (auto t = Until("promote")) details["decision_to_writable_seconds"] = *t;
  if (run) {
    run->details = details;
    run->phases = Phases();
  }
}

std::map<std::string, double> StepLog::Phases() const {
  std::map<std::string, double> phases;
  for (const auto& s : steps_) phases[s.name] += s.seconds;
  return phases;
}

}  // namespace gravl::ha
