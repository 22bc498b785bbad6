// Tokens, names and roles: the tokens file (its SHA-256s, never the tokens), `token
// add|list|remove`, the Authenticator that turns a call's bearer token into a Caller
// (and reads the file again when it changes), and handle()'s role check.
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <fstream>
#include <sstream>
#include <string>
#include <thread>

#include "common/errors.h"
#include "common/status.h"
#include "server/auth.h"
#include "server/handle.h"
#include "server/tokens.h"
#include "server_test_util.h"

namespace prelude::server {
namespace {

using namespace prelude::server::testing;

std::string read(const std::string& path) {
  std::ifstream in(path);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

std::multimap<grpc::string_ref, grpc::string_ref> bearer(const std::string& value) {
  static const std::string key = "authorization";
  std::multimap<grpc::string_ref, grpc::string_ref> m;
  m.emplace(grpc::string_ref(key), grpc::string_ref(value));
  return m;
}

std::string user_error(const std::function<void()>& f) {
  try {
    f();
  } catch (const UserError& e) {
    return e.what();
  }
  ADD_FAILURE() << "no UserError";
  return "";
}

// SHA-256 of "abc", FIPS 180-2's example: the hash the file must hold for token "abc".
constexpr char kAbcHash[] = "sha256:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";

TEST(TokenTable, ParsesHashesNamesAndRolesAndFindsTheCallerOfAToken) {
  const TokenTable t = TokenTable::parse(std::string("# comment\n\n") + kAbcHash + " alice user\n" +
                                             "sha256:" + std::string(64, '0') + "  pool-a.1  pool  \n",
                                         "tokens");
  ASSERT_EQ(t.size(), 2u);
  const auto alice = t.find("abc");
  ASSERT_TRUE(alice.has_value());
  EXPECT_EQ(alice->name, "alice");
  EXPECT_EQ(alice->role, Role::kUser);
  EXPECT_FALSE(t.find("abd").has_value());
  EXPECT_FALSE(t.find("").has_value());
  EXPECT_FALSE(t.find(std::string(kAbcHash)).has_value());  // the hash is not the token
}

TEST(TokenTable, ABadLineIsRefusedNamingTheFileAndLine) {
  const std::string good = std::string(kAbcHash) + " alice user\n";
  struct Case {
    std::string text, says;
  } cases[] = {
      {"abc alice user\n", "tokens:1: the first field must be 'sha256:'"},
      {good + "sha256:" + std::string(63, 'a') + " bob user\n", "tokens:2: the first field"},
      {good + "sha256:" + std::string(64, 'A') + " bob user\n", "tokens:2: the first field"},
      {"\n" + std::string(kAbcHash) + " alice\n", "tokens:2: expected 'sha256:<64 hex digits> NAME ROLE'"},
      {std::string(kAbcHash) + " alice user extra\n", "tokens:1: expected"},
      {std::string(kAbcHash) + " alice root\n", "tokens:1: role 'root': must be admin, user or pool"},
      {std::string(kAbcHash) + " -alice user\n", "tokens:1: name '-alice'"},
      {std::string(kAbcHash) + " al/ice user\n", "tokens:1: name"},
      {good + "sha256:" + std::string(64, '1') + " alice admin\n", "tokens:2: the name alice is taken"},
      {good + std::string(kAbcHash) + " bob user\n", "tokens:2: the same token is given to alice already"},
  };
  for (const auto& c : cases) {
    const std::string why = user_error([&] { TokenTable::parse(c.text, "tokens"); });
    EXPECT_TRUE(contains(why, c.says)) << why << "\nexpected: " << c.says;
  }
}

TEST(TokenFile, AddPrintsATokenOnceAndKeepsOnlyItsHashInAnOwnerOnlyFile) {
  TempDir dir;
  const std::string path = dir.file("tokens");
  const std::string alice = add_token_to_file(path, "alice", Role::kUser);
  const std::string pool = add_token_to_file(path, "pool-a", Role::kPool);
  EXPECT_EQ(alice.rfind("prl_", 0), 0u);
  EXPECT_EQ(alice.size(), 4u + 64u);
  EXPECT_NE(alice, pool);
  const std::string text = read(path);
  EXPECT_EQ(text.find(alice), std::string::npos) << "the token itself must not be stored";
  EXPECT_EQ(text.find(alice.substr(4)), std::string::npos);
  struct stat st {};
  ASSERT_EQ(::stat(path.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);

  const TokenTable t = TokenTable::load(path);
  ASSERT_EQ(t.size(), 2u);
  EXPECT_EQ(t.find(alice)->name, "alice");
  EXPECT_EQ(t.find(pool)->role, Role::kPool);

  EXPECT_TRUE(contains(user_error([&] { add_token_to_file(path, "alice", Role::kAdmin); }), "alice is taken"));
  EXPECT_TRUE(contains(user_error([&] { add_token_to_file(path, "a b", Role::kAdmin); }), "NAME 'a b'"));
  EXPECT_EQ(TokenTable::load(path).size(), 2u);  // the refused ones left the file as it was

  remove_token_from_file(path, "alice");
  const TokenTable after = TokenTable::load(path);
  ASSERT_EQ(after.size(), 1u);
  EXPECT_FALSE(after.find(alice).has_value());
  EXPECT_TRUE(after.find(pool).has_value());
  EXPECT_TRUE(contains(user_error([&] { remove_token_from_file(path, "alice"); }), "no token named 'alice'"));
}

TEST(TokenFile, TheCommandAddsListsAndRemovesAndRefusesWhatMakesNoSense) {
  TempDir dir;
  const std::string path = dir.file("tokens");
  EXPECT_EQ(token_command({"add", "carol", "--role", "admin", "--tokens-file", path}), 0);
  EXPECT_EQ(TokenTable::load(path).entries().at(0).caller.role, Role::kAdmin);
  EXPECT_EQ(token_command({"list", "--tokens-file", path}), 0);
  EXPECT_EQ(token_command({"add", "dave", "--tokens-file", path}), 2);                   // no role
  EXPECT_EQ(token_command({"add", "dave", "--role", "god", "--tokens-file", path}), 2);  // bad role
  EXPECT_EQ(token_command({"add", "dave", "--role", "user"}), 2);                        // no file
  EXPECT_EQ(token_command({"frobnicate", "--tokens-file", path}), 2);
  EXPECT_EQ(token_command({"remove", "carol", "--tokens-file", path}), 0);
  EXPECT_EQ(TokenTable::load(path).size(), 0u);
}

TEST(AuthenticatorTest, WithoutTokensEveryCallerIsAnAnonymousAdmin) {
  const Authenticator auth;
  EXPECT_FALSE(auth.required());
  const Caller c = auth.authenticate({});
  EXPECT_EQ(c.name, "anonymous");
  EXPECT_EQ(c.role, Role::kAdmin);
}

TEST(AuthenticatorTest, TokensFileNamesCallersAndIsReadAgainWhenItChanges) {
  TempDir dir;
  const std::string path = dir.file("tokens");
  const std::string alice = add_token_to_file(path, "alice", Role::kUser);
  Authenticator auth;
  auth.add_tokens_file(path);
  EXPECT_TRUE(auth.required());
  const Caller c = auth.authenticate(bearer("Bearer " + alice));
  EXPECT_EQ(c.name, "alice");
  EXPECT_EQ(c.role, Role::kUser);
  EXPECT_SERVICE_ERROR(auth.authenticate({}), ErrorCode::kUnauthenticated, "needs a token");
  EXPECT_SERVICE_ERROR(auth.authenticate(bearer("Bearer " + alice + "x")), ErrorCode::kUnauthenticated,
                       "wrong token");
  try {
    auth.authenticate(bearer("Bearer " + alice.substr(0, 20)));
  } catch (const ServiceError& e) {
    EXPECT_EQ(std::string(e.what()).find(alice.substr(0, 20)), std::string::npos) << "a token is never echoed";
  }

  // A token added meanwhile works, and a removed one stops working, within about a
  // second and without a restart.
  const std::string bob = add_token_to_file(path, "bob", Role::kAdmin);
  remove_token_from_file(path, "alice");
  bool bob_in = false, alice_out = false;
  for (int i = 0; i < 40 && !(bob_in && alice_out); ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    try {
      bob_in = auth.authenticate(bearer("Bearer " + bob)).name == "bob";
    } catch (const ServiceError&) {
    }
    try {
      auth.authenticate(bearer("Bearer " + alice));
    } catch (const ServiceError&) {
      alice_out = true;
    }
  }
  EXPECT_TRUE(bob_in);
  EXPECT_TRUE(alice_out);

  // A file gone bad keeps the tokens read before (a typo must not lock everyone out).
  std::ofstream(path, std::ios::app) << "not a token line\n";
  std::this_thread::sleep_for(std::chrono::milliseconds(1200));
  EXPECT_EQ(auth.authenticate(bearer("Bearer " + bob)).name, "bob");
}

TEST(AuthenticatorTest, TheSingleTokenFileIsAnAdminsAndABadTokensFileIsRefusedAtStart) {
  TempDir dir;
  const std::string single = dir.file("token");
  std::ofstream(single) << "s3cret\n";
  Authenticator auth;
  auth.add_admin_token_file(single);
  const Caller c = auth.authenticate(bearer("Bearer s3cret"));
  EXPECT_EQ(c.name, "admin");
  EXPECT_EQ(c.role, Role::kAdmin);

  const std::string bad = dir.file("tokens");
  std::ofstream(bad) << "s3cret alice user\n";
  EXPECT_TRUE(contains(user_error([&] { auth.add_tokens_file(bad); }), bad + ":1:"));
  EXPECT_TRUE(contains(user_error([&] { auth.add_tokens_file(dir.file("missing")); }), "missing"));
}

TEST(HandleTest, EachRoleMakesOnlyItsOwnCalls) {
  const Caller user{"alice", Role::kUser}, pool{"pool-a", Role::kPool}, admin{"root", Role::kAdmin};
  EXPECT_NO_THROW(check_role(user, Allowed::kClients));
  EXPECT_NO_THROW(check_role(admin, Allowed::kClients));
  EXPECT_SERVICE_ERROR(check_role(pool, Allowed::kClients), ErrorCode::kPermissionDenied, "pool-a is a pool's");
  EXPECT_NO_THROW(check_role(pool, Allowed::kPools));
  EXPECT_NO_THROW(check_role(admin, Allowed::kPools));
  EXPECT_SERVICE_ERROR(check_role(user, Allowed::kPools), ErrorCode::kPermissionDenied, "alice is a user's");
  EXPECT_NO_THROW(check_role(admin, Allowed::kAdmins));
  EXPECT_SERVICE_ERROR(check_role(user, Allowed::kAdmins), ErrorCode::kPermissionDenied, "only admin tokens");
  EXPECT_SERVICE_ERROR(check_role(pool, Allowed::kAdmins), ErrorCode::kPermissionDenied, "only admin tokens");
}

}  // namespace
}  // namespace prelude::server
