#include "server/auth.h"

#include "common/bearer.h"
#include "common/status.h"
#include "common/token.h"

namespace prelude::server {

TokenAuth TokenAuth::from_file(const std::string& path) { return TokenAuth(read_token_file(path)); }

void TokenAuth::check(const std::multimap<grpc::string_ref, grpc::string_ref>& metadata) const {
  auto it = metadata.find(kAuthorizationKey);
  if (it == metadata.end())
    throw unauthenticated("this coordinator needs a token: send metadata 'authorization: Bearer <token>'");
  const std::optional<std::string> bearer = bearer_token(std::string(it->second.data(), it->second.size()));
  if (!bearer) throw unauthenticated("the authorization metadata must be 'Bearer <token>'");
  const std::string& given = *bearer;
  // Constant time over the expected token's length: no early exit on a mismatch.
  unsigned char diff = given.size() == token_.size() ? 0 : 1;
  for (size_t i = 0; i < token_.size(); ++i) diff |= token_[i] ^ (i < given.size() ? given[i] : 0);
  if (diff) throw unauthenticated("wrong token");
}

}  // namespace prelude::server
