// prelude: the command line of the Prelude coordinator (see client/cli.h and
// client/README.md).
#include <grpc/support/log.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <iostream>

#include "client/cli.h"

namespace {

// Ctrl-C during a live progress line: end the line so the shell prompt starts on its own.
void end_line_and_exit(int) {
  const ssize_t ignored = write(STDOUT_FILENO, "\n", 1);
  (void)ignored;
  _exit(130);
}

}  // namespace

int main(int argc, char** argv) {
  // gRPC's own log lines (a failed TLS handshake, say) would come before our message,
  // which says the same and what to do; GRPC_VERBOSITY set by the user keeps them.
  if (std::getenv("GRPC_VERBOSITY") == nullptr) gpr_set_log_function([](gpr_log_func_args*) {});
  std::cin.tie(nullptr);
  prelude::client::Console console{std::cin, std::cout, std::cerr};
  const char* term = std::getenv("TERM");
  console.live = isatty(STDOUT_FILENO) == 1 && !(term != nullptr && std::strcmp(term, "dumb") == 0);
  if (console.live) {
    winsize size{};
    if (ioctl(STDOUT_FILENO, TIOCGWINSZ, &size) == 0) console.columns = size.ws_col;
    signal(SIGINT, end_line_and_exit);
  }
  return prelude::client::run_cli(argc, argv, console);
}
