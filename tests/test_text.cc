// common/text.h: control characters made visible, echoed input bounded.
#include <gtest/gtest.h>

#include <string>

#include "common/text.h"

namespace prelude {
namespace {

TEST(EscapeControl, PlainTextAndUtf8PassUnchanged) {
  EXPECT_EQ(escape_control("conv1 act/2 (x) é ü 日本 🙂"), "conv1 act/2 (x) é ü 日本 🙂");
  EXPECT_TRUE(is_printable("T-shirt/top"));
}

TEST(EscapeControl, EscSequencesAndC0AreMadeVisible) {
  EXPECT_EQ(escape_control("act\x1b[31mRED\x1b[0m"), "act\\x1b[31mRED\\x1b[0m");
  EXPECT_EQ(escape_control("\x1b]0;title\x07"), "\\x1b]0;title\\x07");
  EXPECT_EQ(escape_control(std::string("a\0b", 3)), "a\\x00b");
  EXPECT_EQ(escape_control("a\rb\bc"), "a\\x0db\\x08c");
  EXPECT_EQ(escape_control("del\x7f"), "del\\x7f");
  EXPECT_FALSE(is_printable("a\x1b"));
}

TEST(EscapeControl, NewlineAndTabStayOnlyWhereLayoutIsKept) {
  EXPECT_EQ(escape_control("line 1\n\tline 2"), "line 1\\x0a\\x09line 2");
  EXPECT_EQ(escape_control("line 1\n\tline 2\x1b", true), "line 1\n\tline 2\\x1b");
}

TEST(EscapeControl, C1ControlsAndBytesThatAreNotUtf8AreMadeVisible) {
  // U+009B is CSI, an ESC [ on its own to terminals that honour C1.
  EXPECT_EQ(escape_control("a\xc2\x9b" "31mb"), "a\\u009b31mb");
  EXPECT_EQ(escape_control("a\xc2\xa0z"), "a\xc2\xa0z");  // U+00A0 is not a control
  EXPECT_EQ(escape_control("a\x9b" "31m"), "a\\x9b31m");  // a lone 8-bit CSI
  EXPECT_EQ(escape_control("\xff\xfe"), "\\xff\\xfe");
  EXPECT_EQ(escape_control("\xe6\x97"), "\\xe6\\x97");     // a cut sequence
  EXPECT_EQ(escape_control("\xc0\xaf"), "\\xc0\\xaf");     // overlong '/'
}

TEST(Echoed, ShortTextIsQuotedWhole) {
  EXPECT_EQ(echoed("job-000001"), "'job-000001'");
  EXPECT_EQ(echoed(""), "''");
}

TEST(Echoed, LongTextIsCutAndSaysItsLength) {
  const std::string id(10240, 'x');
  const std::string e = echoed(id);
  EXPECT_EQ(e, "'" + std::string(64, 'x') + "...' (10240 bytes)");
  EXPECT_LT(e.size(), 100u);
}

TEST(Echoed, CutsAtACharacterBoundaryAndEscapes) {
  std::string id(63, 'a');
  id += "é";  // bytes 63 and 64: cut before it, not inside
  id += std::string(100, 'b');
  EXPECT_EQ(echoed(id), "'" + std::string(63, 'a') + "...' (" + std::to_string(id.size()) + " bytes)");
  EXPECT_EQ(echoed("job\x1b[2J"), "'job\\x1b[2J'");
}

}  // namespace
}  // namespace prelude
