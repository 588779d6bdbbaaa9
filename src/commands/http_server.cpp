#include "commands/http_server.h"

#include <vector>

#include "common/error.h"

namespace gravl::commands {

Listening Listen(const std::string& listen, int threads, const std::string& setting) {
  Listening l{nullptr, listen};
  try {
    l.server = std::make_unique<CivetServer>(
        std::vector<std::string>{"listening_ports", listen, "num_threads", std::to_string(threads),
                                 "request_timeout_ms", "10000", "enable_keep_alive", "no"});
  } catch (const CivetException& e) {
    throw ConfigError("cannot listen on " + listen + ": " + e.what() +
                      " (is the port in use? set " + setting + " HOST:PORT)");
  }
  if (auto ports = l.server->getListeningPorts(); !ports.empty()) {
    auto colon = listen.rfind(':');
    l.address = (colon == std::string::npos ? std::string("0.0.0.0") : listen.substr(0, colon)) +
                ":" + std::to_string(ports.front());
  }
  return l;
}

void Reply(mg_connection* conn, int status, const std::string& type, const std::string& body) {
  mg_printf(conn,
            "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n"
            "Cache-Control: no-store\r\nConnection: close\r\n\r\n",
            status, status == 200 ? "OK" : "Service Unavailable", type.c_str(), body.size());
  mg_write(conn, body.data(), body.size());
}

}  // namespace gravl::commands
