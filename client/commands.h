// The commands of `prelude`: their help and what they do.
#pragma once

#include <string>
#include <vector>

#include "client/options.h"
#include "client/session.h"

namespace prelude::client {

struct CommandSpec {
  std::string name;
  std::vector<std::string> arguments;  // required positional arguments, e.g. {"JOB.json"}
  std::string summary;                 // one line in `prelude --help`
  std::string description;             // `prelude NAME --help`
  std::vector<FlagSpec> flags;
  std::vector<std::string> examples;
  // Runs the command once its arguments and required flags are checked; returns the
  // exit code. Throws UsageError / UserError (exit 2) or CallError (exit 3).
  int (*run)(Session& session, const CommandLine& line);
  // Flags the command cannot do without (download's -o): shown without brackets in
  // its synopsis, and a usage error when missing.
  std::vector<std::string> required_flags = {};
};

// submit, list, get, watch, cancel, metrics, checkpoints, download, delete, sweep,
// compare, audit, in the order of `prelude --help`.
const std::vector<CommandSpec>& commands();
const CommandSpec* find_command(const std::string& name);

}  // namespace prelude::client
