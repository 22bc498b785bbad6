#include "server/handle.h"

#include <chrono>
#include <cstdio>
#include <optional>

#include "common/errors.h"
#include "common/grpc_status.h"
#include "common/status.h"
#include "common/text.h"
#include "server/audit_log.h"
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

namespace {

grpc::Status run(grpc::ServerContext* context, const Authenticator* auth, Allowed allowed, AuditContext* audit,
                 const std::function<void(const Caller&)>& body) {
  std::optional<Caller> who;
  // How far the call got: a failure while authenticating is a refused token, while
  // checking the role a refused role, in the body the outcome of the call.
  enum class Stage { kAuthenticate, kRole, kBody } stage = Stage::kAuthenticate;
  // Writes the call's audit entry, if it has one: a refusal (whatever the call) or the
  // outcome of a mutation. Never throws.
  const auto note = [&](const std::string& outcome) {
    if (!audit || !audit->log) return;
    const char* action = stage == Stage::kAuthenticate ? kTokenRefused
                         : stage == Stage::kRole       ? kPermissionDenied
                                                       : audit->action;
    if (!action) return;
    AuditEntry e;
    if (who) {
      e.user = who->name;
      e.role = role_name(who->role);
    }
    e.peer = context->peer();
    e.action = action;
    e.target = stage == Stage::kBody ? audit->target : audit->call;
    e.outcome = outcome;
    audit->log->record(std::move(e));
  };
  // The status of a call that failed with `code`, its audit entry written.
  const auto failed = [&](ErrorCode code, const std::string& message, const std::string& status_text) {
    note(outcome_text(code, message));
    return grpc::Status(to_grpc(code), status_message(status_text));
  };
  try {
    who = auth ? auth->authenticate(context->client_metadata()) : Caller{};
    stage = Stage::kRole;
    check_role(*who, allowed);
    stage = Stage::kBody;
    body(*who);
    note(kOutcomeOk);
    return grpc::Status::OK;
  } catch (const ServiceError& e) {
    return failed(e.code(), e.what(), e.what());
  } catch (const UserError& e) {
    return failed(ErrorCode::kInvalidArgument, e.what(), e.what());
  } catch (const std::exception& e) {
    std::fprintf(stderr, "prelude-coordinator: internal error: %s\n", e.what());
    return failed(ErrorCode::kInternal, e.what(), std::string("internal error: ") + e.what());
  }
}

}  // namespace

grpc::Status handle(grpc::ServerContext* context, const Authenticator* auth, Allowed allowed, AuditContext* audit,
                    const std::function<void(const Caller&)>& body) {
  if (!audit || !audit->metrics) return run(context, auth, allowed, audit, body);
  const auto start = std::chrono::steady_clock::now();
  grpc::Status status = run(context, auth, allowed, audit, body);
  const std::chrono::duration<double> took = std::chrono::steady_clock::now() - start;
  audit->metrics->observe_rpc(audit->call, status.error_code(), took.count());
  return status;
}

}  // namespace prelude::server
