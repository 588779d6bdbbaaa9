#pragma once
// AWS Signature Version 4 (header-based), for the S3 driver and STS.
//
// The canonical request, string to sign and Authorization header follow the AWS
// specification; the unit tests run every applicable case of AWS's own test suite
// (tests/data/aws-sig-v4-test-suite). S3 differs from other services in two ways, both
// options here: object paths are neither normalized nor double-encoded, and the payload hash
// is sent (and signed) as x-amz-content-sha256.

#include <string>
#include <utility>
#include <vector>

namespace gravl::storage::s3 {

struct Credentials {
  std::string access_key_id;
  std::string secret_access_key;  // secret: never logged
  std::string session_token;      // empty for long-term keys
};

struct SigningRequest {
  std::string method;  // GET, PUT, ...
  std::string path;    // raw (not percent-encoded), starting with '/'
  std::vector<std::pair<std::string, std::string>> query;    // raw (decoded) names and values
  std::vector<std::pair<std::string, std::string>> headers;  // as sent; all of them are signed
  std::string payload_sha256;                                // hex, or "UNSIGNED-PAYLOAD"
};

struct SigningOptions {
  std::string region;
  std::string service;         // "s3", "sts", ...
  std::string amz_date;        // "20150830T123600Z"
  bool normalize_path = true;  // false for S3
};

struct Signature {
  // Headers the signer added and signed, which the request must carry as well
  // (x-amz-security-token for temporary credentials).
  std::vector<std::pair<std::string, std::string>> added_headers;
  std::string canonical_request;
  std::string string_to_sign;
  std::string authorization;  // the Authorization header's value
};

Signature Sign(const SigningRequest& request, const Credentials& credentials,
               const SigningOptions& options);

// Percent-encodes everything but unreserved characters (A-Z a-z 0-9 - . _ ~), and '/' when
// `keep_slash`.
std::string UriEncode(const std::string& text, bool keep_slash);
// Decodes %XX escapes (and leaves other characters as they are).
std::string UriDecode(const std::string& text);

}  // namespace gravl::storage::s3
