#include "common/tls.h"

#include <arpa/inet.h>
#include <netdb.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>
#include <grpcpp/security/credentials.h>
#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include <cctype>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>

#include "common/errors.h"

namespace prelude {

namespace {

// OpenSSL objects freed on every path.
struct BioFree { void operator()(BIO* b) const { BIO_free(b); } };
struct X509Free { void operator()(X509* x) const { X509_free(x); } };
struct KeyFree { void operator()(EVP_PKEY* k) const { EVP_PKEY_free(k); } };
struct StoreFree { void operator()(X509_STORE* s) const { X509_STORE_free(s); } };
struct StoreCtxFree { void operator()(X509_STORE_CTX* c) const { X509_STORE_CTX_free(c); } };
struct StackFree { void operator()(STACK_OF(X509)* s) const { sk_X509_free(s); } };
using Cert = std::unique_ptr<X509, X509Free>;

std::string read_pem(const PemFile& file) {
  if (file.path.empty()) throw UsageError(file.source + ": needs a file name");
  std::ifstream in(file.path, std::ios::binary);
  if (!in) throw UserError(file.where() + ": cannot read: " + std::strerror(errno));
  std::ostringstream text;
  text << in.rdbuf();
  if (text.str().empty()) throw UserError(file.where() + ": the file is empty");
  return text.str();
}

std::unique_ptr<BIO, BioFree> memory(const std::string& pem) {
  return std::unique_ptr<BIO, BioFree>(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
}

// Every certificate in `pem`, in order; UserError when there is none.
std::vector<Cert> certificates(const PemFile& file, const std::string& pem) {
  std::vector<Cert> certs;
  auto bio = memory(pem);
  while (X509* x = PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr)) certs.emplace_back(x);
  ERR_clear_error();  // the read that ended the loop left "no start line" behind
  if (certs.empty())
    throw UserError(file.where() + ": holds no PEM certificate (-----BEGIN CERTIFICATE-----)");
  return certs;
}

// No passphrase prompt: a coordinator or pool may have no terminal, so an encrypted key is refused.
int no_passphrase(char*, int, int, void*) { return -1; }

std::unique_ptr<EVP_PKEY, KeyFree> private_key(const PemFile& file, const std::string& pem) {
  auto bio = memory(pem);
  EVP_PKEY* key = PEM_read_bio_PrivateKey(bio.get(), nullptr, no_passphrase, nullptr);
  ERR_clear_error();
  if (key == nullptr)
    throw UserError(file.where() + ": holds no unencrypted PEM private key (-----BEGIN PRIVATE KEY-----)");
  return std::unique_ptr<EVP_PKEY, KeyFree>(key);
}

std::string time_text(const ASN1_TIME* t) {
  auto bio = std::unique_ptr<BIO, BioFree>(BIO_new(BIO_s_mem()));
  ASN1_TIME_print(bio.get(), t);
  char* data = nullptr;
  const long n = BIO_get_mem_data(bio.get(), &data);
  return std::string(data, n > 0 ? n : 0);
}

// The certificate and key of one side, checked to belong together.
struct KeyPair {
  std::string cert_pem, key_pem;
  Cert leaf;
};

KeyPair key_pair(const PemFile& cert, const PemFile& key) {
  if (cert.given() != key.given()) {
    const PemFile& given = cert.given() ? cert : key;
    const std::string missing = cert.given() ? key.source : cert.source;
    throw UsageError(given.source + ": needs " + missing + " too (a certificate and its private key)");
  }
  KeyPair pair;
  pair.cert_pem = read_pem(cert);
  pair.key_pem = read_pem(key);
  auto certs = certificates(cert, pair.cert_pem);
  auto pkey = private_key(key, pair.key_pem);
  const int matches = X509_check_private_key(certs.front().get(), pkey.get());
  ERR_clear_error();
  if (matches != 1)
    throw UserError(key.where() + ": is not the private key of the certificate in " + cert.where());
  pair.leaf = std::move(certs.front());
  return pair;
}

bool is_ip_address(const std::string& host) {
  unsigned char buf[16];
  return inet_pton(AF_INET, host.c_str(), buf) == 1 || inet_pton(AF_INET6, host.c_str(), buf) == 1;
}

bool names_host(X509* cert, const std::string& host) {
  return is_ip_address(host) ? X509_check_ip_asc(cert, host.c_str(), 0) == 1
                             : X509_check_host(cert, host.data(), host.size(), 0, nullptr) == 1;
}

bool contains(const std::string& text, const char* part) { return text.find(part) != std::string::npos; }

// A TCP connection with 5-second timeouts, or -1.
int connect_to(const std::string& host, const std::string& port) {
  addrinfo hints{};
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* found = nullptr;
  if (getaddrinfo(host.c_str(), port.c_str(), &hints, &found) != 0) return -1;
  int fd = -1;
  for (addrinfo* a = found; a != nullptr && fd < 0; a = a->ai_next) {
    fd = socket(a->ai_family, a->ai_socktype, a->ai_protocol);
    if (fd < 0) continue;
    const timeval limit{5, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &limit, sizeof limit);
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &limit, sizeof limit);
    if (connect(fd, a->ai_addr, a->ai_addrlen) != 0) close(fd), fd = -1;
  }
  freeaddrinfo(found);
  return fd;
}

// Why a client with `tls` refuses the certificate the server at `address` shows, found
// by a handshake of our own that accepts any certificate and then checks it as gRPC
// does; "" when that cannot be told.
std::string certificate_problem(std::string address, const ClientTls& tls) {
  for (const char* scheme : {"dns:///", "ipv4:", "ipv6:"})
    if (address.rfind(scheme, 0) == 0) address = address.substr(std::strlen(scheme));
  const size_t colon = address.rfind(':');
  if (colon == std::string::npos) return "";
  std::string host = address.substr(0, colon);
  if (host.size() > 2 && host.front() == '[') host = host.substr(1, host.size() - 2);
  const int fd = connect_to(host, address.substr(colon + 1));
  if (fd < 0) return "";
  std::unique_ptr<SSL_CTX, void (*)(SSL_CTX*)> ctx(SSL_CTX_new(TLS_client_method()), SSL_CTX_free);
  std::unique_ptr<SSL, void (*)(SSL*)> ssl(ctx ? SSL_new(ctx.get()) : nullptr, SSL_free);
  std::string problem;
  if (ssl) {
    SSL_set_verify(ssl.get(), SSL_VERIFY_NONE, nullptr);
    if (!is_ip_address(host)) SSL_set_tlsext_host_name(ssl.get(), host.c_str());
    SSL_set_fd(ssl.get(), fd);
    if (SSL_connect(ssl.get()) != 1) {
      problem = "the coordinator does not answer TLS (does it serve plain text? then connect without TLS)";
    } else if (X509* leaf = SSL_get_peer_certificate(ssl.get())) {
      Cert owned(leaf);
      char subject[256] = "";
      X509_NAME_oneline(X509_get_subject_name(leaf), subject, sizeof subject);
      std::unique_ptr<X509_STORE, StoreFree> store(X509_STORE_new());
      std::string trusted = "the system's CAs";
      std::vector<Cert> roots;
      if (tls.ca.given()) {
        try {
          roots = certificates(tls.ca, read_pem(tls.ca));
        } catch (const UserError&) {
          roots.clear();
        }
        for (const auto& root : roots) X509_STORE_add_cert(store.get(), root.get());
        trusted = "the CA in " + tls.ca.where();
      } else {
        X509_STORE_set_default_paths(store.get());
      }
      std::unique_ptr<X509_STORE_CTX, StoreCtxFree> check(X509_STORE_CTX_new());
      X509_STORE_CTX_init(check.get(), store.get(), leaf, SSL_get_peer_cert_chain(ssl.get()));
      X509_STORE_CTX_set_purpose(check.get(), X509_PURPOSE_SSL_SERVER);
      const std::string shown = std::string("the coordinator's certificate (") + subject + ")";
      if (X509_verify_cert(check.get()) != 1) {
        const int error = X509_STORE_CTX_get_error(check.get());
        if (error == X509_V_ERR_CERT_HAS_EXPIRED)
          problem = shown + " expired on " + time_text(X509_get0_notAfter(leaf));
        else if (error == X509_V_ERR_CERT_NOT_YET_VALID)
          problem = shown + " is not valid before " + time_text(X509_get0_notBefore(leaf));
        else
          problem = shown + " does not verify against " + trusted + ": " + X509_verify_cert_error_string(error);
      } else if (!names_host(leaf, host)) {
        problem = shown + " does not name " + host + ", the address dialled (see its subject alternative names)";
      }
    }
  }
  ERR_clear_error();
  close(fd);
  return problem;
}

}  // namespace

const std::vector<FlagSpec>& client_tls_flags() {
  static const std::vector<FlagSpec> flags = {
      {"--tls", "", "connect with TLS, trusting the system's CAs (default $PRELUDE_TLS=1)"},
      {"--tls-ca", "FILE", "connect with TLS, trusting the CA in FILE (default $PRELUDE_TLS_CA)"},
      {"--tls-cert", "FILE", "for mutual TLS: this client's certificate (default $PRELUDE_TLS_CERT)"},
      {"--tls-key", "FILE", "for mutual TLS: its private key (default $PRELUDE_TLS_KEY)"},
  };
  return flags;
}

ClientTls resolve_client_tls(const Lookup& flag, const Lookup& env) {
  ClientTls tls;
  // One file: its flag, else its variable (an empty variable counts as unset).
  auto file = [&](const std::string& flag_name, const std::string& variable) {
    if (const auto v = flag(flag_name)) {
      if (v->empty()) throw UsageError(flag_name + ": needs a file name");
      return PemFile{*v, flag_name};
    }
    if (const auto v = env(variable); v && !v->empty()) return PemFile{*v, variable};
    return PemFile{"", flag_name};
  };
  tls.ca = file("--tls-ca", "PRELUDE_TLS_CA");
  tls.cert = file("--tls-cert", "PRELUDE_TLS_CERT");
  tls.key = file("--tls-key", "PRELUDE_TLS_KEY");
  bool system_roots = flag("--tls").has_value();
  if (const auto v = env("PRELUDE_TLS"); !system_roots && v && !v->empty()) {
    if (*v != "0" && *v != "1") throw UsageError("PRELUDE_TLS: must be 1 (TLS) or 0, got '" + *v + "'");
    system_roots = *v == "1";
  }
  if (tls.cert.given() != tls.key.given()) {
    const PemFile& given = tls.cert.given() ? tls.cert : tls.key;
    throw UsageError(given.source + ": needs " + (tls.cert.given() ? "--tls-key" : "--tls-cert") +
                     " too (a certificate and its private key)");
  }
  tls.enabled = system_roots || tls.ca.given() || tls.cert.given();
  return tls;
}

std::vector<std::string> client_tls_args(const ClientTls& tls) {
  if (!tls.enabled) return {};
  std::vector<std::string> args;
  if (tls.ca.given()) args.insert(args.end(), {"--tls-ca", tls.ca.path});
  else args.push_back("--tls");
  if (tls.cert.given()) args.insert(args.end(), {"--tls-cert", tls.cert.path, "--tls-key", tls.key.path});
  return args;
}

std::shared_ptr<grpc::ChannelCredentials> channel_credentials(const ClientTls& tls) {
  if (!tls.enabled) return grpc::InsecureChannelCredentials();
  grpc::SslCredentialsOptions options;  // empty roots: gRPC's default, the system's CAs
  if (tls.ca.given()) {
    options.pem_root_certs = read_pem(tls.ca);
    certificates(tls.ca, options.pem_root_certs);
  }
  if (tls.cert.given() || tls.key.given()) {
    KeyPair pair = key_pair(tls.cert, tls.key);
    options.pem_cert_chain = std::move(pair.cert_pem);
    options.pem_private_key = std::move(pair.key_pem);
  }
  return grpc::SslCredentials(options);
}

std::shared_ptr<grpc::ServerCredentials> server_credentials(const ServerTls& tls,
                                                            const std::function<void(const std::string&)>& warn) {
  if (!tls.cert.given() && !tls.key.given())
    throw UsageError(tls.client_ca.source + ": needs --tls-cert and --tls-key (mutual TLS is TLS first)");
  KeyPair pair = key_pair(tls.cert, tls.key);
  const X509* leaf = pair.leaf.get();
  if (X509_cmp_current_time(X509_get0_notAfter(leaf)) < 0)
    warn(tls.cert.where() + ": the certificate expired on " + time_text(X509_get0_notAfter(leaf)) +
         ": clients will refuse it");
  else if (X509_cmp_current_time(X509_get0_notBefore(leaf)) > 0)
    warn(tls.cert.where() + ": the certificate is not valid before " + time_text(X509_get0_notBefore(leaf)) +
         ": clients will refuse it until then");
  grpc::SslServerCredentialsOptions options(tls.client_ca.given()
                                                ? GRPC_SSL_REQUEST_AND_REQUIRE_CLIENT_CERTIFICATE_AND_VERIFY
                                                : GRPC_SSL_DONT_REQUEST_CLIENT_CERTIFICATE);
  if (tls.client_ca.given()) {
    options.pem_root_certs = read_pem(tls.client_ca);
    certificates(tls.client_ca, options.pem_root_certs);
  }
  options.pem_key_cert_pairs.push_back({std::move(pair.key_pem), std::move(pair.cert_pem)});
  return grpc::SslServerCredentials(options);
}

void check_certificate(const PemFile& cert, const PemFile& ca, const std::string& host) {
  auto chain = certificates(cert, read_pem(cert));
  auto roots = certificates(ca, read_pem(ca));
  std::unique_ptr<X509_STORE, StoreFree> store(X509_STORE_new());
  for (const auto& root : roots) X509_STORE_add_cert(store.get(), root.get());
  std::unique_ptr<STACK_OF(X509), StackFree> intermediates(sk_X509_new_null());
  for (size_t i = 1; i < chain.size(); ++i) sk_X509_push(intermediates.get(), chain[i].get());
  std::unique_ptr<X509_STORE_CTX, StoreCtxFree> ctx(X509_STORE_CTX_new());
  X509_STORE_CTX_init(ctx.get(), store.get(), chain.front().get(), intermediates.get());
  // As the other side checks it: a server certificate for a server, else one for a client.
  X509_STORE_CTX_set_purpose(ctx.get(), host.empty() ? X509_PURPOSE_SSL_CLIENT : X509_PURPOSE_SSL_SERVER);
  const bool verified = X509_verify_cert(ctx.get()) == 1;
  const int error = X509_STORE_CTX_get_error(ctx.get());
  ERR_clear_error();
  if (!verified)
    throw UserError(cert.where() + ": does not verify against the CA in " + ca.where() + ": " +
                    X509_verify_cert_error_string(error));
  if (host.empty()) return;
  if (!names_host(chain.front().get(), host))
    throw UserError(cert.where() + ": the certificate does not name " + host + " (its subject alternative names)");
}

std::string tls_failure_hint(const std::string& address, const ClientTls& tls, const std::string& message) {
  // A TLS coordinator closes a plain-text connection at once, and a coordinator that
  // requires client certificates closes the connection of a client without one.
  if (!tls.enabled)
    return contains(message, "Socket closed") || contains(message, "Connection reset")
               ? " (if the coordinator serves TLS, connect with --tls-ca FILE or --tls)"
               : "";
  if (contains(message, "andshake")) {
    const std::string problem = certificate_problem(address, tls);
    return " (TLS: " + (problem.empty() ? "the handshake failed" : problem) + ")";
  }
  if (contains(message, "Socket closed") || contains(message, "Connection reset")) {
    const std::string problem = certificate_problem(address, tls);
    if (!problem.empty()) return " (TLS: " + problem + ")";
    return tls.cert.given() ? " (TLS: the coordinator closed the connection: it may not accept the client "
                              "certificate in " + tls.cert.where() + ")"
                            : " (TLS: the coordinator closed the connection: if it requires client certificates "
                              "(mutual TLS), give --tls-cert and --tls-key)";
  }
  return "";
}

bool is_loopback_address(const std::string& listen) {
  if (listen.rfind("unix:", 0) == 0 || listen.rfind("unix-abstract:", 0) == 0) return true;
  const size_t colon = listen.rfind(':');
  std::string host = colon == std::string::npos ? listen : listen.substr(0, colon);
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') host = host.substr(1, host.size() - 2);
  for (auto& c : host) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  if (host == "localhost") return true;
  in_addr v4{};
  if (inet_pton(AF_INET, host.c_str(), &v4) == 1) return (ntohl(v4.s_addr) >> 24) == 127;
  in6_addr v6{};
  return inet_pton(AF_INET6, host.c_str(), &v6) == 1 && IN6_IS_ADDR_LOOPBACK(&v6);
}

}  // namespace prelude
