// Where the client reads and writes: the process's streams in `prelude`, string
// streams in tests.
#pragma once

#include <cstdlib>
#include <functional>
#include <iostream>
#include <optional>
#include <string>

namespace prelude::client {

// Exit codes of `prelude` (documented in `prelude --help` and client/README.md).
enum ExitCode : int {
  kExitOk = 0,
  kExitInternal = 1,     // a bug in the client
  kExitUsage = 2,        // usage error or bad local input (flags, job file, token file)
  kExitCallFailed = 3,   // the coordinator refused or failed the call
  kExitJobFailed = 4,    // the watched job (or a job of the watched sweep) ended FAILED or CANCELLED
};

// An environment variable, or nullopt when it is not set.
using Environment = std::function<std::optional<std::string>(const std::string& name)>;

inline std::optional<std::string> process_environment(const std::string& name) {
  const char* value = std::getenv(name.c_str());
  if (value == nullptr) return std::nullopt;
  return std::string(value);
}

struct Console {
  std::istream& in;    // `prelude submit -`
  std::ostream& out;   // results: ids, tables, metrics, watch lines
  std::ostream& err;   // errors and notes
  // `out` is a terminal: `watch` redraws one live progress line in place.
  bool live = false;
  // The terminal's width for the live line (0: unknown, no truncation).
  int columns = 0;
  Environment env = process_environment;
};

}  // namespace prelude::client
