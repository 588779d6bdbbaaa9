#pragma once
// AWS credentials for the S3 driver, found the way the AWS SDKs find them:
//   1. keys from the repository's configuration (access_key_id + secret_access_key_file),
//   2. AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY / AWS_SESSION_TOKEN,
//   3. the shared credentials file (AWS_SHARED_CREDENTIALS_FILE or ~/.aws/credentials) with
//      the configured profile, AWS_PROFILE, or "default",
//   4. web identity: AWS_ROLE_ARN + AWS_WEB_IDENTITY_TOKEN_FILE, exchanged with STS
//      AssumeRoleWithWebIdentity for temporary credentials that are refreshed before they
//      expire (Kubernetes IRSA / EKS pod identity tokens).
// Every secret found is registered for redaction; none is ever put in a message.

#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>

#include "common/time_util.h"
#include "storage/s3/http.h"
#include "storage/s3/retry.h"
#include "storage/s3/sigv4.h"

namespace gravl::storage::s3 {

struct CredentialSettings {
  std::string repo_name;  // for messages
  std::string access_key_id;
  std::optional<std::string> secret_access_key;
  std::optional<std::string> session_token;
  std::string profile;
  std::string region;
  std::string sts_endpoint;
};

using EnvLookup = std::function<std::optional<std::string>(const std::string&)>;
std::optional<std::string> ProcessEnv(const std::string& name);

class CredentialsProvider {
 public:
  virtual ~CredentialsProvider() = default;
  // Current credentials; refreshes temporary ones that are about to expire. Throws
  // ConfigError / StorageError with what to check when none can be had.
  virtual Credentials Get() = 0;
  // The server said the credentials with this key id expired: refresh before the next Get()
  // unless another thread already did. Returns false when refreshing cannot help (long-term
  // keys).
  virtual bool Invalidate(const std::string& rejected_key_id) {
    (void)rejected_key_id;
    return false;
  }
  // "repository config", "environment", "profile 'x' in /root/.aws/credentials",
  // "web identity (role arn:...)": for messages.
  virtual std::string Source() const = 0;
};

// Picks the first source of the chain that has credentials. Throws ConfigError naming every
// place looked at when none has, or when a source is half configured.
std::unique_ptr<CredentialsProvider> MakeCredentialsChain(const CredentialSettings& settings,
                                                          const HttpOptions& http,
                                                          const RetryPolicy& retry,
                                                          const EnvLookup& env = ProcessEnv);

// "AKIA…WXYZ": enough to tell keys apart in a message, not enough to use.
std::string MaskKeyId(const std::string& access_key_id);

// The parsed STS AssumeRoleWithWebIdentity answer (exposed for unit tests).
struct StsCredentials {
  Credentials credentials;
  SystemTime expiration;
};
StsCredentials ParseAssumeRoleResponse(const std::string& xml);

}  // namespace gravl::storage::s3
