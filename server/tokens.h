// The tokens file of a coordinator (--tokens-file): one token per line as its
// SHA-256, a name and a role. The tokens themselves are never stored:
//
//   # made by `prelude-coordinator token add`
//   sha256:5e884898da28047151d0e56f8dc6292773603d0d6aabbdd62a11ef721d1542d8 alice user
//   sha256:... pool-a pool
//
// Free of gRPC: server/auth.h reads the metadata and asks the table.
#pragma once

#include <array>
#include <optional>
#include <string>
#include <vector>

#include "server/caller.h"

namespace prelude::server {

using Digest = std::array<unsigned char, 32>;

Digest sha256_digest(const std::string& bytes);

// A name: 1 to 64 of A-Z a-z 0-9 . _ @ -, starting with a letter or digit (it shows
// in listings, logs and the audit trail).
bool valid_token_name(const std::string& name);

class TokenTable {
 public:
  struct Entry {
    Digest hash;
    Caller caller;
  };

  // Parses a tokens file's text; UserError "FILE:LINE: reason" for a bad line, a
  // repeated name or a repeated token.
  static TokenTable parse(const std::string& text, const std::string& source);
  // Reads and parses the file; UserError naming it when it cannot be read.
  static TokenTable load(const std::string& path);

  // Adds one (UserError when the name or the token is taken).
  void add(const Digest& hash, Caller caller, const std::string& source = "");
  void add_token(const std::string& token, Caller caller) { add(sha256_digest(token), std::move(caller)); }

  // The caller the token belongs to. Hashes the token, then compares its hash with
  // every entry's in constant time, without stopping at a match: how long it takes
  // says nothing about which bytes of which token were right.
  std::optional<Caller> find(const std::string& token) const;

  bool empty() const { return entries_.empty(); }
  size_t size() const { return entries_.size(); }
  const std::vector<Entry>& entries() const { return entries_; }

 private:
  std::vector<Entry> entries_;
};

// A new random token: "prl_" and 64 hex digits (256 bits from getrandom).
std::string new_token();
// Random bytes as lower-case hex (2 digits a byte), from the kernel's generator.
std::string random_hex(size_t bytes);

// `prelude-coordinator token add NAME --role R --tokens-file F`: a new token for NAME,
// whose hash, name and role are appended to F (created 0600 when missing; fsynced).
// Returns the token (printed once by the caller, never stored). UserError naming the
// file when the name is taken, invalid, or the file cannot be written or holds a bad
// line.
std::string add_token_to_file(const std::string& path, const std::string& name, Role role);

// `token remove NAME`: the file without NAME's line, written whole to a temporary file
// and renamed over it. UserError naming the file when NAME has no token there.
void remove_token_from_file(const std::string& path, const std::string& name);

// `prelude-coordinator token add|list|remove ...` (argv after "token"). Returns the
// exit status; prints errors naming the flag or file.
int token_command(const std::vector<std::string>& args);

}  // namespace prelude::server
