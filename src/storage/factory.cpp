#include "storage/factory.h"

#include "common/error.h"
#include "storage/posix.h"
#include "storage/s3/s3_storage.h"

namespace gravl::storage {

std::unique_ptr<Storage> OpenStorage(const RepoConfig& repo) {
  if (repo.type == "posix") return MakePosixStorage(repo.path);
  if (repo.type == "s3") return s3::MakeS3Storage(repo.name, repo.s3);
  throw ConfigError("repository '" + repo.name + "' has unsupported type '" + repo.type + "'");
}

}  // namespace gravl::storage
