#include "server/handle.h"

#include <cstdio>

#include "common/errors.h"
#include "common/grpc_status.h"
#include "common/status.h"
#include "common/text.h"
#include "server/auth.h"

namespace prelude::server {

namespace {

// A status message travels as metadata (clients refuse more than 8 KB of it by
// default). Ids are echoed bounded where the errors are made (echoed()); this is the
// backstop for any other message that quotes what a caller sent.
constexpr size_t kMaxStatusMessageBytes = 4096;

std::string status_message(const std::string& message) {
  std::string text = escape_control(message, true);
  if (text.size() <= kMaxStatusMessageBytes) return text;
  size_t cut = kMaxStatusMessageBytes;
  while (cut > 0 && (static_cast<unsigned char>(text[cut]) & 0xc0) == 0x80) --cut;
  return text.substr(0, cut) + "... (" + std::to_string(text.size()) + " bytes, cut)";
}

}  // namespace

grpc::Status handle(grpc::ServerContext* context, const TokenAuth* auth, const std::function<void()>& body) {
  try {
    if (auth) auth->check(context->client_metadata());
    body();
    return grpc::Status::OK;
  } catch (const ServiceError& e) {
    return grpc::Status(to_grpc(e.code()), status_message(e.what()));
  } catch (const UserError& e) {
    return grpc::Status(to_grpc(ErrorCode::kInvalidArgument), status_message(e.what()));
  } catch (const std::exception& e) {
    std::fprintf(stderr, "prelude-coordinator: internal error: %s\n", e.what());
    return grpc::Status(to_grpc(ErrorCode::kInternal), status_message(std::string("internal error: ") + e.what()));
  }
}

}  // namespace prelude::server
