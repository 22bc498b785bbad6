// Command-line values shared by the coordinator, the worker and the client.
#pragma once

#include <string>

namespace prelude {

// `text` as a whole number from lo to hi (decimal digits, an optional sign, nothing
// else). Throws UserError "FLAG: must be a whole number from LO to HI, got 'TEXT'".
long parse_whole_number(const std::string& flag, const std::string& text, long lo, long hi);

// --threads: a whole number from 1 to 1024, else a UserError naming the flag.
int parse_threads(const std::string& value);

}  // namespace prelude
