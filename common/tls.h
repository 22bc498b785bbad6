// TLS between the coordinator and its clients and pools: the client side's flags and
// environment, and the one place that reads the PEM files, checks them and builds
// gRPC credentials, so the coordinator, the worker and the client say the same
// thing about the same bad file.
#pragma once

#include <grpcpp/security/credentials.h>
#include <grpcpp/security/server_credentials.h>

#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "common/flags.h"

namespace prelude {

// A PEM file named by a flag or an environment variable. Errors say which
// ("--tls-ca ca.pem: ..."), so a user sees where a bad path came from.
struct PemFile {
  std::string path;    // empty: not given
  std::string source;  // "--tls-ca", "PRELUDE_TLS_CA", ...
  bool given() const { return !path.empty(); }
  std::string where() const { return source + " " + path; }
};

// How a client of the coordinator (the prelude CLI, a worker pool) connects.
struct ClientTls {
  bool enabled = false;  // false: plaintext
  PemFile ca;            // the CA that signed the coordinator's certificate; not given: the system's roots
  PemFile cert, key;     // mutual TLS: this client's certificate and key (both or neither)
};

// --tls, --tls-ca F, --tls-cert F, --tls-key F, for --help.
const std::vector<FlagSpec>& client_tls_flags();

// A flag's value ("" for a switch) or an environment variable's, nullopt when not given.
using Lookup = std::function<std::optional<std::string>(const std::string& name)>;

// The client's TLS from its flags, else PRELUDE_TLS_CA, PRELUDE_TLS_CERT,
// PRELUDE_TLS_KEY and PRELUDE_TLS=1 (TLS with the system's roots). Giving any of them
// turns TLS on. Throws UsageError for a certificate without its key (or the reverse),
// an empty file name or a PRELUDE_TLS that is not 0 or 1. Files are not read yet.
ClientTls resolve_client_tls(const Lookup& flag, const Lookup& env);

// The flags that give `tls` to `prelude-worker serve` (the coordinator's own pool).
std::vector<std::string> client_tls_args(const ClientTls& tls);

// Reads and checks the files of `tls` (certificates that parse, a key that belongs to
// its certificate) and returns the channel's credentials: insecure when TLS is off.
// Throws UserError naming the flag or variable, the file and the reason.
std::shared_ptr<grpc::ChannelCredentials> channel_credentials(const ClientTls& tls);

// The coordinator's side.
struct ServerTls {
  PemFile cert, key;  // --tls-cert, --tls-key: both or neither
  PemFile client_ca;  // --tls-client-ca: require client certificates signed by this CA
  bool enabled() const { return cert.given() || key.given() || client_ca.given(); }
};

// Reads and checks the files as channel_credentials does (and that --tls-cert and
// --tls-key come together, and --tls-client-ca only with them). Passes to `warn` what will
// make clients refuse the certificate although it loads (it has expired, is not valid
// yet). Throws UserError naming the flag, the file and the reason.
std::shared_ptr<grpc::ServerCredentials> server_credentials(const ServerTls& tls,
                                                            const std::function<void(const std::string&)>& warn);

// Checks what a TLS client would check of `cert` (the first certificate in it): that
// it chains to a certificate in `ca` and, when `host` is not empty, that it is a server
// certificate naming that host name or IP address, else a client certificate. Throws
// UserError naming both files and what is wrong. Used at start so a pool the
// coordinator spawns is not refused in a loop, unexplained.
void check_certificate(const PemFile& cert, const PemFile& ca, const std::string& host);

// For a call to `address` that failed with UNAVAILABLE and `message`: what TLS has to
// do with it, as " (...)" to append to the message, or "" when it looks unrelated. A
// refused certificate is examined again here, to say why: a CA the client does not
// trust, an expired certificate, a name that is not the address dialled.
std::string tls_failure_hint(const std::string& address, const ClientTls& tls, const std::string& message);

// Whether a server listening on `listen` (HOST:PORT, [IPV6]:PORT or unix:PATH) can be
// reached from this machine only: a loopback address (127.0.0.0/8, ::1), localhost,
// or a Unix socket. Any other name or address, 0.0.0.0 included, is not.
bool is_loopback_address(const std::string& listen);

}  // namespace prelude
