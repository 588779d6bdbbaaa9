#pragma once
// Errors and exit codes. One hierarchy: every failure that ends an operation is thrown as
// an Error whose code() is the process exit code and whose retryable() flag tells retry
// loops whether trying again can help. Exit codes are documented in docs/exit-codes.md;
// keep both in sync.

#include <stdexcept>
#include <string>

namespace gravl {

enum class ExitCode : int {
  kSuccess = 0,
  kError = 1,         // unexpected / internal failure
  kUsage = 2,         // bad command line
  kConfig = 3,        // bad or missing configuration, unreadable secret
  kNotFound = 4,      // a requested object/backup/segment does not exist
  kConflict = 5,      // exists with different content, or belongs to another cluster
  kIntegrity = 6,     // checksum mismatch, tampered or truncated data
  kCrypto = 7,        // wrong passphrase or unusable key material
  kStorage = 8,       // repository unreachable or I/O failure
  kPostgres = 9,      // PostgreSQL connection or query failure
  kLocked = 10,       // another process holds the stanza lock
  kInterrupted = 11,  // stopped by a signal before finishing
  kCheckFailed = 12,  // a check, verification or restore drill found a problem
  kRefused = 13,      // a safety rule refused the operation; nothing was changed
};

int ToInt(ExitCode code);
const char* ExitCodeName(ExitCode code);

class Error : public std::runtime_error {
 public:
  Error(ExitCode code, const std::string& message, bool retryable = false)
      : std::runtime_error(message), code_(code), retryable_(retryable) {}
  ExitCode code() const { return code_; }
  // True when the same call may succeed if tried again (timeouts, throttling, resets).
  bool retryable() const { return retryable_; }

 private:
  ExitCode code_;
  bool retryable_;
};

#define GRAVL_DEFINE_ERROR(Name, Code)                                \
  class Name : public Error {                                         \
   public:                                                            \
    explicit Name(const std::string& message, bool retryable = false) \
        : Error(ExitCode::Code, message, retryable) {}                \
  }

GRAVL_DEFINE_ERROR(UsageError, kUsage);
GRAVL_DEFINE_ERROR(ConfigError, kConfig);
GRAVL_DEFINE_ERROR(NotFoundError, kNotFound);
GRAVL_DEFINE_ERROR(ConflictError, kConflict);
GRAVL_DEFINE_ERROR(IntegrityError, kIntegrity);
GRAVL_DEFINE_ERROR(CryptoError, kCrypto);
GRAVL_DEFINE_ERROR(StorageError, kStorage);
GRAVL_DEFINE_ERROR(PgError, kPostgres);
GRAVL_DEFINE_ERROR(LockError, kLocked);
GRAVL_DEFINE_ERROR(InterruptedError, kInterrupted);
GRAVL_DEFINE_ERROR(RefusedError, kRefused);

#undef GRAVL_DEFINE_ERROR

// "what failed: strerror(errno)" for a failed system call.
std::string SysErrorText(const std::string& what, int err);

}  // namespace gravl
