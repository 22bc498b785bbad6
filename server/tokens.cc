#include "server/tokens.h"

#include <fcntl.h>
#include <openssl/crypto.h>
#include <openssl/sha.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cctype>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <sstream>

#include "common/errors.h"
#include "common/text.h"

namespace prelude::server {

namespace {

constexpr char kHashPrefix[] = "sha256:";

int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  return -1;
}

std::optional<Digest> parse_hash(const std::string& field) {
  const size_t prefix = sizeof kHashPrefix - 1;
  if (field.compare(0, prefix, kHashPrefix) != 0 || field.size() != prefix + 64) return std::nullopt;
  Digest d;
  for (size_t i = 0; i < d.size(); ++i) {
    const int hi = hex_value(field[prefix + 2 * i]), lo = hex_value(field[prefix + 2 * i + 1]);
    if (hi < 0 || lo < 0) return std::nullopt;
    d[i] = static_cast<unsigned char>(hi * 16 + lo);
  }
  return d;
}

std::string hash_text(const Digest& d) {
  static const char* hex = "0123456789abcdef";
  std::string out = kHashPrefix;
  for (unsigned char b : d) {
    out += hex[b >> 4];
    out += hex[b & 15];
  }
  return out;
}

}  // namespace

const char* role_name(Role role) {
  switch (role) {
    case Role::kAdmin: return "admin";
    case Role::kUser: return "user";
    case Role::kPool: return "pool";
  }
  return "?";
}

std::optional<Role> parse_role(const std::string& text) {
  if (text == "admin") return Role::kAdmin;
  if (text == "user") return Role::kUser;
  if (text == "pool") return Role::kPool;
  return std::nullopt;
}

Digest sha256_digest(const std::string& bytes) {
  Digest d;
  SHA256(reinterpret_cast<const unsigned char*>(bytes.data()), bytes.size(), d.data());
  return d;
}

bool valid_token_name(const std::string& name) {
  if (name.empty() || name.size() > 64 || !std::isalnum(static_cast<unsigned char>(name[0]))) return false;
  for (char c : name)
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '.' && c != '_' && c != '@' && c != '-') return false;
  return true;
}

TokenTable TokenTable::parse(const std::string& text, const std::string& source) {
  TokenTable table;
  std::istringstream in(text);
  std::string line;
  for (int number = 1; std::getline(in, line); ++number) {
    const std::string where = source + ":" + std::to_string(number);
    std::istringstream fields(line);
    std::string hash, name, role, extra;
    if (!(fields >> hash) || hash[0] == '#') continue;  // blank or a comment
    fields >> name >> role;
    if (role.empty() || (fields >> extra))
      throw UserError(where + ": expected 'sha256:<64 hex digits> NAME ROLE', got " + std::to_string(line.size()) +
                      " characters in another form");
    const std::optional<Digest> digest = parse_hash(hash);
    if (!digest)
      throw UserError(where + ": the first field must be 'sha256:' and 64 lower-case hex digits (the token's "
                              "SHA-256, never the token itself)");
    if (!valid_token_name(name))
      throw UserError(where + ": name " + echoed(name) +
                      ": 1 to 64 of A-Z a-z 0-9 . _ @ -, starting with a letter or digit");
    const std::optional<Role> r = parse_role(role);
    if (!r) throw UserError(where + ": role " + echoed(role) + ": must be admin, user or pool");
    table.add(*digest, Caller{name, *r}, where);
  }
  return table;
}

TokenTable TokenTable::load(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw UserError(path + ": cannot read the tokens file: " + std::strerror(errno));
  std::ostringstream text;
  text << in.rdbuf();
  return parse(text.str(), path);
}

void TokenTable::add(const Digest& hash, Caller caller, const std::string& source) {
  const std::string where = source.empty() ? "" : source + ": ";
  for (const Entry& e : entries_) {
    if (e.caller.name == caller.name) throw UserError(where + "the name " + caller.name + " is taken");
    if (e.hash == hash) throw UserError(where + "the same token is given to " + e.caller.name + " already");
  }
  entries_.push_back({hash, std::move(caller)});
}

std::optional<Caller> TokenTable::find(const std::string& token) const {
  const Digest given = sha256_digest(token);
  const Entry* match = nullptr;
  for (const Entry& e : entries_) {
    // CRYPTO_memcmp takes the same time whatever the bytes; every entry is compared.
    const bool same = CRYPTO_memcmp(e.hash.data(), given.data(), given.size()) == 0;
    if (same) match = &e;
  }
  if (!match) return std::nullopt;
  return match->caller;
}

std::string random_hex(size_t bytes) {
  std::string raw(bytes, '\0');
  for (size_t got = 0; got < bytes;) {
    const ssize_t n = getrandom(raw.data() + got, bytes - got, 0);
    if (n < 0) {
      if (errno == EINTR) continue;
      throw std::runtime_error(std::string("getrandom: ") + std::strerror(errno));
    }
    got += static_cast<size_t>(n);
  }
  static const char* hex = "0123456789abcdef";
  std::string out;
  out.reserve(2 * bytes);
  for (unsigned char b : raw) {
    out += hex[b >> 4];
    out += hex[b & 15];
  }
  return out;
}

std::string new_token() { return "prl_" + random_hex(32); }

std::string add_token_to_file(const std::string& path, const std::string& name, Role role) {
  if (!valid_token_name(name))
    throw UserError("NAME " + echoed(name) + ": 1 to 64 of A-Z a-z 0-9 . _ @ -, starting with a letter or digit");
  // Created owner-only; appended, so a coordinator reading it meanwhile sees the old
  // lines or the new one whole (one write of one line).
  const int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
  if (fd < 0) throw UserError(path + ": cannot open the tokens file: " + std::strerror(errno));
  struct Closer {
    int fd;
    ~Closer() { ::close(fd); }
  } closer{fd};
  std::string text;
  char buf[4096];
  for (ssize_t n; (n = ::pread(fd, buf, sizeof buf, static_cast<off_t>(text.size()))) > 0;)
    text.append(buf, static_cast<size_t>(n));
  TokenTable table = TokenTable::parse(text, path);  // a bad file is refused before it grows
  const std::string token = new_token();
  table.add(sha256_digest(token), Caller{name, role}, path);
  std::string line = hash_text(sha256_digest(token)) + " " + name + " " + role_name(role) + "\n";
  if (text.empty()) line = "# Prelude tokens: SHA-256, name, role (prelude-coordinator token add)\n" + line;
  else if (text.back() != '\n') line = "\n" + line;
  if (::write(fd, line.data(), line.size()) != static_cast<ssize_t>(line.size()) || ::fsync(fd) != 0)
    throw UserError(path + ": cannot write the tokens file: " + std::strerror(errno));
  return token;
}

void remove_token_from_file(const std::string& path, const std::string& name) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw UserError(path + ": cannot read the tokens file: " + std::strerror(errno));
  std::ostringstream whole;
  whole << in.rdbuf();
  TokenTable::parse(whole.str(), path);  // only a good file is rewritten
  std::istringstream lines(whole.str());
  std::string kept, line;
  bool found = false;
  while (std::getline(lines, line)) {
    std::istringstream fields(line);
    std::string hash, line_name;
    fields >> hash >> line_name;
    if (!hash.empty() && hash[0] != '#' && line_name == name) {
      found = true;
      continue;
    }
    kept += line + "\n";
  }
  if (!found) throw UserError(path + ": no token named " + echoed(name));
  const std::string tmp = path + ".tmp-" + std::to_string(::getpid());
  const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0) throw UserError(tmp + ": cannot write: " + std::strerror(errno));
  const bool ok = ::write(fd, kept.data(), kept.size()) == static_cast<ssize_t>(kept.size()) && ::fsync(fd) == 0;
  ::close(fd);
  if (!ok || std::rename(tmp.c_str(), path.c_str()) != 0) {
    const std::string why = std::strerror(errno);
    std::remove(tmp.c_str());
    throw UserError(path + ": cannot write the tokens file: " + why);
  }
}

namespace {

const char* kTokenUsage =
    "usage: prelude-coordinator token add NAME --role admin|user|pool --tokens-file F\n"
    "       prelude-coordinator token list --tokens-file F\n"
    "       prelude-coordinator token remove NAME --tokens-file F\n"
    "\n"
    "Manages the tokens of a coordinator's --tokens-file. `add` prints the new token\n"
    "once, on standard output, and keeps only its SHA-256 in F; a running coordinator\n"
    "reads F again within a second of a change.\n";

}  // namespace

int token_command(const std::vector<std::string>& args) {
  std::string verb, name, role_text, file;
  try {
    for (size_t i = 0; i < args.size(); ++i) {
      const std::string& a = args[i];
      auto value = [&](const std::string& flag) {
        if (i + 1 >= args.size()) throw UserError(flag + ": needs a value");
        return args[++i];
      };
      if (a == "--help" || a == "-h") {
        std::fputs(kTokenUsage, stdout);
        return 0;
      }
      if (a == "--role") role_text = value(a);
      else if (a == "--tokens-file") file = value(a);
      else if (a.rfind("--role=", 0) == 0) role_text = a.substr(7);
      else if (a.rfind("--tokens-file=", 0) == 0) file = a.substr(14);
      else if (a.rfind("--", 0) == 0) throw UserError("unknown flag " + echoed(a));
      else if (verb.empty()) verb = a;
      else if (name.empty()) name = a;
      else throw UserError("unexpected argument " + echoed(a));
    }
    if (verb != "add" && verb != "list" && verb != "remove")
      throw UserError(verb.empty() ? "token: say add, list or remove" : "token: unknown command " + echoed(verb));
    if (file.empty()) throw UserError("--tokens-file: must be given");
    if (verb == "list") {
      if (!name.empty() || !role_text.empty()) throw UserError("token list: takes only --tokens-file");
      const TokenTable table = TokenTable::load(file);
      std::printf("%-32s %s\n", "NAME", "ROLE");
      for (const auto& e : table.entries()) std::printf("%-32s %s\n", e.caller.name.c_str(), role_name(e.caller.role));
      return 0;
    }
    if (name.empty()) throw UserError("token " + verb + ": NAME must be given");
    if (verb == "remove") {
      if (!role_text.empty()) throw UserError("token remove: takes no --role");
      remove_token_from_file(file, name);
      std::fprintf(stderr, "removed the token of %s from %s\n", name.c_str(), file.c_str());
      return 0;
    }
    if (role_text.empty()) throw UserError("--role: must be given: admin, user or pool");
    const std::optional<Role> role = parse_role(role_text);
    if (!role) throw UserError("--role: must be admin, user or pool, got " + echoed(role_text));
    const std::string token = add_token_to_file(file, name, *role);
    std::printf("%s\n", token.c_str());
    std::fflush(stdout);
    std::fprintf(stderr, "added a %s token for %s to %s; it is shown only this once\n", role_name(*role),
                 name.c_str(), file.c_str());
    return 0;
  } catch (const UserError& e) {
    // The usage helps with the arguments, not with a file's problem.
    const bool about_file = !file.empty() && std::string(e.what()).rfind(file, 0) == 0;
    std::fprintf(stderr, "prelude-coordinator token: %s\n%s", e.what(), about_file ? "" : kTokenUsage);
    return 2;
  }
}

}  // namespace prelude::server
