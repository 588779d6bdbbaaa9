#pragma once
// A set of metric families being built for one snapshot: samples are added by name with
// their labels; HELP and TYPE are declared once per name (metrics/names.h). Serialized in the
// Prometheus text format by prometheus-cpp's TextSerializer.

#include <prometheus/metric_family.h>

#include <map>
#include <optional>
#include <string>
#include <vector>

namespace gravl::metrics {

using Labels = std::map<std::string, std::string>;

class FamilySet {
 public:
  void Gauge(const std::string& name, const Labels& labels, double value);
  void Counter(const std::string& name, const Labels& labels, double value);
  // Appends every family of `other` (a collector's part of the snapshot).
  void Merge(const FamilySet& other);

  // The families, sorted by name, each with its HELP text.
  std::vector<prometheus::MetricFamily> Families() const;
  // The Prometheus text exposition format (version 0.0.4).
  std::string Text() const;
  // The value of one sample, for tests and logs; nullopt when absent.
  std::optional<double> Value(const std::string& name, const Labels& labels = {}) const;
  bool empty() const { return families_.empty(); }

 private:
  void Add(const std::string& name, prometheus::MetricType type, const Labels& labels,
           double value);
  std::map<std::string, prometheus::MetricFamily> families_;
};

}  // namespace gravl::metrics
