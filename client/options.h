// The command line of `prelude`: flags and their values, the global options
// (coordinator address, token, TLS, timeout) and the checked values of command flags.
#pragma once

#include <chrono>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "client/console.h"
#include "common/errors.h"
#include "common/flags.h"
#include "common/tls.h"
#include "prelude/v1/service.pb.h"

#include <google/protobuf/timestamp.pb.h>

namespace prelude::client {

// A command line split into its parts (read by FlagReader, common/flags.h). Flags
// may come anywhere after the program name, as `--flag VALUE` or `--flag=VALUE`;
// `--` ends the flags. Errors are UsageErrors (common/errors.h).
struct CommandLine {
  std::string command;                       // empty when none was given
  std::vector<std::string> arguments;        // the command's positional arguments
  std::map<std::string, std::string> flags;  // given flags by name; switches map to ""
  bool help = false;                         // --help or -h anywhere

  bool has(const std::string& flag) const { return flags.count(flag) != 0; }
  std::string value_or(const std::string& flag, const std::string& fallback) const;
};

// Flags every command takes, before or after the command name.
const std::vector<FlagSpec>& global_flags();

// The flags of a command, or nullptr when there is no such command.
using CommandFlagsLookup = std::function<const std::vector<FlagSpec>*(const std::string& command)>;

// Splits `args` (without the program name). Throws UsageError for an unknown
// command or flag, a flag without its value, a switch given a value or a flag given
// twice. Command flags are recognised after the command name only.
CommandLine parse_command_line(const std::vector<std::string>& args, const CommandFlagsLookup& command_flags);

// How to reach the coordinator.
struct GlobalOptions {
  std::string coordinator;  // host:port
  std::string token;        // empty: no authorization metadata
  std::chrono::milliseconds timeout{30000};  // deadline of each unary call
  ClientTls tls;                             // off: plain text
};

constexpr const char* kDefaultCoordinator = "localhost:50051";

// --coordinator, else $PRELUDE_COORDINATOR, else localhost:50051; --token or
// --token-file, else $PRELUDE_TOKEN; --timeout; --tls, --tls-ca, --tls-cert, --tls-key,
// else $PRELUDE_TLS_CA and friends (common/tls.h; the files are read with the
// channel). Throws UsageError (or UserError for an unreadable token file) naming the
// flag or variable.
GlobalOptions resolve_global_options(const CommandLine& line, const Environment& env);

// Checked flag values; each throws UsageError naming the flag and the value.
int parse_count(const std::string& flag, const std::string& value, int min, int max);
std::string parse_choice(const std::string& flag, const std::string& value, const std::vector<std::string>& choices);
// A job state by name, any case: queued, running, succeeded, failed, cancelled.
prelude::v1::JobState parse_job_state(const std::string& flag, const std::string& value);
// Which checkpoint of a job: "final", "latest" or a step number, as DownloadModel
// takes it (a step without sign or leading zeros).
std::string parse_checkpoint(const std::string& flag, const std::string& value);
// A point in time: a span back from `now` ("90s", "30m", "2h", "7d", "2w", or
// several: "1h30m"), a date ("2026-01-02", midnight UTC) or an RFC 3339 time
// ("2026-01-02T03:04:05Z", "2026-01-02T04:04:05+01:00").
google::protobuf::Timestamp parse_since(const std::string& flag, const std::string& value,
                                        std::chrono::system_clock::time_point now);

}  // namespace prelude::client
