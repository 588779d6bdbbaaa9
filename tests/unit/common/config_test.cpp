#include "common/config.h"

#include <gtest/gtest.h>
#include <sys/stat.h>

#include <map>

#include "common/error.h"
#include "common/log.h"
#include "support/test_util.h"

namespace gravl {
namespace {

class ConfigTest : public ::testing::Test {
 protected:
  Config Load(const std::string& yaml, std::map<std::string, std::string> env = {},
              std::map<std::string, std::string> flags = {}) {
    std::string path = dir_ / "gravl-dr.yaml";
    test::WriteFile(path, yaml);
    return LoadFrom(path, std::move(env), std::move(flags));
  }
  Config LoadFrom(std::optional<std::string> path, std::map<std::string, std::string> env,
                  std::map<std::string, std::string> flags = {}) {
    ConfigInputs in;
    in.config_path = std::move(path);
    in.flags = std::move(flags);
    in.getenv = [env](const std::string& name) -> std::optional<std::string> {
      auto it = env.find(name);
      if (it == env.end()) return std::nullopt;
      return it->second;
    };
    return LoadConfig(in);
  }
  // Loading must fail with ConfigError whose single-line message contains every fragment.
  void ExpectError(const std::string& yaml, std::vector<std::string> fragments,
                   std::map<std::string, std::string> env = {}) {
    try {
      Load(yaml, env);
      FAIL() << "accepted: " << yaml;
    } catch (const ConfigError& e) {
      std::string msg = e.what();
      EXPECT_EQ(msg.find('\n'), std::string::npos) << msg;
      EXPECT_EQ(e.code(), ExitCode::kConfig);
      for (const auto& f : fragments) EXPECT_NE(msg.find(f), std::string::npos) << msg;
    }
  }
  test::TempDir dir_;
  const std::string kRepos = "repos:\n  - {name: local, type: posix, path: /var/lib/r}\n";
};

TEST_F(ConfigTest, FullFileIsParsed) {
  std::string pass_file = dir_ / "pass";
  test::WriteFile(pass_file, "s3cret-passphrase\n");
  Config c = Load(
      "stanza: prod\n"
      "pg:\n  conninfo: \"host=db port=5433\"\n  bin_dir: /usr/lib/postgresql/15/bin\n"
      "repos:\n"
      "  - name: eu\n    type: posix\n    path: /srv/eu\n"
      "  - name: us\n    type: posix\n    path: /srv/us\n"
      "compression: { type: lz4, level: 3 }\n"
      "encryption: { passphrase_file: " +
      pass_file +
      " }\n"
      "parallel: 8\n");
  EXPECT_EQ(c.stanza, "prod");
  EXPECT_EQ(c.pg_conninfo, "host=db port=5433");
  EXPECT_EQ(c.pg_bin_dir, "/usr/lib/postgresql/15/bin");
  ASSERT_EQ(c.repos.size(), 2u);
  EXPECT_EQ(c.repos[1].name, "us");
  EXPECT_EQ(c.repos[1].path, "/srv/us");
  EXPECT_EQ(c.compression, CompressionType::kLz4);
  EXPECT_EQ(c.compression_level, 3);
  EXPECT_EQ(c.parallel, 8);
  ASSERT_TRUE(c.passphrase);
  EXPECT_EQ(*c.passphrase, "s3cret-passphrase");
  EXPECT_EQ(Redact("x s3cret-passphrase y"), "x ****** y");
  EXPECT_EQ(c.SelectRepos("us").size(), 1u);
  EXPECT_THROW(c.SelectRepos("ap"), ConfigError);
}

TEST_F(ConfigTest, DefaultsApply) {
  Config c = Load(kRepos);
  EXPECT_EQ(c.stanza, "main");
  EXPECT_EQ(c.compression, CompressionType::kZstd);
  EXPECT_EQ(c.compression_level, 1);
  EXPECT_EQ(c.parallel, 2);
  EXPECT_FALSE(c.passphrase);
}

TEST_F(ConfigTest, FlagBeatsEnvironmentBeatsFile) {
  std::string yaml = kRepos + "stanza: from-file\nparallel: 3\ncompression: {type: gzip}\n";
  Config file_only = Load(yaml);
  EXPECT_EQ(file_only.stanza, "from-file");
  EXPECT_EQ(file_only.compression_level, 6);  // gzip's default level
  Config env = Load(yaml, {{"GRAVL_DR_STANZA", "from-env"}, {"GRAVL_DR_PARALLEL", "5"}});
  EXPECT_EQ(env.stanza, "from-env");
  EXPECT_EQ(env.parallel, 5);
  Config flag = Load(yaml, {{"GRAVL_DR_STANZA", "from-env"}}, {{"stanza", "from-flag"}});
  EXPECT_EQ(flag.stanza, "from-flag");
  EXPECT_EQ(flag.parallel, 3);
  Config repo = Load(yaml, {{"GRAVL_DR_REPO_PATH", "/env/repo"}}, {{"repo_path", "/flag/repo"}});
  ASSERT_EQ(repo.repos.size(), 1u);
  EXPECT_EQ(repo.repos[0].path, "/flag/repo");
}

TEST_F(ConfigTest, ConfigPathFromEnvironment) {
  std::string path = dir_ / "other.yaml";
  test::WriteFile(path, kRepos + "stanza: via-env\n");
  Config c = LoadFrom(std::nullopt, {{"GRAVL_DR_CONFIG", path}});
  EXPECT_EQ(c.stanza, "via-env");
  EXPECT_EQ(c.source, path);
}

TEST_F(ConfigTest, UnknownKeyIsNamedWithFileAndLine) {
  ExpectError(kRepos + "stanza: x\nparalel: 3\n",
              {"unknown key 'paralel'", "gravl-dr.yaml line 4"});
  ExpectError(kRepos + "pg:\n  connifo: x\n", {"unknown key 'pg.connifo'", "line 4"});
  ExpectError("repos:\n  - {name: a, type: posix, path: /x, bucket: b}\n",
              {"unknown key 'repos[0].bucket'"});
}

TEST_F(ConfigTest, WrongTypesAreNamed) {
  ExpectError(kRepos + "parallel: two\n", {"'parallel' must be an integer from 1 to 64", "'two'"});
  ExpectError(kRepos + "parallel: 0\n", {"'parallel'"});
  ExpectError(kRepos + "compression: {type: brotli}\n", {"'compression.type' must be one of"});
  ExpectError(kRepos + "compression: {type: zstd, level: 30}\n", {"'compression.level'"});
  ExpectError(kRepos + "stanza: [a, b]\n", {"'stanza' must be a single value"});
  ExpectError(kRepos + "pg: localhost\n", {"'pg' must be a map"});
  ExpectError("repos: /x\n", {"'repos' must be a list"});
  ExpectError(kRepos + "stanza: 'a b'\n", {"'stanza' must be 1-64 letters"});
  ExpectError("- just\n- a list\n", {"top level must be a map"});
  ExpectError("stanza: [unclosed\n", {"invalid YAML"});
}

TEST_F(ConfigTest, EnvironmentValuesAreValidatedToo) {
  ExpectError(kRepos, {"environment variable GRAVL_DR_PARALLEL", "'parallel'"},
              {{"GRAVL_DR_PARALLEL", "many"}});
}

TEST_F(ConfigTest, MissingRequiredValuesAreNamed) {
  ExpectError("stanza: x\n", {"no repository configured", "--repo-path"});
  ExpectError("repos:\n  - {name: a, type: posix}\n", {"'repos[0].path' is required"});
  ExpectError("repos:\n  - {type: posix, path: /x}\n", {"'repos[0].name' is required"});
  ExpectError("repos:\n  - {name: a, type: ftp, path: /x}\n", {"supported repository types"});
  ExpectError("repos:\n  - {name: a, type: posix, path: rel/x}\n", {"absolute path"});
  ExpectError(
      "repos:\n  - {name: a, type: posix, path: /x}\n  - {name: a, type: posix, path: /y}\n",
      {"used twice"});
}

TEST_F(ConfigTest, MissingExplicitFileIsAnError) {
  try {
    LoadFrom(dir_ / "absent.yaml", {});
    FAIL();
  } catch (const ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("cannot read config file"), std::string::npos);
    EXPECT_NE(std::string(e.what()).find("absent.yaml"), std::string::npos);
  }
}

TEST_F(ConfigTest, UnreadableOrEmptySecretIsAnError) {
  ExpectError(kRepos + "encryption: {passphrase_file: " + (dir_ / "nope") + "}\n",
              {"cannot read encryption.passphrase_file", "nope"});
  ExpectError(kRepos + "encryption: {passphrase_file: " + dir_.path() + "}\n",
              {"encryption.passphrase_file"});
  test::WriteFile(dir_ / "empty", "\n");
  ExpectError(kRepos + "encryption: {passphrase_file: " + (dir_ / "empty") + "}\n", {"is empty"});
  ExpectError(kRepos, {"GRAVL_DR_ENCRYPTION_PASSPHRASE is set but empty"},
              {{"GRAVL_DR_ENCRYPTION_PASSPHRASE", ""}});
}

TEST_F(ConfigTest, PassphraseFromEnvironmentWinsAndIsRedacted) {
  Config c = Load(kRepos, {{"GRAVL_DR_ENCRYPTION_PASSPHRASE", "env-only-secret"}});
  ASSERT_TRUE(c.passphrase);
  EXPECT_EQ(*c.passphrase, "env-only-secret");
  EXPECT_EQ(Redact("key=env-only-secret"), "key=******");
}

TEST_F(ConfigTest, S3RepositoryIsParsed) {
  test::WriteFile(dir_ / "secret", "s3-secret-value\n");
  Config c = Load(
      "repos:\n"
      "  - name: east\n"
      "    type: s3\n"
      "    bucket: backups-east\n"
      "    region: us-east-1\n"
      "    prefix: /pg/prod/\n"
      "    endpoint: https://minio.internal:9000/\n"
      "    uri_style: path\n"
      "    storage_class: STANDARD_IA\n"
      "    sse: aws:kms\n"
      "    sse_kms_key_id: alias/backups\n"
      "    verify_tls: false\n"
      "    access_key_id: AKIDEXAMPLE\n"
      "    secret_access_key_file: " +
      (dir_ / "secret") +
      "\n"
      "    part_size_mib: 32\n"
      "    upload_concurrency: 8\n"
      "    retry_timeout: 30\n");
  ASSERT_EQ(c.repos.size(), 1u);
  const auto& s3 = c.repos[0].s3;
  EXPECT_EQ(c.repos[0].type, "s3");
  EXPECT_EQ(s3.bucket, "backups-east");
  EXPECT_EQ(s3.prefix, "pg/prod");
  EXPECT_EQ(s3.endpoint, "https://minio.internal:9000");
  EXPECT_EQ(s3.uri_style, "path");
  EXPECT_EQ(s3.storage_class, "STANDARD_IA");
  EXPECT_EQ(s3.sse, "aws:kms");
  EXPECT_EQ(s3.sse_kms_key_id, "alias/backups");
  EXPECT_FALSE(s3.verify_tls);
  EXPECT_EQ(s3.secret_access_key.value_or(""), "s3-secret-value");
  EXPECT_EQ(s3.part_size_mib, 32);
  EXPECT_EQ(s3.upload_concurrency, 8);
  EXPECT_EQ(s3.retry_timeout, 30);
  EXPECT_EQ(Redact("x s3-secret-value y"), "x ****** y");

  Config defaults = Load("repos: [{name: r, type: s3, bucket: b, region: eu-west-1}]\n");
  EXPECT_EQ(defaults.repos[0].s3.uri_style, "host");
  EXPECT_TRUE(defaults.repos[0].s3.verify_tls);
  EXPECT_TRUE(defaults.repos[0].s3.access_key_id.empty());
}

TEST_F(ConfigTest, S3RepositoryMistakesAreNamed) {
  const std::string head = "repos:\n  - {name: r, type: s3, ";
  ExpectError(head + "region: us-east-1}\n", {"repos[0].bucket", "is required"});
  ExpectError(head + "bucket: b}\n", {"repos[0].region", "is required"});
  ExpectError(head + "bucket: My_Bucket, region: r}\n", {"not a valid bucket name"});
  ExpectError(head + "bucket: b, region: r, uri_style: virtual}\n", {"uri_style", "host, path"});
  ExpectError(head + "bucket: b, region: r, storage_class: DEEP_ARCHIVE}\n",
              {"storage_class", "GLACIER_IR"});
  ExpectError(head + "bucket: b, region: r, sse_kms_key_id: k}\n", {"needs sse: aws:kms"});
  ExpectError(head + "bucket: b, region: r, secret_access_key: inline}\n",
              {"not accepted inline", "secret_access_key_file"});
  ExpectError(head + "bucket: b, region: r, access_key_id: AKID}\n",
              {"both access_key_id and secret_access_key_file"});
  ExpectError(head + "bucket: b, region: r, endpoint: minio:9000}\n", {"must start with https://"});
  ExpectError(head + "bucket: b, region: r, part_size_mib: 2}\n", {"part_size_mib", "from 5"});
  ExpectError(head + "bucket: b, region: r, path: /x}\n", {"unknown key 'repos[0].path'"});
  ExpectError(head + "bucket: b, region: r, secret_access_key_file: " + (dir_ / "none") + "}\n",
              {"secret_access_key_file"});
}

TEST_F(ConfigTest, NotifyTargetsTakeTheirUrlFromAFileOrTheEnvironmentOnly) {
  std::string url_file = dir_ / "slack-url";
  test::WriteFile(url_file, "https://hooks.slack.example/services/T000/B000/XXXXsecret\n");
  Config c = Load(kRepos +
                      "notify:\n  timeout: 5\n  retries: 1\n  targets:\n"
                      "    - {name: slack, format: slack, url_file: " +
                      url_file +
                      ", events: ['*.failure', drill.success]}\n"
                      "    - {name: tickets, url_env: TICKETS_URL}\n",
                  {{"TICKETS_URL", "http://tickets.example/hook?token=abc123secret"}});
  ASSERT_EQ(c.notify.targets.size(), 2u);
  EXPECT_EQ(c.notify.timeout_s, 5);
  EXPECT_EQ(c.notify.retries, 1);
  EXPECT_EQ(c.notify.targets[0].format, "slack");
  EXPECT_EQ(c.notify.targets[0].url, "https://hooks.slack.example/services/T000/B000/XXXXsecret");
  EXPECT_EQ(c.notify.targets[0].events, (std::vector<std::string>{"*.failure", "drill.success"}));
  EXPECT_EQ(c.notify.targets[1].format, "json");
  EXPECT_EQ(c.notify.targets[1].events, (std::vector<std::string>{"*.failure"}));
  // Both URLs are secrets: redacted wherever they would be printed.
  EXPECT_EQ(Redact("posting to http://tickets.example/hook?token=abc123secret"),
            "posting to ******");
  EXPECT_EQ(Redact(c.notify.targets[0].url), "******");

  const std::string head = kRepos + "notify:\n  targets:\n    - ";
  ExpectError(head + "{name: s, url: https://hooks.example/x}\n",
              {"url_file", "url_env", "secret"});
  ExpectError(head + "{name: s, url_env: NOPE}\n", {"NOPE", "not set"});
  ExpectError(head + "{name: s}\n", {"exactly one of url_file and url_env"});
  ExpectError(head + "{url_env: X}\n", {"needs a name"}, {{"X", "https://h/x"}});
  ExpectError(head + "{name: s, url_env: X, format: teams}\n", {"slack or json"},
              {{"X", "https://h/x"}});
  ExpectError(head + "{name: s, url_env: X, events: [backup.failed]}\n",
              {"backup.failed", "KIND.failure"}, {{"X", "https://h/x"}});
  ExpectError(head + "{name: s, url_env: X}\n", {"must start with https://"}, {{"X", "ftp://h"}});
  ExpectError(head + "{name: s, url_env: X, colour: red}\n", {"unknown key", "colour"},
              {{"X", "https://h/x"}});
}

TEST_F(ConfigTest, BackupCopyToNamesConfiguredRepositories) {
  const std::string repos =
      "repos:\n  - {name: eu, type: posix, path: /a}\n  - {name: us, type: posix, path: /b}\n";
  EXPECT_EQ(Load(repos + "backup:\n  copy_to: [us]\n").backup_copy_to,
            (std::vector<std::string>{"us"}));
  EXPECT_EQ(Load(repos + "backup:\n  copy_to: 'us, eu'\n").backup_copy_to,
            (std::vector<std::string>{"us", "eu"}));
  EXPECT_EQ(Load(repos, {{"GRAVL_DR_BACKUP_COPY_TO", "us"}}).backup_copy_to,
            (std::vector<std::string>{"us"}));
  ExpectError(repos + "backup:\n  copy_to: [ap]\n", {"backup.copy_to", "'ap'", "not a configured"});
}

TEST_F(ConfigTest, ExporterOptions) {
  Config c = Load(kRepos + "exporter:\n  listen: 0.0.0.0:9999\n  interval: 15\n");
  EXPECT_EQ(c.exporter.listen, "0.0.0.0:9999");
  EXPECT_EQ(c.exporter.interval_s, 15);
  EXPECT_EQ(c.exporter.full_listing_interval_s, 3600);
  ExpectError(kRepos + "exporter:\n  interval: 0\n", {"exporter.interval"});
}

}  // namespace
}  // namespace gravl

namespace gravl {
namespace {

class RegionsConfig : public ::testing::Test {
 protected:
  Config Load(const std::string& yaml, std::map<std::string, std::string> flags = {}) {
    std::string path = dir_ / "gravl-dr.yaml";
    test::WriteFile(path, kRepos + yaml);
    ConfigInputs in;
    in.config_path = path;
    in.flags = std::move(flags);
    in.getenv = [](const std::string&) -> std::optional<std::string> { return std::nullopt; };
    return LoadConfig(in);
  }
  std::string Error(const std::string& yaml) {
    try {
      Load(yaml);
    } catch (const ConfigError& e) {
      return e.what();
    }
    return "(accepted)";
  }
  test::TempDir dir_;
  const std::string kRepos =
      "repos:\n  - {name: eu, type: posix, path: /r/eu}\n  - {name: us, type: posix, path: "
      "/r/us}\n";
};

TEST_F(RegionsConfig, RegionsAndFailoverPolicyAreParsed) {
  Config c = Load(
      "regions:\n"
      "  - name: eu-north-1\n    repo: eu\n"
      "    pg: {conninfo: \"host=db.eu password=pw-in-conninfo\", data_dir: /var/lib/pg}\n"
      "  - name: us-east-1\n    repo: us\n    pg: {conninfo: host=db.us, archive_command: "
      "'gravl-dr --repo us archive-push %p'}\n"
      "failover:\n"
      "  fence_command: [kubectl, scale, statefulset/db, --replicas=0]\n"
      "  endpoint_command: [dns-update, '{host}']\n"
      "  max_loss: 1MB\n  backup: false\n  timeout: 30\n  hook_timeout: 5\n");
  ASSERT_EQ(c.regions.size(), 2u);
  EXPECT_EQ(c.regions[0].name, "eu-north-1");
  EXPECT_EQ(c.regions[0].data_dir, "/var/lib/pg");
  EXPECT_EQ(c.regions[1].archive_command, "gravl-dr --repo us archive-push %p");
  EXPECT_EQ(c.Region("us-east-1").repo, "us");
  EXPECT_EQ(c.failover.fence_command,
            (std::vector<std::string>{"kubectl", "scale", "statefulset/db", "--replicas=0"}));
  EXPECT_EQ(c.failover.endpoint_command, (std::vector<std::string>{"dns-update", "{host}"}));
  EXPECT_EQ(c.failover.max_loss, "1MB");
  EXPECT_FALSE(c.failover.backup);
  EXPECT_EQ(c.failover.timeout_s, 30);
  EXPECT_EQ(c.failover.hook_timeout_s, 5);
  // A password in a region's connection string is a secret.
  EXPECT_EQ(Redact("connecting with pw-in-conninfo"), "connecting with ******");
  // --max-loss on the command line wins.
  EXPECT_EQ(Load("failover: {max_loss: 1MB}\n", {{"failover.max_loss", "0"}}).failover.max_loss,
            "0");
  try {
    c.Region("ap-south-1");
    FAIL();
  } catch (const ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("configured: eu-north-1, us-east-1"), std::string::npos);
  }
}

TEST_F(RegionsConfig, MistakesAreNamed) {
  EXPECT_NE(Error("regions: {name: x}\n").find("'regions' must be a list"), std::string::npos);
  EXPECT_NE(Error("regions:\n  - {name: x, repo: eu}\n").find("needs pg.conninfo"),
            std::string::npos);
  EXPECT_NE(Error("regions:\n  - {name: x, pg: {conninfo: h}}\n").find("needs repo"),
            std::string::npos);
  EXPECT_NE(Error("regions:\n  - {name: x, repo: ap, pg: {conninfo: h}}\n")
                .find("names repository 'ap', which is not configured"),
            std::string::npos);
  EXPECT_NE(Error("regions:\n  - {name: x, repo: eu, pg: {conninfo: h}}\n  - {name: x, repo: "
                  "us, pg: {conninfo: h}}\n")
                .find("configured twice"),
            std::string::npos);
  EXPECT_NE(Error("regions:\n  - {name: x, repo: eu, pg: {conninfo: h, data_dir: rel}}\n")
                .find("absolute path"),
            std::string::npos);
  EXPECT_NE(Error("regions:\n  - {name: x, repo: eu, pg: {conninfo: h, port: 5}}\n")
                .find("unknown key 'regions[0].pg.port'"),
            std::string::npos);
  EXPECT_NE(Error("failover: {fence_command: 'kubectl scale'}\n")
                .find("'failover.fence_command' must be a non-empty list"),
            std::string::npos);
  EXPECT_NE(Error("failover: {timeout: 0}\n").find("failover.timeout"), std::string::npos);
}

TEST_F(ConfigTest, HaSectionIsParsedWithDurationsAndEndpointLists) {
  Config c = Load(kRepos +
                  "stanza: db1\nha:\n  region: eu-north-1\n  etcd:\n    endpoints: "
                  "[\"https://e1:2379/\", https://e2:2379]\n    ca_file: /etc/ca.pem\n"
                  "  lease_ttl: 20s\n  failover_after: 2m\n  clock_margin: 3s\n"
                  "  mode: manual\n  self_fence: stop\n  failsafe: true\n  max_loss: 1MB\n");
  EXPECT_TRUE(c.ha.configured());
  EXPECT_EQ(c.ha.etcd_endpoints, (std::vector<std::string>{"https://e1:2379", "https://e2:2379"}));
  EXPECT_EQ(c.ha.etcd_prefix, "/gravl-dr/db1");
  EXPECT_EQ(c.ha.etcd_ca_file, "/etc/ca.pem");
  EXPECT_EQ(c.ha.lease_ttl_s, 20);
  EXPECT_EQ(c.ha.failover_after_s, 120);
  EXPECT_EQ(c.ha.clock_margin_s, 3);
  EXPECT_EQ(c.ha.mode, "manual");
  EXPECT_EQ(c.ha.self_fence, "stop");
  EXPECT_TRUE(c.ha.failsafe);
  EXPECT_EQ(c.ha.max_loss, "1MB");
  // Defaults, and the flag form of the endpoints.
  Config d = Load(kRepos, {}, {{"ha.etcd.endpoints", "http://a:2379, http://b:2379"}});
  EXPECT_EQ(d.ha.etcd_endpoints.size(), 2u);
  EXPECT_EQ(d.ha.lease_ttl_s, 30);
  EXPECT_EQ(d.ha.failover_after_s, 300);
  EXPECT_EQ(d.ha.mode, "automatic");
  EXPECT_FALSE(Load(kRepos).ha.configured());
}

TEST_F(ConfigTest, HaTimingThatCannotBeSafeIsRefused) {
  ExpectError(kRepos + "ha:\n  lease_ttl: 1s\n", {"ha.lease_ttl", "at least 2s"});
  ExpectError(kRepos + "ha:\n  lease_ttl: 4s\n  clock_margin: 2s\n",
              {"ha.clock_margin", "less than half"});
  ExpectError(kRepos + "ha:\n  etcd: {endpoints: [etcd-1:2379]}\n",
              {"ha.etcd.endpoints", "http://"});
  ExpectError(kRepos + "ha:\n  mode: sometimes\n", {"ha.mode", "automatic, manual"});
  ExpectError(kRepos + "ha:\n  etcd: {prefix: gravl}\n", {"ha.etcd.prefix", "'/'"});
  ExpectError(kRepos + "ha:\n  failover_after: soon\n", {"ha.failover_after"});
}

TEST_F(ConfigTest, WalReceiveSectionHasDefaultsAndMillisecondIntervals) {
  Config d = Load(kRepos);
  EXPECT_EQ(d.wal_receive.slot, "gravl_dr");
  EXPECT_EQ(d.wal_receive.application_name, "gravl_dr");
  EXPECT_TRUE(d.wal_receive.synchronous);
  EXPECT_EQ(d.wal_receive.partial_interval_ms, 1000);
  EXPECT_EQ(d.wal_receive.max_spool_segments, 64);
  EXPECT_EQ(d.wal_receive.listen, "127.0.0.1:9189");
  EXPECT_TRUE(d.wal_receive.conninfo.empty());
  Config c = Load(kRepos +
                  "wal_receive:\n  conninfo: \"host=a,b target_session_attrs=primary\"\n"
                  "  slot: dr_1\n  application_name: dr_app\n  synchronous: false\n"
                  "  spool_path: /spool\n  partial_interval: 250ms\n  max_spool_segments: 8\n");
  EXPECT_EQ(c.wal_receive.conninfo, "host=a,b target_session_attrs=primary");
  EXPECT_EQ(c.wal_receive.slot, "dr_1");
  EXPECT_EQ(c.wal_receive.application_name, "dr_app");
  EXPECT_FALSE(c.wal_receive.synchronous);
  EXPECT_EQ(c.wal_receive.spool_path, "/spool");
  EXPECT_EQ(c.wal_receive.partial_interval_ms, 250);
  EXPECT_EQ(c.wal_receive.max_spool_segments, 8);
  EXPECT_EQ(
      Load(kRepos, {}, {{"wal_receive.partial_interval", "2s"}}).wal_receive.partial_interval_ms,
      2000);
}

TEST_F(ConfigTest, WalReceiveRefusesBadSlotNamesAndIntervals) {
  ExpectError(kRepos + "wal_receive:\n  slot: Gravl-DR\n", {"wal_receive.slot", "lower-case"});
  ExpectError(kRepos + "wal_receive:\n  application_name: \"a b\"\n",
              {"wal_receive.application_name"});
  ExpectError(kRepos + "wal_receive:\n  partial_interval: 5ms\n",
              {"wal_receive.partial_interval", "10ms"});
  ExpectError(kRepos + "wal_receive:\n  partial_interval: 2h\n",
              {"wal_receive.partial_interval", "1h"});
  ExpectError(kRepos + "wal_receive:\n  max_spool_segments: 0\n",
              {"wal_receive.max_spool_segments"});
  ExpectError(kRepos + "wal_receive:\n  spool: /x\n", {"unknown key", "wal_receive.spool"});
}

}  // namespace
}  // namespace gravl
