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
  // Writes the call's audit entry, if it has one: a refusal (whatever the call) or the
  // outcome of a mutation. Never throws.
  const auto note = [&](const char* action, const std::string& target, const std::string& outcome) {
    if (!audit || !audit->log || !action) return;
    AuditEntry e;
    if (who) {
      e.user = who->name;
      e.role = role_name(who->role);
    }
    e.peer = context->peer();
    e.action = action;
    e.target = target;
    e.outcome = outcome;
    audit->log->record(std::move(e));
  };
  const auto outcome_of_mutation = [&](const std::string& outcome) {
    if (audit) note(audit->action, audit->target, outcome);
  };
  try {
    try {
      who = auth ? auth->authenticate(context->client_metadata()) : Caller{};
    } catch (const ServiceError& e) {
      note(kTokenRefused, audit ? audit->call : "", outcome_text(e.code(), e.what()));
      throw;
    }
    try {
      check_role(*who, allowed);
    } catch (const ServiceError& e) {
      note(kPermissionDenied, audit ? audit->call : "", outcome_text(e.code(), e.what()));
      throw;
    }
    try {
      body(*who);
    } catch (const ServiceError& e) {
      outcome_of_mutation(outcome_text(e.code(), e.what()));
      throw;
    } catch (const UserError& e) {
      outcome_of_mutation(outcome_text(ErrorCode::kInvalidArgument, e.what()));
      throw;
    } catch (const std::exception& e) {
      outcome_of_mutation(outcome_text(ErrorCode::kInternal, e.what()));
      throw;
    }
    outcome_of_mutation(kOutcomeOk);
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
