// The one mapping between Prelude's error kinds (common/status.h) and gRPC status
// codes, both ways: the coordinator answers with to_grpc(), the client and the
// worker pools decide what a failed call means with from_grpc(). (After Arrow
// Flight's ToGrpcStatus / FromGrpcStatus.)
#pragma once

#include <grpcpp/support/status.h>

#include <string>

#include "common/status.h"

namespace prelude {

// The code the coordinator answers a ServiceError of this kind with.
grpc::StatusCode to_grpc(ErrorCode code);

// The kind of a failed call's code (not OK). Every code the coordinator sends
// comes back as the kind it was sent for: from_grpc(to_grpc(k)) == k.
ErrorCode from_grpc(grpc::StatusCode code);

// Whether the same call may well work a moment later: no answer came, or the
// answer was a fault that may pass. A refusal (bad argument, unknown id, wrong
// state, wrong token) or a call the server does not know stays one.
bool is_retryable(ErrorCode code);

// "INVALID_ARGUMENT", "NOT_FOUND", ...: how users read codes.
const char* status_code_name(grpc::StatusCode code);

// "<CODE>: <message>", e.g. "NOT_FOUND: job-7: no such job".
std::string status_text(grpc::StatusCode code, const std::string& message);
inline std::string status_text(const grpc::Status& status) {
  return status_text(status.error_code(), status.error_message());
}

}  // namespace prelude
