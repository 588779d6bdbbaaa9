// standby-create: a streaming standby built from the repository (docs/failover.md) -- the
// newest backup restored in this region, restore_command for the WAL since, then streaming
// from the primary -- so no base backup crosses the WAN. --delta reuses an existing data
// directory (its own configuration files are kept).

#include <spdlog/spdlog.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "commands/cli.h"
#include "commands/commands.h"
#include "commands/run_record.h"
#include "common/error.h"
#include "common/log.h"
#include "ha/ha.h"
#include "pg/connection.h"
#include "pg/instance.h"
#include "pg/server.h"

namespace gravl::commands {

int StandbyCreate(const Context& ctx, const StandbyCreateOptions& options) {
  const Config& cfg = ctx.config;
  StandbyCreateOptions o = options;
  RegionConfig self;
  self.name = "standby";
  const RegionConfig* primary_region = nullptr;
  if (!o.region.empty()) {
    self = cfg.Region(o.region);
    if (o.pgdata.empty()) o.pgdata = self.data_dir;
    if (o.primary_conninfo.empty()) {
      for (const auto& r : cfg.regions) {
        if (r.name == self.name) continue;
        if (ha::ProbeRegion(r).writable()) primary_region = &r;
      }
      if (primary_region == nullptr) {
        throw PgError(
            "no other region has a writable primary to stream from; give "
            "--primary-conninfo");
      }
      o.primary_conninfo = primary_region->conninfo;
    }
  }
  if (o.pgdata.empty()) throw UsageError("give --pgdata DIR (or --region with pg.data_dir)");
  if (o.primary_conninfo.empty()) throw UsageError("give --primary-conninfo (or --region)");
  for (const auto& s : o.settings) {
    auto eq = s.find('=');
    if (eq == std::string::npos || eq == 0 || s.find('\n') != std::string::npos) {
      throw UsageError("--set takes NAME=VALUE (one setting), got '" + s + "'");
    }
  }
  if (o.start && o.region.empty()) {
    throw UsageError(
        "--start waits until the standby streams, which needs its connection: "
        "use --region (regions[].pg.conninfo)");
  }
  ha::StepLog log;
  nlohmann::json details = {{"pgdata", o.pgdata}, {"delta", o.delta}, {"slot", o.slot}};
  if (ctx.run) {
    ctx.run->label = self.name;
    ctx.run->repo = self.repo;  // --region: its repository; else set by the restore below
  }
  const std::string primary_ci =
      o.primary_conninfo + (o.region.empty() ? "" : " application_name=" + self.name);

  auto finish = [&] { log.Finish(details, ctx.run.get()); };
  try {
    log.Run("primary", [&] {
      auto conn = pg::Connection::Open(o.primary_conninfo);
      pg::ServerRole role = pg::GetServerRole(*conn);
      if (role.in_recovery) {
        throw UsageError("--primary-conninfo points at a standby; point it at the primary");
      }
      if (!o.slot.empty() && !ctx.dry_run) pg::EnsurePhysicalSlot(*conn, o.slot);
      return "primary on timeline " + std::to_string(role.timeline) +
             (o.slot.empty() ? "" : ", slot " + o.slot);
    });
    std::map<std::string, std::string> kept_config;
    if (o.delta && std::filesystem::exists(o.pgdata + "/PG_VERSION")) {
      kept_config = pg::LocalServer(pg::ResolveBinDir(cfg.pg_bin_dir), o.pgdata).SaveConfigFiles();
    }
    log.Run("restore", [&] {
      Context rctx = ctx;
      rctx.run.reset();
      rctx.output = OutputFormat::kJson;
      std::ostringstream captured;
      rctx.out = &captured;
      RestoreOptions ro;
      ro.pgdata = o.pgdata;
      ro.delta = o.delta;
      ro.standby = true;
      ro.primary_conninfo = primary_ci;
      ro.primary_slot_name = o.slot;
      RestoreResult result;
      Restore(rctx, ro, &result);
      if (ctx.dry_run) return std::string("would restore (dry run)");
      details["backup"] = result.label;
      details["repo"] = result.repo;
      if (ctx.run && ctx.run->repo.empty()) ctx.run->repo = result.repo;
      return "backup " + result.label + " from " + result.repo;
    });
    if (ctx.dry_run) {
      finish();
      ctx.Emit(details, "standby-create (dry run): nothing was changed\n" + log.Text());
      return 0;
    }
    if (!kept_config.empty()) {
      // The host's own configuration, with the recovery block restore just wrote.
      auto restored_auto = pg::LocalServer("", o.pgdata).SaveConfigFiles()["postgresql.auto.conf"];
      kept_config["postgresql.auto.conf"] = restored_auto;
      pg::LocalServer("", o.pgdata).RestoreConfigFiles(kept_config);
    }
    if (!o.settings.empty()) {
      std::ofstream conf(o.pgdata + "/postgresql.auto.conf", std::ios::app);
      conf << "# standby-create --set\n";
      for (const auto& s : o.settings) {
        auto eq = s.find('=');
        conf << s.substr(0, eq) << " = " << pg::QuoteLiteral(s.substr(eq + 1)) << "\n";
      }
      if (!conf) throw StorageError("cannot write " + o.pgdata + "/postgresql.auto.conf");
    }
    if (o.start) {
      log.Run("start", [&] {
        pg::LocalServer server(pg::ResolveBinDir(cfg.pg_bin_dir), o.pgdata);
        server.Start(std::chrono::seconds(cfg.failover.timeout_s));
        Lsn want =
            ha::ProbeRegion(RegionConfig{"primary", "", o.primary_conninfo, "", ""}).role.current;
        ha::WaitStreaming(self, 0, std::chrono::seconds(cfg.failover.timeout_s));
        ha::WaitReplayed(self, want, std::chrono::seconds(cfg.failover.timeout_s));
        return self.name + " streams and replayed up to " + want.ToString();
      });
    }
  } catch (const Error&) {
    finish();
    throw;
  }
  finish();
  ctx.Emit(details, "standby created in " + o.pgdata + "\n" + log.Text());
  return 0;
}

void AddStandbyCreate(CLI::App& app, Invocation& inv) {
  auto options = std::make_shared<StandbyCreateOptions>();
  auto* cmd = app.add_subcommand(
      "standby-create",
      "Build a streaming standby from the repository (newest backup, archived WAL, then "
      "streaming): no base backup crosses the WAN");
  cmd->add_option("--region", options->region,
                  "the region the standby is in (pgdata, its connection and the primary's from "
                  "regions[])");
  cmd->add_option("--pgdata", options->pgdata, "the standby's data directory");
  cmd->add_option("--primary-conninfo", options->primary_conninfo,
                  "the primary to stream from (default with --region: the region whose server "
                  "is primary)");
  cmd->add_option("--slot", options->slot,
                  "a physical replication slot on the primary (created if missing)");
  cmd->add_flag("--delta", options->delta,
                "reuse an existing data directory: rewrite only what differs, keep its "
                "configuration files");
  cmd->add_option("--set", options->settings,
                  "NAME=VALUE written into postgresql.auto.conf (e.g. port=5433); repeatable");
  cmd->add_flag("--start", options->start,
                "start the standby and wait until it streams and has caught up (with --region)");
  cmd->add_flag("--dry-run", inv.dry_run, "check the primary and the backup; change nothing");
  cmd->callback([&inv, options] {
    inv.result = RecordRun(inv.MakeContext(), repo::kFailoverReports, "standby-create",
                           [&](const Context& ctx) { return StandbyCreate(ctx, *options); });
  });
}

}  // namespace gravl::commands
