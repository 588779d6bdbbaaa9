// src/ha/ without servers: hook expansion (placeholders, appended region and host, no
// shell), hooks that fail or run over their timeout, loss limits, the step log, addresses.

#include "ha/ha.h"

#include <gtest/gtest.h>

#include <thread>

#include "common/error.h"

namespace gravl::ha {
namespace {

TEST(Hooks, PlaceholdersAreReplacedInEveryArgument) {
  std::map<std::string, std::string> vars = {
      {"region", "us-east-1"}, {"host", "db.us"}, {"port", "5432"}, {"conninfo", "host=db.us"}};
  EXPECT_EQ(
      ExpandHook({"kubectl", "patch", "svc/db", "-p", R"({"spec":{"externalName":"{host}"}})"},
                 vars),
      (std::vector<std::string>{"kubectl", "patch", "svc/db", "-p",
                                R"({"spec":{"externalName":"db.us"}})"}));
  EXPECT_EQ(ExpandHook({"dns-update", "{region}:{host}:{port}", "{host}"}, vars),
            (std::vector<std::string>{"dns-update", "us-east-1:db.us:5432", "db.us"}));
  // No placeholder at all: the region's name and host are appended.
  EXPECT_EQ(ExpandHook({"fence.sh", "--now"}, vars),
            (std::vector<std::string>{"fence.sh", "--now", "us-east-1", "db.us"}));
  // A value that looks like a placeholder is not expanded again.
  EXPECT_EQ(ExpandHook({"{region}"}, {{"region", "{host}"}, {"host", "x"}}),
            (std::vector<std::string>{"{host}"}));
}

TEST(Hooks, RunWithoutAShellAndReportFailures) {
  auto ok = RunHook({"sh", "-c", "echo fenced $0", "{region}"}, {{"region", "eu"}},
                    std::chrono::seconds(10));
  EXPECT_TRUE(ok.ok());
  EXPECT_EQ(ok.output, "fenced eu");
  // Arguments are not interpreted by a shell: the ';' reaches echo as text.
  auto literal =
      RunHook({"echo", "{region}; rm -rf /"}, {{"region", "eu"}}, std::chrono::seconds(10));
  EXPECT_EQ(literal.output, "eu; rm -rf /");
  auto failed = RunHook({"sh", "-c", "echo no API >&2; exit 3"}, {}, std::chrono::seconds(10));
  EXPECT_EQ(failed.exit_code, 3);
  EXPECT_EQ(failed.output, "no API");
  auto missing = RunHook({"/nonexistent/fence"}, {}, std::chrono::seconds(10));
  EXPECT_FALSE(missing.ok());
  auto slow = RunHook({"sleep", "30"}, {}, std::chrono::seconds(1));
  EXPECT_FALSE(slow.ok());
  EXPECT_LT(slow.seconds, 10);
}

TEST(LossLimits, BytesOrDurations) {
  EXPECT_EQ(ParseByteSize("16MB"), 16u << 20);
  EXPECT_EQ(ParseByteSize("512kB"), 512u << 10);
  EXPECT_EQ(ParseByteSize("0"), 0u);
  EXPECT_EQ(ParseByteSize("1GB"), 1ull << 30);
  EXPECT_EQ(ParseByteSize("7 MB"), 7u << 20);
  EXPECT_FALSE(ParseByteSize("30s"));
  EXPECT_FALSE(ParseByteSize("MB"));
  EXPECT_FALSE(ParseByteSize("-1"));
  EXPECT_FALSE(ParseByteSize("99999999999999999999"));

  auto bytes = ParseLossLimit("16MB", "--max-loss");
  EXPECT_EQ(bytes.bytes, 16u << 20);
  EXPECT_FALSE(bytes.duration);
  auto time = ParseLossLimit("30s", "--max-loss");
  EXPECT_FALSE(time.bytes);
  EXPECT_EQ(time.duration, std::chrono::seconds(30));
  EXPECT_EQ(ParseLossLimit("5m", "x").duration, std::chrono::seconds(300));
  try {
    ParseLossLimit("lots", "--max-loss");
    FAIL();
  } catch (const UsageError& e) {
    EXPECT_NE(std::string(e.what()).find("--max-loss: 'lots' is neither a size"),
              std::string::npos);
  }
}

TEST(StepLog, TimesStepsAndRecordsFailures) {
  StepLog log;
  log.Run("assess", [] { return std::string("fine"); });
  log.Skip("catch-up", "already primary");
  log.Run("promote", [] {
    std::this_thread::sleep_for(std::chrono::milliseconds(30));
    return std::string("promoted");
  });
  EXPECT_THROW(log.Run("fence", []() -> std::string { throw RefusedError("no fence"); }),
               RefusedError);
  EXPECT_THROW(log.Run("endpoint", []() -> std::string { throw StorageError("down"); }),
               StorageError);
  ASSERT_EQ(log.steps().size(), 5u);
  EXPECT_EQ(log.steps()[1].outcome, "skipped");
  EXPECT_GE(log.steps()[2].seconds, 0.025);
  EXPECT_EQ(log.steps()[3].outcome, "refused");
  EXPECT_EQ(log.steps()[3].detail, "no fence");
  EXPECT_EQ(log.steps()[4].outcome, "failed");
  auto until = log.Until("promote");
  ASSERT_TRUE(until);
  EXPECT_GE(*until, 0.025);
  EXPECT_FALSE(log.Until("fence"));  // never completed
  EXPECT_EQ(log.ToJson().size(), 5u);
  EXPECT_NE(log.Text().find("refused"), std::string::npos);
  EXPECT_GE(log.Phases().at("promote"), 0.025);
}

TEST(Regions, AddressesAndDescriptions) {
  auto a = AddressOf("host=db.eu port=6432 user=postgres password=secret");
  EXPECT_EQ(a.host, "db.eu");
  EXPECT_EQ(a.port, "6432");
  auto d = AddressOf("dbname=postgres");
  EXPECT_EQ(d.host, "localhost");
  EXPECT_EQ(d.port, "5432");
  RegionConfig r{"eu", "eu", "host=db.eu password=hunter2", "", ""};
  auto vars = HookVars(r);
  EXPECT_EQ(vars.at("conninfo").find("hunter2"), std::string::npos);
  Probe down = ProbeRegion(RegionConfig{"x", "x", "host=127.0.0.1 port=1", "", ""}, 2);
  EXPECT_FALSE(down.reachable);
  EXPECT_FALSE(down.writable());
  EXPECT_EQ(down.Describe().rfind("unreachable: ", 0), 0u);
}

}  // namespace
}  // namespace gravl::ha
