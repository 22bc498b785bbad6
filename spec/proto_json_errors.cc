#include "spec/proto_json_errors.h"

#include <algorithm>
#include <cctype>
#include <utility>
#include <vector>

#include "common/text.h"
#include "spec/spec_text.h"

namespace prelude {

namespace pb = google::protobuf;

namespace {

// With the syntax checked first (strict_json.cc), what protobuf 3.21 still reports
// comes in two forms, "(loc): invalid value V for type T" and "(loc) name: what",
// all INVALID_ARGUMENT, with locations in proto (snake_case) field names:
//   "(training.batch_size): invalid value \"abc\" for type TYPE_INT32"
//   "(model.activation.kind): invalid value \"FOO\" for type type.googleapis.com/prelude.v1.ActivationSpec.Kind"
//   "(model.layers[0]): invalid value oneof field 'layer' is already set. Cannot set 'fc' for type oneof"
//   "(training): invalid value Starting an object on a scalar field for type batch_size"
//   "(training) batchSizee: Cannot find field."            (no parentheses at the top level)
//   "(training) batchSize: Proto field is not repeating, cannot start list."
// They become "<source>: <camelCase path>: <reason>".

// Edits (insert, delete, substitute, swap two neighbours) from a to b: the optimal
// string alignment distance, so that "inti" is one edit from "init".
size_t edit_distance(const std::string& a, const std::string& b) {
  std::vector<std::vector<size_t>> d(a.size() + 1, std::vector<size_t>(b.size() + 1));
  for (size_t i = 0; i <= a.size(); ++i) d[i][0] = i;
  for (size_t j = 0; j <= b.size(); ++j) d[0][j] = j;
  for (size_t i = 1; i <= a.size(); ++i) {
    for (size_t j = 1; j <= b.size(); ++j) {
      d[i][j] = std::min({d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1)});
      if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1])
        d[i][j] = std::min(d[i][j], d[i - 2][j - 2] + 1);
    }
  }
  return d[a.size()][b.size()];
}

// A protobuf location ("model.layers[1].conv") resolved against the root message type.
struct Location {
  std::string path;                             // in JSON form: "model.layers[1].conv"
  const pb::Descriptor* message = nullptr;      // the message type found there, if any
  const pb::FieldDescriptor* field = nullptr;   // the last field named, if known
  bool element = false;                         // the last segment was indexed: one element
};

Location resolve(const pb::Descriptor* root, const std::string& location) {
  Location at;
  at.message = root;
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
std::pair<std::string, std::string> translate_invalid_value(const pb::Descriptor* root, const std::string& location,
                                                            const std::string& value, const std::string& type) {
  const Location at = resolve(root, location);
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
std::pair<std::string, std::string> translate_invalid_name(const pb::Descriptor* root, const std::string& location,
                                                           const std::string& name, const std::string& what) {
  const Location at = resolve(root, location);
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

// What a fallback message calls the root message: "job" for JobSpec, "sweep" for
// SweepSpec (the type name without "Spec", in lower case).
std::string kind_of(const pb::Descriptor* root) {
  std::string name = root->name();
  if (name.size() > 4 && name.compare(name.size() - 4, 4, "Spec") == 0) name.resize(name.size() - 4);
  for (auto& c : name) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return name;
}

}  // namespace

UserError translate_json_parse_error(const std::string& source, const pb::Descriptor* root,
                                     const std::string& message) {
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
        translate_invalid_value(root, location, rest.substr(kInvalidValue.size(), for_type - kInvalidValue.size()),
                                rest.substr(for_type + kForType.size()));
  } else {
    if (!location.empty() && starts_with(rest, " ")) rest.erase(0, 1);
    // NAME is the user's key and may hold ": " itself; WHAT is protobuf's own text.
    const size_t colon = rest.rfind(": ");
    if (colon == std::string::npos || colon == 0) {
      // Not a form we know (a newer protobuf?): pass it on as it is, on one line.
      return user_error(source, "invalid " + kind_of(root) + ": " + echo(message, false, 300));
    }
    translated = translate_invalid_name(root, location, rest.substr(0, colon), rest.substr(colon + 2));
  }
  const auto& [path, reason] = translated;
  // One line whatever the input held (a key with a newline reaches both parts).
  return user_error(path.empty() ? source : source + ": " + escape_control(path), escape_control(reason));
}

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

}  // namespace prelude
