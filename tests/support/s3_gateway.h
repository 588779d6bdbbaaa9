#pragma once
// s3rver behind the verifying gateway (tests/s3/gateway.js), started for a test.
//
// The gateway checks every request's SigV4 signature with the AWS SDK's own signer and
// answers mismatches with 403, so a test that passes through it proves the driver signs
// correctly; it also injects faults on demand and plays STS for web identity. The node
// process is killed when the object is destroyed (and exits by itself when this process
// dies, because it watches its stdin).

#include <memory>
#include <string>
#include <vector>

#include "common/config.h"
#include "common/subprocess.h"
#include "support/test_util.h"

namespace gravl::test {

struct GatewayOptions {
  std::vector<std::string> buckets = {"gravl-test"};
  std::string web_identity_token_file;  // required token for the fake STS
  int sts_duration_seconds = 3600;
  std::string faults_json;  // initial fault settings, e.g. {"error_rate":0.1}
  bool tls = false;         // serve HTTPS with a throwaway CA (ca_file() names it)
};

class S3Gateway {
 public:
  static constexpr const char* kAccessKeyId = "AKIDGRAVLTEST0000001";
  static constexpr const char* kSecretAccessKey = "gravl/test+Secret/Key0000000000000000000";

  explicit S3Gateway(GatewayOptions options = {});
  ~S3Gateway();
  S3Gateway(const S3Gateway&) = delete;
  S3Gateway& operator=(const S3Gateway&) = delete;

  int port() const { return port_; }
  std::string endpoint() const {
    return (tls_ ? "https://127.0.0.1:" : "http://127.0.0.1:") + std::to_string(port_);
  }
  // The CA that signed the gateway's certificate (with GatewayOptions::tls).
  std::string ca_file() const { return dir_ / "tls/ca.pem"; }
  // A repository configuration for this gateway with the static test keys.
  S3RepoConfig Repo(const std::string& prefix = "", const std::string& bucket = "gravl-test") const;
  // The same as YAML lines for a repos: entry (indented by 4), with the secret in a file.
  std::string RepoYaml(const std::string& prefix, const std::string& secret_file,
                       const std::string& bucket = "gravl-test") const;

  // Replaces the fault settings: {"error_rate":0.1,"drop_rate":0.05,...}.
  void SetFaults(const std::string& json);
  // The gateway's counters as JSON text.
  std::string Stats();
  void ResetStats();
  std::string StderrTail() const { return child_->StderrTail(); }
  // Unfinished multipart uploads in a bucket (read from s3rver's directory).
  std::size_t UnfinishedUploads(const std::string& bucket = "gravl-test") const;

  // The directory of the node tools (gateway.js, interop.js, sign.js).
  static std::string ToolsDir();
  // Runs a node tool with the static credentials in the environment; returns its result.
  RunResult Node(const std::vector<std::string>& args,
                 const std::vector<std::string>& extra_env = {}) const;

 private:
  std::string Control(const std::string& method, const std::string& path, const std::string& body);
  TempDir dir_;
  std::unique_ptr<Child> child_;
  int port_ = 0;
  bool tls_ = false;
};

}  // namespace gravl::test
