#include "common/flags.h"

#include <algorithm>
#include <cerrno>
#include <cctype>
#include <cstdlib>

#include "common/errors.h"

namespace prelude {

std::string flag_usage(const FlagSpec& flag) {
  return flag.value_name.empty() ? flag.name : flag.name + " " + flag.value_name;
}

std::string flag_list(const std::vector<FlagSpec>& flags, size_t min_width) {
  size_t width = min_width;
  for (const auto& f : flags) width = std::max(width, flag_usage(f).size());
  std::string text;
  for (const auto& f : flags) {
    const std::string usage = flag_usage(f);
    text += "  " + usage + std::string(width - usage.size() + 2, ' ') + f.help + "\n";
  }
  return text;
}

FlagReader::FlagReader(std::vector<std::string> args, const std::vector<FlagSpec>& flags) : args_(std::move(args)) {
  accept(flags);
}

void FlagReader::accept(const std::vector<FlagSpec>& flags) { tables_.push_back(&flags); }

const FlagSpec* FlagReader::find(const std::string& name) const {
  for (const auto* table : tables_)
    for (const auto& f : *table)
      if (f.name == name) return &f;
  return nullptr;
}

std::optional<FlagReader::Item> FlagReader::next() {
  while (next_ < args_.size()) {
    const std::string& arg = args_[next_++];
    const bool is_flag = !flags_ended_ && arg.size() > 1 && arg[0] == '-';
    if (!is_flag) return Item{Item::kArgument, arg, ""};
    if (arg == "--") {
      flags_ended_ = true;
      continue;
    }
    if (arg == "-h" || arg == "--help") return Item{Item::kHelp, arg, ""};
    const size_t eq = arg.find('=');
    const std::string name = arg.substr(0, eq);
    if (name == "--help") throw UsageError("--help: takes no value");
    const FlagSpec* flag = find(name);
    if (flag == nullptr) return Item{Item::kUnknown, name, ""};
    if (flag->value_name.empty()) {
      if (eq != std::string::npos) throw UsageError(name + ": takes no value");
      return Item{Item::kFlag, name, ""};
    }
    if (eq != std::string::npos) return Item{Item::kFlag, name, arg.substr(eq + 1)};
    if (next_ >= args_.size()) throw UsageError(name + ": needs a value (" + flag->value_name + ")");
    return Item{Item::kFlag, name, args_[next_++]};
  }
  return std::nullopt;
}

long parse_whole_number(const std::string& flag, const std::string& text, long lo, long hi) {
  errno = 0;
  char* end = nullptr;
  const long n = std::strtol(text.c_str(), &end, 10);
  // strtol skips leading white space; a value with any is not a whole number.
  const bool leading_space = !text.empty() && std::isspace(static_cast<unsigned char>(text[0]));
  if (text.empty() || leading_space || *end != '\0' || errno != 0 || n < lo || n > hi)
    throw UserError(flag + ": must be a whole number from " + std::to_string(lo) + " to " + std::to_string(hi) +
                    ", got '" + text + "'");
  return n;
}

int parse_threads(const std::string& value) {
  return static_cast<int>(parse_whole_number("--threads", value, 1, 1024));
}

}  // namespace prelude
