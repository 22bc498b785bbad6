// The command lines of the coordinator, the worker and the client: FlagReader (one
// reader for all four programs), the --help lines of flags, and parse_whole_number
// (the one reader of whole-number flags).
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "common/errors.h"
#include "common/flags.h"

namespace prelude {
namespace {

using Item = FlagReader::Item;

const std::vector<FlagSpec> kFlags = {
    {"--limit", "N", "at most N"},
    {"--data-root", "DIR", "where data sets live"},
    {"--quiet", "", "no progress"},
};

// Every item of `args` as "flag --limit=5", "argument x", "help -h" or "unknown --x".
std::vector<std::string> read_all(const std::vector<std::string>& args) {
  FlagReader reader(args, kFlags);
  std::vector<std::string> out;
  while (const auto item = reader.next()) {
    switch (item->kind) {
      case Item::kFlag: out.push_back("flag " + item->text + "=" + item->value); break;
      case Item::kArgument: out.push_back("argument " + item->text); break;
      case Item::kHelp: out.push_back("help " + item->text); break;
      case Item::kUnknown: out.push_back("unknown " + item->text); break;
    }
  }
  return out;
}

// The UsageError reading `args` throws, or "" when there is none.
std::string usage_error(const std::vector<std::string>& args) {
  try {
    read_all(args);
  } catch (const UsageError& e) {
    return e.what();
  }
  return "";
}

using Lines = std::vector<std::string>;

TEST(FlagReader, FlagsTakeTheirValueSeparateOrAfterAnEqualsSign) {
  EXPECT_EQ(read_all({"--limit", "5", "--data-root=/data", "--quiet", "job.json"}),
            (Lines{"flag --limit=5", "flag --data-root=/data", "flag --quiet=", "argument job.json"}));
  // The value is taken as it is, even when it looks like a flag or is empty.
  EXPECT_EQ(read_all({"--limit", "--quiet", "--data-root="}), (Lines{"flag --limit=--quiet", "flag --data-root="}));
  EXPECT_EQ(read_all({"--data-root=a=b"}), (Lines{"flag --data-root=a=b"}));
}

TEST(FlagReader, ArgumentsAndFlagsMixInAnyOrder) {
  EXPECT_EQ(read_all({"a", "--quiet", "b", "-", "--limit", "1", "c"}),
            (Lines{"argument a", "flag --quiet=", "argument b", "argument -", "flag --limit=1", "argument c"}));
  EXPECT_TRUE(read_all({}).empty());
}

TEST(FlagReader, DoubleDashEndsTheFlags) {
  EXPECT_EQ(read_all({"--quiet", "--", "--limit", "-h", "--"}),
            (Lines{"flag --quiet=", "argument --limit", "argument -h", "argument --"}));
}

TEST(FlagReader, HelpAnywhere) {
  EXPECT_EQ(read_all({"--limit", "2", "-h", "x", "--help"}),
            (Lines{"flag --limit=2", "help -h", "argument x", "help --help"}));
  EXPECT_EQ(usage_error({"--help=yes"}), "--help: takes no value");
}

TEST(FlagReader, AnUnknownFlagIsLeftToTheProgramToWordByItsName) {
  EXPECT_EQ(read_all({"--bogus", "x", "--bogus=1", "-q"}),
            (Lines{"unknown --bogus", "argument x", "unknown --bogus", "unknown -q"}));
  // Names are matched whole: no abbreviations, no other case.
  EXPECT_EQ(read_all({"--lim", "--QUIET"}), (Lines{"unknown --lim", "unknown --QUIET"}));
}

TEST(FlagReader, AMissingValueNamesTheFlagAndWhatItWants) {
  EXPECT_EQ(usage_error({"job.json", "--limit"}), "--limit: needs a value (N)");
  EXPECT_EQ(usage_error({"--data-root"}), "--data-root: needs a value (DIR)");
  EXPECT_EQ(usage_error({"--quiet=1"}), "--quiet: takes no value");
  EXPECT_EQ(usage_error({"--quiet="}), "--quiet: takes no value");
}

TEST(FlagReader, ARepeatedFlagIsReadEachTimeInOrder) {
  // The program decides: the coordinator and the worker keep the last, the client refuses.
  EXPECT_EQ(read_all({"--limit", "1", "--quiet", "--limit=2", "--quiet"}),
            (Lines{"flag --limit=1", "flag --quiet=", "flag --limit=2", "flag --quiet="}));
}

TEST(FlagReader, FlagsAcceptedLaterAreKnownFromThereOn) {
  const std::vector<FlagSpec> command_flags = {{"--watch", "", "follow it"}, {"--format", "F", "text or json"}};
  FlagReader reader({"--watch", "submit", "--watch", "--format=json", "--limit", "3"}, kFlags);
  auto item = reader.next();
  ASSERT_TRUE(item);
  EXPECT_EQ(item->kind, Item::kUnknown);  // not a flag before the command
  item = reader.next();
  ASSERT_TRUE(item);
  EXPECT_EQ(item->kind, Item::kArgument);
  reader.accept(command_flags);
  std::vector<std::string> rest;
  while ((item = reader.next())) rest.push_back(item->text + "=" + item->value);
  EXPECT_EQ(rest, (Lines{"--watch=", "--format=json", "--limit=3"}));
}

TEST(FlagList, HelpTextsAlignAfterTheLongestFlagOrTheWidthGiven) {
  EXPECT_EQ(flag_usage(kFlags[0]), "--limit N");
  EXPECT_EQ(flag_usage(kFlags[2]), "--quiet");
  EXPECT_EQ(flag_list(kFlags),
            "  --limit N        at most N\n"
            "  --data-root DIR  where data sets live\n"
            "  --quiet          no progress\n");
  EXPECT_EQ(flag_list({kFlags[2]}, 10), "  --quiet     no progress\n");
  EXPECT_EQ(flag_list({}), "");
}

TEST(Flags, WholeNumbersInRange) {
  EXPECT_EQ(parse_whole_number("--n", "0", 0, 10), 0);
  EXPECT_EQ(parse_whole_number("--n", "10", 0, 10), 10);
  EXPECT_EQ(parse_whole_number("--n", "-3", -5, 5), -3);
  EXPECT_EQ(parse_whole_number("--n", "+7", 0, 10), 7);
}

TEST(Flags, RefusedWithTheFlagTheRangeAndTheText) {
  for (const char* bad : {"", "11", "-1", "2.5", "3x", " 3", "3 ", "0x10", "99999999999999999999999"}) {
    try {
      parse_whole_number("--max-attempts", bad, 0, 10);
      ADD_FAILURE() << "accepted '" << bad << "'";
    } catch (const UserError& e) {
      EXPECT_EQ(std::string(e.what()),
                std::string("--max-attempts: must be a whole number from 0 to 10, got '") + bad + "'");
    }
  }
}

}  // namespace
}  // namespace prelude
