// Error types shared by every part of Prelude (no gRPC, no oneDNN).
#pragma once

#include <stdexcept>
#include <string>

namespace prelude {

// A problem with what a user gave us: a job spec field, a data file, a flag.
// The message is one line that names the field or file and the reason, e.g.
// "training.batchSize: must be positive, got -3". Callers report it and exit 2
// (or map it to INVALID_ARGUMENT); it is never an internal bug.
class UserError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// A command line that does not make sense: an unknown flag, a flag without its
// value, a bad flag value, a missing argument. Programs report it with their usage
// (the client: with a pointer to --help) and exit 2. Bad input that is not about the
// command line itself (an unreadable job file) is a plain UserError.
class UsageError : public UserError {
 public:
  using UserError::UserError;
};

// Builds "<where>: <reason>" so every user error names where it comes from.
inline UserError user_error(const std::string& where, const std::string& reason) {
  return UserError(where + ": " + reason);
}

}  // namespace prelude
