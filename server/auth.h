// Who is calling: the bearer token of a JobService or WorkerService call, looked up
// among the coordinator's tokens (server/tokens.h) and turned into a Caller.
#pragma once

#include <grpcpp/grpcpp.h>

#include <chrono>
#include <map>
#include <memory>
#include <mutex>
#include <string>

#include "server/caller.h"
#include "server/tokens.h"

namespace prelude::server {

class Authenticator {
 public:
  // No tokens: every caller is an admin named "anonymous" (a coordinator on loopback).
  Authenticator() = default;

  // --token-file: the single token in the file, an admin named "admin".
  void add_admin_token_file(const std::string& path);
  // --tokens-file: the tokens in the file (UserError naming the file and line). The
  // file is read again when it changes (looked at once a second at most), so tokens
  // added or removed take effect without a restart; a file that has become unreadable
  // or bad keeps the tokens it had, and says why on stderr once.
  void add_tokens_file(const std::string& path);
  // One token of the coordinator's own (its spawned pool's).
  void add_token(const std::string& token, Caller caller);

  // Whether calls must carry a token.
  bool required() const;

  // The caller of a call with this metadata. Throws ServiceError(kUnauthenticated)
  // without `authorization: Bearer <token>` or with a token nobody has (when tokens
  // are required). The token is never logged or echoed.
  Caller authenticate(const std::multimap<grpc::string_ref, grpc::string_ref>& metadata) const;

 private:
  // The tokens file at `path`, none of its names one of fixed_'s (UserError naming the
  // file otherwise). Called with mu_ held.
  TokenTable load_locked(const std::string& path) const;
  // Re-reads the tokens file when its modification time or size changed.
  void refresh() const;

  mutable std::mutex mu_;
  TokenTable fixed_;                  // --token-file and add_token
  mutable TokenTable from_file_;      // --tokens-file, as last read
  std::string tokens_file_;
  mutable struct timespec file_mtime_ = {0, 0};
  mutable off_t file_size_ = -1;
  mutable std::chrono::steady_clock::time_point next_look_{};
  mutable std::string last_problem_;
};

}  // namespace prelude::server
