// Unit tests of the S3 driver's pieces that need no server: XML, retry policy, part sizes,
// the credentials chain and STS answers. The driver itself is tested end to end against
// s3rver behind the verifying gateway (s3_contract_test.cpp and the integration tests).

#include <gtest/gtest.h>

#include <map>

#include "common/error.h"
#include "common/log.h"
#include "storage/s3/credentials.h"
#include "storage/s3/retry.h"
#include "storage/s3/s3_storage.h"
#include "storage/s3/xml.h"
#include "support/test_util.h"

namespace gravl::storage::s3 {
namespace {

TEST(S3Xml, ElementsAndTextAreFoundAndDecoded) {
  std::string xml = R"(<?xml version="1.0" encoding="UTF-8"?>
<ListBucketResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><Name>b</Name>
<Prefix>p/</Prefix><KeyCount>2</KeyCount><IsTruncated>true</IsTruncated>
<Contents><Key>p/a&amp;b&lt;c&gt;</Key><Size>10</Size></Contents>
<Contents><Key>p/&#x263A;&#65;</Key><Size>0</Size></Contents>
<CommonPrefixes><Prefix>p/x/</Prefix></CommonPrefixes>
<NextContinuationToken>tok/+=</NextContinuationToken><KeyMarker/></ListBucketResult>)";
  auto contents = XmlElements(xml, "Contents");
  ASSERT_EQ(contents.size(), 2u);
  EXPECT_EQ(XmlText(contents[0], "Key"), "p/a&b<c>");
  EXPECT_EQ(XmlText(contents[1], "Key"),
            "p/\xE2\x98\xBA"
            "A");
  EXPECT_EQ(XmlText(contents[1], "Size"), "0");
  EXPECT_EQ(XmlText(xml, "Prefix"), "p/");  // the first one, not the common prefix
  auto cps = XmlElements(xml, "CommonPrefixes");
  ASSERT_EQ(cps.size(), 1u);
  EXPECT_EQ(XmlText(cps[0], "Prefix"), "p/x/");
  EXPECT_EQ(XmlText(xml, "NextContinuationToken"), "tok/+=");
  EXPECT_EQ(XmlText(xml, "KeyMarker"), "");            // empty element
  EXPECT_EQ(XmlText(xml, "Key").value(), "p/a&b<c>");  // <KeyCount> and <KeyMarker> not taken
  EXPECT_FALSE(XmlText(xml, "Missing"));
}

TEST(S3Xml, NestedSameNameElementsAndMalformedInput) {
  EXPECT_EQ(XmlElements("<a><a>x</a></a><a>y</a>", "a").size(), 2u);
  EXPECT_EQ(XmlText("<a><a>x</a></a>", "a"), "<a>x</a>");
  EXPECT_TRUE(XmlElements("<a>unterminated", "a").empty());
  EXPECT_EQ(XmlUnescape("&bogus; &#xZZ; &#1114112; &amp"), "&bogus; &#xZZ; &#1114112; &amp");
  EXPECT_EQ(XmlUnescape(XmlEscape("a<&>\"'\r\nb")), "a<&>\"'\r\nb");
}

TEST(S3Retry, RetryableAnswersAreTheTransientOnes) {
  for (long s : {500L, 502L, 503L, 504L, 429L}) EXPECT_TRUE(IsRetryableStatus(s, "")) << s;
  EXPECT_TRUE(IsRetryableStatus(503, "SlowDown"));
  EXPECT_TRUE(IsRetryableStatus(400, "RequestTimeout"));
  EXPECT_TRUE(IsRetryableStatus(409, "ConditionalRequestConflict"));  // concurrent If-None-Match
  for (long s : {400L, 403L, 404L, 409L, 412L}) EXPECT_FALSE(IsRetryableStatus(s, "")) << s;
  EXPECT_FALSE(IsRetryableStatus(403, "SignatureDoesNotMatch"));
  EXPECT_FALSE(IsRetryableStatus(403, "RequestTimeTooSkewed"));
}

TEST(S3Retry, RetryAfterInSecondsOrAsDate) {
  auto now = std::chrono::system_clock::from_time_t(784111777);  // Sun, 06 Nov 1994 08:49:37
  EXPECT_DOUBLE_EQ(ParseRetryAfter("3", now)->count(), 3.0);
  EXPECT_DOUBLE_EQ(ParseRetryAfter("Sun, 06 Nov 1994 08:49:47 GMT", now)->count(), 10.0);
  EXPECT_DOUBLE_EQ(ParseRetryAfter("Sun, 06 Nov 1994 08:49:27 GMT", now)->count(), 0.0);
  EXPECT_FALSE(ParseRetryAfter("", now));
  EXPECT_FALSE(ParseRetryAfter("soon", now));
  EXPECT_FALSE(ParseRetryAfter("99999999999", now));
}

TEST(S3Retry, BackoffGrowsWithJitterAndStopsAtTheBudget) {
  RetryPolicy p{.max_attempts = 100,
                .base_delay = Duration(0.1),
                .max_delay = Duration(2),
                .total_time = Duration(30)};
  auto start = Clock::now();
  Backoff b(p, start);
  double sum = 0;
  for (int i = 0; i < 8; ++i) {
    auto d = b.NextDelay(std::nullopt, start);
    ASSERT_TRUE(d);
    EXPECT_GE(d->count(), 0.0);
    EXPECT_LE(d->count(), std::min(2.0, 0.1 * (1 << i)) + 1e-9) << i;
    sum += d->count();
  }
  EXPECT_GT(sum, 0.0);  // jitter is not always zero
  // Past the budget: no more attempts.
  EXPECT_FALSE(b.NextDelay(std::nullopt, start + std::chrono::seconds(31)));

  Backoff limited(RetryPolicy{.max_attempts = 3}, start);
  EXPECT_TRUE(limited.NextDelay(std::nullopt, start));
  EXPECT_TRUE(limited.NextDelay(std::nullopt, start));
  EXPECT_FALSE(limited.NextDelay(std::nullopt, start));
  EXPECT_EQ(limited.attempts(), 3);

  // Retry-After raises the delay, but a delay that would end past the budget gives up.
  Backoff honoured(p, start);
  EXPECT_GE(honoured.NextDelay(Duration(1.5), start)->count(), 1.5);
  Backoff tight(RetryPolicy{.max_attempts = 10, .total_time = Duration(1)}, start);
  EXPECT_FALSE(tight.NextDelay(Duration(5), start));
}

TEST(S3Parts, PartSizesFitFiveTebibytesInTenThousandParts) {
  for (std::uint64_t base : {5 * kMiB, 8 * kMiB, 16 * kMiB, 5120 * kMiB}) {
    long double total = 0;
    for (int i = 0; i < kMaxParts; ++i) {
      std::uint64_t size = PartSize(i, base);
      ASSERT_GE(size, 5 * kMiB);
      ASSERT_LE(size, 5ull * 1024 * kMiB);
      ASSERT_GE(size, i > 0 ? PartSize(i - 1, base) : 0);
      total += static_cast<long double>(size);
    }
    EXPECT_GE(total, 5.0L * 1024 * 1024 * kMiB) << base;
  }
  EXPECT_EQ(PartSize(0, 8 * kMiB), 8 * kMiB);
  EXPECT_EQ(PartSize(799, 8 * kMiB), 8 * kMiB);
  EXPECT_EQ(PartSize(800, 8 * kMiB), 16 * kMiB);
}

class S3Credentials : public ::testing::Test {
 protected:
  std::unique_ptr<CredentialsProvider> Chain(CredentialSettings s = {}) {
    s.repo_name = "r";
    s.region = "us-east-1";
    auto env = env_;
    return MakeCredentialsChain(s, HttpOptions{}, RetryPolicy{.max_attempts = 1},
                                [env](const std::string& n) -> std::optional<std::string> {
                                  auto it = env.find(n);
                                  if (it == env.end()) return std::nullopt;
                                  return it->second;
                                });
  }
  void ExpectConfigError(const std::vector<std::string>& fragments) {
    try {
      Chain();
      FAIL() << "no error";
    } catch (const ConfigError& e) {
      for (const auto& f : fragments)
        EXPECT_NE(std::string(e.what()).find(f), std::string::npos) << e.what();
    }
  }
  std::map<std::string, std::string> env_;
  test::TempDir dir_;
};

TEST_F(S3Credentials, ConfiguredKeysComeFirst) {
  env_ = {{"AWS_ACCESS_KEY_ID", "AKIDENV"}, {"AWS_SECRET_ACCESS_KEY", "envsecret"}};
  auto p =
      Chain(CredentialSettings{.access_key_id = "AKIDCONF", .secret_access_key = "confsecret"});
  EXPECT_EQ(p->Get().access_key_id, "AKIDCONF");
  EXPECT_EQ(p->Get().secret_access_key, "confsecret");
  EXPECT_NE(p->Source().find("configuration"), std::string::npos);
  EXPECT_FALSE(p->Invalidate("AKIDCONF"));
  EXPECT_EQ(Redact("confsecret"), "******");
}

TEST_F(S3Credentials, EnvironmentThenSharedFileProfile) {
  env_ = {{"AWS_ACCESS_KEY_ID", "AKIDENV"},
          {"AWS_SECRET_ACCESS_KEY", "envsecret"},
          {"AWS_SESSION_TOKEN", "envtoken"}};
  auto p = Chain();
  EXPECT_EQ(p->Get().access_key_id, "AKIDENV");
  EXPECT_EQ(p->Get().session_token, "envtoken");

  test::WriteFile(dir_ / "credentials",
                  "# comment\n[default]\naws_access_key_id = AKIDDEFAULT\n"
                  "aws_secret_access_key=defsecret\n\n[profile prod]\n"
                  "aws_access_key_id = AKIDPROD\naws_secret_access_key = prodsecret\n"
                  "aws_session_token = prodtoken\n");
  env_ = {{"AWS_SHARED_CREDENTIALS_FILE", dir_ / "credentials"}};
  EXPECT_EQ(Chain()->Get().access_key_id, "AKIDDEFAULT");
  env_["AWS_PROFILE"] = "prod";
  p = Chain();
  EXPECT_EQ(p->Get().access_key_id, "AKIDPROD");
  EXPECT_EQ(p->Get().session_token, "prodtoken");
  EXPECT_NE(p->Source().find("profile 'prod'"), std::string::npos);
  // The repository's profile beats AWS_PROFILE.
  EXPECT_EQ(Chain(CredentialSettings{.profile = "default"})->Get().access_key_id, "AKIDDEFAULT");
  // A profile that was asked for must exist.
  env_["AWS_PROFILE"] = "staging";
  ExpectConfigError({"profile 'staging'", "not found"});
}

TEST_F(S3Credentials, HalfConfiguredSourcesAndNothingAtAllAreErrors) {
  env_ = {{"AWS_ACCESS_KEY_ID", "AKIDENV"}};
  ExpectConfigError({"only AWS_ACCESS_KEY_ID is set"});
  env_ = {{"AWS_ROLE_ARN", "arn:aws:iam::1:role/x"}};
  ExpectConfigError({"AWS_WEB_IDENTITY_TOKEN_FILE"});
  env_ = {{"HOME", dir_.path()}};
  ExpectConfigError({"no S3 credentials for repository 'r'", "AWS_ROLE_ARN"});
}

TEST_F(S3Credentials, WebIdentityFailsClearlyWhenTheTokenFileIsMissing) {
  env_ = {{"AWS_ROLE_ARN", "arn:aws:iam::1:role/x"},
          {"AWS_WEB_IDENTITY_TOKEN_FILE", dir_ / "missing-token"},
          {"AWS_ENDPOINT_URL_STS", "http://127.0.0.1:9"}};
  auto p = Chain();
  EXPECT_NE(p->Source().find("web identity"), std::string::npos);
  try {
    p->Get();
    FAIL();
  } catch (const ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("token file"), std::string::npos) << e.what();
  }
}

TEST(S3Sts, AssumeRoleAnswerIsParsed) {
  auto sts = ParseAssumeRoleResponse(
      R"(<AssumeRoleWithWebIdentityResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/">
<AssumeRoleWithWebIdentityResult><Credentials><AccessKeyId>ASIAEXAMPLE</AccessKeyId>
<SecretAccessKey>sec/ret+key</SecretAccessKey><SessionToken>tok&amp;en</SessionToken>
<Expiration>2026-11-24T12:00:00Z</Expiration></Credentials></AssumeRoleWithWebIdentityResult>
</AssumeRoleWithWebIdentityResponse>)");
  EXPECT_EQ(sts.credentials.access_key_id, "ASIAEXAMPLE");
  EXPECT_EQ(sts.credentials.secret_access_key, "sec/ret+key");
  EXPECT_EQ(sts.credentials.session_token, "tok&en");
  EXPECT_EQ(FormatIso8601(sts.expiration), "2026-11-24T12:00:00Z");
  EXPECT_THROW(ParseAssumeRoleResponse("<Error/>"), StorageError);
  EXPECT_THROW(ParseAssumeRoleResponse("<Credentials><AccessKeyId>A</AccessKeyId></Credentials>"),
               StorageError);
}

TEST(S3Credentials2, KeyIdsAreMaskedInMessages) {
  EXPECT_EQ(MaskKeyId("AKIAIOSFODNN7EXAMPLE"), "AKIA…MPLE");
  EXPECT_EQ(MaskKeyId("short"), "****");
}

}  // namespace
}  // namespace gravl::storage::s3
