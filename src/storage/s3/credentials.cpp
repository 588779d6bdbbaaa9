#include "storage/s3/credentials.h"

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

#include "common/error.h"
#include "common/log.h"
#include "storage/s3/xml.h"

namespace gravl::storage::s3 {
namespace {

std::string Trim(const std::string& s) {
  auto b = s.find_first_not_of(" \t\r\n");
  if (b == std::string::npos) return "";
  auto e = s.find_last_not_of(" \t\r\n");
  return s.substr(b, e - b + 1);
}

std::optional<std::string> ReadText(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return std::nullopt;
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

class StaticProvider final : public CredentialsProvider {
 public:
  StaticProvider(Credentials c, std::string source)
      : credentials_(std::move(c)), source_(std::move(source)) {
    RegisterSecret(credentials_.secret_access_key);
    if (!credentials_.session_token.empty()) RegisterSecret(credentials_.session_token);
  }
  Credentials Get() override { return credentials_; }
  std::string Source() const override { return source_; }

 private:
  Credentials credentials_;
  std::string source_;
};

// INI: [profile] sections with key = value lines; '#' and ';' start comments.
std::optional<Credentials> ReadProfile(const std::string& text, const std::string& profile) {
  std::istringstream in(text);
  std::string line, section;
  Credentials c;
  bool found = false;
  while (std::getline(in, line)) {
    line = Trim(line);
    if (line.empty() || line[0] == '#' || line[0] == ';') continue;
    if (line.front() == '[' && line.back() == ']') {
      section = Trim(line.substr(1, line.size() - 2));
      if (section.rfind("profile ", 0) == 0) section = Trim(section.substr(8));
      if (section == profile) found = true;
      continue;
    }
    if (section != profile) continue;
    auto eq = line.find('=');
    if (eq == std::string::npos) continue;
    std::string key = Trim(line.substr(0, eq)), value = Trim(line.substr(eq + 1));
    if (key == "aws_access_key_id") c.access_key_id = value;
    if (key == "aws_secret_access_key") c.secret_access_key = value;
    if (key == "aws_session_token") c.session_token = value;
  }
  if (!found) return std::nullopt;
  return c;
}

class WebIdentityProvider final : public CredentialsProvider {
 public:
  WebIdentityProvider(std::string role_arn, std::string token_file, std::string session_name,
                      std::string sts_url, const HttpOptions& http, const RetryPolicy& retry)
      : role_arn_(std::move(role_arn)),
        token_file_(std::move(token_file)),
        session_name_(std::move(session_name)),
        sts_url_(std::move(sts_url)),
        http_(http),
        retry_(retry) {}

  Credentials Get() override {
    std::lock_guard lock(mutex_);
    auto now = std::chrono::system_clock::now();
    if (current_ && now < refresh_at_) return current_->credentials;
    try {
      Fetch(now);
    } catch (const Error& e) {
      // Keep using credentials that are still valid for a while; the next call tries again.
      if (current_ && now + std::chrono::seconds(30) < current_->expiration) {
        spdlog::warn(
            "could not refresh web identity credentials ({}); the current ones stay "
            "valid until {}",
            e.what(), FormatIso8601(current_->expiration));
        refresh_at_ = now + std::chrono::seconds(10);
        return current_->credentials;
      }
      throw;
    }
    return current_->credentials;
  }

  bool Invalidate(const std::string& rejected_key_id) override {
    std::lock_guard lock(mutex_);
    if (current_ && current_->credentials.access_key_id == rejected_key_id) refresh_at_ = {};
    return true;
  }

  std::string Source() const override {
    return "web identity (role " + role_arn_ + ", token file " + token_file_ + ")";
  }

 private:
  void Fetch(SystemTime now) {
    auto token_text = ReadText(token_file_);
    if (!token_text || Trim(*token_text).empty()) {
      throw ConfigError("cannot read the web identity token file " + token_file_ +
                        " (AWS_WEB_IDENTITY_TOKEN_FILE): check that the service account "
                        "token is mounted into the pod");
    }
    std::string token = Trim(*token_text);
    RegisterSecret(token);
    std::string body =
        "Action=AssumeRoleWithWebIdentity&Version=2011-06-15&DurationSeconds=3600"
        "&RoleArn=" +
        UriEncode(role_arn_, false) + "&RoleSessionName=" + UriEncode(session_name_, false) +
        "&WebIdentityToken=" + UriEncode(token, false);
    HttpRequest request{"POST",
                        sts_url_ + "/",
                        {{"Content-Type", "application/x-www-form-urlencoded; charset=utf-8"},
                         {"Accept", "application/xml"}},
                        AsBytes(body)};
    Backoff backoff(retry_);
    while (true) {
      HttpResult result = http_.Perform(request);
      std::string problem;
      std::optional<Duration> retry_after;
      bool retryable = result.retryable;
      if (result.response) {
        const auto& r = *result.response;
        std::string text(AsChars(r.body));
        if (r.status == 200) {
          StsCredentials sts = ParseAssumeRoleResponse(text);
          RegisterSecret(sts.credentials.secret_access_key);
          RegisterSecret(sts.credentials.session_token);
          auto lifetime = sts.expiration - now;
          auto margin =
              std::min<std::chrono::system_clock::duration>(std::chrono::minutes(5), lifetime / 4);
          refresh_at_ = sts.expiration - margin;
          spdlog::debug("web identity credentials for {} valid until {}", role_arn_,
                        FormatIso8601(sts.expiration));
          current_ = std::move(sts);
          return;
        }
        std::string code = XmlText(text, "Code").value_or("");
        std::string message = XmlText(text, "Message").value_or("");
        problem = "HTTP " + std::to_string(r.status) + (code.empty() ? "" : " " + code) +
                  (message.empty() ? "" : ": " + message);
        retryable = IsRetryableStatus(r.status, code);
        if (auto ra = r.Header("retry-after")) {
          retry_after = ParseRetryAfter(*ra, std::chrono::system_clock::now());
        }
      } else {
        problem = result.error;
      }
      std::optional<Duration> delay;
      if (retryable) delay = backoff.NextDelay(retry_after);
      if (!delay) {
        throw StorageError("STS AssumeRoleWithWebIdentity at " + sts_url_ + " for role " +
                           role_arn_ + " failed: " + Redact(problem) +
                           ": check the role's trust policy for this service account and the "
                           "token file " +
                           token_file_);
      }
      spdlog::debug("STS call failed ({}); retrying in {:.2f} s", Redact(problem), delay->count());
      std::this_thread::sleep_for(*delay);
    }
  }

  std::string role_arn_, token_file_, session_name_, sts_url_;
  HttpClient http_;
  RetryPolicy retry_;
  std::mutex mutex_;
  std::optional<StsCredentials> current_;
  SystemTime refresh_at_{};
};

}  // namespace

std::optional<std::string> ProcessEnv(const std::string& name) {
  const char* v = std::getenv(name.c_str());
  if (v == nullptr || *v == '\0') return std::nullopt;
  return std::string(v);
}

std::string MaskKeyId(const std::string& id) {
  if (id.size() <= 8) return "****";
  return id.substr(0, 4) + "…" + id.substr(id.size() - 4);
}

StsCredentials ParseAssumeRoleResponse(const std::string& xml) {
  auto creds = XmlElements(xml, "Credentials");
  if (creds.empty()) {
    throw StorageError("STS answered without credentials (unexpected response format)");
  }
  StsCredentials out;
  auto field = [&](const char* name) {
    auto v = XmlText(creds.front(), name);
    if (!v || v->empty()) {
      throw StorageError(std::string("STS answer lacks Credentials/") + name);
    }
    return *v;
  };
  out.credentials.access_key_id = field("AccessKeyId");
  out.credentials.secret_access_key = field("SecretAccessKey");
  out.credentials.session_token = field("SessionToken");
  try {
    out.expiration = ParseIso8601(field("Expiration"));
  } catch (const UsageError&) {
    throw StorageError("STS answer has an unreadable Expiration");
  }
  return out;
}

std::unique_ptr<CredentialsProvider> MakeCredentialsChain(const CredentialSettings& settings,
                                                          const HttpOptions& http,
                                                          const RetryPolicy& retry,
                                                          const EnvLookup& env) {
  const std::string& repo = settings.repo_name;
  // 1. The repository's configuration.
  if (!settings.access_key_id.empty() && settings.secret_access_key) {
    return std::make_unique<StaticProvider>(
        Credentials{settings.access_key_id, *settings.secret_access_key,
                    settings.session_token.value_or("")},
        "repository '" + repo + "' configuration");
  }
  // 2. Environment.
  auto env_id = env("AWS_ACCESS_KEY_ID"), env_secret = env("AWS_SECRET_ACCESS_KEY");
  if (env_id.has_value() != env_secret.has_value()) {
    throw ConfigError(std::string("only ") +
                      (env_id ? "AWS_ACCESS_KEY_ID" : "AWS_SECRET_ACCESS_KEY") +
                      " is set in the environment: set both, or neither");
  }
  if (env_id) {
    return std::make_unique<StaticProvider>(
        Credentials{*env_id, *env_secret, env("AWS_SESSION_TOKEN").value_or("")},
        "environment (AWS_ACCESS_KEY_ID)");
  }
  // 3. Shared credentials file.
  std::string file;
  if (auto f = env("AWS_SHARED_CREDENTIALS_FILE")) {
    file = *f;
  } else if (auto home = env("HOME")) {
    file = *home + "/.aws/credentials";
  }
  std::string profile =
      !settings.profile.empty() ? settings.profile : env("AWS_PROFILE").value_or("default");
  bool profile_required = !settings.profile.empty() || env("AWS_PROFILE").has_value();
  std::optional<std::string> text;
  if (!file.empty()) text = ReadText(file);
  if (text) {
    if (auto c = ReadProfile(*text, profile)) {
      if (c->access_key_id.empty() || c->secret_access_key.empty()) {
        throw ConfigError("profile '" + profile + "' in " + file +
                          " lacks aws_access_key_id or aws_secret_access_key");
      }
      return std::make_unique<StaticProvider>(*c, "profile '" + profile + "' in " + file);
    }
  }
  auto role = env("AWS_ROLE_ARN"), token_file = env("AWS_WEB_IDENTITY_TOKEN_FILE");
  if (profile_required && !(role && token_file)) {
    throw ConfigError("profile '" + profile + "' (repository '" + repo + "') not found in " +
                      (file.empty() ? std::string("~/.aws/credentials") : file));
  }
  // 4. Web identity.
  if (role.has_value() != token_file.has_value()) {
    throw ConfigError(std::string("web identity needs both AWS_ROLE_ARN and "
                                  "AWS_WEB_IDENTITY_TOKEN_FILE; only ") +
                      (role ? "AWS_ROLE_ARN" : "AWS_WEB_IDENTITY_TOKEN_FILE") + " is set");
  }
  if (role) {
    std::string sts = settings.sts_endpoint;
    if (sts.empty()) sts = env("AWS_ENDPOINT_URL_STS").value_or("");
    if (sts.empty()) sts = "https://sts." + settings.region + ".amazonaws.com";
    while (!sts.empty() && sts.back() == '/') sts.pop_back();
    std::string session =
        env("AWS_ROLE_SESSION_NAME").value_or("gravl-dr-" + std::to_string(std::time(nullptr)));
    return std::make_unique<WebIdentityProvider>(*role, *token_file, session, sts, http, retry);
  }
  throw ConfigError("no S3 credentials for repository '" + repo +
                    "': set access_key_id and secret_access_key_file in its configuration, or "
                    "AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or a profile in " +
                    (file.empty() ? std::string("~/.aws/credentials") : file) +
                    ", or AWS_ROLE_ARN and AWS_WEB_IDENTITY_TOKEN_FILE (Kubernetes IRSA)");
}

}  // namespace gravl::storage::s3
