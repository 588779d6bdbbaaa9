#pragma once
// In-memory storage for unit tests; honours the full Storage contract.

#include <memory>

#include "storage/storage.h"

namespace gravl::storage {

std::unique_ptr<Storage> MakeMemoryStorage();

}  // namespace gravl::storage
