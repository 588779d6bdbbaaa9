#include "common/error.h"

#include <cstring>

namespace gravl {

int ToInt(ExitCode code) { return static_cast<int>(code); }

const char* ExitCodeName(ExitCode code) {
  switch (code) {
    case ExitCode::kSuccess:
      return "success";
    case ExitCode::kError:
      return "error";
    case ExitCode::kUsage:
      return "usage";
    case ExitCode::kConfig:
      return "config";
    case ExitCode::kNotFound:
      return "not-found";
    case ExitCode::kConflict:
      return "conflict";
    case ExitCode::kIntegrity:
      return "integrity";
    case ExitCode::kCrypto:
      return "crypto";
    case ExitCode::kStorage:
      return "storage";
    case ExitCode::kPostgres:
      return "postgres";
    case ExitCode::kLocked:
      return "locked";
    case ExitCode::kInterrupted:
      return "interrupted";
    case ExitCode::kCheckFailed:
      return "check-failed";
    case ExitCode::kRefused:
      return "refused";
  }
  return "error";
}

std::string SysErrorText(const std::string& what, int err) {
  return what + ": " + std::strerror(err);
}

}  // namespace gravl
