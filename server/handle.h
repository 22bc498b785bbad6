// Where a gRPC handler of the coordinator meets its core: the token check, and the
// core's errors turned into status codes by the shared mapping (common/grpc_status.h).
#pragma once

#include <grpcpp/grpcpp.h>

#include <functional>

#include "server/caller.h"

namespace prelude::server {

class Authenticator;

// Which roles may make a call.
enum class Allowed {
  kClients,  // JobService: users and admins
  kPools,    // WorkerService: pools and admins
  kAdmins,   // admins only
};

// PERMISSION_DENIED unless the caller's role may make a call open to `allowed`.
void check_role(const Caller& who, Allowed allowed);

// Runs a handler body: learns the caller from its token (`auth`; without one every
// caller is an anonymous admin), refuses a role the call is not for
// (PERMISSION_DENIED), then runs `body` with the caller; every ServiceError becomes
// its status code with its message, a UserError INVALID_ARGUMENT, anything else
// INTERNAL. Nothing escapes to gRPC. Messages go out with control characters escaped
// and cut at 4 KiB.
grpc::Status handle(grpc::ServerContext* context, const Authenticator* auth, Allowed allowed,
                    const std::function<void(const Caller&)>& body);

}  // namespace prelude::server
