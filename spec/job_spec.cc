#include "spec/job_spec.h"

#include <google/protobuf/descriptor.h>
#include <google/protobuf/util/json_util.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <stdexcept>
#include <utility>

#include "common/errors.h"
#include "spec/spec_text.h"

namespace prelude {

namespace v1 = prelude::v1;
namespace pb = google::protobuf;

namespace {

// ---------------------------------------------------------------------------
// Limits. Anything beyond them is a mistake in the job, not a job to attempt.

constexpr double kMaxEpochs = 1000;
constexpr int kMaxBatch = 65536;
constexpr double kMaxLearningRate = 10;
constexpr int kMaxChannels = 4096;
constexpr int kMaxFeatures = 65536;
constexpr int kMaxKernel = 15;
constexpr int kMaxStride = 8;
constexpr int kMaxWidth = 1024;
constexpr int kMinPlainDepth = 3;
constexpr int kMaxPlainDepth = 200;
constexpr int kMaxLayers = 1000;
constexpr int kMaxStepEpochs = 1000;
constexpr size_t kMaxNameChars = 200;
constexpr size_t kMaxPathBytes = 4096;
constexpr size_t kMaxJobFileBytes = 16 << 20;

constexpr const char* kDefaultDataset = "fashion-mnist";
constexpr const char* kCnnSmall = "cnn-small";
constexpr const char* kPlainPrefix = "plain-";

// ---------------------------------------------------------------------------
// Small helpers.

// Number of characters (UTF-8 code points) in s.
size_t char_count(const std::string& s) {
  return static_cast<size_t>(
      std::count_if(s.begin(), s.end(), [](char c) { return (static_cast<unsigned char>(c) & 0xC0) != 0x80; }));
}

// Edits (insert, delete, substitute, swap two neighbours) from a to b: the optimal
// string alignment distance, so that "inti" is one edit from "init".
size_t edit_distance(const std::string& a, const std::string& b) {
  std::vector<std::vector<size_t>> d(a.size() + 1, std::vector<size_t>(b.size() + 1));
  for (size_t i = 0; i <= a.size(); ++i) d[i][0] = i;
  for (size_t j = 0; j <= b.size(); ++j) d[0][j] = j;
  for (size_t i = 1; i <= a.size(); ++i) {
    for (size_t j = 1; j <= b.size(); ++j) {
      d[i][j] = std::min({d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1)});
      if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1]) d[i][j] = std::min(d[i][j], d[i - 2][j - 2] + 1);
    }
  }
  return d[a.size()][b.size()];
}

// ---------------------------------------------------------------------------
// Strict JSON syntax check.
//
// protobuf's parser reports syntax errors as several lines with a caret under a
// context snippet and no line number, and it silently accepts things a job file
// should not contain: trailing commas, and a key given twice (it keeps the last
// scalar and merges objects, so one of two "training" blocks would quietly lose
// settings). This RFC 8259 checker runs first and reports the line and column of
// the first problem. It also treats "batch_size" and "batchSize" in one object as
// the same key, as protobuf does.

class JsonSyntaxChecker {
 public:
  JsonSyntaxChecker(const std::string& text, const std::string& source) : text_(text), source_(source) {}

  void check() {
    skip_space();
    if (at_end()) fail_here("the input is empty; expected a JSON object");
    if (peek() != '{') fail_here("expected a JSON object ('{') at the top level, got " + describe_next());
    check_object(1);
    skip_space();
    if (!at_end()) fail_here("unexpected " + describe_next() + " after the end of the top-level object");
  }

 private:
  // Our schema is 5 levels deep; this only stops runaway recursion.
  static constexpr int kMaxDepth = 64;

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

  void check_value(int depth) {
    if (at_end()) fail_here("unexpected end of input; expected a value");
    const unsigned char c = peek();
    if (c == '{') return check_object(depth + 1);
    if (c == '[') return check_array(depth + 1);
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

  void check_object(int depth) {
    if (depth > kMaxDepth) fail_here("nested more than " + std::to_string(kMaxDepth) + " levels deep");
    const size_t open = pos_++;
    // JSON name -> (the spelling used, where) of each key seen in this object.
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
      const std::string name = to_json_name(key);
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
      check_value(depth);
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

  void check_array(int depth) {
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
      check_value(depth);
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
  size_t pos_ = 0;
  std::vector<std::string> path_;  // JSON names and "[i]" of the value being read
};

// ---------------------------------------------------------------------------
// Translating protobuf's JSON parse errors.
//
// With the syntax checked above, what protobuf 3.21 still reports comes in two
// forms, "(loc): invalid value V for type T" and "(loc) name: what", all
// INVALID_ARGUMENT, with locations in proto (snake_case) field names:
//   "(training.batch_size): invalid value \"abc\" for type TYPE_INT32"
//   "(model.activation.kind): invalid value \"FOO\" for type type.googleapis.com/prelude.v1.ActivationSpec.Kind"
//   "(model.layers[0]): invalid value oneof field 'layer' is already set. Cannot set 'fc' for type oneof"
//   "(training): invalid value Starting an object on a scalar field for type batch_size"
//   "(training) batchSizee: Cannot find field."            (no parentheses at the top level)
//   "(training) batchSize: Proto field is not repeating, cannot start list."
// They become "<source>: <camelCase path>: <reason>".

// A protobuf location ("model.layers[1].conv") resolved against JobSpec.
struct Location {
  std::string path;                             // in JSON form: "model.layers[1].conv"
  const pb::Descriptor* message = nullptr;      // the message type found there, if any
  const pb::FieldDescriptor* field = nullptr;   // the last field named, if known
  bool element = false;                         // the last segment was indexed: one element
};

Location resolve(const std::string& location) {
  Location at;
  at.message = v1::JobSpec::descriptor();
  size_t begin = 0;
  while (begin < location.size()) {
    size_t end = location.find('.', begin);
    if (end == std::string::npos) end = location.size();
    std::string name = location.substr(begin, end - begin), index;
    if (const size_t bracket = name.find('['); bracket != std::string::npos) {
      index = name.substr(bracket);
      name.resize(bracket);
    }
    at.field = find_field(at.message, name);
    at.path = join_path(at.path, at.field ? at.field->json_name() : to_json_name(name)) + index;
    at.element = !index.empty();
    at.message = at.field ? at.field->message_type() : nullptr;
    begin = end + 1;
  }
  return at;
}

// "a 32-bit whole number", "an object", ...: what a field takes, for messages.
std::string expected_value(const pb::FieldDescriptor* f, bool element) {
  if (f->is_repeated() && !element)
    return f->cpp_type() == pb::FieldDescriptor::CPPTYPE_MESSAGE ? "a list of objects" : "a list";
  switch (f->cpp_type()) {
    case pb::FieldDescriptor::CPPTYPE_INT32: return "a 32-bit whole number";
    case pb::FieldDescriptor::CPPTYPE_INT64: return "a 64-bit whole number";
    case pb::FieldDescriptor::CPPTYPE_UINT32: return "a non-negative 32-bit whole number";
    case pb::FieldDescriptor::CPPTYPE_UINT64: return "a non-negative 64-bit whole number";
    case pb::FieldDescriptor::CPPTYPE_DOUBLE:
    case pb::FieldDescriptor::CPPTYPE_FLOAT: return "a number";
    case pb::FieldDescriptor::CPPTYPE_BOOL: return "true or false";
    case pb::FieldDescriptor::CPPTYPE_STRING: return "a string";
    case pb::FieldDescriptor::CPPTYPE_ENUM: return "one of " + enum_value_names(f->enum_type());
    case pb::FieldDescriptor::CPPTYPE_MESSAGE: return "an object";
  }
  return "another type of value";
}

// The reason for an enum field given `value` (protobuf's rendering: "\"FOO\"", "1.5").
std::string bad_enum_reason(const pb::EnumDescriptor* e, const std::string& value) {
  const std::string valid = enum_value_names(e);
  if (value.size() < 2 || value.front() != '"' || value.back() != '"')
    return "expected one of " + valid + ", got " + echo(value);
  std::string upper = value.substr(1, value.size() - 2);
  for (auto& c : upper) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  const auto* match = e->FindValueByName(upper);
  const std::string hint = match && match->number() != 0 ? " (did you mean " + upper + "?)" : "";
  return "unknown value " + quoted(value.substr(1, value.size() - 2)) + hint + "; valid: " + valid;
}

// "(did you mean batchSize?)" for a near miss, else the list of known fields.
std::string unknown_field_reason(const pb::Descriptor* message, const std::string& name) {
  if (message == nullptr) return "unknown field";
  auto fold = [](const std::string& s) {
    std::string out;
    for (const char c : s)
      if (c != '_') out += static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    return out;
  };
  const std::string folded = fold(name);
  std::string best, known;
  size_t best_distance = std::string::npos;
  for (int i = 0; i < message->field_count(); ++i) {
    const std::string& candidate = message->field(i)->json_name();
    known += (known.empty() ? "" : ", ") + candidate;
    const size_t d = edit_distance(folded, fold(candidate));
    if (d < best_distance) {
      best_distance = d;
      best = candidate;
    }
  }
  const size_t tolerance = std::min<size_t>(3, std::max<size_t>(1, folded.size() / 4));
  if (best_distance <= tolerance) return "unknown field (did you mean " + best + "?)";
  return "unknown field (known fields: " + known + ")";
}

// For "(loc): invalid value VALUE for type TYPE".
std::pair<std::string, std::string> translate_invalid_value(const std::string& location, const std::string& value,
                                                            const std::string& type) {
  const Location at = resolve(location);
  if (type == "oneof") {
    // VALUE: "oneof field 'layer' is already set. Cannot set 'fc'"
    std::vector<std::string> names;
    for (size_t q = value.find('\''); q != std::string::npos && names.size() < 2; q = value.find('\'', q + 1)) {
      const size_t close = value.find('\'', q + 1);
      if (close == std::string::npos) break;
      names.push_back(value.substr(q + 1, close - q - 1));
      q = close;
    }
    const auto* oneof = at.message && !names.empty() ? at.message->FindOneofByName(names[0]) : nullptr;
    if (oneof != nullptr && oneof->field_count() > 1) {
      std::string members;
      for (int i = 0; i < oneof->field_count(); ++i)
        members += (i == 0 ? "" : i + 1 == oneof->field_count() ? " or " : ", ") + oneof->field(i)->json_name();
      return {at.path, "give exactly one of " + members + ", not several"};
    }
    // The hidden oneof of an `optional` field: the field was given twice.
    const auto* f = names.size() == 2 ? find_field(at.message, names[1]) : nullptr;
    return {join_path(at.path, f ? f->json_name() : to_json_name(names.size() == 2 ? names[1] : "")), "given twice"};
  }
  if (starts_with(value, "Starting an object on a scalar field")) {
    // TYPE is the proto name of the scalar field inside `location`.
    const auto* f = find_field(at.message, type);
    return {join_path(at.path, f ? f->json_name() : to_json_name(type)),
            (f ? "expected " + expected_value(f, false) + ", got an object" : "got an object")};
  }
  if (at.field == nullptr) return {at.path, "invalid value " + echo(value)};
  if (at.field->cpp_type() == pb::FieldDescriptor::CPPTYPE_ENUM && (!at.field->is_repeated() || at.element))
    return {at.path, bad_enum_reason(at.field->enum_type(), value)};
  return {at.path, "expected " + expected_value(at.field, at.element) + ", got " + echo(value)};
}

// For "(loc) NAME: WHAT".
std::pair<std::string, std::string> translate_invalid_name(const std::string& location, const std::string& name,
                                                           const std::string& what) {
  const Location at = resolve(location);
  if (what == "Cannot find field.") return {join_path(at.path, echo(name)), unknown_field_reason(at.message, name)};
  const auto* f = find_field(at.message, name);
  const std::string path = join_path(at.path, f ? f->json_name() : echo(name));
  if (f != nullptr && starts_with(what, "Proto field is not repeating"))
    return {path, "expected " + expected_value(f, false) + ", got a list"};
  std::string reason = what;
  if (!reason.empty() && reason.back() == '.') reason.pop_back();
  if (!reason.empty()) reason[0] = static_cast<char>(std::tolower(static_cast<unsigned char>(reason[0])));
  return {path, reason};
}

// Turns a protobuf JSON parse status message into "<source>: <path>: <reason>".
UserError translate_parse_error(const std::string& source, const std::string& message) {
  std::string location, rest = message;
  if (!rest.empty() && rest[0] == '(') {
    const size_t close = rest.find(')');
    if (close != std::string::npos) {
      location = rest.substr(1, close - 1);
      rest.erase(0, close + 1);
    }
  }
  // A report of protobuf's own JSON tokenizer ("Expected a value.\n<context>\n   ^").
  // The syntax check should leave none; if one comes, its first line is the news.
  const size_t last_line = message.rfind('\n');
  if (last_line != std::string::npos && message.find('^', last_line) != std::string::npos &&
      message.find_first_not_of(" ^", last_line + 1) == std::string::npos)
    return user_error(source, "malformed JSON: " + echo(message.substr(0, message.find('\n'))));

  std::pair<std::string, std::string> translated;
  static const std::string kInvalidValue = ": invalid value ";
  static const std::string kForType = " for type ";
  const size_t for_type = rest.rfind(kForType);
  if (starts_with(rest, kInvalidValue) && for_type != std::string::npos && for_type >= kInvalidValue.size()) {
    translated =
        translate_invalid_value(location, rest.substr(kInvalidValue.size(), for_type - kInvalidValue.size()),
                                rest.substr(for_type + kForType.size()));
  } else {
    if (!location.empty() && starts_with(rest, " ")) rest.erase(0, 1);
    const size_t colon = rest.find(": ");
    if (colon == std::string::npos || colon == 0) {
      // Not a form we know (a newer protobuf?): pass it on as it is, on one line.
      return user_error(source, "invalid job: " + echo(message, false, 300));
    }
    translated = translate_invalid_name(location, rest.substr(0, colon), rest.substr(colon + 2));
  }
  const auto& [path, reason] = translated;
  return user_error(path.empty() ? source : source + ": " + path, reason);
}

// Throws for an enum field holding a number that names no value. protobuf accepts
// any number for an open enum ("kind": 7), and specs built in code can hold one too.
void check_enum_values(const pb::Message& message, const std::string& path) {
  const pb::Reflection* r = message.GetReflection();
  std::vector<const pb::FieldDescriptor*> fields;
  r->ListFields(message, &fields);
  auto check = [](const std::string& where, const pb::EnumDescriptor* e, int number) {
    if (e->FindValueByNumber(number) == nullptr)
      throw user_error(where, "unknown value " + std::to_string(number) + "; valid: " + enum_value_names(e));
  };
  for (const auto* f : fields) {
    const std::string where = join_path(path, f->json_name());
    if (f->is_repeated()) {
      for (int i = 0; i < r->FieldSize(message, f); ++i) {
        if (f->cpp_type() == pb::FieldDescriptor::CPPTYPE_MESSAGE)
          check_enum_values(r->GetRepeatedMessage(message, f, i), indexed(where, i));
        else if (f->cpp_type() == pb::FieldDescriptor::CPPTYPE_ENUM)
          check(indexed(where, i), f->enum_type(), r->GetRepeatedEnumValue(message, f, i));
      }
    } else if (f->cpp_type() == pb::FieldDescriptor::CPPTYPE_MESSAGE) {
      check_enum_values(r->GetMessage(message, f), where);
    } else if (f->cpp_type() == pb::FieldDescriptor::CPPTYPE_ENUM) {
      check(where, f->enum_type(), r->GetEnumValue(message, f));
    }
  }
}

// ---------------------------------------------------------------------------
// Defaults.

double default_alpha(v1::ActivationSpec::Kind kind) {
  switch (kind) {
    case v1::ActivationSpec::LEAKY_RELU: return 0.01;
    case v1::ActivationSpec::PRELU_SHARED:
    case v1::ActivationSpec::PRELU_CHANNELWISE: return 0.25;
    default: return 0.0;  // RELU: the slope is 0
  }
}

// The depth N of a "plain-N" preset (digits only, no leading zero), 0 for any
// other string. The range is checked by check_preset.
int plain_depth(const std::string& preset) {
  if (!starts_with(preset, kPlainPrefix)) return 0;
  const std::string digits = preset.substr(std::strlen(kPlainPrefix));
  if (digits.empty() || digits.size() > 4 || digits[0] == '0') return 0;
  if (!std::all_of(digits.begin(), digits.end(), [](char c) { return std::isdigit(static_cast<unsigned char>(c)); }))
    return 0;
  return std::stoi(digits);
}

void default_activation(v1::ActivationSpec* a) {
  if (a->kind() == v1::ActivationSpec::KIND_UNSPECIFIED) a->set_kind(v1::ActivationSpec::PRELU_CHANNELWISE);
  if (!a->has_alpha_init()) a->set_alpha_init(default_alpha(a->kind()));
}

// An activation layer: what it leaves out comes from the model's (defaulted) spec;
// a slope only when the kinds agree, since a PReLU start is no Leaky ReLU slope.
void default_layer_activation(v1::ActivationSpec* a, const v1::ActivationSpec& model) {
  if (a->kind() == v1::ActivationSpec::KIND_UNSPECIFIED) a->set_kind(model.kind());
  if (!a->has_alpha_init()) a->set_alpha_init(a->kind() == model.kind() ? model.alpha_init() : default_alpha(a->kind()));
}

void default_layer(v1::LayerSpec* layer, const v1::ActivationSpec& model_activation) {
  switch (layer->layer_case()) {
    case v1::LayerSpec::kConv: {
      auto* c = layer->mutable_conv();
      if (c->kernel() == 0) c->set_kernel(3);
      if (!c->has_padding()) c->set_padding(c->kernel() / 2);
      if (c->stride() == 0) c->set_stride(1);
      break;
    }
    case v1::LayerSpec::kPool: {
      auto* p = layer->mutable_pool();
      if (p->kind() == v1::PoolLayerSpec::KIND_UNSPECIFIED) p->set_kind(v1::PoolLayerSpec::MAX);
      if (p->kind() == v1::PoolLayerSpec::GLOBAL_AVG) break;  // takes no kernel or stride
      if (p->kernel() == 0) p->set_kernel(2);
      if (p->stride() == 0) p->set_stride(p->kernel());
      break;
    }
    case v1::LayerSpec::kActivation:
      default_layer_activation(layer->mutable_activation(), model_activation);
      break;
    default:
      break;  // fc has no defaults; an empty layer is a validation error
  }
}

void default_model(v1::ModelSpec* m) {
  if (m->preset().empty() && m->layers_size() == 0) m->set_preset(kCnnSmall);
  if (plain_depth(m->preset()) > 0 && m->width() == 0) m->set_width(16);
  default_activation(m->mutable_activation());
  auto* init = m->mutable_init();
  if (init->scheme() == v1::InitSpec::SCHEME_UNSPECIFIED) init->set_scheme(v1::InitSpec::KAIMING_NORMAL);
  if (init->mode() == v1::InitSpec::MODE_UNSPECIFIED) init->set_mode(v1::InitSpec::FAN_IN);
  if (init->kaiming_factor() == v1::InitSpec::KAIMING_FACTOR_UNSPECIFIED)
    init->set_kaiming_factor(v1::InitSpec::ONE_PLUS_A_SQUARED);
  for (auto& layer : *m->mutable_layers()) default_layer(&layer, m->activation());
}

void default_dataset(v1::DatasetSpec* d) {
  const bool any_path = !d->train_images().empty() || !d->train_labels().empty() || !d->test_images().empty() ||
                        !d->test_labels().empty();
  if (d->name().empty() && !any_path) d->set_name(kDefaultDataset);
  double mean = 0, std = 1;  // an unknown data set is taken as already normalised
  if (d->name() == "fashion-mnist") {
    mean = 0.2860;
    std = 0.3530;
  } else if (d->name() == "mnist") {
    mean = 0.1307;
    std = 0.3081;
  }
  if (!d->has_mean()) d->set_mean(mean);
  if (!d->has_std()) d->set_std(std);
}

void default_training(v1::TrainingSpec* t) {
  if (!t->has_epochs()) t->set_epochs(1);
  if (!t->has_batch_size()) t->set_batch_size(64);
  if (!t->has_learning_rate()) t->set_learning_rate(0.01);
  if (!t->has_momentum()) t->set_momentum(0.9);
  if (!t->has_weight_decay()) t->set_weight_decay(5e-4);
  if (!t->has_seed()) t->set_seed(1);
  if (!t->has_log_every_steps()) t->set_log_every_steps(50);
  auto* dp = t->mutable_data_parallel();
  if (!dp->has_check_every_steps()) dp->set_check_every_steps(100);
  auto* s = t->mutable_lr_schedule();
  if (s->kind() == v1::LrScheduleSpec::KIND_UNSPECIFIED) s->set_kind(v1::LrScheduleSpec::CONSTANT);
  if (s->kind() == v1::LrScheduleSpec::STEP) {
    if (s->step_epochs() == 0) s->set_step_epochs(1);
    if (!s->has_gamma()) s->set_gamma(0.1);
  }
}

// ---------------------------------------------------------------------------
// Validation. Each check throws a UserError naming the field.

[[noreturn]] void fail(const std::string& where, const std::string& reason) { throw user_error(where, reason); }

void check_finite(const std::string& where, double v) {
  if (!std::isfinite(v)) fail(where, "must be a finite number, got " + format_number(v));
}

// 0 < v <= max (and finite).
void check_positive(const std::string& where, double v, double max) {
  check_finite(where, v);
  if (v <= 0) fail(where, "must be positive, got " + format_number(v));
  if (v > max) fail(where, "must be at most " + format_number(max) + ", got " + format_number(v));
}

void check_positive(const std::string& where, int64_t v, int64_t max) {
  if (v <= 0) fail(where, "must be positive, got " + std::to_string(v));
  if (v > max) fail(where, "must be at most " + std::to_string(max) + ", got " + std::to_string(v));
}

void check_not_negative(const std::string& where, double v) {
  check_finite(where, v);
  if (v < 0) fail(where, "must not be negative, got " + format_number(v));
}

void check_not_negative(const std::string& where, int64_t v) {
  if (v < 0) fail(where, "must not be negative, got " + std::to_string(v));
}

void check_between(const std::string& where, int64_t v, int64_t lo, int64_t hi) {
  if (v < lo || v > hi)
    fail(where, "must be between " + std::to_string(lo) + " and " + std::to_string(hi) + ", got " + std::to_string(v));
}

void check_text(const std::string& where, const std::string& s) {
  if (char_count(s) > kMaxNameChars)
    fail(where, "must be at most " + std::to_string(kMaxNameChars) + " characters, got " + std::to_string(char_count(s)));
  if (std::any_of(s.begin(), s.end(), [](char c) { return static_cast<unsigned char>(c) < 0x20 || c == 0x7F; }))
    fail(where, "must not contain control characters or line breaks");
}

// A file below the data root: relative, and no ".." that could leave it.
void check_data_path(const std::string& where, const std::string& path) {
  if (path.size() > kMaxPathBytes) fail(where, "must be at most " + std::to_string(kMaxPathBytes) + " bytes long");
  if (path.find('\0') != std::string::npos) fail(where, "must not contain NUL characters");
  if (path[0] == '/') fail(where, "must be relative to the data root, got " + quoted(path));
  for (size_t begin = 0; begin <= path.size();) {
    size_t end = path.find('/', begin);
    if (end == std::string::npos) end = path.size();
    if (path.compare(begin, end - begin, "..") == 0)
      fail(where, "must stay inside the data root (no \"..\"), got " + quoted(path));
    begin = end + 1;
  }
}

void check_preset(const std::string& preset) {
  if (preset == kCnnSmall) return;
  const int depth = plain_depth(preset);
  if (depth == 0)
    fail("model.preset", "unknown preset " + quoted(preset) + "; valid: cnn-small, plain-N (N from " +
                             std::to_string(kMinPlainDepth) + " to " + std::to_string(kMaxPlainDepth) + ")");
  if (depth < kMinPlainDepth || depth > kMaxPlainDepth)
    fail("model.preset", "plain-N needs N from " + std::to_string(kMinPlainDepth) + " to " +
                             std::to_string(kMaxPlainDepth) + ", got " + quoted(preset));
}

void check_activation(const std::string& where, const v1::ActivationSpec& a) {
  if (a.kind() == v1::ActivationSpec::KIND_UNSPECIFIED)
    fail(where + ".kind", "must be set; valid: " + enum_value_names(v1::ActivationSpec::Kind_descriptor()));
  if (!a.has_alpha_init()) return;
  check_finite(where + ".alphaInit", a.alpha_init());
  // apply_defaults gives RELU an alpha_init of 0, so 0 is what "absent" looks like.
  if (a.kind() == v1::ActivationSpec::RELU && a.alpha_init() != 0)
    fail(where + ".alphaInit", "not allowed for RELU (its slope is 0)");
}

const char* layer_kind_name(const v1::LayerSpec& layer) {
  switch (layer.layer_case()) {
    case v1::LayerSpec::kConv: return "conv";
    case v1::LayerSpec::kActivation: return "activation";
    case v1::LayerSpec::kPool: return "pool";
    case v1::LayerSpec::kFc: return "fc";
    default: return "an empty layer";
  }
}

void check_layer(const std::string& where, const v1::LayerSpec& layer) {
  switch (layer.layer_case()) {
    case v1::LayerSpec::kConv: {
      const auto& c = layer.conv();
      check_between(where + ".conv.outChannels", c.out_channels(), 1, kMaxChannels);
      check_between(where + ".conv.kernel", c.kernel(), 1, kMaxKernel);
      check_between(where + ".conv.padding", c.has_padding() ? c.padding() : c.kernel() / 2, 0, c.kernel() - 1);
      check_between(where + ".conv.stride", c.stride(), 1, kMaxStride);
      break;
    }
    case v1::LayerSpec::kPool: {
      const auto& p = layer.pool();
      if (p.kind() == v1::PoolLayerSpec::GLOBAL_AVG) break;  // kernel and stride are ignored
      check_between(where + ".pool.kernel", p.kernel(), 1, kMaxKernel);
      check_between(where + ".pool.stride", p.stride(), 1, kMaxStride);
      break;
    }
    case v1::LayerSpec::kFc:
      check_between(where + ".fc.outFeatures", layer.fc().out_features(), 1, kMaxFeatures);
      break;
    case v1::LayerSpec::kActivation:
      check_activation(where + ".activation", layer.activation());
      break;
    default:
      fail(where, "empty layer; give one of conv, activation, pool or fc");
  }
}

void check_model(const v1::ModelSpec& m) {
  check_activation("model.activation", m.activation());
  if (!m.preset().empty() && m.layers_size() > 0)
    fail("model", "give either preset or layers, not both (preset is " + quoted(m.preset()) + ")");
  if (m.preset().empty() && m.layers_size() == 0) fail("model", "give a preset or layers");
  if (!m.preset().empty()) check_preset(m.preset());
  if (plain_depth(m.preset()) > 0)
    check_between("model.width", m.width(), 1, kMaxWidth);
  else if (m.width() != 0)
    fail("model.width", "only used by plain-N presets, got " + std::to_string(m.width()));

  if (m.layers_size() == 0) return;
  if (m.layers_size() > kMaxLayers)
    fail("model.layers", "at most " + std::to_string(kMaxLayers) + " layers, got " + std::to_string(m.layers_size()));
  for (int i = 0; i < m.layers_size(); ++i) check_layer(indexed("model.layers", i), m.layers(i));
  const int last = m.layers_size() - 1;
  if (m.layers(last).layer_case() != v1::LayerSpec::kFc)
    fail(indexed("model.layers", last), std::string("the last layer must be fc (its outFeatures are the class "
                                                    "count), got ") + layer_kind_name(m.layers(last)));
}

void check_dataset(const v1::DatasetSpec& d, bool skip_test) {
  if (!d.name().empty()) {
    check_text("dataset.name", d.name());
    const bool plain_name =
        d.name()[0] != '.' && std::all_of(d.name().begin(), d.name().end(), [](char c) {
          return std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_' || c == '.';
        });
    if (!plain_name)
      fail("dataset.name", "must be a data set directory name such as \"fashion-mnist\" (letters, digits, "
                           "'-', '_', '.'), got " + quoted(d.name()));
  }
  const std::pair<const char*, const std::string*> files[] = {{"dataset.trainImages", &d.train_images()},
                                                              {"dataset.trainLabels", &d.train_labels()},
                                                              {"dataset.testImages", &d.test_images()},
                                                              {"dataset.testLabels", &d.test_labels()}};
  for (size_t i = 0; i < 4; ++i) {
    const auto& [where, path] = files[i];
    const bool needed = d.name().empty() && (i < 2 || !skip_test);
    if (path->empty() && needed) fail(where, "required when dataset.name is not given");
    if (!path->empty()) check_data_path(where, *path);
  }
  if (d.has_mean()) check_finite("dataset.mean", d.mean());
  if (d.has_std()) check_positive("dataset.std", d.std(), HUGE_VAL);
  check_not_negative("dataset.trainLimit", int64_t{d.train_limit()});
  check_not_negative("dataset.testLimit", int64_t{d.test_limit()});
}

void check_training(const v1::TrainingSpec& t) {
  check_positive("training.epochs", t.epochs(), kMaxEpochs);
  check_positive("training.batchSize", int64_t{t.batch_size()}, kMaxBatch);
  check_positive("training.learningRate", t.learning_rate(), kMaxLearningRate);
  check_finite("training.momentum", t.momentum());
  if (t.momentum() < 0 || t.momentum() >= 1)
    fail("training.momentum", "must be in [0, 1), got " + format_number(t.momentum()));
  check_not_negative("training.weightDecay", t.weight_decay());
  check_not_negative("training.maxSteps", t.max_steps());
  check_positive("training.logEverySteps", int64_t{t.log_every_steps()}, INT32_MAX);
  check_between("training.stallWindowSteps", int64_t{t.stall_window_steps()}, 0, 1000000);
  check_between("training.dataParallel.bucketBytes", t.data_parallel().bucket_bytes(), 0, int64_t{1} << 32);
  check_positive("training.dataParallel.checkEverySteps", int64_t{t.data_parallel().check_every_steps()}, INT32_MAX);

  const auto& s = t.lr_schedule();
  if (s.kind() == v1::LrScheduleSpec::STEP) {
    check_between("training.lrSchedule.stepEpochs", s.step_epochs(), 1, kMaxStepEpochs);
    check_positive("training.lrSchedule.gamma", s.gamma(), 1.0);
  } else {
    if (s.step_epochs() != 0) fail("training.lrSchedule.stepEpochs", "only used by the STEP schedule");
    if (s.has_gamma()) fail("training.lrSchedule.gamma", "only used by the STEP schedule");
  }
  if (s.kind() == v1::LrScheduleSpec::COSINE) {
    check_not_negative("training.lrSchedule.minLr", s.min_lr());
    if (s.min_lr() > t.learning_rate())
      fail("training.lrSchedule.minLr", "must not exceed training.learningRate (" +
                                            format_number(t.learning_rate()) + "), got " + format_number(s.min_lr()));
  } else if (s.min_lr() != 0) {
    fail("training.lrSchedule.minLr", "only used by the COSINE schedule");
  }
}

// ---------------------------------------------------------------------------
// Expansion.

v1::LayerSpec conv3x3(int channels) {
  v1::LayerSpec layer;
  auto* c = layer.mutable_conv();
  c->set_out_channels(channels);
  c->set_kernel(3);
  c->set_padding(1);
  c->set_stride(1);
  return layer;
}

v1::LayerSpec activation(const v1::ActivationSpec& spec) {
  v1::LayerSpec layer;
  *layer.mutable_activation() = spec;
  return layer;
}

v1::LayerSpec pool(v1::PoolLayerSpec::Kind kind) {
  v1::LayerSpec layer;
  auto* p = layer.mutable_pool();
  p->set_kind(kind);
  if (kind != v1::PoolLayerSpec::GLOBAL_AVG) {
    p->set_kernel(2);
    p->set_stride(2);
  }
  return layer;
}

v1::LayerSpec fc(int features) {
  v1::LayerSpec layer;
  layer.mutable_fc()->set_out_features(features);
  return layer;
}

}  // namespace

// ---------------------------------------------------------------------------

v1::JobSpec parse_job_json(const std::string& json, const std::string& source) {
  const std::string where = source.empty() ? "job" : source;
  // Some editors start UTF-8 files with a byte order mark; JSON parsers need not accept it.
  static const std::string kBom = "\xEF\xBB\xBF";
  const std::string text = starts_with(json, kBom) ? json.substr(kBom.size()) : json;
  JsonSyntaxChecker(text, where).check();

  v1::JobSpec spec;
  pb::util::JsonParseOptions options;
  options.ignore_unknown_fields = false;
  const auto status = pb::util::JsonStringToMessage(text, &spec, options);
  if (!status.ok()) throw translate_parse_error(where, std::string(status.message()));
  try {
    check_enum_values(spec, "");
  } catch (const UserError& e) {
    throw UserError(where + ": " + e.what());
  }
  return spec;
}

std::string read_spec_file(const std::string& path) {
  std::FILE* f = std::fopen(path.c_str(), "rb");
  if (f == nullptr) throw user_error(path, std::string("cannot read: ") + std::strerror(errno));
  std::string text;
  char buf[65536];
  size_t n;
  while ((n = std::fread(buf, 1, sizeof buf, f)) > 0) {
    text.append(buf, n);
    if (text.size() > kMaxJobFileBytes) {
      std::fclose(f);
      throw user_error(path, "too large for a job file (more than " + std::to_string(kMaxJobFileBytes >> 20) + " MiB)");
    }
  }
  const int read_errno = std::ferror(f) ? errno : 0;  // e.g. EISDIR for a directory
  std::fclose(f);
  if (read_errno != 0) throw user_error(path, std::string("cannot read: ") + std::strerror(read_errno));
  return text;
}

v1::JobSpec load_job_file(const std::string& path) { return parse_job_json(read_spec_file(path), path); }

void apply_defaults(v1::JobSpec* spec) {
  default_dataset(spec->mutable_dataset());
  default_model(spec->mutable_model());
  default_training(spec->mutable_training());
}

void validate_job_spec(const v1::JobSpec& spec) {
  check_enum_values(spec, "");
  check_text("name", spec.name());
  check_dataset(spec.dataset(), spec.training().skip_test());
  check_model(spec.model());
  check_training(spec.training());
}

v1::JobSpec load_and_check_job(const std::string& path) {
  v1::JobSpec spec = load_job_file(path);
  apply_defaults(&spec);
  try {
    validate_job_spec(spec);
  } catch (const UserError& e) {
    throw UserError(path + ": " + e.what());
  }
  return spec;
}

std::vector<v1::LayerSpec> expand_model(const v1::ModelSpec& model, int num_classes) {
  if (num_classes < 1) throw std::invalid_argument("expand_model: num_classes must be positive");
  v1::ModelSpec m = model;
  default_model(&m);  // a no-op for a defaulted spec
  if (m.layers_size() > 0) return {m.layers().begin(), m.layers().end()};

  check_preset(m.preset());
  const v1::ActivationSpec& a = m.activation();
  std::vector<v1::LayerSpec> layers;
  if (m.preset() == kCnnSmall) {
    layers = {conv3x3(32), activation(a), conv3x3(32), activation(a), pool(v1::PoolLayerSpec::MAX),
              conv3x3(64), activation(a), conv3x3(64), activation(a), pool(v1::PoolLayerSpec::MAX),
              fc(256),     activation(a), fc(num_classes)};
    return layers;
  }
  // plain-N, as torch_baseline.py's plain(): N-1 convolutions, then the classifier.
  const int depth = plain_depth(m.preset());
  for (int i = 0; i < depth - 1; ++i) {
    layers.push_back(conv3x3(m.width()));
    layers.push_back(activation(a));
    if (i == depth / 3 || i == 2 * depth / 3) layers.push_back(pool(v1::PoolLayerSpec::MAX));
  }
  layers.push_back(pool(v1::PoolLayerSpec::GLOBAL_AVG));
  layers.push_back(fc(num_classes));
  return layers;
}

std::string describe_layers(const std::vector<v1::LayerSpec>& layers) {
  std::string out;
  for (const auto& layer : layers) {
    std::string item;
    switch (layer.layer_case()) {
      case v1::LayerSpec::kConv: {
        const auto& c = layer.conv();
        const int padding = c.has_padding() ? c.padding() : c.kernel() / 2;
        item = "conv" + std::to_string(c.kernel()) + "x" + std::to_string(c.kernel()) + "(" +
               std::to_string(c.out_channels());
        if (c.stride() > 1) item += ",s" + std::to_string(c.stride());
        if (padding != c.kernel() / 2) item += ",p" + std::to_string(padding);
        item += ")";
        break;
      }
      case v1::LayerSpec::kActivation: {
        const auto& a = layer.activation();
        switch (a.kind()) {
          case v1::ActivationSpec::RELU: item = "relu"; break;
          case v1::ActivationSpec::LEAKY_RELU: item = "leaky"; break;
          case v1::ActivationSpec::PRELU_SHARED: item = "prelu-shared"; break;
          case v1::ActivationSpec::PRELU_CHANNELWISE: item = "prelu-cw"; break;
          default: item = "activation"; break;
        }
        if (a.has_alpha_init() && a.alpha_init() != default_alpha(a.kind()))
          item += "(a=" + format_number(a.alpha_init()) + ")";
        break;
      }
      case v1::LayerSpec::kPool: {
        const auto& p = layer.pool();
        if (p.kind() == v1::PoolLayerSpec::GLOBAL_AVG) {
          item = "globalavgpool";
          break;
        }
        item = (p.kind() == v1::PoolLayerSpec::AVG ? "avgpool" : "maxpool") + std::to_string(p.kernel());
        if (p.stride() != p.kernel()) item += "(s" + std::to_string(p.stride()) + ")";
        break;
      }
      case v1::LayerSpec::kFc:
        item = "fc" + std::to_string(layer.fc().out_features());
        break;
      default:
        item = "?";
        break;
    }
    if (!out.empty()) out += ' ';
    out += item;
  }
  return out;
}

}  // namespace prelude
