#include "spec/strict_json.h"

#include <google/protobuf/util/json_util.h>

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <map>
#include <utility>
#include <vector>

#include "common/errors.h"
#include "spec/proto_json_errors.h"
#include "spec/spec_text.h"

namespace prelude {

namespace pb = google::protobuf;

namespace {

// The RFC 8259 check that runs before protobuf sees the text: it throws a
// UserError "<source>:<line>:<column>: malformed JSON: <reason>" for the first
// problem, and "<source>:<line>:<column>: <path>: given twice (first at line N)"
// for a key given twice in one object. Where keys name fields of the message being
// read, it treats "batch_size" and "batchSize" in one object as the same key, as
// protobuf does; elsewhere keys are compared as written.
class JsonSyntaxChecker {
 public:
  JsonSyntaxChecker(const std::string& text, const std::string& source, const pb::Descriptor* root)
      : text_(text), source_(source), root_(root) {}

  void check() {
    skip_space();
    if (at_end()) fail_here("the input is empty; expected a JSON object");
    if (peek() != '{') fail_here("expected a JSON object ('{') at the top level, got " + describe_next());
    check_object(1, schema_of(root_));
    skip_space();
    if (!at_end()) fail_here("unexpected " + describe_next() + " after the end of the top-level object");
  }

 private:
  // Job and sweep files are a few levels deep; this only stops runaway recursion.
  static constexpr int kMaxDepth = 64;

  // What the keys of an object at some place are. In a message they name its fields,
  // and the two spellings of a field ("batch_size", "batchSize") are one key, as
  // protobuf takes them. In free-form JSON, such as a google.protobuf.Value (a
  // sweep's values) or a map, keys are data and two spellings are two keys.
  struct Schema {
    const pb::Descriptor* message = nullptr;  // the message type; null where unknown
    bool free_form = false;
  };

  // A message type's own schema. The well-known types (google/protobuf/*.proto:
  // Value, Struct, Any, ...) have JSON forms of their own rather than fields.
  static Schema schema_of(const pb::Descriptor* message) {
    if (starts_with(message->file()->name(), "google/protobuf/")) return {nullptr, true};
    return {message, false};
  }

  // The schema of the value of `key` in an object of schema `object`; also that of
  // the elements when the value is a list.
  static Schema member(const Schema& object, const std::string& key) {
    if (object.free_form) return object;
    const pb::FieldDescriptor* f = find_field(object.message, key);
    // An unknown field (protobuf reports it) or an object given to a scalar field:
    // nothing is known, so keys are taken as field names, as protobuf would.
    if (f == nullptr || f->message_type() == nullptr) return {};
    if (f->is_map()) return {nullptr, true};
    return schema_of(f->message_type());
  }

  bool at_end() const { return pos_ >= text_.size(); }
  unsigned char peek() const { return static_cast<unsigned char>(text_[pos_]); }
  bool next_is_digit() const { return !at_end() && std::isdigit(peek()); }

  void skip_space() {
    while (!at_end() && (peek() == ' ' || peek() == '\t' || peek() == '\n' || peek() == '\r')) ++pos_;
  }

  // "line:column", both 1-based; columns count characters, not bytes.
  std::string position(size_t pos) const {
    int line = 1, column = 1;
    for (size_t i = 0; i < pos && i < text_.size(); ++i) {
      const auto c = static_cast<unsigned char>(text_[i]);
      if (c == '\n') {
        ++line;
        column = 1;
      } else if ((c & 0xC0) != 0x80) {
        ++column;
      }
    }
    return std::to_string(line) + ":" + std::to_string(column);
  }

  std::string line_of(size_t pos) const {
    return "line " + std::to_string(std::count(text_.begin(), text_.begin() + static_cast<long>(pos), '\n') + 1);
  }

  [[noreturn]] void fail_at(size_t pos, const std::string& reason) const {
    throw user_error(source_ + ":" + position(pos), "malformed JSON: " + reason);
  }
  [[noreturn]] void fail_here(const std::string& reason) const { fail_at(pos_, reason); }
  [[noreturn]] void fail_unclosed(size_t open) const {
    fail_here(std::string("unexpected end of input; the '") + text_[open] + "' at " + position(open) +
              " is not closed");
  }

  // What is at the current position, for messages: "end of input", "'}'", "'NaN'".
  std::string describe_next() const {
    if (at_end()) return "end of input";
    const unsigned char c = peek();
    if (std::isalpha(c)) {
      size_t end = pos_;
      while (end < text_.size() && end - pos_ < 24 && std::isalnum(static_cast<unsigned char>(text_[end]))) ++end;
      return "'" + text_.substr(pos_, end - pos_) + "'";
    }
    return describe_byte(c);
  }

  // "'x'" for a printable ASCII character, else "byte 0x0A".
  static std::string describe_byte(unsigned char c) {
    if (c >= 0x20 && c < 0x7F) return std::string("'") + static_cast<char>(c) + "'";
    char buf[16];
    std::snprintf(buf, sizeof buf, "byte 0x%02X", c);
    return buf;
  }

  // The JSON path of the value being read, e.g. "model.layers[2].conv".
  std::string current_path() const {
    std::string out;
    for (const auto& segment : path_) out = segment[0] == '[' ? out + segment : join_path(out, segment);
    return out;
  }

  void check_value(int depth, const Schema& schema) {
    if (at_end()) fail_here("unexpected end of input; expected a value");
    const unsigned char c = peek();
    if (c == '{') return check_object(depth + 1, schema);
    if (c == '[') return check_array(depth + 1, schema);
    if (c == '"') {
      read_string();
      return;
    }
    if (c == '-' || std::isdigit(c)) return check_number();
    for (const char* literal : {"true", "false", "null"}) {
      const size_t n = std::strlen(literal);
      if (text_.compare(pos_, n, literal) == 0 &&
          (pos_ + n == text_.size() || !std::isalnum(static_cast<unsigned char>(text_[pos_ + n])))) {
        pos_ += n;
        return;
      }
    }
    fail_here("expected a value, got " + describe_next());
  }

  void check_object(int depth, const Schema& schema) {
    if (depth > kMaxDepth) fail_here("nested more than " + std::to_string(kMaxDepth) + " levels deep");
    const size_t open = pos_++;
    // Key (for a field, its JSON name) -> (the spelling used, where) of each key seen in this object.
    std::map<std::string, std::pair<std::string, size_t>> seen;
    skip_space();
    if (!at_end() && peek() == '}') {
      ++pos_;
      return;
    }
    size_t comma = 0;  // where the last ',' was
    for (;;) {
      skip_space();
      if (at_end()) fail_unclosed(open);
      if (peek() == '}') fail_at(comma, "trailing comma before '}'");  // only reachable after a ','
      if (peek() != '"') fail_here("expected a field name in double quotes, got " + describe_next());
      const size_t key_pos = pos_;
      const std::string key = read_string();
      const std::string name = schema.free_form ? key : to_json_name(key);
      const auto [it, inserted] = seen.emplace(name, std::make_pair(key, key_pos));
      if (!inserted) {
        const auto& [first_key, first_pos] = it->second;
        const std::string reason = "given twice (first " + (first_key == key ? "" : "as " + quoted(first_key) + " ") +
                                   "at " + line_of(first_pos) + ")";
        throw user_error(source_ + ":" + position(key_pos), join_path(current_path(), echo(name)) + ": " + reason);
      }
      skip_space();
      if (at_end() || peek() != ':') fail_here("expected ':' after " + quoted(key) + ", got " + describe_next());
      ++pos_;
      skip_space();
      path_.push_back(echo(name));
      check_value(depth, member(schema, key));
      path_.pop_back();
      skip_space();
      if (at_end()) fail_unclosed(open);
      if (peek() == ',') {
        comma = pos_++;
        continue;
      }
      if (peek() == '}') {
        ++pos_;
        return;
      }
      fail_here("expected ',' or '}' after the value of " + quoted(key) + ", got " + describe_next());
    }
  }

  void check_array(int depth, const Schema& elements) {
    if (depth > kMaxDepth) fail_here("nested more than " + std::to_string(kMaxDepth) + " levels deep");
    const size_t open = pos_++;
    skip_space();
    if (!at_end() && peek() == ']') {
      ++pos_;
      return;
    }
    size_t comma = 0;  // where the last ',' was
    for (int index = 0;; ++index) {
      skip_space();
      if (at_end()) fail_unclosed(open);
      if (peek() == ']') fail_at(comma, "trailing comma before ']'");  // only reachable after a ','
      path_.push_back("[" + std::to_string(index) + "]");
      check_value(depth, elements);
      path_.pop_back();
      skip_space();
      if (at_end()) fail_unclosed(open);
      if (peek() == ',') {
        comma = pos_++;
        continue;
      }
      if (peek() == ']') {
        ++pos_;
        return;
      }
      fail_here("expected ',' or ']' after an array element, got " + describe_next());
    }
  }

  // -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?, and representable as a double.
  void check_number() {
    const size_t start = pos_;
    if (peek() == '-') ++pos_;
    if (!next_is_digit()) fail_at(start, "invalid number: expected a digit after '-'");
    if (peek() == '0') {
      ++pos_;
      if (next_is_digit()) fail_at(start, "invalid number: leading zeros are not allowed");
    }
    while (next_is_digit()) ++pos_;
    if (!at_end() && peek() == '.') {
      ++pos_;
      if (!next_is_digit()) fail_at(start, "invalid number: expected a digit after '.'");
      while (next_is_digit()) ++pos_;
    }
    if (!at_end() && (peek() == 'e' || peek() == 'E')) {
      ++pos_;
      if (!at_end() && (peek() == '+' || peek() == '-')) ++pos_;
      if (!next_is_digit()) fail_at(start, "invalid number: the exponent has no digits");
      while (next_is_digit()) ++pos_;
    }
    const std::string number = text_.substr(start, pos_ - start);
    if (std::isinf(std::strtod(number.c_str(), nullptr))) fail_at(start, "number out of range: " + number);
  }

  // Reads a string token and returns its decoded value (keys are compared decoded).
  std::string read_string() {
    const size_t start = pos_++;
    std::string out;
    for (;;) {
      if (at_end() || peek() == '\n') fail_at(start, "unterminated string");
      const unsigned char c = peek();
      if (c == '"') {
        ++pos_;
        return out;
      }
      if (c < 0x20) fail_here("control character in a string (write it as an escape such as \\t)");
      if (c == '\\') {
        read_escape(&out);
      } else if (c < 0x80) {
        out += static_cast<char>(c);
        ++pos_;
      } else {
        const size_t n = utf8_sequence_length();
        if (n == 0) fail_here("invalid UTF-8 in a string");
        out.append(text_, pos_, n);
        pos_ += n;
      }
    }
  }

  // The length of the well-formed UTF-8 sequence at pos_, 0 if there is none
  // (overlong forms and surrogates included, as RFC 3629 says).
  size_t utf8_sequence_length() const {
    const unsigned char c = peek();
    size_t n;
    unsigned char lo = 0x80, hi = 0xBF;  // bounds of the second byte
    if (c >= 0xC2 && c <= 0xDF) {
      n = 2;
    } else if (c >= 0xE0 && c <= 0xEF) {
      n = 3;
      if (c == 0xE0) lo = 0xA0;
      if (c == 0xED) hi = 0x9F;
    } else if (c >= 0xF0 && c <= 0xF4) {
      n = 4;
      if (c == 0xF0) lo = 0x90;
      if (c == 0xF4) hi = 0x8F;
    } else {
      return 0;
    }
    if (pos_ + n > text_.size()) return 0;
    for (size_t i = 1; i < n; ++i) {
      const auto b = static_cast<unsigned char>(text_[pos_ + i]);
      if (i == 1 ? (b < lo || b > hi) : (b < 0x80 || b > 0xBF)) return 0;
    }
    return n;
  }

  void read_escape(std::string* out) {
    const size_t start = pos_++;  // the backslash
    if (at_end()) fail_at(start, "unterminated string");
    const auto c = static_cast<char>(peek());
    ++pos_;
    switch (c) {
      case '"': *out += '"'; return;
      case '\\': *out += '\\'; return;
      case '/': *out += '/'; return;
      case 'b': *out += '\b'; return;
      case 'f': *out += '\f'; return;
      case 'n': *out += '\n'; return;
      case 'r': *out += '\r'; return;
      case 't': *out += '\t'; return;
      case 'u': break;
      default:
        fail_at(start, "invalid escape in a string: '\\' followed by " + describe_byte(static_cast<unsigned char>(c)));
    }
    unsigned code = read_hex4(start);
    if (code >= 0xDC00 && code <= 0xDFFF) fail_at(start, "unpaired surrogate in a \\u escape");
    if (code >= 0xD800 && code <= 0xDBFF) {
      if (text_.compare(pos_, 2, "\\u") != 0) fail_at(start, "unpaired surrogate in a \\u escape");
      pos_ += 2;
      const unsigned low = read_hex4(start);
      if (low < 0xDC00 || low > 0xDFFF) fail_at(start, "unpaired surrogate in a \\u escape");
      code = 0x10000 + ((code - 0xD800) << 10) + (low - 0xDC00);
    }
    append_utf8(code, out);
  }

  unsigned read_hex4(size_t escape_start) {
    unsigned value = 0;
    for (int i = 0; i < 4; ++i, ++pos_) {
      if (at_end() || !std::isxdigit(peek())) fail_at(escape_start, "a \\u escape needs four hex digits");
      const unsigned char c = peek();
      value = value * 16 + (std::isdigit(c) ? c - '0' : std::tolower(c) - 'a' + 10);
    }
    return value;
  }

  static void append_utf8(unsigned code, std::string* out) {
    if (code < 0x80) {
      *out += static_cast<char>(code);
    } else if (code < 0x800) {
      *out += static_cast<char>(0xC0 | (code >> 6));
      *out += static_cast<char>(0x80 | (code & 0x3F));
    } else if (code < 0x10000) {
      *out += static_cast<char>(0xE0 | (code >> 12));
      *out += static_cast<char>(0x80 | ((code >> 6) & 0x3F));
      *out += static_cast<char>(0x80 | (code & 0x3F));
    } else {
      *out += static_cast<char>(0xF0 | (code >> 18));
      *out += static_cast<char>(0x80 | ((code >> 12) & 0x3F));
      *out += static_cast<char>(0x80 | ((code >> 6) & 0x3F));
      *out += static_cast<char>(0x80 | (code & 0x3F));
    }
  }

  const std::string& text_;
  const std::string& source_;
  const pb::Descriptor* root_;
  size_t pos_ = 0;
  std::vector<std::string> path_;  // JSON names and "[i]" of the value being read
};

}  // namespace

void parse_strict_json(const std::string& text, const std::string& source, pb::Message* message) {
  // Some editors start UTF-8 files with a byte order mark; JSON parsers need not accept it.
  static const std::string kBom = "\xEF\xBB\xBF";
  const std::string json = starts_with(text, kBom) ? text.substr(kBom.size()) : text;
  JsonSyntaxChecker(json, source, message->GetDescriptor()).check();

  pb::util::JsonParseOptions options;
  options.ignore_unknown_fields = false;
  const auto status = pb::util::JsonStringToMessage(json, message, options);
  if (!status.ok()) throw translate_json_parse_error(source, message->GetDescriptor(), std::string(status.message()));
  try {
    check_enum_values(*message, "");
  } catch (const UserError& e) {
    throw UserError(source + ": " + e.what());
  }
}

}  // namespace prelude
