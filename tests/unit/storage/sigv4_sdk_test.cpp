// Cross-check of the SigV4 signer against the AWS JavaScript SDK's own signer
// (@smithy/signature-v4 through tests/s3/sign.js) on generated S3 requests: keys and query
// values full of characters that need encoding, S3's single path encoding, empty query values
// (?uploads), x-amz-content-sha256 with hashes and UNSIGNED-PAYLOAD, session tokens.

#include <gtest/gtest.h>

#include <cstdio>
#include <nlohmann/json.hpp>
#include <random>

#include "common/subprocess.h"
#include "io/hash.h"
#include "storage/s3/sigv4.h"
#include "support/s3_gateway.h"

namespace gravl::storage::s3 {
namespace {

std::string RandomKey(std::mt19937& rng) {
  static const std::vector<std::string> pieces = {"a",
                                                  "Z",
                                                  "0",
                                                  "9",
                                                  "-",
                                                  "_",
                                                  ".",
                                                  "~",
                                                  " ",
                                                  "+",
                                                  "=",
                                                  "&",
                                                  "%",
                                                  "!",
                                                  "'",
                                                  "(",
                                                  ")",
                                                  "*",
                                                  ",",
                                                  ";",
                                                  ":",
                                                  "@",
                                                  "$",
                                                  "?",
                                                  "#",
                                                  "[",
                                                  "]",
                                                  "\xC3\xA9",
                                                  "\xE2\x98\xBA",
                                                  "wal",
                                                  "00000001",
                                                  "backup",
                                                  "x"};
  std::uniform_int_distribution<std::size_t> piece(0, pieces.size() - 1);
  std::uniform_int_distribution<int> segs(1, 4), len(1, 8);
  std::string key;
  int n = segs(rng);
  for (int s = 0; s < n; ++s) {
    if (s > 0) key += '/';
    int l = len(rng);
    for (int i = 0; i < l; ++i) key += pieces[piece(rng)];
  }
  return key;
}

TEST(SigV4AgainstAwsSdk, GeneratedS3RequestsSignIdentically) {
  std::mt19937 rng(20261124);
  std::uniform_int_distribution<int> coin(0, 2);
  nlohmann::json input = nlohmann::json::array();
  std::vector<std::string> ours;
  const std::vector<std::string> methods = {"GET", "PUT", "POST", "DELETE", "HEAD"};
  for (int i = 0; i < 300; ++i) {
    SigningRequest req;
    req.method = methods[static_cast<std::size_t>(i) % methods.size()];
    bool path_style = i % 2 == 0;
    req.path = (path_style ? "/gravl-test/" : "/") + RandomKey(rng);
    switch (i % 6) {
      case 0:
        break;
      case 1:
        req.query = {{"uploads", ""}};
        break;
      case 2:
        req.query = {{"uploadId", RandomKey(rng)}, {"partNumber", std::to_string(i)}};
        break;
      case 3:
        req.query = {{"list-type", "2"},
                     {"prefix", RandomKey(rng)},
                     {"delimiter", "/"},
                     {"continuation-token", "1/abc+def=="},
                     {"max-keys", "1000"}};
        break;
      case 4:
        req.query = {{"delete", ""}};
        break;
      case 5:
        req.query = {{"prefix", RandomKey(rng)}, {"prefix", "a b"}};
        break;
    }
    std::string host = path_style ? "127.0.0.1:9000" : "gravl-test.s3.us-east-1.amazonaws.com";
    req.payload_sha256 =
        coin(rng) == 0 ? "UNSIGNED-PAYLOAD" : io::Sha256Hex(AsBytes(RandomKey(rng)));
    char amz_date_buf[32];
    std::snprintf(amz_date_buf, sizeof amz_date_buf, "20261124T%02d%02d%02dZ", i % 24, i % 60,
                  (i * 7) % 60);
    std::string amz_date = amz_date_buf;
    req.headers = {
        {"Host", host}, {"x-amz-date", amz_date}, {"x-amz-content-sha256", req.payload_sha256}};
    if (coin(rng) == 0) req.headers.emplace_back("Range", "bytes=0-8388607");
    if (coin(rng) == 0) req.headers.emplace_back("Content-Type", "application/xml");
    if (coin(rng) == 0) req.headers.emplace_back("If-None-Match", "*");
    if (coin(rng) == 0) req.headers.emplace_back("x-amz-storage-class", "STANDARD_IA");
    if (coin(rng) == 0) req.headers.emplace_back("X-Amz-Meta-Note", "  spaced    out\tvalue ");
    Credentials creds{"AKIDEXAMPLE" + std::to_string(i), "secret/" + RandomKey(rng), ""};
    if (coin(rng) == 0) creds.session_token = "FwoGZXIvYXdzE" + std::to_string(i) + "+/=";
    Signature sig = Sign(req, creds, SigningOptions{"us-east-1", "s3", amz_date, false});
    ours.push_back(sig.authorization);

    nlohmann::json q = nlohmann::json::array(), h = nlohmann::json::array();
    for (const auto& [k, v] : req.query) q.push_back({k, v});
    for (const auto& [k, v] : req.headers) h.push_back({k, v});
    nlohmann::json e = {{"method", req.method},
                        {"host", host},
                        {"path", req.path},
                        {"query", q},
                        {"headers", h},
                        {"payload_sha256", req.payload_sha256},
                        {"region", "us-east-1"},
                        {"service", "s3"},
                        {"amz_date", amz_date},
                        {"access_key_id", creds.access_key_id},
                        {"secret_access_key", creds.secret_access_key}};
    if (!creds.session_token.empty()) e["session_token"] = creds.session_token;
    input.push_back(e);
  }
  RunOptions options;
  options.input = input.dump();
  options.timeout = std::chrono::minutes(2);
  RunResult r = gravl::Run(
      {"node", "--openssl-legacy-provider", test::S3Gateway::ToolsDir() + "/sign.js"}, options);
  ASSERT_EQ(r.exit_code, 0) << r.err << r.out.substr(0, 2000);
  auto theirs = nlohmann::json::parse(r.out);
  ASSERT_EQ(theirs.size(), ours.size());
  int mismatches = 0;
  for (std::size_t i = 0; i < ours.size(); ++i) {
    std::string sdk = theirs[i].value("authorization", "");
    if (sdk != ours[i] && ++mismatches <= 5) {
      ADD_FAILURE() << "request " << i << " " << input[i].dump() << "\nours: " << ours[i]
                    << "\nsdk:  " << sdk << "\nsdk canonical request:\n"
                    << theirs[i].value("canonical_request", "");
    }
  }
  EXPECT_EQ(mismatches, 0);
}

}  // namespace
}  // namespace gravl::storage::s3
