// Bearer tokens shared by the coordinator, its worker pools and the client.
#pragma once

#include <string>

namespace prelude {

// The token in a file: its content without surrounding white space. Throws
// UserError naming the file when it cannot be read, is empty, or holds more than
// one word.
std::string read_token_file(const std::string& path);

}  // namespace prelude
