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

void check_role(const Caller& who, Allowed allowed) {
  switch (allowed) {
    case Allowed::kClients:
      if (who.role == Role::kPool)
        throw permission_denied("the token of " + who.name + " is a pool's: it may only make the calls of worker pools");
      return;
    case Allowed::kPools:
      if (who.role == Role::kUser)
        throw permission_denied("the token of " + who.name + " is a user's: only pool and admin tokens may act as a "
                                "worker pool");
      return;
    case Allowed::kAdmins:
      if (who.role != Role::kAdmin)
        throw permission_denied("only admin tokens may make this call; " + who.name + " is a " + role_name(who.role));
      return;
  }
}

grpc::Status handle(grpc::ServerContext* context, const Authenticator* auth, Allowed allowed,
                    const std::function<void(const Caller&)>& body) {
  try {
    const Caller who = auth ? auth->authenticate(context->client_metadata()) : Caller{};
    check_role(who, allowed);
    body(who);
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
