#pragma once
// The S3 driver: a Storage over AWS S3 or an S3-compatible store.
//
// - Put: objects up to one part are sent with one PutObject; larger ones stream as a
//   multipart upload with several parts in flight (memory: (in flight + 1) x part size), the
//   part size growing so that 10,000 parts hold 5 TiB. A failed or abandoned upload is
//   aborted: nothing partial ever becomes visible. if_absent sends If-None-Match: *.
// - Get: ranged GETs of kDownloadChunk bytes, two ahead of the reader, each retried on its
//   own and pinned to the first answer's ETag (If-Match), so a replaced object is detected.
// - List: ListObjectsV2 pages; DeleteMany: DeleteObjects in batches of 1,000.
// - Every request is SigV4-signed with its payload's SHA-256 and retried with backoff and
//   jitter on throttling, 5xx and transport failures, within a time budget.

#include <cstdint>
#include <memory>

#include "common/config.h"
#include "storage/s3/credentials.h"
#include "storage/storage.h"

namespace gravl::storage::s3 {

inline constexpr std::uint64_t kMiB = 1024 * 1024;
inline constexpr std::uint64_t kDownloadChunk = 8 * kMiB;
inline constexpr int kMaxParts = 10000;

// Size of part `index` (0-based) for a first part of `base` bytes: doubles every 800 parts
// (capped at S3's 5 GiB), so 10,000 parts hold more than 5 TiB for any base >= 5 MiB.
std::uint64_t PartSize(int index, std::uint64_t base);

std::unique_ptr<Storage> MakeS3Storage(const std::string& repo_name, const S3RepoConfig& config,
                                       const EnvLookup& env = ProcessEnv);

}  // namespace gravl::storage::s3
