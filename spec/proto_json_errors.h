// Translating what protobuf's JSON parser reports into UserErrors (internal to
// spec/; parse_strict_json in spec/strict_json.h is the way in). protobuf names a
// place by its proto (snake_case) path and often words the problem in its own
// terms ("Starting an object on a scalar field"); a user wrote the camelCase path
// in a JSON file and wants to know what to write instead. Generic over the message
// type: the root descriptor is what locations are resolved against.
#pragma once

#include <google/protobuf/descriptor.h>
#include <google/protobuf/message.h>

#include <string>

#include "common/errors.h"

namespace prelude {

// Turns the message of a failed google::protobuf::util::JsonStringToMessage into
// "<source>: <camelCase path>: <reason>", e.g. "job.json: training.batchSize:
// expected a 32-bit whole number, got \"abc\"" or "job.json: training.batchSizee:
// unknown field (did you mean batchSize?)". `root` is the type being parsed.
UserError translate_json_parse_error(const std::string& source, const google::protobuf::Descriptor* root,
                                     const std::string& message);

// Throws a UserError "<path>.<field>: unknown value 7; valid: ..." for an enum field
// holding a number that names no value. protobuf accepts any number for an open
// enum ("kind": 7), and messages built in code can hold one too. `path` is the JSON
// path of `message` itself ("" at the top).
void check_enum_values(const google::protobuf::Message& message, const std::string& path);

}  // namespace prelude
