// Where a gRPC handler of the coordinator meets its core: the token check, and the
// core's errors turned into status codes by the shared mapping (common/grpc_status.h).
#pragma once

#include <grpcpp/grpcpp.h>

#include <functional>

namespace prelude::server {

class TokenAuth;

// Runs a handler body: checks the caller's token (when `auth` is given), then
// `body`; every ServiceError becomes its status code with its message, a
// UserError INVALID_ARGUMENT, anything else INTERNAL. Nothing escapes to gRPC.
// Messages go out with control characters escaped and cut at 4 KiB.
grpc::Status handle(grpc::ServerContext* context, const TokenAuth* auth, const std::function<void()>& body);

}  // namespace prelude::server
