// Bearer-token authentication of JobService and WorkerService calls.
#pragma once

#include <grpcpp/grpcpp.h>

#include <map>
#include <string>

namespace prelude::server {

class TokenAuth {
 public:
  explicit TokenAuth(std::string token) : token_(std::move(token)) {}
  // Reads the token from a file (surrounding white space dropped). Throws
  // UserError naming the file when it cannot be read or holds no token.
  static TokenAuth from_file(const std::string& path);

  // Throws ServiceError(kUnauthenticated) unless the metadata carries
  // `authorization: Bearer <token>` with this token (compared in constant time).
  void check(const std::multimap<grpc::string_ref, grpc::string_ref>& metadata) const;

 private:
  std::string token_;
};

}  // namespace prelude::server
