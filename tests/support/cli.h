#pragma once
// Runs the gravl-dr binary built by this tree (path compiled in as GRAVL_DR_BINARY).

#include <string>
#include <vector>

#include "common/subprocess.h"

namespace gravl::test {

// Runs gravl-dr with args; env entries "NAME=value" are added. Never throws on exit codes.
RunResult Cli(const std::vector<std::string>& args, const std::vector<std::string>& env = {});

const char* GravlBinary();

}  // namespace gravl::test
