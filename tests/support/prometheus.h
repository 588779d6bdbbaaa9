#pragma once
// A real Prometheus server (Debian's prometheus) and Alertmanager (prometheus-alertmanager)
// for integration tests: started on free ports on 127.0.0.1 with their data in a temporary
// directory, killed when destroyed -- also when a test fails.

#include <chrono>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>

#include "common/subprocess.h"
#include "support/test_util.h"

namespace gravl::test {

class PrometheusServer {
 public:
  // `config` is prometheus.yml's text; rule files it names must exist.
  PrometheusServer(const std::string& dir, const std::string& config);
  ~PrometheusServer() = default;

  std::string url() const { return "http://127.0.0.1:" + std::to_string(port_); }
  // /api/v1/query at the current time: the "data" member; throws when Prometheus answers
  // with an error (a query that does not parse).
  nlohmann::json Query(const std::string& expr) const;
  // The value of the first sample of `expr`, once it has one (nullopt after `timeout`).
  std::optional<double> WaitForValue(const std::string& expr,
                                     std::chrono::seconds timeout = std::chrono::seconds(60)) const;
  std::string LogTail() const { return child_->StderrTail(); }

 private:
  int port_ = 0;
  std::unique_ptr<Child> child_;
};

class AlertmanagerServer {
 public:
  // `config` is alertmanager.yml's text.
  AlertmanagerServer(const std::string& dir, const std::string& config);
  std::string address() const { return "127.0.0.1:" + std::to_string(port_); }
  std::string LogTail() const { return child_->StderrTail(); }

 private:
  int port_ = 0;
  std::unique_ptr<Child> child_;
};

// The rule groups of k8s/monitoring/prometheus-rules-dr.yaml as a plain Prometheus rule file
// (the PrometheusRule's spec, de-indented).
std::string PlainRuleGroups(const std::string& prometheus_rule_yaml);

}  // namespace gravl::test
