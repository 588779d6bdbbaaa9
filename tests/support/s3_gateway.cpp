#include "support/s3_gateway.h"

#include <poll.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <stdexcept>

#include "storage/s3/http.h"

namespace gravl::test {

std::string S3Gateway::ToolsDir() { return GRAVL_S3_TOOLS_DIR; }

S3Gateway::S3Gateway(GatewayOptions options) {
  std::string tools = ToolsDir();
  if (!std::filesystem::exists(tools + "/node_modules/s3rver")) {
    throw std::runtime_error("the S3 test tools are not installed: run " + tools +
                             "/setup.sh (needs node and npm)");
  }
  std::vector<std::string> argv = {"node", "--openssl-legacy-provider", tools + "/gateway.js",
                                   "--dir", dir_ / "s3rver"};
  for (const auto& b : options.buckets) {
    argv.push_back("--bucket");
    argv.push_back(b);
  }
  if (!options.web_identity_token_file.empty()) {
    argv.push_back("--web-identity-token-file");
    argv.push_back(options.web_identity_token_file);
  }
  if (options.tls) {
    RunResult cert = Run({tools + "/make-cert.sh", dir_ / "tls"});
    if (!cert.ok()) throw std::runtime_error("make-cert.sh failed: " + cert.err);
    argv.insert(argv.end(),
                {"--tls-cert", dir_ / "tls/server.pem", "--tls-key", dir_ / "tls/server.key"});
    tls_ = true;
  }
  argv.push_back("--sts-duration");
  argv.push_back(std::to_string(options.sts_duration_seconds));
  std::filesystem::create_directories(dir_ / "s3rver");
  child_ = Child::Spawn(
      argv, Child::Options{.env = {std::string("GATEWAY_ACCESS_KEY_ID=") + kAccessKeyId,
                                   std::string("GATEWAY_SECRET_ACCESS_KEY=") + kSecretAccessKey},
                           .pipe_stdin = true,
                           .pipe_stdout = true});
  // The ready line: {"port": N, "s3rver_port": M}
  std::string line;
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
  while (line.find('\n') == std::string::npos) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    pollfd pfd{child_->stdout_fd(), POLLIN, 0};
    if (left.count() <= 0 || poll(&pfd, 1, static_cast<int>(left.count())) <= 0) {
      throw std::runtime_error("the S3 gateway did not start within 60 s: " + child_->StderrTail());
    }
    char buf[256];
    ssize_t n = read(child_->stdout_fd(), buf, sizeof buf);
    if (n <= 0) throw std::runtime_error("the S3 gateway exited: " + child_->StderrTail());
    line.append(buf, static_cast<std::size_t>(n));
  }
  auto pos = line.find("\"port\"");
  if (pos == std::string::npos) throw std::runtime_error("unexpected gateway output: " + line);
  port_ = std::stoi(line.substr(line.find(':', pos) + 1));
  if (!options.faults_json.empty()) SetFaults(options.faults_json);
}

S3Gateway::~S3Gateway() = default;  // Child's destructor kills and reaps node

S3RepoConfig S3Gateway::Repo(const std::string& prefix, const std::string& bucket) const {
  S3RepoConfig c;
  c.bucket = bucket;
  c.region = "us-east-1";
  c.prefix = prefix;
  c.endpoint = endpoint();
  c.uri_style = "path";
  c.access_key_id = kAccessKeyId;
  c.secret_access_key = kSecretAccessKey;
  c.retry_timeout = 60;
  if (tls_) c.ca_file = ca_file();
  return c;
}

std::string S3Gateway::RepoYaml(const std::string& prefix, const std::string& secret_file,
                                const std::string& bucket) const {
  WriteFile(secret_file, kSecretAccessKey);
  return "    type: s3\n    bucket: " + bucket +
         "\n    region: us-east-1\n    endpoint: " + endpoint() +
         "\n    uri_style: path\n    prefix: " + prefix + "\n    access_key_id: " + kAccessKeyId +
         "\n    secret_access_key_file: " + secret_file + "\n";
}

std::string S3Gateway::Control(const std::string& method, const std::string& path,
                               const std::string& body) {
  storage::s3::HttpClient http(storage::s3::HttpOptions{.ca_file = tls_ ? ca_file() : ""});
  auto result = http.Perform(storage::s3::HttpRequest{
      method, endpoint() + path, {{"Content-Type", "application/json"}}, AsBytes(body)});
  if (!result.response || result.response->status != 200) {
    throw std::runtime_error(
        "gateway control " + path + " failed: " +
        (result.response ? std::string(AsChars(result.response->body)) : result.error));
  }
  return std::string(AsChars(result.response->body));
}

std::size_t S3Gateway::UnfinishedUploads(const std::string& bucket) const {
  // s3rver keeps each upload in <data>/<bucket>/._S3rver_uploads/<upload id>/.
  std::string dir = dir_ / ("s3rver/" + bucket + "/._S3rver_uploads");
  if (!std::filesystem::exists(dir)) return 0;
  std::size_t n = 0;
  for (const auto& e : std::filesystem::directory_iterator(dir)) {
    if (e.is_directory()) ++n;
  }
  return n;
}

void S3Gateway::SetFaults(const std::string& json) { Control("POST", "/__gateway/faults", json); }
std::string S3Gateway::Stats() { return Control("GET", "/__gateway/stats", ""); }
void S3Gateway::ResetStats() { Control("POST", "/__gateway/stats/reset", ""); }

RunResult S3Gateway::Node(const std::vector<std::string>& args,
                          const std::vector<std::string>& extra_env) const {
  std::vector<std::string> argv = {"node", "--openssl-legacy-provider"};
  argv.insert(argv.end(), args.begin(), args.end());
  RunOptions o;
  o.env = {std::string("AWS_ACCESS_KEY_ID=") + kAccessKeyId,
           std::string("AWS_SECRET_ACCESS_KEY=") + kSecretAccessKey};
  o.env.insert(o.env.end(), extra_env.begin(), extra_env.end());
  o.timeout = std::chrono::minutes(5);
  return Run(argv, o);
}

}  // namespace gravl::test
