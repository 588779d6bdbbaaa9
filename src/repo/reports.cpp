#include "repo/reports.h"

#include <chrono>

#include "common/bytes.h"
#include "common/error.h"
#include "repo/layout.h"
#include "repo/metadata.h"
#include "repo/repository.h"

namespace gravl::repo {

double RunReport::seconds() const {
  return std::chrono::duration<double>(finished - started).count();
}

nlohmann::json RunReport::ToJson() const {
  return {
      {"kind", kind},
      {"stanza", stanza},
      {"repo", repo},
      {"subject", subject},
      {"label", label},
      {"started_at", FormatIso8601(started)},
      {"finished_at", FormatIso8601(finished)},
      {"seconds", seconds()},
      // Milliseconds since the epoch: runs that end within one second stay in order.
      {"started_ms",
       std::chrono::duration_cast<std::chrono::milliseconds>(started.time_since_epoch()).count()},
      {"finished_ms",
       std::chrono::duration_cast<std::chrono::milliseconds>(finished.time_since_epoch()).count()},
      {"ok", ok},
      {"exit_code", exit_code},
      {"error_class", error_class},
      {"error", error},
      {"bytes", bytes},
      {"phases", phases},
      {"details", details}};
}

RunReport RunReport::FromJson(const nlohmann::json& doc, const std::string& what) {
  try {
    RunReport r;
    r.kind = doc.value("kind", "");
    r.stanza = doc.value("stanza", "");
    r.repo = doc.value("repo", "");
    r.subject = doc.value("subject", "");
    r.label = doc.value("label", "");
    r.started = ParseIso8601(doc.at("started_at").get<std::string>());
    r.finished = ParseIso8601(doc.at("finished_at").get<std::string>());
    if (doc.contains("started_ms") && doc.contains("finished_ms")) {
      r.started = SystemTime(std::chrono::milliseconds(doc["started_ms"].get<std::int64_t>()));
      r.finished = SystemTime(std::chrono::milliseconds(doc["finished_ms"].get<std::int64_t>()));
    }
    // Keep sub-second durations: the times are stored to the second.
    if (doc.contains("seconds")) {
      r.finished = r.started + std::chrono::duration_cast<SystemTime::duration>(
                                   std::chrono::duration<double>(doc["seconds"].get<double>()));
    }
    r.ok = doc.at("ok").get<bool>();
    r.exit_code = doc.value("exit_code", r.ok ? 0 : 1);
    r.error_class = doc.value("error_class", "");
    r.error = doc.value("error", "");
    r.bytes = doc.value("bytes", std::uint64_t{0});
    if (doc.contains("phases")) r.phases = doc["phases"].get<std::map<std::string, double>>();
    if (doc.contains("details")) {
      r.details = doc["details"];
    } else if (doc.contains("timings")) {
      // A drill report of version 0.x: its figures were top-level members.
      r.kind = kDrillReports;
      r.details = doc;
      for (const auto& [name, value] : doc["timings"].items()) {
        std::string phase =
            name.size() > 2 && name.ends_with("_s") ? name.substr(0, name.size() - 2) : name;
        if (value.is_number()) r.phases[phase] = value.get<double>();
      }
      if (doc.contains("rto_s")) r.phases["rto"] = doc["rto_s"].get<double>();
    }
    return r;
  } catch (const nlohmann::json::exception& e) {
    throw IntegrityError(what + " is not a valid run report: " + e.what());
  } catch (const UsageError& e) {
    throw IntegrityError(what + " is not a valid run report: " + e.what());
  }
}

std::string WriteReport(Repository& repo, RunReport& report) {
  report.stanza = repo.stanza();
  report.repo = repo.config().name;
  // Keys sort by start: the second, then its millisecond, then a random id.
  const auto ms =
      std::chrono::duration_cast<std::chrono::milliseconds>(report.started.time_since_epoch())
          .count() %
      1000;
  char millis[8];
  std::snprintf(millis, sizeof millis, "%03d", static_cast<int>(ms));
  report.key = ReportsPrefix(repo.stanza(), report.kind) + FormatCompact(report.started) + "-" +
               millis + HexEncode(RandomBytes(4)) + ".json";
  if (!WriteMetadataIfAbsent(repo.storage(), report.key, report.ToJson())) {
    throw ConflictError(repo.storage().Describe() + "/" + report.key + " already exists");
  }
  return report.key;
}

std::vector<std::string> ListReportKeys(storage::Storage& storage, const std::string& stanza,
                                        const std::string& kind) {
  std::vector<std::string> keys;
  for (const auto& o : storage::ListAll(storage, ReportsPrefix(stanza, kind))) {
    if (o.key.ends_with(".json")) keys.push_back(o.key);
  }
  return keys;
}

RunReport ReadReport(storage::Storage& storage, const std::string& key) {
  RunReport r = RunReport::FromJson(ReadMetadata(storage, key), storage.Describe() + "/" + key);
  r.key = key;
  return r;
}

}  // namespace gravl::repo
