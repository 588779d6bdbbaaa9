// The watch agent's view of its region's PostgreSQL (ha/agent.h LocalServer) over libpq and,
// where the data directory is on this host, its programs.

#include <filesystem>

#include "common/error.h"
#include "common/log.h"
#include "ha/agent.h"
#include "ha/ha.h"
#include "pg/connection.h"
#include "pg/queries.h"
#include "pg/server.h"

namespace gravl::ha {

namespace {

class PgLocal : public LocalServer {
 public:
  PgLocal(RegionConfig self, std::vector<RegionConfig> others, std::string bin_dir)
      : self_(std::move(self)), others_(std::move(others)), bin_dir_(std::move(bin_dir)) {}

  LocalState Check() override {
    Probe p = ProbeRegion(self_, 2);
    LocalState s;
    s.reachable = p.reachable;
    s.error = p.error;
    if (p.reachable) {
      s.primary = p.primary();
      s.writable = p.writable();
      s.timeline = p.role.timeline;
    }
    return s;
  }

  std::string Fence(bool stop) override {
    std::string done;
    try {
      auto conn = pg::Connection::Open(self_.conninfo);
      int ended = pg::MakeReadOnly(*conn);
      done = "made read-only (" + std::to_string(ended) + " sessions ended)";
    } catch (const Error& e) {
      done = "could not be made read-only: " + Redact(e.what());
    }
    if (stop) {
      if (OnThisHost()) {
        pg::LocalServer server(bin_dir_, self_.data_dir);
        try {
          server.Stop("fast", std::chrono::seconds(30));
          done += "; stopped (fast)";
        } catch (const Error&) {
          try {
            server.Stop("immediate", std::chrono::seconds(30));
            done += "; stopped (immediate)";
          } catch (const Error& e) {
            done += "; could not be stopped: " + Redact(e.what());
          }
        }
      } else {
        done += "; not stopped (its data directory is not on this host)";
      }
    }
    return done;
  }

  std::string Start() override {
    try {
      if (!self_.data_dir.empty() && std::filesystem::exists(self_.data_dir + "/PG_VERSION")) {
        pg::LocalServer server(bin_dir_, self_.data_dir);
        if (!server.Running()) {
          server.RemoveStalePid();
          server.Start(std::chrono::seconds(120));
          return "started (read-only)";
        }
        return "running";
      }
      return "not on this host";
    } catch (const Error& e) {
      return "could not be started: " + Redact(e.what());
    }
  }

  std::string Unfence() override {
    try {
      auto conn = pg::Connection::Open(self_.conninfo);
      pg::ConfigureNewPrimary(*conn, "");
      return "writable again";
    } catch (const Error& e) {
      return "could not be made writable: " + Redact(e.what());
    }
  }

  bool PeersStillStandby() override {
    for (const auto& o : others_) {
      Probe p = ProbeRegion(o, 2);
      if (p.reachable && p.role.in_recovery) return true;
    }
    return false;
  }

 private:
  // The configured data directory holds the server that conninfo reaches (never stop another).
  bool OnThisHost() const {
    return !self_.data_dir.empty() && SameServer(self_.conninfo, self_.data_dir) == Sameness::kYes;
  }
  RegionConfig self_;
  std::vector<RegionConfig> others_;
  std::string bin_dir_;
};

}  // namespace

std::unique_ptr<LocalServer> MakePgLocal(const RegionConfig& self,
                                         const std::vector<RegionConfig>& others,
                                         const std::string& bin_dir) {
  return std::make_unique<PgLocal>(self, others, bin_dir);
}

}  // namespace gravl::ha
