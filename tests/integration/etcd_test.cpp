// The etcd client (src/etcd/) against real etcd: leases, compare-and-swap transactions and
// ranges on a 3-member cluster; a stopped member is passed over, a lost majority is an error
// within the time limits (never a stale answer); and TLS with client certificates (etcd
// --client-cert-auth): with the agent's certificate it answers, without one or with another
// CA it refuses.

#include <gtest/gtest.h>
#include <signal.h>

#include <chrono>
#include <filesystem>
#include <thread>

#include "common/error.h"
#include "common/subprocess.h"
#include "etcd/client.h"
#include "pg/instance.h"
#include "support/etcd_cluster.h"
#include "support/test_util.h"

namespace gravl {
namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

TEST(EtcdClientIntegration, LeasesCompareAndSwapAndMemberLoss) {
  ASSERT_FALSE(test::EtcdCluster::Binary().empty()) << "etcd is not installed";
  test::TempDir dir;
  test::EtcdCluster cluster(dir / "etcd");
  etcd::ClientConfig c;
  c.endpoints = cluster.ClientUrls();
  c.timeout = std::chrono::milliseconds(1000);
  etcd::Client client(c);

  std::int64_t lease = client.Grant(5);
  auto first = client.Txn({etcd::KeyAbsent("/t/leader")}, {etcd::Put("/t/leader", "a", lease)},
                          {etcd::Range("/t/leader")});
  ASSERT_TRUE(first.succeeded);
  EXPECT_GT(first.revision, 0);
  // The same compare-and-swap again fails and shows who holds the key.
  auto second = client.Txn({etcd::KeyAbsent("/t/leader")}, {etcd::Put("/t/leader", "b")},
                           {etcd::Range("/t/leader")});
  EXPECT_FALSE(second.succeeded);
  ASSERT_EQ(second.ranges.size(), 1u);
  ASSERT_TRUE(second.ranges[0]);
  EXPECT_EQ(second.ranges[0]->value, "a");
  EXPECT_EQ(second.ranges[0]->lease, lease);
  EXPECT_EQ(second.ranges[0]->create_revision, first.revision);
  EXPECT_EQ(client.KeepAlive(lease), 5);
  auto [kv, rev] = client.Get("/t/leader");
  ASSERT_TRUE(kv);
  EXPECT_EQ(kv->value, "a");
  EXPECT_GE(rev, first.revision);
  // A compare on the mod revision.
  EXPECT_FALSE(client
                   .Txn({etcd::ModRevisionIs("/t/leader", first.revision + 100)},
                        {etcd::Delete("/t/leader")})
                   .succeeded);
  client.Revoke(lease);
  EXPECT_FALSE(client.Get("/t/leader").first);
  EXPECT_FALSE(client.KeepAlive(lease).has_value());
  client.Revoke(lease);  // already gone: fine

  // A lease that is not renewed expires with its key.
  std::int64_t short_lease = client.Grant(2);
  ASSERT_TRUE(client.Txn({}, {etcd::Put("/t/short", "x", short_lease)}).succeeded);
  std::this_thread::sleep_for(std::chrono::seconds(4));
  EXPECT_FALSE(client.Get("/t/short").first);

  // One member down: the others answer. Two down: an error, in bounded time.
  cluster.Stop(0);
  ASSERT_TRUE(cluster.Healthy(1, 10));
  EXPECT_NO_THROW(client.Get("/t/leader"));
  cluster.Stop(1);
  auto start = Clock::now();
  EXPECT_THROW(client.Get("/t/leader"), StorageError);
  EXPECT_LT(Clock::now() - start, std::chrono::seconds(5));
  EXPECT_THROW(client.Grant(5), StorageError);
}

// Throwaway TLS material: a CA (tests/s3/make-cert.sh), etcd's certificate and a client
// certificate for clientAuth signed by it; and a second CA that signed nothing here.
void MakeCertificates(const std::string& out) {
  const std::string make = std::string(GRAVL_SOURCE_DIR) + "/tests/s3/make-cert.sh";
  RunResult r = Run({make, out});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  RunResult other = Run({make, out + "/other"});
  ASSERT_EQ(other.exit_code, 0) << other.err;
  // etcd's own certificate serves clientAuth too: with --client-cert-auth its JSON gateway
  // connects to its gRPC server with it.
  test::WriteFile(out + "/etcd.ext",
                  "subjectAltName=IP:127.0.0.1,DNS:localhost\n"
                  "extendedKeyUsage=serverAuth,clientAuth\n");
  test::WriteFile(out + "/client.ext", "extendedKeyUsage=clientAuth\n");
  for (const std::string name : {"etcd", "client"}) {
    for (const auto& argv : std::vector<std::vector<std::string>>{
             {"openssl", "ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out",
              out + "/" + name + ".key"},
             {"openssl", "req", "-new", "-key", out + "/" + name + ".key", "-subj",
              "/CN=gravl-" + name, "-out", out + "/" + name + ".csr"},
             {"openssl", "x509", "-req", "-in", out + "/" + name + ".csr", "-CA", out + "/ca.pem",
              "-CAkey", out + "/ca.key", "-CAcreateserial", "-days", "2", "-extfile",
              out + "/" + name + ".ext", "-out", out + "/" + name + ".pem"}}) {
      RunResult step = Run(argv);
      ASSERT_EQ(step.exit_code, 0) << argv[1] << ": " << step.err;
    }
  }
}

TEST(EtcdClientIntegration, TlsWithClientCertificates) {
  ASSERT_FALSE(test::EtcdCluster::Binary().empty()) << "etcd is not installed";
  test::TempDir dir;
  const std::string certs = dir / "certs";
  MakeCertificates(certs);
  if (HasFatalFailure()) return;
  const int client_port = pg::FindFreePort(), peer_port = pg::FindFreePort();
  const std::string url = "https://127.0.0.1:" + std::to_string(client_port);
  auto etcd =
      Child::Spawn({test::EtcdCluster::Binary(), "--name=tls", "--data-dir=" + (dir / "data"),
                    "--listen-client-urls=" + url, "--advertise-client-urls=" + url,
                    "--listen-peer-urls=http://127.0.0.1:" + std::to_string(peer_port),
                    "--initial-advertise-peer-urls=http://127.0.0.1:" + std::to_string(peer_port),
                    "--initial-cluster=tls=http://127.0.0.1:" + std::to_string(peer_port),
                    "--cert-file=" + certs + "/etcd.pem", "--key-file=" + certs + "/etcd.key",
                    "--client-cert-auth", "--trusted-ca-file=" + certs + "/ca.pem", "--logger=zap",
                    "--log-outputs=stderr"},
                   {});
  struct Stop {
    Child& c;
    ~Stop() {
      ::kill(c.pid(), SIGKILL);
      c.Wait();
    }
  } stop{*etcd};

  etcd::ClientConfig ok;
  ok.endpoints = {url};
  ok.ca_file = certs + "/ca.pem";
  ok.cert_file = certs + "/client.pem";
  ok.key_file = certs + "/client.key";
  ok.timeout = std::chrono::milliseconds(2000);
  etcd::Client client(ok);
  bool up = false;
  for (int i = 0; i < 100 && !up; ++i) {
    try {
      client.Get("/t");
      up = true;
    } catch (const StorageError&) {
      std::this_thread::sleep_for(std::chrono::milliseconds(200));
    }
  }
  ASSERT_TRUE(up) << etcd->StderrTail();
  std::int64_t lease = client.Grant(10);
  EXPECT_TRUE(
      client.Txn({etcd::KeyAbsent("/t/leader")}, {etcd::Put("/t/leader", "a", lease)}).succeeded);
  EXPECT_EQ(client.Get("/t/leader").first->value, "a");

  // Without a client certificate: refused by etcd.
  etcd::ClientConfig no_cert = ok;
  no_cert.cert_file.clear();
  no_cert.key_file.clear();
  EXPECT_THROW(etcd::Client(no_cert).Get("/t/leader"), StorageError);
  // A CA that did not sign etcd's certificate: refused by the client.
  etcd::ClientConfig wrong_ca = ok;
  wrong_ca.ca_file = certs + "/other/ca.pem";
  EXPECT_THROW(etcd::Client(wrong_ca).Get("/t/leader"), StorageError);
}

}  // namespace
}  // namespace gravl
