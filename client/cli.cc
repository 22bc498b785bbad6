#include "client/cli.h"

#include <algorithm>
#include <iostream>
#include <vector>

#include "client/commands.h"
#include "client/coordinator.h"
#include "client/options.h"

namespace prelude::client {

namespace {

const char* const kExitCodes =
    "exit codes:\n"
    "  0  ok\n"
    "  2  usage error or bad local input: unknown flag, missing argument, bad flag value,\n"
    "     unreadable or malformed job file, unreadable token file, a download's file not writable\n"
    "  3  the coordinator refused or failed the call; stderr says `prelude: CODE: message`, e.g.\n"
    "     INVALID_ARGUMENT (with the field), NOT_FOUND, UNAUTHENTICATED, FAILED_PRECONDITION,\n"
    "     UNAVAILABLE (cannot reach it), DEADLINE_EXCEEDED, DATA_LOSS (a download that did not\n"
    "     arrive whole; nothing was written)\n"
    "  4  the watched job ended FAILED or CANCELLED, or a job of the watched sweep did (watch,\n"
    "     submit --watch, sweep --watch)\n"
    "  1  an internal error of the client (a bug)\n";

std::string pad(const std::string& s, size_t width) {
  return s.size() >= width ? s + "  " : s + std::string(width - s.size() + 2, ' ');
}

bool is_required(const CommandSpec& c, const FlagSpec& flag) {
  return std::find(c.required_flags.begin(), c.required_flags.end(), flag.name) != c.required_flags.end();
}

std::string synopsis(const CommandSpec& c) {
  std::string s = "prelude " + c.name;
  for (const auto& a : c.arguments) s += " " + a;
  for (const auto& f : c.flags) s += is_required(c, f) ? " " + flag_usage(f) : " [" + flag_usage(f) + "]";
  return s;
}

std::string global_help() {
  std::string text =
      "usage: prelude [OPTIONS] COMMAND [ARGS]\n"
      "\n"
      "Submit training jobs to a Prelude coordinator, follow them and read their metrics.\n"
      "\n"
      "commands:\n";
  // "submit JOB.json", "list": each command with its arguments.
  auto label = [](const CommandSpec& c) {
    std::string l = c.name;
    for (const auto& a : c.arguments) l += " " + a;
    return l;
  };
  size_t width = 0;
  for (const auto& c : commands()) width = std::max(width, label(c).size());
  for (const auto& c : commands()) text += "  " + pad(label(c), width) + c.summary + "\n";
  text +=
      "\noptions (before or after the command):\n" + flag_list(global_flags()) +
      "\n"
      "environment:\n"
      "  PRELUDE_COORDINATOR  the coordinator's host:port when --coordinator is not given\n"
      "  PRELUDE_TOKEN        the token when neither --token nor --token-file is given\n"
      "  PRELUDE_TLS_CA, PRELUDE_TLS_CERT, PRELUDE_TLS_KEY, PRELUDE_TLS=1\n"
      "                       --tls-ca, --tls-cert, --tls-key, --tls when not given\n"
      "\n" +
      std::string(kExitCodes) +
      "\n"
      "Run `prelude COMMAND --help` for a command's details.\n";
  return text;
}

std::string command_help(const CommandSpec& c) {
  std::string text = "usage: " + synopsis(c) + "\n\n" + c.description + "\n";
  if (!c.flags.empty()) text += "\noptions:\n" + flag_list(c.flags);
  std::string globals;
  for (const auto& f : global_flags())
    if (!f.value_name.empty()) globals += (globals.empty() ? "" : ", ") + flag_usage(f);
  text += "\nglobal options: " + globals + " (see `prelude --help`)\n";
  if (!c.examples.empty()) {
    text += "\nexamples:\n";
    for (const auto& e : c.examples) text += "  " + e + "\n";
  }
  const bool watches = c.name == "watch" || std::any_of(c.flags.begin(), c.flags.end(),
                                                        [](const FlagSpec& f) { return f.name == "--watch"; });
  text += "\nexit codes: 0 ok, 2 usage or bad local input, 3 the coordinator refused or failed the call";
  if (!watches) text += "\n";
  else if (c.name == "submit") text += ", 4 the job ended FAILED or CANCELLED\n";
  else if (c.name == "sweep") text += ", 4 a job of the sweep ended FAILED or CANCELLED\n";
  else text += ", 4 the job (or a job of the sweep) ended FAILED or CANCELLED\n";
  return text;
}

const std::vector<FlagSpec>* flags_of(const std::string& command) {
  static const std::vector<FlagSpec> none;
  if (command == "help") return &none;
  const CommandSpec* c = find_command(command);
  return c == nullptr ? nullptr : &c->flags;
}

// The command a (possibly malformed) command line names, for a pointer to its help.
std::string named_command(const std::vector<std::string>& args) {
  for (const auto& a : args)
    if (find_command(a) != nullptr) return a;
  return "";
}

// "submit, list, ... or compare": the commands by name, for a missing one.
std::string command_names() {
  std::string names;
  const auto& all = commands();
  for (size_t i = 0; i < all.size(); ++i)
    names += (i == 0 ? "" : i + 1 == all.size() ? " or " : ", ") + all[i].name;
  return names;
}

bool asks_for_help(const std::vector<std::string>& args) {
  for (const auto& a : args) {
    if (a == "--") return false;
    if (a == "--help" || a == "-h") return true;
  }
  return false;
}

void check_arguments(const CommandSpec& c, const CommandLine& line) {
  if (line.arguments.size() < c.arguments.size())
    throw UsageError(c.name + ": missing " + c.arguments[line.arguments.size()]);
  if (line.arguments.size() > c.arguments.size())
    throw UsageError(c.name + ": unexpected argument '" + line.arguments[c.arguments.size()] + "'");
  for (const auto& f : c.flags)
    if (is_required(c, f) && !line.has(f.name)) throw UsageError(c.name + ": missing " + flag_usage(f));
}

int run(const std::vector<std::string>& args, Console& console) {
  const CommandLine line = parse_command_line(args, flags_of);
  if (line.command == "help") {
    if (line.arguments.size() > 1) throw UsageError("help: unexpected argument '" + line.arguments[1] + "'");
    if (!line.arguments.empty() && find_command(line.arguments[0]) == nullptr)
      throw UsageError("help: unknown command '" + line.arguments[0] + "'");
    console.out << help_text(line.arguments.empty() ? "" : line.arguments[0]);
    return kExitOk;
  }
  if (line.help) {
    console.out << help_text(line.command);
    return kExitOk;
  }
  if (line.command.empty()) throw UsageError("missing command (" + command_names() + ")");
  const CommandSpec& command = *find_command(line.command);
  check_arguments(command, line);
  Session session(console, resolve_global_options(line, console.env));
  return command.run(session, line);
}

}  // namespace

std::string help_text(const std::string& command) {
  const CommandSpec* c = command.empty() ? nullptr : find_command(command);
  return c == nullptr ? global_help() : command_help(*c);
}

int run_cli(int argc, char** argv, Console& console) {
  const std::vector<std::string> args(argv + std::min(argc, 1), argv + argc);
  try {
    return run(args, console);
  } catch (const UsageError& e) {
    if (asks_for_help(args)) {  // `prelude list --bogus --help`: the help is what was asked for
      console.out << help_text(named_command(args));
      return kExitOk;
    }
    const std::string command = named_command(args);
    console.err << "prelude: " << e.what() << "\n"
                << "Run `prelude " << (command.empty() ? "" : command + " ") << "--help` for usage.\n";
    return kExitUsage;
  } catch (const UserError& e) {  // a job or token file
    console.err << "prelude: " << e.what() << "\n";
    return kExitUsage;
  } catch (const CallError& e) {
    console.err << "prelude: " << e.what() << "\n";
    return kExitCallFailed;
  } catch (const std::exception& e) {
    console.err << "prelude: internal error: " << e.what() << "\n";
    return kExitInternal;
  }
}

int run_cli(int argc, char** argv, std::ostream& out, std::ostream& err) {
  Console console{std::cin, out, err};
  return run_cli(argc, argv, console);
}

}  // namespace prelude::client
