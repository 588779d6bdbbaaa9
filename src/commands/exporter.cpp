// exporter: the metrics daemon. Serves /metrics (Prometheus text format) and /healthz over
// HTTP (civetweb) on exporter.listen (127.0.0.1:9187 by default), refreshing its view of every
// configured repository and of PostgreSQL every exporter.interval seconds on its own thread
// -- a scrape only reads the last snapshot, so it never waits for a repository. With
// --textfile PATH it refreshes once and writes the metrics to PATH (atomically) for
// node_exporter's textfile collector; --dry-run checks the address and refreshes once. Logs one
// structured line per event to stderr; SIGTERM or SIGINT stops it cleanly (exit 0).

#include "metrics/exporter.h"

#include <CivetServer.h>

#include <chrono>
#include <condition_variable>
#include <mutex>
#include <nlohmann/json.hpp>

#include "commands/cli.h"
#include "commands/commands.h"
#include "commands/http_server.h"
#include "common/cleanup.h"
#include "common/error.h"
#include "common/log.h"
#include "io/file.h"
#include "version.h"

namespace gravl::commands {

namespace {

constexpr const char* kListenSetting = "exporter.listen or --listen";

class MetricsHandler : public CivetHandler {
 public:
  explicit MetricsHandler(const metrics::Exporter& exporter) : exporter_(exporter) {}
  bool handleGet(CivetServer*, mg_connection* conn) override {
    std::string body = exporter_.Text();
    if (body.empty()) {
      Reply(conn, 503, "text/plain", "no refresh has completed yet\n");
    } else {
      Reply(conn, 200, "text/plain; version=0.0.4; charset=utf-8", body);
    }
    return true;
  }

 private:
  const metrics::Exporter& exporter_;
};

// /healthz: 200 while refreshes complete in time (a repository that is down is a metric, not
// ill health); 503 before the first refresh and when the last one is older than three
// intervals (the refresh thread is stuck).
class HealthHandler : public CivetHandler {
 public:
  HealthHandler(const metrics::Exporter& exporter, std::chrono::seconds interval)
      : exporter_(exporter), interval_(interval) {}
  bool handleGet(CivetServer*, mg_connection* conn) override {
    metrics::Health h = exporter_.GetHealth();
    auto now = std::chrono::system_clock::now();
    double age = h.last_refresh ? std::chrono::duration<double>(now - *h.last_refresh).count() : -1;
    bool ok = h.refreshed && age <= 3.0 * static_cast<double>(interval_.count()) + 30;
    nlohmann::json body = {{"status", ok ? "ok" : "unhealthy"},
                           {"version", kVersion},
                           {"refreshed", h.refreshed},
                           {"last_refresh_age_seconds", age},
                           {"refresh_seconds", h.refresh_seconds},
                           {"problems", h.problems}};
    Reply(conn, ok ? 200 : 503, "application/json", body.dump() + "\n");
    return true;
  }

 private:
  const metrics::Exporter& exporter_;
  std::chrono::seconds interval_;
};

int WriteTextfile(const Context& ctx, const std::string& path) {
  metrics::Exporter exporter(ctx.config);
  exporter.Refresh(std::chrono::system_clock::now());
  io::AtomicFileOptions options;
  options.mode = 0644;  // node_exporter reads it
  io::AtomicFileSink sink(path, options);
  std::string text = exporter.Text();
  sink.Write(AsBytes(text));
  sink.Commit();
  metrics::Health h = exporter.GetHealth();  // problems were logged as they happened
  ctx.Emit({{"textfile", path}, {"bytes", text.size()}, {"problems", h.problems}},
           "metrics written to " + path + " (" + std::to_string(text.size()) + " bytes)\n");
  return 0;
}

// --dry-run: the configuration checked, the address bound and released, one refresh; what
// would be served is printed and nothing keeps running.
int DryRun(const Context& ctx) {
  std::string bound;
  {
    Listening probe = Listen(ctx.config.exporter.listen, 1, kListenSetting);
    bound = probe.address;
    probe.server->close();
  }
  metrics::Exporter exporter(ctx.config);
  exporter.Refresh(std::chrono::system_clock::now());
  const std::string text = exporter.Text();
  std::size_t series = 0;
  for (std::size_t at = 0; at < text.size();) {
    std::size_t end = text.find('\n', at);
    if (end == std::string::npos) end = text.size();
    if (text[at] != '#' && end > at) ++series;
    at = end + 1;
  }
  metrics::Health h = exporter.GetHealth();
  ctx.Emit({{"dry_run", true},
            {"listen", ctx.config.exporter.listen},
            {"interval_s", ctx.config.exporter.interval_s},
            {"series", series},
            {"problems", h.problems}},
           "would serve /metrics and /healthz on " + ctx.config.exporter.listen + " (" + bound +
               " is free), refreshing every " + std::to_string(ctx.config.exporter.interval_s) +
               " s: " + std::to_string(series) + " series now, " +
               std::to_string(h.problems.size()) + " problems\n");
  return 0;
}

int Serve(const Context& ctx) {
  const auto interval = std::chrono::seconds(ctx.config.exporter.interval_s);
  metrics::Exporter exporter(ctx.config);

  std::mutex mutex;
  std::condition_variable wake;
  bool stop = false;
  SetStopHandler([&](int sig) {
    spdlog::info("event=stopping signal={}", sig);
    std::lock_guard lock(mutex);
    stop = true;
    wake.notify_all();
  });

  Listening listening = Listen(ctx.config.exporter.listen, 4, kListenSetting);
  CivetServer* server = listening.server.get();
  MetricsHandler metrics_handler(exporter);
  HealthHandler health_handler(exporter, interval);
  server->addHandler("/metrics", metrics_handler);
  server->addHandler("/healthz", health_handler);
  const std::string& bound = listening.address;
  spdlog::info("event=listening address={} interval_s={} repositories={} postgres={}", bound,
               interval.count(), ctx.config.repos.size(), !ctx.config.pg_conninfo.empty());

  while (true) {
    auto started = std::chrono::steady_clock::now();
    exporter.Refresh(std::chrono::system_clock::now());
    metrics::Health h = exporter.GetHealth();
    spdlog::info("event=refreshed seconds={:.3f} problems={}", h.refresh_seconds,
                 h.problems.size());
    std::unique_lock lock(mutex);
    if (wake.wait_until(lock, started + interval, [&] { return stop; })) break;
  }
  server->close();
  spdlog::info("event=stopped");
  return 0;
}

}  // namespace

void AddExporter(CLI::App& app, Invocation& inv) {
  auto textfile = std::make_shared<std::string>();
  auto* cmd = app.add_subcommand(
      "exporter",
      "Serve Prometheus metrics (/metrics) and health (/healthz) on exporter.listen "
      "(--listen), refreshed every exporter.interval seconds; with --textfile, write them once");
  cmd->add_option("--textfile", *textfile,
                  "write the metrics once to this file (node_exporter's textfile collector) and "
                  "exit");
  cmd->add_flag("--dry-run", inv.dry_run,
                "check the configuration and the address, refresh once, print what would be "
                "served; serve nothing");
  cmd->callback([&inv, textfile] {
    Context ctx = inv.MakeContext();
    inv.result = ctx.dry_run         ? DryRun(ctx)
                 : textfile->empty() ? Serve(ctx)
                                     : WriteTextfile(ctx, *textfile);
  });
}

}  // namespace gravl::commands
