// Webhook notifications against a local HTTP receiver: payloads, event selection, retries
// with backoff, a receiver that is down, slow, or refuses -- bounded time, never a throw, and
// the URL never in an outcome.

#include "notify/notify.h"

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "pg/instance.h"
#include "support/http.h"

namespace gravl::notify {
namespace {

using std::chrono::milliseconds;

NotifyConfig ConfigFor(const std::string& url, const std::string& format = "json",
                       std::vector<std::string> events = {"*"}) {
  NotifyConfig c;
  c.timeout_s = 2;
  c.retries = 2;
  c.targets.push_back({"hook", format, url, "environment variable HOOK", std::move(events)});
  return c;
}

Event Failure() {
  Event e;
  e.kind = "backup";
  e.ok = false;
  e.stanza = "main";
  e.repo = "eu-north-1";
  e.summary = "backup (full) failed in 3.0 s: cannot connect";
  e.report = {{"exit_code", 9}};
  return e;
}

TEST(Notify, EventPatterns) {
  EXPECT_TRUE(Matches("*", "backup.failure"));
  EXPECT_TRUE(Matches("*.failure", "drill.failure"));
  EXPECT_FALSE(Matches("*.failure", "drill.success"));
  EXPECT_TRUE(Matches("backup.*", "backup.success"));
  EXPECT_FALSE(Matches("backup.*", "verify.success"));
  EXPECT_TRUE(Matches("verify.failure", "verify.failure"));
  EXPECT_FALSE(Matches("verify.failure", "verify.success"));
}

TEST(Notify, SlackAndJsonPayloads) {
  auto slack = nlohmann::json::parse(Payload("slack", Failure()));
  std::string text = slack["text"];
  EXPECT_NE(text.find("backup FAILED"), std::string::npos) << text;
  EXPECT_NE(text.find("cannot connect"), std::string::npos);
  EXPECT_EQ(slack["blocks"].size(), 2u);
  auto json = nlohmann::json::parse(Payload("json", Failure()));
  EXPECT_EQ(json["event"], "backup.failure");
  EXPECT_EQ(json["repo"], "eu-north-1");
  EXPECT_EQ(json["report"]["exit_code"], 9);
}

TEST(Notify, DeliversOnlyWantedEvents) {
  test::WebhookReceiver receiver;
  auto outcomes = Send(ConfigFor(receiver.url(), "slack", {"*.failure"}), Failure());
  ASSERT_EQ(outcomes.size(), 1u);
  EXPECT_TRUE(outcomes[0].delivered);
  EXPECT_EQ(outcomes[0].attempts, 1);
  ASSERT_EQ(receiver.Requests(), 1u);
  EXPECT_NE(receiver.Bodies()[0].find("\"text\""), std::string::npos);
  Event ok = Failure();
  ok.ok = true;
  EXPECT_TRUE(Send(ConfigFor(receiver.url(), "slack", {"*.failure"}), ok).empty());
  EXPECT_EQ(receiver.Requests(), 1u);
}

TEST(Notify, RetriesServerErrorsThenGivesUpWithinBounds) {
  test::WebhookReceiver receiver;
  receiver.Answer(503);
  auto start = std::chrono::steady_clock::now();
  auto outcomes = Send(ConfigFor(receiver.url()), Failure());
  auto took = std::chrono::steady_clock::now() - start;
  ASSERT_EQ(outcomes.size(), 1u);
  EXPECT_FALSE(outcomes[0].delivered);
  EXPECT_EQ(outcomes[0].attempts, 3);  // 1 + retries
  EXPECT_EQ(outcomes[0].http_status, 503);
  EXPECT_EQ(receiver.Requests(), 3u);
  EXPECT_GE(took, milliseconds(1400));  // backoff 0.5 s + 1 s
  EXPECT_LT(took, std::chrono::seconds(10));
  EXPECT_EQ(outcomes[0].error.find("127.0.0.1"), std::string::npos) << outcomes[0].error;
}

TEST(Notify, ClientErrorsAreNotRetried) {
  test::WebhookReceiver receiver;
  receiver.Answer(404);
  auto outcomes = Send(ConfigFor(receiver.url()), Failure());
  EXPECT_FALSE(outcomes[0].delivered);
  EXPECT_EQ(outcomes[0].attempts, 1);
  EXPECT_EQ(receiver.Requests(), 1u);
}

TEST(Notify, ReceiverDownFailsInBoundedTimeWithoutTheUrl) {
  int port = pg::FindFreePort();  // nothing listens there
  std::string url = "http://127.0.0.1:" + std::to_string(port) + "/T0KEN-secret-path";
  auto start = std::chrono::steady_clock::now();
  auto outcomes = Send(ConfigFor(url), Failure());
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(10));
  ASSERT_EQ(outcomes.size(), 1u);
  EXPECT_FALSE(outcomes[0].delivered);
  EXPECT_EQ(outcomes[0].attempts, 3);
  EXPECT_EQ(outcomes[0].http_status, 0);
  EXPECT_EQ(outcomes[0].error.find("T0KEN"), std::string::npos) << outcomes[0].error;
  EXPECT_FALSE(outcomes[0].error.empty());
}

TEST(Notify, SlowReceiverTimesOutAndIsRetried) {
  test::WebhookReceiver receiver;
  receiver.Answer(200, milliseconds(3000));  // longer than the 2 s timeout
  NotifyConfig c = ConfigFor(receiver.url());
  c.retries = 1;
  auto start = std::chrono::steady_clock::now();
  auto outcomes = Send(c, Failure());
  auto took = std::chrono::steady_clock::now() - start;
  EXPECT_FALSE(outcomes[0].delivered);
  EXPECT_EQ(outcomes[0].attempts, 2);
  EXPECT_LT(took, std::chrono::seconds(8));
  // Then it answers in time again: delivered at the first attempt.
  receiver.Answer(200);
  EXPECT_TRUE(Send(c, Failure())[0].delivered);
}

}  // namespace
}  // namespace gravl::notify
