#include "server/handle.h"

#include <cstdio>

#include "common/errors.h"
#include "common/grpc_status.h"
#include "common/status.h"
#include "server/auth.h"

namespace prelude::server {

grpc::Status handle(grpc::ServerContext* context, const TokenAuth* auth, const std::function<void()>& body) {
  try {
    if (auth) auth->check(context->client_metadata());
    body();
    return grpc::Status::OK;
  } catch (const ServiceError& e) {
    return grpc::Status(to_grpc(e.code()), e.what());
  } catch (const UserError& e) {
    return grpc::Status(to_grpc(ErrorCode::kInvalidArgument), e.what());
  } catch (const std::exception& e) {
    std::fprintf(stderr, "prelude-coordinator: internal error: %s\n", e.what());
    return grpc::Status(to_grpc(ErrorCode::kInternal), std::string("internal error: ") + e.what());
  }
}

}  // namespace prelude::server
