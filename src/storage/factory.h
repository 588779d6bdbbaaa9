#pragma once
// Builds the Storage for a configured repository.

#include <memory>

#include "common/config.h"
#include "storage/storage.h"

namespace gravl::storage {

// Throws ConfigError for an unsupported type.
std::unique_ptr<Storage> OpenStorage(const RepoConfig& repo);

}  // namespace gravl::storage
