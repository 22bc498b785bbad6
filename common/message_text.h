// escape_control (common/text.h) over every string of a protobuf message: what a
// worker pool reports, at the coordinator's boundary, and everything the client
// receives, before it can reach a terminal.
#pragma once

#include <google/protobuf/message.h>

namespace prelude {

// Escapes the control characters of every string field (not bytes) of `message`
// and of the messages in it, in place. Returns how many strings changed.
int escape_strings(google::protobuf::Message* message, bool keep_layout);

}  // namespace prelude
