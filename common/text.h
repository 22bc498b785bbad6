// Text that crosses a trust boundary: strings a worker pool reports, ids a client
// sends, anything the client prints from the server. No gRPC, no protobuf.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

namespace prelude {

// `text` with every character that could drive a terminal made visible: C0
// controls ("\x1b", so an ESC sequence is left as harmless text), DEL ("\x7f"),
// C1 controls (U+0080..U+009F, "\u009b") and bytes that are not UTF-8 ("\xff").
// With keep_layout, newline and tab (meaningful in messages) stay as they are.
std::string escape_control(std::string_view text, bool keep_layout = false);

// True when escape_control would change nothing.
bool is_printable(std::string_view text, bool keep_layout = false);

// A user string (an id, a name, a token) quoted for an error message, bounded so
// that a hostile one cannot blow up the message: "'job-1'", or for one over
// max_bytes its first max_bytes (cut at a character boundary) and its length:
// "'job-xxxx...' (10240 bytes)". Control characters are escaped.
constexpr size_t kMaxEchoBytes = 64;
std::string echoed(std::string_view text, size_t max_bytes = kMaxEchoBytes);

}  // namespace prelude
