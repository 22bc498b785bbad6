// parse_whole_number: the one reader of whole-number flags (coordinator, worker, client).
#include <gtest/gtest.h>

#include "common/flags.h"
#include "common/errors.h"

using prelude::parse_whole_number;
using prelude::UserError;

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
