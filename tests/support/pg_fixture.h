#pragma once
// A real PostgreSQL 15 cluster for integration tests: initdb in a temp dir, started on a
// free port on 127.0.0.1 (as `postgres` when the tests run as root), stopped and removed
// when the fixture is destroyed -- including when a test fails.

#include <memory>
#include <string>
#include <vector>

#include "pg/instance.h"

namespace gravl::test {

// Starts a new cluster with extra postgresql.conf lines.
std::unique_ptr<pg::Instance> StartCluster(const std::vector<std::string>& settings = {});

// pg_dumpall of the server, comparable between two servers: without pg_dump's per-run
// \restrict keys.
std::string DumpAll(const pg::Instance& pg);

}  // namespace gravl::test
