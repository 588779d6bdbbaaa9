#include "storage/factory.h"

#include "common/error.h"
#include "storage/posix.h"

namespace gravl::storage {

std::unique_ptr<Storage> OpenStorage(const RepoConfig& repo) {
  if (repo.type == "posix") return MakePosixStorage(repo.path);
  throw ConfigError("repository '" + repo.name + "' has unsupported type '" + repo.type + "'");
}

}  // namespace gravl::storage
