// What a command runs with: the console, the global options and (on first use) the
// connection to the coordinator.
#pragma once

#include <memory>

#include "client/console.h"
#include "client/coordinator.h"
#include "client/options.h"

namespace prelude::client {

class Session {
 public:
  Session(Console& console, GlobalOptions options) : console_(console), options_(std::move(options)) {}

  Console& console() { return console_; }
  const GlobalOptions& options() const { return options_; }
  // Commands check their local input first, so a bad job file never opens a channel.
  Coordinator& coordinator() {
    if (!coordinator_) coordinator_ = std::make_unique<Coordinator>(options_);
    return *coordinator_;
  }

 private:
  Console& console_;
  GlobalOptions options_;
  std::unique_ptr<Coordinator> coordinator_;
};

}  // namespace prelude::client
