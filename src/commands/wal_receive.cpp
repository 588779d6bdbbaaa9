// wal-receive: the WAL streaming receiver (docs/wal-receive.md). Streams WAL over a physical
// replication slot from a primary or a cascading standby into the repositories
// (receive/receiver.h says what is durable when), follows timeline switches, reconnects with
// backoff, and serves /healthz, /status and /metrics on wal_receive.listen. SIGTERM or SIGINT
// stops it (exit 0) with what was received safe in the spool.

#include <spdlog/spdlog.h>

#include <atomic>
#include <chrono>
#include <memory>
#include <mutex>
#include <thread>

#include "commands/cli.h"
#include "commands/commands.h"
#include "commands/http_server.h"
#include "common/cleanup.h"
#include "common/error.h"
#include "common/log.h"
#include "metrics/family_set.h"
#include "pg/connection.h"
#include "pg/wal_stream.h"
#include "receive/receiver.h"
#include "repo/wal_index.h"
#include "version.h"

namespace gravl::commands {
namespace {

constexpr const char* kListenSetting = "wal_receive.listen or --receive-listen";

struct WalReceiveOptions {
  bool create_slot = false;
};

// What the HTTP side shows besides the receiver's own status.
struct Session {
  std::mutex mu;
  bool connected = false;
  std::string server;  // redacted conninfo
  bool synchronous_listed = false;
  std::uint64_t reconnects = 0;
  std::string last_error;
  std::chrono::steady_clock::time_point since = std::chrono::steady_clock::now();
};

nlohmann::json StatusJson(const receive::ReceiverStatus& s, Session& session, bool synchronous) {
  std::lock_guard lock(session.mu);
  auto lag = [&](Lsn pos) {
    return s.server_end > pos ? static_cast<double>(s.server_end.value - pos.value) : 0.0;
  };
  return {{"connected", session.connected},
          {"server", session.server},
          {"synchronous", synchronous},
          {"synchronous_standby_listed", session.synchronous_listed},
          {"timeline", s.timeline},
          {"server_end", s.server_end.ToString()},
          {"received", s.received.ToString()},
          {"spooled", s.spooled.ToString()},
          {"uploaded", s.uploaded.ToString()},
          {"archived", s.archived.ToString()},
          {"acknowledged", s.acknowledged.ToString()},
          {"rpo_bytes", lag(s.uploaded)},
          {"rpo_seconds", s.upload_lag_seconds},
          {"pending_segments", s.pending_segments},
          {"waiting_for_spool", s.waiting_for_spool},
          {"chunks_uploaded", s.chunks_uploaded},
          {"segments_archived", s.segments_archived},
          {"upload_failures", s.upload_failures},
          {"push_failures", s.push_failures},
          {"reconnects", session.reconnects},
          {"last_error", s.last_error.empty() ? session.last_error : s.last_error}};
}

std::string MetricsText(const receive::ReceiverStatus& s, Session& session, bool synchronous,
                        const std::string& slot) {
  metrics::FamilySet f;
  {
    std::lock_guard lock(session.mu);
    f.Gauge("gravl_receive_up", {}, session.connected ? 1 : 0);
    f.Counter("gravl_receive_reconnects_total", {}, static_cast<double>(session.reconnects));
  }
  f.Gauge("gravl_receive_synchronous", {}, synchronous ? 1 : 0);
  f.Gauge("gravl_receive_timeline", {}, s.timeline);
  const std::pair<const char*, Lsn> stages[] = {{"received", s.received},
                                                {"spooled", s.spooled},
                                                {"uploaded", s.uploaded},
                                                {"archived", s.archived},
                                                {"acknowledged", s.acknowledged}};
  f.Gauge("gravl_receive_position_bytes", {{"stage", "server"}},
          static_cast<double>(s.server_end.value));
  for (const auto& [stage, pos] : stages) {
    f.Gauge("gravl_receive_position_bytes", {{"stage", stage}}, static_cast<double>(pos.value));
    f.Gauge("gravl_receive_lag_bytes", {{"stage", stage}},
            s.server_end > pos ? static_cast<double>(s.server_end.value - pos.value) : 0.0);
  }
  f.Gauge("gravl_receive_lag_seconds", {{"stage", "spooled"}}, s.spool_lag_seconds);
  f.Gauge("gravl_receive_lag_seconds", {{"stage", "uploaded"}}, s.upload_lag_seconds);
  f.Gauge(
      "gravl_receive_rpo_bytes", {},
      s.server_end > s.uploaded ? static_cast<double>(s.server_end.value - s.uploaded.value) : 0.0);
  f.Gauge("gravl_receive_rpo_seconds", {}, s.upload_lag_seconds);
  f.Gauge("gravl_receive_slot_retained_bytes", {{"slot", slot}},
          s.server_end > s.acknowledged
              ? static_cast<double>(s.server_end.value - s.acknowledged.value)
              : 0.0);
  f.Gauge("gravl_receive_spool_segments", {}, static_cast<double>(s.pending_segments));
  f.Gauge("gravl_receive_waiting", {}, s.waiting_for_spool ? 1 : 0);
  f.Counter("gravl_receive_chunks_uploaded_total", {}, static_cast<double>(s.chunks_uploaded));
  f.Counter("gravl_receive_segments_archived_total", {}, static_cast<double>(s.segments_archived));
  f.Counter("gravl_receive_failures_total", {{"stage", "upload"}},
            static_cast<double>(s.upload_failures));
  f.Counter("gravl_receive_failures_total", {{"stage", "archive"}},
            static_cast<double>(s.push_failures));
  f.Counter("gravl_receive_timelines_followed_total", {},
            static_cast<double>(s.timelines_followed));
  return f.Text();
}

class Handler : public CivetHandler {
 public:
  enum class Kind { kHealth, kStatus, kMetrics };
  Handler(receive::Receiver& receiver, Session& session, const WalReceiveConfig& cfg, Kind kind)
      : receiver_(receiver), session_(session), cfg_(cfg), kind_(kind) {}
  bool handleGet(CivetServer*, mg_connection* conn) override {
    receive::ReceiverStatus s = receiver_.Status();
    switch (kind_) {
      case Kind::kMetrics:
        Reply(conn, 200, "text/plain; version=0.0.4; charset=utf-8",
              MetricsText(s, session_, cfg_.synchronous, cfg_.slot));
        break;
      case Kind::kStatus:
        Reply(conn, 200, "application/json",
              StatusJson(s, session_, cfg_.synchronous).dump() + "\n");
        break;
      case Kind::kHealth: {
        // Healthy while streaming, or disconnected for less than a minute (a restart of the
        // server, a failover); unhealthy while uploads fail for longer than that too.
        bool ok;
        {
          std::lock_guard lock(session_.mu);
          ok = session_.connected ||
               std::chrono::steady_clock::now() - session_.since < std::chrono::minutes(1);
        }
        if (!s.last_error.empty() && s.upload_lag_seconds > 60) ok = false;
        nlohmann::json body = {{"status", ok ? "ok" : "unhealthy"},
                               {"version", kVersion},
                               {"timeline", s.timeline},
                               {"acknowledged", s.acknowledged.ToString()}};
        Reply(conn, ok ? 200 : 503, "application/json", body.dump() + "\n");
        break;
      }
    }
    return true;
  }

 private:
  receive::Receiver& receiver_;
  Session& session_;
  const WalReceiveConfig& cfg_;
  Kind kind_;
};

// The timeline of `lsn` in the server's history (whose newest timeline is `current`), and the
// position to start from: `lsn`, or the end of `tli` when `lsn` lies beyond it (WAL the server
// never had: a fork, reported). Throws PgError when `tli` is not in the server's history.
std::pair<TimelineId, Lsn> PlaceOnServer(pg::Connection& replication, TimelineId current,
                                         TimelineId tli, Lsn lsn) {
  if (tli == current) return {tli, lsn};
  if (tli > current) {
    throw PgError("the server is on timeline " + std::to_string(current) +
                  ", behind the receiver's timeline " + std::to_string(tli) +
                  ": it is not the current primary (or is a standby that has not followed yet)");
  }
  auto file = pg::FetchTimelineHistory(replication, current);
  auto history = repo::ParseHistory(AsChars(file.content), file.name);
  // Entries oldest first: `parent` ended at `switch_lsn`.
  for (const auto& e : history) {
    if (e.parent != tli) continue;
    if (lsn > e.switch_lsn) {
      spdlog::warn(
          "event=fork timeline={} received_to={} timeline_end={} bytes_beyond={} note=\"WAL of "
          "timeline {} beyond its end on this server is not part of the new history; it stays in "
          "the repository's partial chunks and is never restored along the new timeline\"",
          tli, lsn.ToString(), e.switch_lsn.ToString(), lsn.value - e.switch_lsn.value, tli);
      return {tli, e.switch_lsn};
    }
    return {tli, lsn};
  }
  throw PgError("timeline " + std::to_string(tli) + " is not in the history of the server's " +
                "timeline " + std::to_string(current) +
                ": the server is not a descendant of the one the receiver streamed from");
}

bool ListsStandby(const std::string& names, const std::string& application_name) {
  if (names.find('*') != std::string::npos) return true;
  std::string lower;
  for (char c : names) lower += static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  auto pos = lower.find(application_name);
  while (pos != std::string::npos) {
    auto before = pos == 0 ? ' ' : lower[pos - 1];
    auto after_i = pos + application_name.size();
    char after = after_i < lower.size() ? lower[after_i] : ' ';
    auto word = [](char c) { return std::isalnum(static_cast<unsigned char>(c)) || c == '_'; };
    if (!word(before) && !word(after)) return true;
    pos = lower.find(application_name, pos + 1);
  }
  return false;
}

int WalReceive(const Context& ctx, const WalReceiveOptions& options) {
  const Config& cfg = ctx.config;
  const WalReceiveConfig& wr = cfg.wal_receive;
  const std::string conninfo_base = wr.conninfo.empty() ? cfg.pg_conninfo : wr.conninfo;
  const std::string conninfo = conninfo_base + (conninfo_base.empty() ? "" : " ") +
                               "application_name=" + wr.application_name;

  Context::WalTargets targets = ctx.OpenWalTargets();
  const std::vector<repo::Repository*>& repos = targets.repos;
  const std::string& sysid = targets.system_identifier;
  const std::uint64_t seg_size = targets.segment_size;
  const std::string spool_dir = wr.spool_path + "/" + cfg.stanza;

  if (ctx.dry_run) {
    auto conn = pg::Connection::Open(conninfo, true);
    pg::SystemIdentity id = pg::IdentifySystem(*conn);
    if (id.system_identifier != sysid) {
      throw ConflictError("the server " + conn->description() + " has system identifier " +
                          id.system_identifier + ", but stanza '" + cfg.stanza + "' is " + sysid);
    }
    auto slot = pg::ReadReplicationSlot(*conn, wr.slot);
    if (!slot && !options.create_slot) {
      throw ConfigError("replication slot '" + wr.slot + "' does not exist on " +
                        conn->description() + ": run wal-receive with --create-slot");
    }
    auto names = conn->QueryValue("SHOW synchronous_standby_names").value_or("");
    Listen(wr.listen, 1, kListenSetting).server->close();
    nlohmann::json out = {{"server", conn->description()},
                          {"timeline", id.timeline},
                          {"position", id.xlogpos.ToString()},
                          {"slot", wr.slot},
                          {"slot_exists", slot.has_value()},
                          {"synchronous", wr.synchronous},
                          {"synchronous_standby_listed", ListsStandby(names, wr.application_name)},
                          {"spool", spool_dir},
                          {"listen", wr.listen},
                          {"repos", repos.size()}};
    ctx.Emit(out, "wal-receive (dry run): " + conn->description() + " on timeline " +
                      std::to_string(id.timeline) + " at " + id.xlogpos.ToString() + "; slot '" +
                      wr.slot + "' " + (slot ? "exists" : "would be created") + "; spool " +
                      spool_dir + "; would listen on " + wr.listen + "; nothing was changed\n");
    return 0;
  }

  receive::ReceiverOptions ro;
  ro.spool_dir = spool_dir;
  ro.segment_size = seg_size;
  ro.system_identifier = sysid;
  ro.synchronous = wr.synchronous;
  ro.partial_interval = std::chrono::milliseconds(wr.partial_interval_ms);
  ro.compression = cfg.compression;
  ro.compression_level = cfg.compression_level;
  ro.max_spool_segments = wr.max_spool_segments;
  receive::Receiver receiver(ro, repos);

  std::atomic<bool> stop{false};
  SetStopHandler([&](int sig) {
    spdlog::info("event=stopping signal={}", sig);
    stop = true;
  });

  Session session;
  Listening listening = Listen(wr.listen, 2, kListenSetting);
  Handler health(receiver, session, wr, Handler::Kind::kHealth);
  Handler status(receiver, session, wr, Handler::Kind::kStatus);
  Handler metrics_handler(receiver, session, wr, Handler::Kind::kMetrics);
  listening.server->addHandler("/healthz", health);
  listening.server->addHandler("/status", status);
  listening.server->addHandler("/metrics", metrics_handler);
  spdlog::info(
      "event=started listen={} slot={} application_name={} synchronous={} partial_interval_ms={} "
      "spool={} repos={} version={}",
      listening.address, wr.slot, wr.application_name, wr.synchronous, wr.partial_interval_ms,
      spool_dir, repos.size(), kVersion);

  std::optional<std::pair<TimelineId, Lsn>> position;  // where this process resumes streaming
  int failures = 0;
  bool first = true;
  while (!stop) {
    std::unique_ptr<pg::Connection> conn;
    try {
      conn = pg::Connection::Open(conninfo, true);
      pg::SystemIdentity id = pg::IdentifySystem(*conn);
      if (id.system_identifier != sysid) {
        throw ConflictError("the server " + conn->description() + " has system identifier " +
                            id.system_identifier + ", but stanza '" + cfg.stanza + "' is " + sysid +
                            ": wal_receive.conninfo names another cluster");
      }
      if (options.create_slot) pg::CreatePhysicalSlot(*conn, wr.slot);
      auto slot = pg::ReadReplicationSlot(*conn, wr.slot);
      if (!slot) {
        throw ConfigError("replication slot '" + wr.slot + "' does not exist on " +
                          conn->description() +
                          ": run wal-receive with --create-slot (after a failover the new "
                          "primary has no slot of its own yet)");
      }
      bool listed = ListsStandby(conn->QueryValue("SHOW synchronous_standby_names").value_or(""),
                                 wr.application_name);
      if (wr.synchronous && !listed) {
        spdlog::warn(
            "event=not-synchronous application_name={} note=\"synchronous_standby_names on the "
            "server does not list it: commits do not wait for the repository (RPO 0 needs "
            "synchronous_standby_names = '{}')\"",
            wr.application_name, wr.application_name);
      }
      TimelineId tli;
      Lsn start;
      if (position) {
        std::tie(tli, start) = *position;
      } else if (slot->restart_lsn.value != 0) {
        tli = slot->restart_tli ? slot->restart_tli : id.timeline;
        start = slot->restart_lsn;
      } else {
        tli = id.timeline;
        start = id.xlogpos;
      }
      std::tie(tli, start) = PlaceOnServer(*conn, id.timeline, tli, start);
      start.value -= start.value % seg_size;
      {
        std::lock_guard lock(session.mu);
        session.connected = true;
        session.server = conn->description();
        session.synchronous_listed = listed;
        if (!first) ++session.reconnects;
        session.last_error.clear();
        session.since = std::chrono::steady_clock::now();
      }
      spdlog::info(
          "event=connected server=\"{}\" timeline={} server_timeline={} start={} "
          "synchronous_standby_listed={}",
          conn->description(), tli, id.timeline, start.ToString(), listed);
      first = false;
      failures = 0;
      receiver.Begin(tli, start);
      while (!stop) {
        pg::WalStream stream(*conn, wr.slot, start, tli);
        pg::StreamEvent ev = receive::RunStream(stream, receiver, stop);
        position = receiver.ResumePosition();
        if (ev.kind == pg::StreamEvent::Kind::kTimelineEnd) {
          auto history = pg::FetchTimelineHistory(*conn, ev.next_timeline);
          receiver.EndTimeline(history.name, history.content);
          tli = ev.next_timeline;
          start = Lsn{ev.next_start.value - ev.next_start.value % seg_size};
          spdlog::info("event=timeline-switch timeline={} start={}", tli, start.ToString());
          receiver.Begin(tli, start);
          position = std::make_pair(tli, start);
          continue;
        }
        if (ev.kind == pg::StreamEvent::Kind::kEnded) {
          throw PgError("the server ended the stream (shut down or no longer streaming)", true);
        }
        break;  // stopped
      }
    } catch (const ConflictError&) {
      throw;
    } catch (const ConfigError&) {
      throw;
    } catch (const Error& e) {
      if (stop) break;
      if (receiver.Status().timeline != 0) position = receiver.ResumePosition();
      std::string msg = Redact(e.what());
      {
        std::lock_guard lock(session.mu);
        if (session.connected) session.since = std::chrono::steady_clock::now();
        session.connected = false;
        session.last_error = msg;
      }
      auto wait = std::chrono::milliseconds(std::min(10000, 500 << std::min(failures++, 5)));
      spdlog::warn("event=disconnected error=\"{}\" retry_in_ms={}", msg, wait.count());
      for (auto t = std::chrono::milliseconds(0); t < wait && !stop;
           t += std::chrono::milliseconds(100)) {
        std::this_thread::sleep_for(std::chrono::milliseconds(100));
      }
    }
  }
  {
    std::lock_guard lock(session.mu);
    session.connected = false;
  }
  // What arrived is in the spool; give the uploads a moment to catch up.
  receiver.WaitUploaded(receiver.Received(), std::chrono::seconds(5));
  receive::ReceiverStatus s = receiver.Status();
  receiver.Stop();
  listening.server->close();
  spdlog::info("event=stopped received={} uploaded={} archived={} pending_segments={}",
               s.received.ToString(), s.uploaded.ToString(), s.archived.ToString(),
               s.pending_segments);
  return 0;
}

}  // namespace

void AddWalReceive(CLI::App& app, Invocation& inv) {
  auto options = std::make_shared<WalReceiveOptions>();
  auto* cmd = app.add_subcommand(
      "wal-receive",
      "WAL streaming receiver: streams WAL from a replication slot into every repository -- "
      "completed segments like archive-push, the segment being written as partial chunks -- "
      "and, with wal_receive.synchronous, acknowledges only what the repositories hold (RPO "
      "0); serves /healthz, /status and /metrics on wal_receive.listen");
  cmd->add_flag("--create-slot", options->create_slot,
                "create the physical replication slot wal_receive.slot where it is missing");
  cmd->add_flag("--dry-run", inv.dry_run,
                "check the configuration, the server, the slot and the listen address; change "
                "nothing");
  cmd->callback([&inv, options] { inv.result = WalReceive(inv.MakeContext(), *options); });
}

}  // namespace gravl::commands
