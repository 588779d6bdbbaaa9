#include "support/pg_fixture.h"

namespace gravl::test {

std::unique_ptr<pg::Instance> StartCluster(const std::vector<std::string>& settings) {
  pg::InstanceOptions options;
  options.settings = {"fsync = off", "max_wal_senders = 4", "wal_level = replica"};
  options.settings.insert(options.settings.end(), settings.begin(), settings.end());
  return pg::Instance::Create(options);
}

}  // namespace gravl::test
