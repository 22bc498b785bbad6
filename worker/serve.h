// The worker's commands, shared helpers of its command line.
#pragma once

#include <string>

namespace prelude {

// `prelude-worker serve ARGS...` (argv holds the arguments after "serve").
int serve_main(int argc, char** argv);

// Parses --threads: a whole number from 1 to 1024, else a UserError naming the flag.
int parse_threads(const std::string& value);

}  // namespace prelude
