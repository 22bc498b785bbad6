// Text shared by the spec files (internal to spec/): how field paths, numbers,
// enum names and what a user wrote appear in UserError messages, and protobuf
// field names in their two spellings. Every message names a field the way a user
// writes it in a job file, so these are the one place that says what that looks like.
#pragma once

#include <google/protobuf/descriptor.h>

#include <cstddef>
#include <string>

namespace prelude {

// The shortest %g form that reads back as the same double ("0.1", not
// "0.10000000000000001"); NaN and infinities as the JSON mapping spells them.
std::string format_number(double v);

// What a user wrote, made safe to echo in a one-line message: control characters
// escaped ("\n", "\u0001"), and cut after `max_chars` characters. With
// `json_quotes`, quotes and backslashes are escaped too, as inside a JSON string.
std::string echo(const std::string& s, bool json_quotes = false, size_t max_chars = 64);

// A user's string in a message: "\"plain-2\"".
std::string quoted(const std::string& s);

bool starts_with(const std::string& s, const std::string& prefix);

// Appends a field name to a JSON path ("model" + "layers" -> "model.layers").
std::string join_path(const std::string& base, const std::string& name);

// "model.layers" + 3 -> "model.layers[3]".
std::string indexed(const std::string& path, int index);

// protobuf's lowerCamelCase JSON name of a field name: "batch_size" -> "batchSize".
// Also maps a camelCase name to itself, so both spellings of a field agree.
std::string to_json_name(const std::string& name);

// The field of `message` called `name` in either spelling (proto or JSON); null
// when there is none or `message` is null.
const google::protobuf::FieldDescriptor* find_field(const google::protobuf::Descriptor* message,
                                                    const std::string& name);

// The names a user may write for an enum, comma-separated: every value except the
// zero *_UNSPECIFIED one, which only means "absent".
std::string enum_value_names(const google::protobuf::EnumDescriptor* e);

}  // namespace prelude
