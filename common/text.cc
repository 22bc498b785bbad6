#include "common/text.h"

#include <cstdio>

namespace prelude {

namespace {

// The length of the well-formed UTF-8 sequence at text[i] (1..4), or 0 when the
// bytes there are not one (a stray continuation byte, an overlong or cut sequence).
size_t utf8_length(std::string_view text, size_t i) {
  const auto byte = [&](size_t k) { return static_cast<unsigned char>(text[k]); };
  const unsigned char b = byte(i);
  if (b < 0x80) return 1;
  size_t n = 0;
  unsigned min = 0;
  if ((b & 0xe0) == 0xc0) {
    n = 2, min = 0x80;
  } else if ((b & 0xf0) == 0xe0) {
    n = 3, min = 0x800;
  } else if ((b & 0xf8) == 0xf0) {
    n = 4, min = 0x10000;
  } else {
    return 0;
  }
  if (i + n > text.size()) return 0;
  unsigned cp = b & (0x7f >> n);
  for (size_t k = 1; k < n; ++k) {
    if ((byte(i + k) & 0xc0) != 0x80) return 0;
    cp = (cp << 6) | (byte(i + k) & 0x3f);
  }
  if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) return 0;
  return n;
}

bool is_control(unsigned char c, bool keep_layout) {
  if (keep_layout && (c == '\n' || c == '\t')) return false;
  return c < 0x20 || c == 0x7f;
}

// A C1 control, U+0080..U+009F, is C2 80..C2 9F in UTF-8.
bool is_c1(std::string_view text, size_t i, size_t n) {
  return n == 2 && static_cast<unsigned char>(text[i]) == 0xc2 && static_cast<unsigned char>(text[i + 1]) < 0xa0;
}

}  // namespace

bool is_printable(std::string_view text, bool keep_layout) {
  for (size_t i = 0; i < text.size();) {
    const size_t n = utf8_length(text, i);
    if (n == 0 || (n == 1 && is_control(static_cast<unsigned char>(text[i]), keep_layout)) || is_c1(text, i, n))
      return false;
    i += n;
  }
  return true;
}

std::string escape_control(std::string_view text, bool keep_layout) {
  if (is_printable(text, keep_layout)) return std::string(text);
  std::string out;
  out.reserve(text.size() + 16);
  char buf[8];
  for (size_t i = 0; i < text.size();) {
    const size_t n = utf8_length(text, i);
    const unsigned char b = static_cast<unsigned char>(text[i]);
    if (n == 0 || (n == 1 && is_control(b, keep_layout))) {
      std::snprintf(buf, sizeof buf, "\\x%02x", b);
      out += buf;
      i += 1;
    } else if (is_c1(text, i, n)) {
      std::snprintf(buf, sizeof buf, "\\u%04x", static_cast<unsigned char>(text[i + 1]));
      out += buf;
      i += 2;
    } else {
      out.append(text.substr(i, n));
      i += n;
    }
  }
  return out;
}

std::string echoed(std::string_view text, size_t max_bytes) {
  if (text.size() <= max_bytes) return "'" + escape_control(text) + "'";
  size_t cut = max_bytes;
  // Back to the start of a character: never half of one.
  while (cut > 0 && (static_cast<unsigned char>(text[cut]) & 0xc0) == 0x80) --cut;
  return "'" + escape_control(text.substr(0, cut)) + "...' (" + std::to_string(text.size()) + " bytes)";
}

}  // namespace prelude
