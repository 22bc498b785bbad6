#include "server/auth.h"

#include <sys/stat.h>

#include <cstdio>

#include "common/bearer.h"
#include "common/errors.h"
#include "common/status.h"
#include "common/token.h"

namespace prelude::server {

void Authenticator::add_admin_token_file(const std::string& path) {
  std::lock_guard<std::mutex> lock(mu_);
  fixed_.add_token(read_token_file(path), Caller{"admin", Role::kAdmin});
}

void Authenticator::add_token(const std::string& token, Caller caller) {
  std::lock_guard<std::mutex> lock(mu_);
  fixed_.add_token(token, std::move(caller));
}

TokenTable Authenticator::load_locked(const std::string& path) const {
  TokenTable table = TokenTable::load(path);
  for (const auto& e : table.entries())
    for (const auto& f : fixed_.entries())
      if (e.caller.name == f.caller.name) throw UserError(path + ": the name " + e.caller.name + " is taken");
  return table;
}

void Authenticator::add_tokens_file(const std::string& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) throw UserError(path + ": cannot read the tokens file: no such file");
  std::lock_guard<std::mutex> lock(mu_);
  TokenTable table = load_locked(path);
  tokens_file_ = path;
  from_file_ = std::move(table);
  file_mtime_ = st.st_mtim;
  file_size_ = st.st_size;
  next_look_ = std::chrono::steady_clock::now() + std::chrono::seconds(1);
}

bool Authenticator::required() const {
  std::lock_guard<std::mutex> lock(mu_);
  return !fixed_.empty() || !tokens_file_.empty();
}

void Authenticator::refresh() const {
  if (tokens_file_.empty()) return;
  const auto now = std::chrono::steady_clock::now();
  if (now < next_look_) return;
  next_look_ = now + std::chrono::seconds(1);
  struct stat st {};
  std::string problem;
  if (::stat(tokens_file_.c_str(), &st) != 0) {
    problem = tokens_file_ + ": cannot read the tokens file; keeping the tokens read before";
  } else if (st.st_mtim.tv_sec == file_mtime_.tv_sec && st.st_mtim.tv_nsec == file_mtime_.tv_nsec &&
             st.st_size == file_size_) {
    return;
  } else {
    try {
      from_file_ = load_locked(tokens_file_);
      file_mtime_ = st.st_mtim;
      file_size_ = st.st_size;
      std::fprintf(stderr, "prelude-coordinator: %s: read again, %zu token%s\n", tokens_file_.c_str(),
                   from_file_.size(), from_file_.size() == 1 ? "" : "s");
      last_problem_.clear();
      return;
    } catch (const UserError& e) {
      problem = std::string(e.what()) + "; keeping the tokens read before";
    }
  }
  if (problem != last_problem_) std::fprintf(stderr, "prelude-coordinator: %s\n", problem.c_str());
  last_problem_ = problem;
}

Caller Authenticator::authenticate(const std::multimap<grpc::string_ref, grpc::string_ref>& metadata) const {
  std::lock_guard<std::mutex> lock(mu_);
  if (fixed_.empty() && tokens_file_.empty()) return Caller{};
  refresh();
  auto it = metadata.find(kAuthorizationKey);
  if (it == metadata.end())
    throw unauthenticated("this coordinator needs a token: send metadata 'authorization: Bearer <token>'");
  const std::optional<std::string> bearer = bearer_token(std::string(it->second.data(), it->second.size()));
  if (!bearer) throw unauthenticated("the authorization metadata must be 'Bearer <token>'");
  if (auto caller = fixed_.find(*bearer)) return *caller;
  if (auto caller = from_file_.find(*bearer)) return *caller;
  throw unauthenticated("wrong token");
}

}  // namespace prelude::server
