#include "support/pg_fixture.h"

#include <algorithm>

#include "common/subprocess.h"

namespace gravl::test {

std::unique_ptr<pg::Instance> StartCluster(const std::vector<std::string>& settings) {
  pg::InstanceOptions options;
  options.settings = {"fsync = off", "max_wal_senders = 4", "wal_level = replica"};
  options.settings.insert(options.settings.end(), settings.begin(), settings.end());
  return pg::Instance::Create(options);
}

std::string DumpAll(const pg::Instance& pg) {
  std::string dump = RunChecked({pg.Bin("pg_dumpall"), "-d", pg.conninfo(), "--no-role-passwords"});
  std::string out;
  std::size_t start = 0;
  while (start < dump.size()) {
    std::size_t end = std::min(dump.find('\n', start), dump.size());
    std::string line = dump.substr(start, end - start);
    if (line.rfind("\\restrict ", 0) != 0 && line.rfind("\\unrestrict ", 0) != 0) {
      out += line + "\n";
    }
    start = end + 1;
  }
  return out;
}

}  // namespace gravl::test
