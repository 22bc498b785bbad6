// Where a gRPC handler of the coordinator meets its core: the token check, and the
// core's errors turned into status codes by the shared mapping (common/grpc_status.h).
#pragma once

#include <grpcpp/grpcpp.h>

#include <functional>

#include "server/caller.h"

namespace prelude::server {

class Authenticator;
class AuditLog;

// Told of every call handle() runs, once it has its answer: the RPC's name, the status
// code and the seconds it took (a stream's: until it ended). The coordinator's metrics
// (server/metrics.h) count and time calls with it; it must not throw.
class RpcMetrics {
 public:
  virtual ~RpcMetrics() = default;
  virtual void observe_rpc(const char* method, grpc::StatusCode code, double seconds) = 0;
};

// What handle() writes to the audit trail about a call (when `log` is set): every
// refused token or role, whatever the call; and, for a mutation (`action` set), its
// outcome, with `target` (the body may set it: a new job's id).
struct AuditContext {
  AuditLog* log = nullptr;
  RpcMetrics* metrics = nullptr;  // when set, told of the call (by `call`) whatever its outcome
  const char* call = "";        // the RPC ("SubmitJob"): the target of a refusal
  const char* action = nullptr;  // "submit", "cancel", ...; null: not recorded when allowed
  std::string target;
};

// Which roles may make a call.
enum class Allowed {
  kClients,  // JobService: users and admins
  kPools,    // WorkerService: pools and admins
  kAdmins,   // admins only
};

// PERMISSION_DENIED unless the caller's role may make a call open to `allowed`.
void check_role(const Caller& who, Allowed allowed);

// Runs a handler body (writing the audit trail of `audit` when given, and telling its
// metrics of the call): learns the caller from its token (`auth`; without one every
// caller is an anonymous admin), refuses a role the call is not for
// (PERMISSION_DENIED), then runs `body` with the caller; every ServiceError becomes
// its status code with its message, a UserError INVALID_ARGUMENT, anything else
// INTERNAL. Nothing escapes to gRPC. Messages go out with control characters escaped
// and cut at 4 KiB.
grpc::Status handle(grpc::ServerContext* context, const Authenticator* auth, Allowed allowed, AuditContext* audit,
                    const std::function<void(const Caller&)>& body);
// The same without an audit trail (tests).
inline grpc::Status handle(grpc::ServerContext* context, const Authenticator* auth, Allowed allowed,
                           const std::function<void(const Caller&)>& body) {
  return handle(context, auth, allowed, nullptr, body);
}

}  // namespace prelude::server
