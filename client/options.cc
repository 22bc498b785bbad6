#include "client/options.h"

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <limits>

#include <google/protobuf/util/time_util.h>

#include "common/flags.h"
#include "common/token.h"

namespace prelude::client {

namespace v1 = prelude::v1;

namespace {

// Printable ASCII without spaces: what an HTTP/2 header value of a bearer token may hold.
void check_token(const std::string& where, const std::string& token) {
  if (token.empty()) throw UsageError(where + ": the token is empty");
  for (unsigned char c : token)
    if (c <= 0x20 || c >= 0x7f)
      throw UsageError(where + ": the token must be printable ASCII without spaces or control characters");
}

std::string lower(std::string s) {
  for (auto& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

double parse_seconds(const std::string& flag, const std::string& value) {
  errno = 0;
  char* end = nullptr;
  const double v = std::strtod(value.c_str(), &end);
  if (value.empty() || *end != '\0' || errno != 0 || !std::isfinite(v) || v <= 0 || v > 86400)
    throw UsageError(flag + ": must be a number of seconds above 0 and at most 86400, got '" + value + "'");
  return v;
}

}  // namespace

std::string CommandLine::value_or(const std::string& flag, const std::string& fallback) const {
  const auto it = flags.find(flag);
  return it == flags.end() ? fallback : it->second;
}

const std::vector<FlagSpec>& global_flags() {
  static const std::vector<FlagSpec> flags = {
      {"--coordinator", "ADDR", "the coordinator's host:port (default $PRELUDE_COORDINATOR, else localhost:50051)"},
      {"--token-file", "FILE", "send the token in FILE as 'authorization: Bearer <token>' with every call"},
      {"--token", "TOKEN", "the token itself (visible to other users in `ps`: prefer --token-file or $PRELUDE_TOKEN)"},
      {"--timeout", "SECONDS", "deadline of each call, except the watch stream (default 30)"},
      {"--help", "", "show help (also -h); `prelude COMMAND --help` for a command"},
  };
  static const std::vector<FlagSpec> with_tls = [] {
    std::vector<FlagSpec> all = flags;
    all.insert(all.end() - 1, client_tls_flags().begin(), client_tls_flags().end());  // --help stays last
    return all;
  }();
  return with_tls;
}

CommandLine parse_command_line(const std::vector<std::string>& args, const CommandFlagsLookup& command_flags) {
  CommandLine line;
  FlagReader reader(args, global_flags());
  while (const auto item = reader.next()) {
    switch (item->kind) {
      case FlagReader::Item::kHelp:
        line.help = true;
        break;
      case FlagReader::Item::kArgument:
        if (line.command.empty()) {
          line.command = item->text;
          const std::vector<FlagSpec>* flags_of_command = command_flags(item->text);
          if (flags_of_command == nullptr) throw UsageError("unknown command '" + item->text + "'");
          reader.accept(*flags_of_command);
        } else {
          line.arguments.push_back(item->text);
        }
        break;
      case FlagReader::Item::kUnknown:
        throw UsageError("unknown option '" + item->text + "'" +
                         (line.command.empty() ? " (a command's options go after the command)"
                                               : " for '" + line.command + "'"));
      case FlagReader::Item::kFlag:
        // Global flags go before or after the command: given twice, which one was meant?
        if (!line.flags.emplace(item->text, item->value).second)
          throw UsageError(item->text + ": given more than once");
        break;
    }
  }
  return line;
}

GlobalOptions resolve_global_options(const CommandLine& line, const Environment& env) {
  GlobalOptions options;

  options.coordinator = kDefaultCoordinator;
  if (const auto v = env("PRELUDE_COORDINATOR"); v && !v->empty()) options.coordinator = *v;
  if (line.has("--coordinator")) options.coordinator = line.value_or("--coordinator", "");
  const std::string where = line.has("--coordinator") ? "--coordinator" : "PRELUDE_COORDINATOR";
  if (options.coordinator.empty()) throw UsageError(where + ": must be HOST:PORT, got an empty address");
  for (unsigned char c : options.coordinator)
    if (std::isspace(c) || std::iscntrl(c))
      throw UsageError(where + ": must be HOST:PORT, got '" + options.coordinator + "'");

  if (line.has("--token") && line.has("--token-file"))
    throw UsageError("--token and --token-file: give only one of them");
  if (line.has("--token")) {
    options.token = line.value_or("--token", "");
    check_token("--token", options.token);
  } else if (line.has("--token-file")) {
    const std::string path = line.value_or("--token-file", "");
    if (path.empty()) throw UsageError("--token-file: needs a file name");
    options.token = read_token_file(path);  // UserError naming the file
    check_token(path, options.token);
  } else if (const auto v = env("PRELUDE_TOKEN"); v && !v->empty()) {
    options.token = *v;
    check_token("PRELUDE_TOKEN", options.token);
  }

  options.tls = resolve_client_tls(
      [&line](const std::string& flag) {
        return line.has(flag) ? std::optional<std::string>(line.value_or(flag, "")) : std::nullopt;
      },
      env);

  if (line.has("--timeout")) {
    const double seconds = parse_seconds("--timeout", line.value_or("--timeout", ""));
    options.timeout = std::chrono::milliseconds(static_cast<int64_t>(std::ceil(seconds * 1000)));
  }
  return options;
}

int parse_count(const std::string& flag, const std::string& value, int min, int max) {
  try {
    return static_cast<int>(parse_whole_number(flag, value, min, max));
  } catch (const UserError& e) {
    throw UsageError(e.what());  // a flag's value: the usage hint follows
  }
}

std::string parse_choice(const std::string& flag, const std::string& value, const std::vector<std::string>& choices) {
  if (std::find(choices.begin(), choices.end(), value) != choices.end()) return value;
  std::string list;
  for (const auto& c : choices) list += (list.empty() ? "" : ", ") + c;
  throw UsageError(flag + ": must be one of " + list + ", got '" + value + "'");
}

prelude::v1::JobState parse_job_state(const std::string& flag, const std::string& value) {
  static const std::vector<std::pair<std::string, v1::JobState>> states = {
      {"queued", v1::QUEUED},       {"running", v1::RUNNING},     {"succeeded", v1::SUCCEEDED},
      {"failed", v1::FAILED},       {"cancelled", v1::CANCELLED}, {"canceled", v1::CANCELLED},
  };
  const std::string key = lower(value);
  for (const auto& [name, state] : states)
    if (name == key) return state;
  throw UsageError(flag + ": must be one of queued, running, succeeded, failed, cancelled, got '" + value + "'");
}

google::protobuf::Timestamp parse_since(const std::string& flag, const std::string& value,
                                        std::chrono::system_clock::time_point now) {
  const auto bad = [&] {
    return UsageError(flag + ": must be a time ago (90s, 30m, 2h, 7d, 2w, 1h30m), a date (2026-01-02) or a UTC time "
                             "(2026-01-02T03:04:05Z), got '" + value + "'");
  };
  google::protobuf::Timestamp t;
  // A date or a time: what protobuf's JSON takes for a Timestamp, which checks it whole.
  if (value.size() >= 10 && value[4] == '-') {
    const std::string text = value.size() == 10 ? value + "T00:00:00Z" : value;
    if (!google::protobuf::util::TimeUtil::FromString(text, &t)) throw bad();
    return t;
  }
  // A span: numbers with units, each unit at most once, largest first is not required.
  int64_t seconds = 0;
  size_t i = 0;
  if (value.empty()) throw bad();
  while (i < value.size()) {
    size_t digits = 0;
    int64_t n = 0;
    while (i < value.size() && std::isdigit(static_cast<unsigned char>(value[i])) && digits < 7) {
      n = n * 10 + (value[i++] - '0');
      ++digits;
    }
    if (digits == 0 || i == value.size()) throw bad();
    const char unit = value[i++];
    const int64_t scale = unit == 's' ? 1 : unit == 'm' ? 60 : unit == 'h' ? 3600 : unit == 'd' ? 86400
                        : unit == 'w' ? 604800 : 0;
    if (scale == 0) throw bad();
    seconds += n * scale;  // at most 7 digits a part
    if (seconds > (int64_t{1} << 40)) throw bad();  // 35,000 years: no overflow, and no such audit trail
  }
  const int64_t now_s = std::chrono::duration_cast<std::chrono::seconds>(now.time_since_epoch()).count();
  t.set_seconds(std::max<int64_t>(0, now_s - seconds));
  return t;
}

std::string parse_checkpoint(const std::string& flag, const std::string& value) {
  if (value == "final" || value == "latest") return value;
  try {
    return std::to_string(parse_whole_number(flag, value, 0, std::numeric_limits<long>::max()));
  } catch (const UserError&) {
    throw UsageError(flag + ": must be final, latest or a step number, got '" + value + "'");
  }
}

}  // namespace prelude::client
