#include "support/prometheus.h"

#include <sstream>
#include <thread>

#include "common/error.h"
#include "pg/instance.h"
#include "support/http.h"

namespace gravl::test {

namespace {

void WaitReady(const std::string& url, Child& child, const std::string& what) {
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
  while (std::chrono::steady_clock::now() < deadline) {
    if (HttpGet(url, 2).status == 200) return;
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
  }
  throw Error(ExitCode::kError, what + " did not become ready: " + child.StderrTail());
}

}  // namespace

PrometheusServer::PrometheusServer(const std::string& dir, const std::string& config) {
  WriteFile(dir + "/prometheus.yml", config);
  port_ = pg::FindFreePort();
  child_ =
      Child::Spawn({"prometheus", "--config.file=" + dir + "/prometheus.yml",
                    "--storage.tsdb.path=" + dir + "/tsdb",
                    "--web.listen-address=127.0.0.1:" + std::to_string(port_), "--log.level=warn"},
                   {});
  WaitReady(url() + "/-/ready", *child_, "prometheus");
}

nlohmann::json PrometheusServer::Query(const std::string& expr) const {
  HttpAnswer a = HttpGet(url() + "/api/v1/query?query=" + UrlEncode(expr));
  nlohmann::json j = nlohmann::json::parse(a.body.empty() ? "{}" : a.body, nullptr, false);
  if (a.status != 200 || j.is_discarded() || j.value("status", "") != "success") {
    throw Error(ExitCode::kError, "prometheus query '" + expr + "' failed (HTTP " +
                                      std::to_string(a.status) + "): " + a.body);
  }
  return j["data"];
}

std::optional<double> PrometheusServer::WaitForValue(const std::string& expr,
                                                     std::chrono::seconds timeout) const {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  while (true) {
    nlohmann::json data = Query(expr);
    if (!data["result"].empty()) {
      const auto& first = data["result"][0];
      const auto& value = first.contains("value") ? first["value"] : data["result"];
      return std::stod(value[1].get<std::string>());
    }
    if (std::chrono::steady_clock::now() > deadline) return std::nullopt;
    std::this_thread::sleep_for(std::chrono::milliseconds(250));
  }
}

AlertmanagerServer::AlertmanagerServer(const std::string& dir, const std::string& config) {
  WriteFile(dir + "/alertmanager.yml", config);
  port_ = pg::FindFreePort();
  child_ = Child::Spawn(
      {"prometheus-alertmanager", "--config.file=" + dir + "/alertmanager.yml",
       "--storage.path=" + dir + "/am", "--web.listen-address=127.0.0.1:" + std::to_string(port_),
       "--cluster.listen-address=", "--log.level=warn"},
      {});
  WaitReady("http://" + address() + "/-/ready", *child_, "alertmanager");
}

std::string PlainRuleGroups(const std::string& prometheus_rule_yaml) {
  std::istringstream in(prometheus_rule_yaml);
  std::ostringstream out;
  std::string line;
  bool in_spec = false;
  while (std::getline(in, line)) {
    if (in_spec) {
      out << (line.rfind("  ", 0) == 0 ? line.substr(2) : line) << "\n";
    } else if (line == "spec:") {
      in_spec = true;
    }
  }
  return out.str();
}

}  // namespace gravl::test
