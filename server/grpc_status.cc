#include "server/grpc_status.h"

#include <cstdio>

#include "common/errors.h"
#include "server/auth.h"
#include "server/errors.h"

namespace prelude::server {

namespace {

grpc::StatusCode to_grpc(ErrorCode code) {
  switch (code) {
    case ErrorCode::kInvalidArgument:
      return grpc::StatusCode::INVALID_ARGUMENT;
    case ErrorCode::kNotFound:
      return grpc::StatusCode::NOT_FOUND;
    case ErrorCode::kFailedPrecondition:
      return grpc::StatusCode::FAILED_PRECONDITION;
    case ErrorCode::kUnauthenticated:
      return grpc::StatusCode::UNAUTHENTICATED;
    case ErrorCode::kUnavailable:
      return grpc::StatusCode::UNAVAILABLE;
  }
  return grpc::StatusCode::INTERNAL;
}

}  // namespace

grpc::Status handle(grpc::ServerContext* context, const TokenAuth* auth, const std::function<void()>& body) {
  try {
    if (auth) auth->check(context->client_metadata());
    body();
    return grpc::Status::OK;
  } catch (const ServiceError& e) {
    return grpc::Status(to_grpc(e.code()), e.what());
  } catch (const UserError& e) {
    return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, e.what());
  } catch (const std::exception& e) {
    std::fprintf(stderr, "prelude-coordinator: internal error: %s\n", e.what());
    return grpc::Status(grpc::StatusCode::INTERNAL, std::string("internal error: ") + e.what());
  }
}

}  // namespace prelude::server
