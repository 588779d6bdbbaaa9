#include "common/log.h"

#include <spdlog/sinks/base_sink.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <mutex>
#include <regex>
#include <vector>

#include "common/error.h"

namespace gravl {
namespace {

std::mutex& SecretsMutex() {
  static std::mutex m;
  return m;
}
std::vector<std::string>& Secrets() {
  static std::vector<std::string> s;
  return s;
}

// Formats like spdlog's default pattern, then redacts, then writes to stderr.
class RedactingStderrSink final : public spdlog::sinks::base_sink<std::mutex> {
 protected:
  void sink_it_(const spdlog::details::log_msg& msg) override {
    spdlog::memory_buf_t formatted;
    formatter_->format(msg, formatted);
    std::string text = Redact(std::string_view(formatted.data(), formatted.size()));
    std::fwrite(text.data(), 1, text.size(), stderr);
  }
  void flush_() override { std::fflush(stderr); }
};

}  // namespace

void InitLogging(std::string_view level) {
  auto lvl = spdlog::level::from_str(std::string(level));
  if (lvl == spdlog::level::off && level != "off") {
    throw UsageError("unknown log level '" + std::string(level) +
                     "': use trace, debug, info, warn, error or off");
  }
  static std::once_flag once;
  std::call_once(once, [] {
    auto logger =
        std::make_shared<spdlog::logger>("gravl-dr", std::make_shared<RedactingStderrSink>());
    logger->set_pattern("%Y-%m-%dT%H:%M:%S.%eZ %^%l%$ [%t] %v", spdlog::pattern_time_type::utc);
    spdlog::set_default_logger(logger);
  });
  spdlog::set_level(lvl);
  spdlog::flush_on(spdlog::level::warn);
}

void RegisterSecret(std::string_view secret) {
  // Very short "secrets" would redact ordinary words; they are still secrets, but any
  // value under 4 characters is too weak to matter and too common to redact safely.
  if (secret.size() < 4) return;
  std::lock_guard lock(SecretsMutex());
  auto& s = Secrets();
  if (std::find(s.begin(), s.end(), secret) == s.end()) s.emplace_back(secret);
}

std::string Redact(std::string_view text) {
  std::string out(text);
  std::lock_guard lock(SecretsMutex());
  for (const auto& secret : Secrets()) {
    for (std::size_t pos = out.find(secret); pos != std::string::npos;
         pos = out.find(secret, pos + 6)) {
      out.replace(pos, secret.size(), "******");
    }
  }
  return out;
}

std::string RedactConninfo(std::string_view conninfo) {
  static const std::regex kKeyValue(R"((password\s*=\s*)('(?:[^'\\]|\\.)*'|\S+))",
                                    std::regex::icase);
  static const std::regex kUri(R"((postgres(?:ql)?://[^:/@\s]*:)[^@\s]*@)", std::regex::icase);
  std::string s = std::regex_replace(std::string(conninfo), kKeyValue, "$1******");
  return std::regex_replace(s, kUri, "$1******@");
}

}  // namespace gravl
