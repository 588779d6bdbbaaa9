#pragma once
// Local-directory storage. A write goes to a hidden temporary file in the target directory
// (mode 0600), is fsync'ed, renamed into place and the directory fsync'ed, so an object is
// either complete and durable or absent -- also after a crash or kill -9. Directories are
// created with mode 0700. Temporary files left by a crash are invisible to List/Stat/Get.

#include <memory>
#include <string>
#include <vector>

#include "storage/storage.h"

namespace gravl::storage {

// Run as root, new files and directories take the owner of `root` (see PosixStorage::Owner),
// so whoever runs a command, the repository keeps the owner it was given.
std::unique_ptr<Storage> MakePosixStorage(const std::string& root);

// Directories under `root` (to `depth` levels, `root` included) that the user `uid` (group
// `gid`) could not create files in, for 'check'. At most `limit` are returned.
std::vector<std::string> DirectoriesNotWritableBy(const std::string& root, unsigned uid,
                                                  unsigned gid, int depth = 4,
                                                  std::size_t limit = 5);

}  // namespace gravl::storage
