#include "common/token.h"

#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>

#include "common/errors.h"

namespace prelude {

std::string read_token_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw UserError(path + ": cannot read the token file: " + std::strerror(errno));
  std::ostringstream text;
  text << in.rdbuf();
  const std::string all = text.str();
  const char* space = " \t\r\n";
  const size_t first = all.find_first_not_of(space);
  if (first == std::string::npos) throw UserError(path + ": the token file is empty");
  const std::string token = all.substr(first, all.find_last_not_of(space) + 1 - first);
  if (token.find_first_of(space) != std::string::npos)
    throw UserError(path + ": the token must be one word (no white space inside)");
  return token;
}

}  // namespace prelude
