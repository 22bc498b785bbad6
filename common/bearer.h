// The token on Prelude's calls: gRPC metadata `authorization: Bearer <token>`,
// sent by the client and the worker pools and checked by the coordinator.
#pragma once

#include <grpcpp/client_context.h>

#include <optional>
#include <string>

namespace prelude {

// The metadata key (gRPC keys are lower case).
inline constexpr const char* kAuthorizationKey = "authorization";

// Adds the token to the call's metadata; an empty token adds nothing.
void add_bearer_token(grpc::ClientContext* context, const std::string& token);

// The token of an authorization value "Bearer <token>", or nullopt when the value
// has another form.
std::optional<std::string> bearer_token(const std::string& authorization);

}  // namespace prelude
