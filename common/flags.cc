#include "common/flags.h"

#include <cerrno>
#include <cctype>
#include <cstdlib>

#include "common/errors.h"

namespace prelude {

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
