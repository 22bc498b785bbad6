// prelude: the command-line client of the Prelude coordinator (see cli.h).
#include <unistd.h>

#include <iostream>

#include "client/cli.h"

int main(int argc, char** argv) {
  return prelude::client::run_cli(argc, argv, std::cout, std::cerr, isatty(STDOUT_FILENO) == 1);
}
