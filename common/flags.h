// The command lines of the coordinator, the worker and the client: one reader of
// flags and arguments, the --help lines of flags, and readers of flag values.
#pragma once

#include <optional>
#include <string>
#include <vector>

namespace prelude {

// One flag a program takes.
struct FlagSpec {
  std::string name;        // "--limit"
  std::string value_name;  // "N"; empty for a switch such as --quiet
  std::string help;        // one line, shown by --help
};

// "--limit N", or "--quiet" for a switch: the flag as --help shows it.
std::string flag_usage(const FlagSpec& flag);

// The lines of a --help that list `flags`: "  --limit N  <help>\n", the help texts
// aligned two columns after the longest flag, or after `min_width` columns if that
// is more.
std::string flag_list(const std::vector<FlagSpec>& flags, size_t min_width = 0);

// A command line, read left to right the same way by every program:
//   --flag VALUE, --flag=VALUE  a flag that takes a value
//   --switch                    a flag that takes none
//   -h, --help                  a request for help
//   --                          the end of the flags: every word after it is an argument
//   anything else               an argument ("-" too: it names stdin)
// What a program words in its own way is left to it: what an unknown flag is called,
// what arguments it takes, and a flag given twice (each occurrence is read, in order:
// the coordinator and the worker keep the last, the client refuses the second).
class FlagReader {
 public:
  struct Item {
    enum Kind { kFlag, kArgument, kHelp, kUnknown };
    Kind kind;
    std::string text;   // kFlag, kUnknown: the flag's name, without any "=VALUE"; kArgument: the argument
    std::string value;  // kFlag: its value, "" for a switch
  };

  // `args`: the words after the program's name (or its command's). `flags`: the
  // flags known from the start; the reader keeps a reference to them.
  FlagReader(std::vector<std::string> args, const std::vector<FlagSpec>& flags);

  // Knows `flags` too from here on (the client's command flags, once the command's
  // name has been read); kept by reference.
  void accept(const std::vector<FlagSpec>& flags);

  // The next item, nullopt at the end. Throws UsageError "--limit: needs a value (N)"
  // for a flag that ends the line without its value, "--quiet: takes no value" for
  // a switch (or --help) given one.
  std::optional<Item> next();

 private:
  const FlagSpec* find(const std::string& name) const;

  std::vector<std::string> args_;
  std::vector<const std::vector<FlagSpec>*> tables_;
  size_t next_ = 0;
  bool flags_ended_ = false;
};

// `text` as a whole number from lo to hi (decimal digits, an optional sign, nothing
// else). Throws UserError "FLAG: must be a whole number from LO to HI, got 'TEXT'".
long parse_whole_number(const std::string& flag, const std::string& text, long lo, long hi);

// --threads: a whole number from 1 to 1024, else a UserError naming the flag.
int parse_threads(const std::string& value);

}  // namespace prelude
