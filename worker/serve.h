// The worker's commands, shared helpers of its command line.
#pragma once

#include <string>

namespace prelude {

// `prelude-worker serve ARGS...` (argv holds the arguments after "serve").
int serve_main(int argc, char** argv);

}  // namespace prelude
