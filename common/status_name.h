// gRPC status codes by name, for messages shared by the worker and the client.
#pragma once

#include <grpcpp/support/status.h>

namespace prelude {

// "INVALID_ARGUMENT", "NOT_FOUND", ...
const char* status_code_name(grpc::StatusCode code);

}  // namespace prelude
