#pragma once
// The daemons' HTTP side (exporter, watch): a civetweb server on a configured address, and
// one way to answer.

#include <CivetServer.h>

#include <memory>
#include <string>

namespace gravl::commands {

// A server listening on `listen` ("127.0.0.1:9187"; port 0 allowed), and the address it got
// (port 0 resolved). A busy or malformed address is a ConfigError naming `setting` (what to
// change, e.g. "exporter.listen or --listen").
struct Listening {
  std::unique_ptr<CivetServer> server;
  std::string address;
};
Listening Listen(const std::string& listen, int threads, const std::string& setting);

// A complete answer (no keep-alive, never cached).
void Reply(mg_connection* conn, int status, const std::string& type, const std::string& body);

}  // namespace gravl::commands
