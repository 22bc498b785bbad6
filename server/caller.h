// Who makes a call, as the coordinator's core sees it: the name of the caller's token
// and its role. Free of gRPC: the services authenticate (server/auth.h) and pass a
// Caller down; the job manager decides with it what the caller may see and do.
#pragma once

#include <optional>
#include <string>

namespace prelude::server {

// What a token may do:
//   admin  everything: every job and sweep, the audit trail, and pool calls
//   user   submit jobs and sweeps and see, watch, cancel, download and delete its own
//   pool   the worker pools' calls (WorkerService) only
enum class Role { kAdmin, kUser, kPool };

const char* role_name(Role role);
// "admin", "user" or "pool"; nullopt for anything else.
std::optional<Role> parse_role(const std::string& text);

struct Caller {
  // The token's name; "anonymous" on a coordinator that takes no tokens (where every
  // caller is an admin), "admin" for the single token of --token-file.
  std::string name = "anonymous";
  Role role = Role::kAdmin;

  // An admin sees every job and sweep; a user only its own.
  bool sees_all() const { return role == Role::kAdmin; }
  bool may_see(const std::string& owner) const { return sees_all() || owner == name; }
};

}  // namespace prelude::server
