// What went wrong with a call between Prelude's programs, free of gRPC: the
// coordinator's core raises ServiceErrors, and the client and the worker pools
// learn the same kinds from the status of a failed call. The one mapping to and
// from gRPC status codes is common/grpc_status.h.
#pragma once

#include <stdexcept>
#include <string>

namespace prelude {

enum class ErrorCode {
  // What the coordinator's core raises (and a caller then sees).
  kInvalidArgument,     // a bad request field or job spec; the message names it
  kNotFound,            // an unknown job or pool id
  kFailedPrecondition,  // the object is in the wrong state for the call
  kUnauthenticated,     // missing or wrong token
  kPermissionDenied,    // the token's role may not make the call
  kResourceExhausted,   // a limit of the caller's is reached (queued jobs per user)
  kUnavailable,         // shutting down; to a caller also: the coordinator cannot be reached
  kInternal,            // a fault of the coordinator (the store failed, a bug)
  // What only a caller meets.
  kTimedOut,     // no answer before the call's deadline
  kInterrupted,  // the call was cut short (the coordinator stopped mid-stream, aborted, overloaded)
  kUnsupported,  // a call the server does not know, or a code the coordinator never sends
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
inline ServiceError permission_denied(const std::string& m) { return {ErrorCode::kPermissionDenied, m}; }
inline ServiceError resource_exhausted(const std::string& m) { return {ErrorCode::kResourceExhausted, m}; }
inline ServiceError unavailable(const std::string& m) { return {ErrorCode::kUnavailable, m}; }

}  // namespace prelude
