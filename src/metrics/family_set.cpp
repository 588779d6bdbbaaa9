#include "metrics/family_set.h"

#include <prometheus/text_serializer.h>

#include <algorithm>
#include <sstream>

#include "common/error.h"
#include "metrics/names.h"

namespace gravl::metrics {

void FamilySet::Gauge(const std::string& name, const Labels& labels, double value) {
  Add(name, prometheus::MetricType::Gauge, labels, value);
}

void FamilySet::Counter(const std::string& name, const Labels& labels, double value) {
  Add(name, prometheus::MetricType::Counter, labels, value);
}

void FamilySet::Add(const std::string& name, prometheus::MetricType type, const Labels& labels,
                    double value) {
  const MetricName* spec = FindMetric(name);
  if (spec == nullptr) throw Error(ExitCode::kError, "metric " + name + " is not declared");
  auto& family = families_[name];
  if (family.name.empty()) {
    family.name = name;
    family.help = spec->help;
    family.type = type;
  }
  prometheus::ClientMetric m;
  for (const auto& [k, v] : labels) m.label.push_back({k, v});
  if (type == prometheus::MetricType::Counter) {
    m.counter.value = value;
  } else {
    m.gauge.value = value;
  }
  family.metric.push_back(std::move(m));
}

void FamilySet::Merge(const FamilySet& other) {
  for (const auto& [name, family] : other.families_) {
    auto& mine = families_[name];
    if (mine.name.empty()) {
      mine = family;
    } else {
      mine.metric.insert(mine.metric.end(), family.metric.begin(), family.metric.end());
    }
  }
}

std::vector<prometheus::MetricFamily> FamilySet::Families() const {
  std::vector<prometheus::MetricFamily> out;
  out.reserve(families_.size());
  for (const auto& [name, family] : families_) out.push_back(family);
  return out;
}

std::string FamilySet::Text() const {
  std::ostringstream out;
  prometheus::TextSerializer().Serialize(out, Families());
  return out.str();
}

std::optional<double> FamilySet::Value(const std::string& name, const Labels& labels) const {
  auto it = families_.find(name);
  if (it == families_.end()) return std::nullopt;
  for (const auto& m : it->second.metric) {
    bool match = std::all_of(labels.begin(), labels.end(), [&](const auto& kv) {
      return std::any_of(m.label.begin(), m.label.end(),
                         [&](const auto& l) { return l.name == kv.first && l.value == kv.second; });
    });
    if (match) {
      return it->second.type == prometheus::MetricType::Counter ? m.counter.value : m.gauge.value;
    }
  }
  return std::nullopt;
}

}  // namespace gravl::metrics
