// The `prelude` command line, callable in-process: tests pass their own streams.
//
//   prelude [--coordinator ADDR] [--token-file FILE | --token TOKEN] [--timeout S] COMMAND ...
//
// Commands: submit, list, get, watch, cancel, metrics, checkpoints, download, delete,
// sweep, compare, audit (commands.h);
// `prelude --help` and `prelude COMMAND --help` describe them. Exit codes: console.h (ExitCode).
#pragma once

#include <ostream>
#include <string>

#include "client/console.h"

namespace prelude::client {

// Runs `prelude argv[1..]`: results on console.out, errors on console.err as one
// line "prelude: <what>". Returns the exit code; never throws.
int run_cli(int argc, char** argv, Console& console);

// The same with std::cin as input and `out` treated as not a terminal.
int run_cli(int argc, char** argv, std::ostream& out, std::ostream& err);

// The text of `prelude --help`, or of `prelude COMMAND --help`.
std::string help_text(const std::string& command = "");

}  // namespace prelude::client
