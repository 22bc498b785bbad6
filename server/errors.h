// Errors of the coordinator's core (job manager, store), free of gRPC: the one
// place that turns them into gRPC status codes is grpc_status.cc.
#pragma once

#include <stdexcept>
#include <string>

namespace prelude::server {

enum class ErrorCode {
  kInvalidArgument,     // a bad request field or job spec; the message names it
  kNotFound,            // an unknown job or pool id
  kFailedPrecondition,  // the object is in the wrong state for the call
  kUnauthenticated,     // missing or wrong token
  kUnavailable,         // shutting down
};

class ServiceError : public std::runtime_error {
 public:
  ServiceError(ErrorCode code, const std::string& message) : std::runtime_error(message), code_(code) {}
  ErrorCode code() const { return code_; }

 private:
  ErrorCode code_;
};

inline ServiceError invalid_argument(const std::string& m) { return {ErrorCode::kInvalidArgument, m}; }
inline ServiceError not_found(const std::string& m) { return {ErrorCode::kNotFound, m}; }
inline ServiceError failed_precondition(const std::string& m) { return {ErrorCode::kFailedPrecondition, m}; }
inline ServiceError unauthenticated(const std::string& m) { return {ErrorCode::kUnauthenticated, m}; }
inline ServiceError unavailable(const std::string& m) { return {ErrorCode::kUnavailable, m}; }

}  // namespace prelude::server
