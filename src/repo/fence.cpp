#include "repo/fence.h"

#include "common/error.h"
#include "repo/layout.h"
#include "repo/metadata.h"
#include "repo/object_io.h"
#include "repo/repository.h"

namespace gravl::repo {

nlohmann::json TimelineFence::ToJson() const {
  return {{"timeline", timeline},    {"end", end.ToString()}, {"successor", successor},
          {"at", FormatIso8601(at)}, {"reason", reason},      {"region", region},
          {"token", token}};
}

TimelineFence TimelineFence::FromJson(const nlohmann::json& doc, const std::string& what) {
  try {
    TimelineFence f;
    f.timeline = doc.at("timeline").get<TimelineId>();
    f.end = Lsn::Parse(doc.at("end").get<std::string>());
    f.successor = doc.at("successor").get<TimelineId>();
    f.at = ParseIso8601(doc.at("at").get<std::string>());
    f.reason = doc.value("reason", "");
    f.region = doc.value("region", "");
    f.token = doc.value("token", "");
    return f;
  } catch (const Error&) {
    throw;
  } catch (const std::exception& e) {
    throw IntegrityError(what + " is not a timeline fence: " + e.what());
  }
}

std::string FenceKey(const std::string& stanza, TimelineId timeline) {
  return stanza + "/fences/" + TimelineHex(timeline) + ".json";
}

void WriteFence(Repository& repo, const TimelineFence& fence) {
  const std::string key = FenceKey(repo.stanza(), fence.timeline);
  for (int attempt = 0; attempt < 2; ++attempt) {
    if (auto existing = ReadFence(repo.storage(), repo.stanza(), fence.timeline)) {
      if (existing->end == fence.end && existing->successor == fence.successor) return;
      throw ConflictError(repo.Describe() + " already records that timeline " +
                          std::to_string(fence.timeline) + " ended at " + existing->end.ToString() +
                          " (timeline " + std::to_string(existing->successor) + " began there, " +
                          existing->reason + " to " + existing->region + " at " +
                          FormatIso8601(existing->at) + "), not at " + fence.end.ToString() +
                          " for timeline " + std::to_string(fence.successor) +
                          ": two promotions forked the same timeline; find out which server is "
                          "the primary before going on");
    }
    if (WriteMetadataIfAbsent(repo.storage(), key, fence.ToJson())) return;
  }
}

std::optional<TimelineFence> ReadFence(storage::Storage& storage, const std::string& stanza,
                                       TimelineId timeline) {
  const std::string key = FenceKey(stanza, timeline);
  auto doc = TryReadMetadata(storage, key);
  if (!doc) return std::nullopt;
  return TimelineFence::FromJson(*doc, storage.Describe() + "/" + key);
}

std::vector<TimelineFence> ReadFences(storage::Storage& storage, const std::string& stanza) {
  std::vector<TimelineFence> out;
  for (const auto& o : storage::ListAll(storage, stanza + "/fences/")) {
    if (!o.key.ends_with(".json")) continue;
    out.push_back(
        TimelineFence::FromJson(ReadMetadata(storage, o.key), storage.Describe() + "/" + o.key));
  }
  return out;
}

bool BeyondFence(const TimelineFence& fence, const WalFileName& file, std::uint64_t segment_size) {
  if (file.kind != WalFileKind::kSegment || file.timeline != fence.timeline) return false;
  auto seg = WalSegment::ParseName(file.name, segment_size);
  if (!seg) return false;
  // The segment holding the last byte before the end is the last one that may be archived.
  const std::uint64_t last_good = fence.end.value == 0 ? 0 : (fence.end.value - 1) / segment_size;
  const bool end_inside = fence.end.value % segment_size != 0;
  return seg->segno > last_good || (end_inside && seg->segno == last_good);
}

std::string QuarantineWalFile(Repository& repo, const WalFileName& file, ByteView data,
                              const std::string& sha256, CompressionType compression, int level) {
  std::string wal_key = WalObjectKey(repo.stanza(), file, sha256, compression);
  std::string key =
      QuarantinePrefix(repo.stanza()) + wal_key.substr(WalPrefix(repo.stanza()).size());
  ObjectWriter writer(repo.storage(), key, repo.Format(compression, level),
                      storage::PutOptions{.if_absent = true}, sha256);
  writer.Write(data);
  writer.Commit();  // false: quarantined before, same checksum (the name holds it)
  repo.storage().Persist(key);
  return key;
}

std::vector<storage::ObjectInfo> ListQuarantine(storage::Storage& storage,
                                                const std::string& stanza) {
  std::vector<storage::ObjectInfo> out;
  const std::string prefix = QuarantinePrefix(stanza);
  for (auto& o : storage::ListAll(storage, prefix)) {
    // Named like archived WAL (temporary files of interrupted writes are not).
    if (ParseWalObjectKey(WalPrefix(stanza) + o.key.substr(prefix.size()))) {
      out.push_back(std::move(o));
    }
  }
  return out;
}

}  // namespace gravl::repo
