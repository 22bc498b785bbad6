// Reading a protobuf message from strict JSON: the one reader of job files and
// sweep files, for any message type.
//
// protobuf's own JSON parser is lenient where a hand-written file should not be
// (trailing commas; a key given twice, where it keeps the last scalar and merges
// objects) and reports syntax errors over several lines with no line number. So
// the text is first checked as RFC 8259 JSON here, naming the line and column of the
// first problem; then protobuf parses it and what it reports is translated into one
// line naming the field (spec/proto_json_errors.h).
#pragma once

#include <google/protobuf/message.h>

#include <string>

namespace prelude {

// Parses protobuf-JSON text into *message, replacing its contents. Field names may
// be camelCase or snake_case; enum values are given by name. The text must be
// strict JSON with an object at the top level: no trailing commas, no field given
// twice (also not as both "batch_size" and "batchSize"); a UTF-8 byte order mark is
// skipped. Unknown fields, unknown enum values (by name or number), values of the
// wrong type and malformed JSON are UserErrors whose message starts with `source`
// (usually the file name) and names the field or the line and column:
//   "job.json:3:14: malformed JSON: trailing comma before '}'"
//   "job.json: training.batchSizee: unknown field (did you mean batchSize?)"
// Where the message holds free-form JSON (a google.protobuf.Value such as a sweep's
// values, a Struct, a map) any JSON is taken, and its keys are compared as written.
void parse_strict_json(const std::string& text, const std::string& source, google::protobuf::Message* message);

}  // namespace prelude
