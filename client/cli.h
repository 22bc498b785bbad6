// The `prelude` command line, callable in-process (tests pass their own streams).
#pragma once

#include <ostream>

namespace prelude::client {

// Exit codes.
constexpr int kOk = 0, kUsage = 2, kServerError = 3, kJobFailed = 4;

// Runs `prelude ARGS...`. `terminal`: stdout is a terminal (live progress in watch).
int run_cli(int argc, char** argv, std::ostream& out, std::ostream& err, bool terminal);

}  // namespace prelude::client
