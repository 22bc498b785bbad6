#include "common/bearer.h"

namespace prelude {

namespace {

constexpr const char* kBearerPrefix = "Bearer ";

}  // namespace

void add_bearer_token(grpc::ClientContext* context, const std::string& token) {
  if (!token.empty()) context->AddMetadata(kAuthorizationKey, kBearerPrefix + token);
}

std::optional<std::string> bearer_token(const std::string& authorization) {
  const std::string prefix = kBearerPrefix;
  if (authorization.compare(0, prefix.size(), prefix) != 0) return std::nullopt;
  return authorization.substr(prefix.size());
}

}  // namespace prelude
