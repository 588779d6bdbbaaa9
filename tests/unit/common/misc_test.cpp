#include <gtest/gtest.h>
#include <signal.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <thread>

#include "common/bytes.h"
#include "common/error.h"
#include "common/log.h"
#include "common/lsn.h"
#include "common/subprocess.h"
#include "common/time_util.h"

namespace gravl {
namespace {

TEST(Lsn, ParseAndFormat) {
  EXPECT_EQ(Lsn::Parse("16/B374D848").value, 0x16B374D848ULL);
  EXPECT_EQ(Lsn::Parse("0/0").value, 0u);
  EXPECT_EQ(Lsn{0x16B374D848ULL}.ToString(), "16/B374D848");
  EXPECT_THROW(Lsn::Parse("16B374D848"), UsageError);
  EXPECT_THROW(Lsn::Parse("1/G"), UsageError);
  EXPECT_THROW(Lsn::Parse("100000000/0"), UsageError);
}

TEST(WalSegment, NamesRoundTrip) {
  auto seg = WalSegment::FromLsn(1, Lsn::Parse("1/2000028"));
  EXPECT_EQ(seg.Name(), "000000010000000100000002");
  auto parsed = WalSegment::ParseName("0000000A00000001000000FF");
  ASSERT_TRUE(parsed);
  EXPECT_EQ(parsed->timeline, 10u);
  EXPECT_EQ(parsed->segno, 0x1FFu);
  EXPECT_EQ(parsed->Name(), "0000000A00000001000000FF");
  EXPECT_EQ(parsed->StartLsn().ToString(), "1/FF000000");
  EXPECT_FALSE(WalSegment::ParseName("000000010000000100000100"));  // seg out of range
  EXPECT_FALSE(WalSegment::ParseName("00000001.history"));
  EXPECT_EQ(TimelineHex(26), "0000001A");
  // 1 GiB segments: 4 per "log".
  auto big = WalSegment::ParseName("000000010000000000000003", 1ULL << 30);
  ASSERT_TRUE(big);
  EXPECT_FALSE(WalSegment::ParseName("000000010000000000000004", 1ULL << 30));
}

TEST(Time, FormatsAndParses) {
  SystemTime t = ParseIso8601("2026-03-04 02:00:00Z");
  EXPECT_EQ(FormatIso8601(t), "2026-03-04T02:00:00Z");
  EXPECT_EQ(FormatCompact(t), "20260304T020000Z");
  EXPECT_EQ(ParseIso8601("2026-03-04T04:00:00+02:00"), t);
  EXPECT_EQ(ParseIso8601("2026-03-04 02:00:00.5") - t, std::chrono::milliseconds(500));
  EXPECT_THROW(ParseIso8601("yesterday"), UsageError);
}

TEST(Bytes, HexAndCompare) {
  Bytes b = {0x00, 0xab, 0xff};
  EXPECT_EQ(HexEncode(b), "00abff");
  EXPECT_EQ(HexDecode("00ABff"), b);
  EXPECT_THROW(HexDecode("abc"), std::invalid_argument);
  EXPECT_THROW(HexDecode("zz"), std::invalid_argument);
  EXPECT_TRUE(ConstantTimeEqual(b, b));
  EXPECT_FALSE(ConstantTimeEqual(b, Bytes{0x00, 0xab}));
  EXPECT_EQ(RandomBytes(16).size(), 16u);
  EXPECT_NE(RandomBytes(16), RandomBytes(16));
  EXPECT_EQ(FormatBytes(1536), "1.5 KiB");
}

TEST(Redaction, ConninfoPasswordsAreHidden) {
  EXPECT_EQ(RedactConninfo("host=a password=hunter2 user=b"), "host=a password=****** user=b");
  EXPECT_EQ(RedactConninfo(R"(password = 'it\'s secret' host=x)"), "password = ****** host=x");
  EXPECT_EQ(RedactConninfo("postgresql://u:pw@host/db"), "postgresql://u:******@host/db");
  RegisterSecret("tok-123456");
  EXPECT_EQ(Redact("a tok-123456 b tok-123456"), "a ****** b ******");
}

TEST(Subprocess, RunsWithoutAShellAndCapturesOutput) {
  RunResult r = gravl::Run({"sh", "-c", "echo out; echo err >&2; exit 3"});
  EXPECT_EQ(r.exit_code, 3);
  EXPECT_EQ(r.out, "out\n");
  EXPECT_EQ(r.err, "err\n");
  // Arguments are passed verbatim: no globbing or expansion.
  EXPECT_EQ(RunChecked({"echo", "$HOME", "*"}), "$HOME *\n");
  EXPECT_EQ(RunChecked({"cat"}, RunOptions{.input = std::string("piped")}), "piped");
  EXPECT_THROW(gravl::Run({"/nonexistent/program"}), Error);
  EXPECT_THROW(RunChecked({"false"}), Error);
  EXPECT_THROW(gravl::Run({"sleep", "5"}, RunOptions{.timeout = std::chrono::milliseconds(200)}),
               Error);
}

}  // namespace
}  // namespace gravl

namespace gravl {
namespace {

TEST(Child, StreamsThroughPipesAndReportsFailures) {
  auto cat =
      Child::Spawn({"cat"}, Child::Options{.env = {}, .pipe_stdin = true, .pipe_stdout = true});
  std::string payload(200000, 'z');  // larger than a pipe buffer: needs concurrent reading
  std::thread writer([&] {
    std::size_t off = 0;
    while (off < payload.size()) {
      ssize_t n = ::write(cat->stdin_fd(), payload.data() + off, payload.size() - off);
      if (n <= 0) break;
      off += static_cast<std::size_t>(n);
    }
    cat->CloseStdin();
  });
  std::string got;
  char buf[4096];
  for (;;) {
    ssize_t n = ::read(cat->stdout_fd(), buf, sizeof buf);
    if (n <= 0) break;
    got.append(buf, static_cast<std::size_t>(n));
  }
  writer.join();
  EXPECT_NO_THROW(cat->WaitChecked());
  EXPECT_EQ(got, payload);

  auto bad = Child::Spawn({"sh", "-c", "echo oops >&2; exit 3"}, Child::Options{});
  try {
    bad->WaitChecked();
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("oops"), std::string::npos);
    EXPECT_NE(std::string(e.what()).find("exit code 3"), std::string::npos);
  }
  // A child that was not waited for is killed and reaped when its Child goes: its pid is
  // gone at once (neither running nor a zombie), long before `sleep 30` would end.
  pid_t pid = 0;
  auto started = std::chrono::steady_clock::now();
  {
    auto abandoned = Child::Spawn({"sleep", "30"}, Child::Options{});
    pid = abandoned->pid();
    ASSERT_GT(pid, 0);
    EXPECT_EQ(::kill(pid, 0), 0) << "the child should be running before its Child goes";
  }
  EXPECT_EQ(::kill(pid, 0), -1);
  EXPECT_EQ(errno, ESRCH) << "pid " << pid << " still exists (not killed, or not reaped)";
  EXPECT_LT(std::chrono::steady_clock::now() - started, std::chrono::seconds(10));
}

TEST(Base64, RoundTripsEveryLengthAndRefusesGarbage) {
  EXPECT_EQ(Base64Encode(""), "");
  EXPECT_EQ(Base64Encode("f"), "Zg==");
  EXPECT_EQ(Base64Encode("fo"), "Zm8=");
  EXPECT_EQ(Base64Encode("foo"), "Zm9v");
  EXPECT_EQ(Base64Encode("/gravl-dr/main/leader"), "L2dyYXZsLWRyL21haW4vbGVhZGVy");
  std::string all;
  for (int i = 0; i < 256; ++i) all.push_back(static_cast<char>(i));
  for (std::size_t n = 0; n <= all.size(); n += 7) {
    EXPECT_EQ(Base64Decode(Base64Encode(all.substr(0, n))), all.substr(0, n)) << n;
  }
  EXPECT_THROW(Base64Decode("abc"), std::invalid_argument);
  EXPECT_THROW(Base64Decode("ab!d"), std::invalid_argument);
}

}  // namespace
}  // namespace gravl
