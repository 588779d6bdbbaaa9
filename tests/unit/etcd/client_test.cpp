// The etcd JSON gateway's requests and answers (as etcd 3.4 writes them), and the client's
// bounded failure when no endpoint answers. The client against a real cluster: the watch
// integration tests.

#include "etcd/client.h"

#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>

#include "common/bytes.h"
#include "common/error.h"

namespace gravl::etcd {
namespace {

TEST(EtcdJson, TxnRequestCarriesComparesAndOperationsInBase64) {
  auto body = TxnRequest({KeyAbsent("/p/leader"), ModRevisionIs("/p/primary", 7)},
                         {Put("/p/leader", "{}", 42), Delete("/p/x")}, {Range("/p/leader")});
  ASSERT_EQ(body["compare"].size(), 2u);
  EXPECT_EQ(body["compare"][0]["target"], "CREATE");
  EXPECT_EQ(body["compare"][0]["createRevision"], "0");
  EXPECT_EQ(body["compare"][0]["key"], Base64Encode("/p/leader"));
  EXPECT_EQ(body["compare"][0]["result"], "EQUAL");
  EXPECT_EQ(body["compare"][1]["target"], "MOD");
  EXPECT_EQ(body["compare"][1]["modRevision"], "7");
  EXPECT_EQ(body["success"][0]["requestPut"]["lease"], "42");
  EXPECT_EQ(body["success"][0]["requestPut"]["value"], Base64Encode("{}"));
  EXPECT_EQ(body["success"][1]["requestDeleteRange"]["key"], Base64Encode("/p/x"));
  EXPECT_EQ(body["failure"][0]["requestRange"]["key"], Base64Encode("/p/leader"));
  // A put without a lease says none.
  EXPECT_FALSE(TxnRequest({}, {Put("k", "v")}, {})["success"][0]["requestPut"].contains("lease"));
}

TEST(EtcdJson, AnswersAsEtcdWritesThem) {
  // A failed compare (no "succeeded"), with the failure branch's range.
  auto failed = nlohmann::json::parse(R"({"header":{"cluster_id":"1","member_id":"2",
    "revision":"2","raft_term":"2"},"responses":[{"response_range":{"header":{"revision":"2"},
    "kvs":[{"key":"L2cvbGVhZGVy","create_revision":"2","mod_revision":"2","version":"1",
    "value":"aGk=","lease":"4111120367025413127"}],"count":"1"}}]})");
  TxnResult r = ParseTxn(failed);
  EXPECT_FALSE(r.succeeded);
  EXPECT_EQ(r.revision, 2);
  ASSERT_EQ(r.ranges.size(), 1u);
  ASSERT_TRUE(r.ranges[0]);
  EXPECT_EQ(r.ranges[0]->key, "/g/leader");
  EXPECT_EQ(r.ranges[0]->value, "hi");
  EXPECT_EQ(r.ranges[0]->lease, 4111120367025413127LL);
  EXPECT_EQ(r.ranges[0]->create_revision, 2);
  // Success; a range of a missing key has no kvs.
  auto ok = nlohmann::json::parse(R"({"header":{"revision":"9"},"succeeded":true,
    "responses":[{"response_range":{"header":{"revision":"9"}}},{"response_put":{}}]})");
  r = ParseTxn(ok);
  EXPECT_TRUE(r.succeeded);
  EXPECT_EQ(r.revision, 9);
  ASSERT_EQ(r.ranges.size(), 1u);
  EXPECT_FALSE(r.ranges[0]);
  // Numbers, strings and absent zeros.
  auto j = nlohmann::json::parse(R"({"a":"12","b":13,"c":null})");
  EXPECT_EQ(Int64Field(j, "a"), 12);
  EXPECT_EQ(Int64Field(j, "b"), 13);
  EXPECT_EQ(Int64Field(j, "c"), 0);
  EXPECT_EQ(Int64Field(j, "d"), 0);
  EXPECT_THROW(Int64Field(nlohmann::json::parse(R"({"a":"x"})"), "a"), StorageError);
  EXPECT_THROW(ParseKeyValue(nlohmann::json::parse(R"({"key":"not base64!"})")), StorageError);
  // Error answers, plain and of a streaming call (an object, not a string).
  EXPECT_EQ(
      ErrorMessage(nlohmann::json::parse(R"({"error":"x","code":14,"message":"no leader"})"), 503),
      "no leader");
  EXPECT_EQ(
      ErrorMessage(nlohmann::json::parse(
                       R"({"error":{"grpc_code":14,"http_code":503,"message":"unavailable"}})"),
                   200),
      "unavailable");
  EXPECT_EQ(ErrorMessage(nlohmann::json::parse(R"({"error":{"x":1}})"), 500),
            "HTTP 500 without an error message");
  EXPECT_EQ(ErrorMessage(nlohmann::json::array(), 200), "HTTP 200 without an error message");
}

// A port that accepts connections and never answers (a frozen member), and one that refuses.
class SilentPort {
 public:
  SilentPort() {
    fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ::bind(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a);
    ::listen(fd_, 16);
    socklen_t len = sizeof a;
    ::getsockname(fd_, reinterpret_cast<sockaddr*>(&a), &len);
    port_ = ntohs(a.sin_port);
  }
  ~SilentPort() { ::close(fd_); }
  int port() const { return port_; }

 private:
  int fd_ = -1;
  int port_ = 0;
};

TEST(EtcdClient, EndpointsThatHangOrRefuseFailWithinTheTimeoutEach) {
  SilentPort silent;
  int closed_port;
  {
    SilentPort gone;
    closed_port = gone.port();
  }
  ClientConfig c;
  c.endpoints = {"http://127.0.0.1:" + std::to_string(silent.port()),
                 "http://127.0.0.1:" + std::to_string(closed_port)};
  c.timeout = std::chrono::milliseconds(400);
  Client client(c);
  auto start = std::chrono::steady_clock::now();
  try {
    client.Get("/k");
    FAIL() << "answered";
  } catch (const StorageError& e) {
    std::string m = e.what();
    EXPECT_NE(m.find(c.endpoints[0]), std::string::npos) << m;
    EXPECT_NE(m.find(c.endpoints[1]), std::string::npos) << m;
    EXPECT_NE(m.find("majority"), std::string::npos) << m;
  }
  auto took = std::chrono::steady_clock::now() - start;
  EXPECT_LT(took, std::chrono::milliseconds(2000));
  EXPECT_GE(took, std::chrono::milliseconds(350));
  EXPECT_THROW(Client(ClientConfig{}), ConfigError);
}

}  // namespace
}  // namespace gravl::etcd
