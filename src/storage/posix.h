#pragma once
// Local-directory storage. A write goes to a hidden temporary file in the target directory
// (mode 0600), is fsync'ed, renamed into place and the directory fsync'ed, so an object is
// either complete and durable or absent -- also after a crash or kill -9. Directories are
// created with mode 0700. Temporary files left by a crash are invisible to List/Stat/Get.

#include <memory>
#include <string>

#include "storage/storage.h"

namespace gravl::storage {

std::unique_ptr<Storage> MakePosixStorage(const std::string& root);

}  // namespace gravl::storage
