// Every case of AWS's Signature Version 4 test suite (tests/data/aws-sig-v4-test-suite,
// Apache-2.0; LICENSE and NOTICE are beside it): canonical request, string to sign and
// Authorization header each compared.

#include "storage/s3/sigv4.h"

#include <gtest/gtest.h>

#include <filesystem>

#include "io/hash.h"
#include "support/test_util.h"

namespace gravl::storage::s3 {
namespace {

namespace fs = std::filesystem;

struct SuiteCase {
  std::string name;
  std::string dir;
};
void PrintTo(const SuiteCase& c, std::ostream* os) { *os << c.name; }

std::vector<SuiteCase> Cases() {
  std::vector<SuiteCase> out;
  for (const auto& e : fs::recursive_directory_iterator(GRAVL_SIGV4_SUITE)) {
    if (e.path().extension() != ".req") continue;
    out.push_back({e.path().stem().string(), e.path().parent_path().string()});
  }
  std::sort(out.begin(), out.end(), [](const auto& a, const auto& b) { return a.name < b.name; });
  return out;
}

std::string Read(const SuiteCase& c, const std::string& ext) {
  std::string s = test::ReadFile(c.dir + "/" + c.name + "." + ext);
  while (!s.empty() && (s.back() == '\n' || s.back() == '\r')) s.pop_back();
  return s;
}

// Parses the suite's raw HTTP request.
SigningRequest ParseRequest(const std::string& raw, std::string* date) {
  SigningRequest req;
  std::size_t line_end = raw.find('\n');
  std::string first = raw.substr(0, line_end);
  req.method = first.substr(0, first.find(' '));
  std::string target = first.substr(req.method.size() + 1);
  target = target.substr(0, target.rfind(" HTTP/"));
  auto q = target.find('?');
  req.path = UriDecode(target.substr(0, q));
  if (q != std::string::npos) {
    std::string query = target.substr(q + 1);
    std::size_t start = 0;
    while (start <= query.size()) {
      std::size_t amp = query.find('&', start);
      if (amp == std::string::npos) amp = query.size();
      std::string pair = query.substr(start, amp - start);
      auto eq = pair.find('=');
      req.query.emplace_back(UriDecode(pair.substr(0, eq)),
                             eq == std::string::npos ? "" : UriDecode(pair.substr(eq + 1)));
      start = amp + 1;
    }
  }
  std::size_t pos = line_end + 1;
  std::string body;
  while (pos < raw.size()) {
    std::size_t end = raw.find('\n', pos);
    if (end == std::string::npos) end = raw.size();
    std::string line = raw.substr(pos, end - pos);
    pos = end + 1;
    if (line.empty()) {
      body = pos < raw.size() ? raw.substr(pos) : "";
      break;
    }
    if (line[0] == ' ' || line[0] == '\t') {
      req.headers.back().second += "\n" + line;  // folded value
      continue;
    }
    auto colon = line.find(':');
    req.headers.emplace_back(line.substr(0, colon), line.substr(colon + 1));
    if (line.substr(0, colon) == "X-Amz-Date") *date = line.substr(colon + 1);
  }
  req.payload_sha256 = io::Sha256Hex(AsBytes(body));
  return req;
}

class AwsSuite : public ::testing::TestWithParam<SuiteCase> {};

TEST_P(AwsSuite, CanonicalRequestStringToSignAndAuthorizationMatch) {
  const SuiteCase& c = GetParam();
  std::string date;
  SigningRequest req = ParseRequest(test::ReadFile(c.dir + "/" + c.name + ".req"), &date);
  Credentials creds{"AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", ""};
  if (c.name == "get-vanilla-with-session-token") {
    // Temporary credentials: the signer adds and signs the token header.
    creds.session_token = "6e86291e8372ff2a2260956d9b8aae1d763fbf315fa00fa31553b73ebf194267";
  }
  Signature sig = Sign(req, creds, SigningOptions{"us-east-1", "service", date, true});
  EXPECT_EQ(sig.canonical_request, Read(c, "creq"));
  EXPECT_EQ(sig.string_to_sign, Read(c, "sts"));
  EXPECT_EQ(sig.authorization, Read(c, "authz"));
}

INSTANTIATE_TEST_SUITE_P(Sigv4, AwsSuite, ::testing::ValuesIn(Cases()), [](const auto& p) {
  std::string n = p.param.name;
  for (auto& ch : n) {
    if (!std::isalnum(static_cast<unsigned char>(ch))) ch = '_';
  }
  return n;
});

TEST(Sigv4, SuiteIsComplete) { EXPECT_GE(Cases().size(), 30u); }

TEST(Sigv4, S3PathsAreNotNormalized) {
  SigningRequest req{"GET",
                     "/bucket/my-object//example//photo.user",
                     {},
                     {{"Host", "s3.amazonaws.com"}},
                     "UNSIGNED-PAYLOAD"};
  Credentials creds{"AKID", "SECRET", ""};
  Signature s3 = Sign(req, creds, SigningOptions{"us-east-1", "s3", "20150830T123600Z", false});
  EXPECT_NE(s3.canonical_request.find("\n/bucket/my-object//example//photo.user\n"),
            std::string::npos)
      << s3.canonical_request;
  Signature other =
      Sign(req, creds, SigningOptions{"us-east-1", "service", "20150830T123600Z", true});
  EXPECT_NE(other.canonical_request.find("\n/bucket/my-object/example/photo.user\n"),
            std::string::npos);
  EXPECT_EQ(UriEncode("a b/c~d", true), "a%20b/c~d");
  EXPECT_EQ(UriEncode("a b/c", false), "a%20b%2Fc");
  EXPECT_EQ(UriDecode("%E1%88%B4x"), "\xE1\x88\xB4x");
}

}  // namespace
}  // namespace gravl::storage::s3
