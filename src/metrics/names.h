#pragma once
// Every metric gravl-dr exports, declared once: its name and HELP text. docs/metrics.md
// documents each one (a unit test checks that the two agree).

#include <string>
#include <vector>

namespace gravl::metrics {

struct MetricName {
  std::string name;
  std::string help;
};

const std::vector<MetricName>& AllMetrics();
// nullptr for a name that is not declared.
const MetricName* FindMetric(const std::string& name);

}  // namespace gravl::metrics
