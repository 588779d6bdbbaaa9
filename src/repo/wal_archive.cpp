#include "repo/wal_archive.h"

#include <spdlog/spdlog.h>

#include "common/error.h"
#include "common/log.h"
#include "repo/fence.h"

namespace gravl::repo {

std::vector<RepoPushStatus> PushWalFile(const std::vector<Repository*>& repos,
                                        const WalFileName& file, ByteView data,
                                        const std::string& sha256, CompressionType compression,
                                        int level) {
  std::vector<RepoPushStatus> statuses;
  for (Repository* repo : repos) {
    auto existing = FindWalObjects(repo->storage(), repo->stanza(), file);
    bool same = false;
    std::string same_key;
    for (const auto& obj : existing) {
      if (obj.sha256 == sha256) {
        same = true;
        same_key = obj.key;
      } else {
        throw ConflictError(repo->Describe() + " already holds " + file.name + " with SHA-256 " +
                            obj.sha256 + ", but the file to archive has " + sha256 +
                            "; refusing to overwrite archived WAL. Two clusters may "
                            "be archiving to the same stanza: check archive_command on every "
                            "server");
      }
    }
    if (same) {
      // Found by a listing: make sure it is durable before PostgreSQL may recycle the file.
      repo->storage().Persist(same_key);
      statuses.push_back({repo->config().name, same_key, false});
      continue;
    }
    std::string key = WalObjectKey(repo->stanza(), file, sha256, compression);
    ObjectWriter writer(repo->storage(), key, repo->Format(compression, level),
                        storage::PutOptions{.if_absent = true}, sha256);
    writer.Write(data);
    if (!writer.Commit()) {
      // A concurrent push of the same file won the race (same name, same checksum); it may
      // not have synced yet.
      repo->storage().Persist(key);
    }
    statuses.push_back({repo->config().name, key, true});
  }
  return statuses;
}

std::optional<std::string> FetchWalFile(
    const std::vector<Repository*>& repos, const WalFileName& file,
    const std::function<std::unique_ptr<io::Sink>()>& make_destination) {
  std::exception_ptr first_error;
  for (Repository* repo : repos) {
    try {
      auto objects = FindWalObjects(repo->storage(), repo->stanza(), file);
      if (objects.empty()) continue;
      if (objects.size() > 1) {
        throw ConflictError(repo->Describe() + " holds " + std::to_string(objects.size()) +
                            " different copies of " + file.name + "; resolve this by hand");
      }
      const WalObject& obj = objects.front();
      auto destination = make_destination();
      ReadObject(repo->storage(), obj.key, ObjectFormat{obj.compression, 0, repo->key()},
                 Expected{obj.sha256, std::nullopt}, *destination);
      if (first_error) {
        spdlog::warn("{} fetched from {} after an earlier repository failed", file.name,
                     repo->Describe());
      }
      return repo->config().name;
    } catch (const std::exception& e) {
      spdlog::warn("{}: cannot fetch {}: {}", repo->Describe(), file.name, Redact(e.what()));
      if (!first_error) first_error = std::current_exception();
    }
  }
  if (first_error) std::rethrow_exception(first_error);
  return std::nullopt;
}

std::vector<RepoPushStatus> ArchiveWalFile(const std::vector<Repository*>& repos,
                                           const WalFileName& file, ByteView data,
                                           const std::string& sha256, CompressionType compression,
                                           int level, std::uint64_t segment_size) {
  std::vector<RepoPushStatus> statuses;
  for (Repository* repo : repos) {
    std::optional<TimelineFence> fence;
    if (file.kind == WalFileKind::kSegment) {
      fence = ReadFence(repo->storage(), repo->stanza(), file.timeline);
    }
    if (fence && BeyondFence(*fence, file, segment_size)) {
      std::string key = QuarantineWalFile(*repo, file, data, sha256, compression, level);
      spdlog::error(
          "{}: {} is WAL of timeline {} beyond {}, where that timeline ended ({} to {} at {}): "
          "the server it came from kept writing after another one was promoted. The file is "
          "kept in quarantine ({}) and is never served to a restore (docs/failover.md)",
          repo->Describe(), file.name, file.timeline, fence->end.ToString(), fence->reason,
          fence->region, FormatIso8601(fence->at), key);
      statuses.push_back({repo->config().name, key, true});
      continue;
    }
    auto pushed = PushWalFile({repo}, file, data, sha256, compression, level);
    statuses.insert(statuses.end(), pushed.begin(), pushed.end());
  }
  return statuses;
}

}  // namespace gravl::repo
