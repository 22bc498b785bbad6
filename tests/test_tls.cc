// common/tls: the client's TLS options from flags and environment, the loopback rule
// of the coordinator's --listen, and the checks of PEM files and certificates (with
// certificates made by scripts/dev-certs.sh; skipped without openssl).
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <cstdlib>
#include <map>
#include <string>

#include "common/errors.h"
#include "common/tls.h"

namespace prelude {
namespace {

using Values = std::map<std::string, std::string>;

Lookup lookup(const Values& values) {
  return [values](const std::string& name) -> std::optional<std::string> {
    const auto it = values.find(name);
    return it == values.end() ? std::nullopt : std::optional<std::string>(it->second);
  };
}

// The UsageError of resolving these flags and variables, or "" when there is none.
std::string resolve_error(const Values& flags, const Values& env) {
  try {
    resolve_client_tls(lookup(flags), lookup(env));
  } catch (const UsageError& e) {
    return e.what();
  }
  return "";
}

TEST(LoopbackAddress, OnlyLoopbackAddressesAndLocalhostAndUnixSockets) {
  for (const char* listen : {"127.0.0.1:50051", "127.0.0.1:0", "127.255.3.4:1", "[::1]:50051", "localhost:50051",
                             "LocalHost:1", "unix:/tmp/prelude.sock", "unix-abstract:prelude"})
    EXPECT_TRUE(is_loopback_address(listen)) << listen;
  for (const char* listen :
       {"0.0.0.0:50051", "[::]:50051", ":50051", "10.0.0.1:50051", "128.0.0.1:1", "192.168.1.2:50051", "[::2]:1",
        "example.com:50051", "localhost.example.com:1", "127.0.0.1.example.com:1", "[::ffff:10.0.0.1]:1"})
    EXPECT_FALSE(is_loopback_address(listen)) << listen;
}

TEST(ClientTls, OffUnlessAskedFor) {
  const ClientTls tls = resolve_client_tls(lookup({}), lookup({{"PRELUDE_TLS", "0"}, {"PRELUDE_TLS_CA", ""}}));
  EXPECT_FALSE(tls.enabled);
  EXPECT_TRUE(client_tls_args(tls).empty());
}

TEST(ClientTls, SystemRootsByFlagOrVariable) {
  for (const auto& [flags, env] : {std::pair<Values, Values>{{{"--tls", ""}}, {}}, {{}, {{"PRELUDE_TLS", "1"}}}}) {
    const ClientTls tls = resolve_client_tls(lookup(flags), lookup(env));
    EXPECT_TRUE(tls.enabled);
    EXPECT_FALSE(tls.ca.given());
    EXPECT_EQ(client_tls_args(tls), std::vector<std::string>({"--tls"}));
  }
}

TEST(ClientTls, FlagsBeforeVariablesAndEachFileSaysWhereItCameFrom) {
  const ClientTls tls = resolve_client_tls(
      lookup({{"--tls-ca", "flag-ca.pem"}}),
      lookup({{"PRELUDE_TLS_CA", "env-ca.pem"}, {"PRELUDE_TLS_CERT", "c.pem"}, {"PRELUDE_TLS_KEY", "c.key"}}));
  EXPECT_TRUE(tls.enabled);
  EXPECT_EQ(tls.ca.where(), "--tls-ca flag-ca.pem");
  EXPECT_EQ(tls.cert.where(), "PRELUDE_TLS_CERT c.pem");
  EXPECT_EQ(tls.key.where(), "PRELUDE_TLS_KEY c.key");
  EXPECT_EQ(client_tls_args(tls),
            std::vector<std::string>({"--tls-ca", "flag-ca.pem", "--tls-cert", "c.pem", "--tls-key", "c.key"}));
}

TEST(ClientTls, ACertificateAloneTurnsTlsOnWithTheSystemRoots) {
  const ClientTls tls = resolve_client_tls(lookup({{"--tls-cert", "c.pem"}, {"--tls-key", "c.key"}}), lookup({}));
  EXPECT_TRUE(tls.enabled);
  EXPECT_EQ(client_tls_args(tls), std::vector<std::string>({"--tls", "--tls-cert", "c.pem", "--tls-key", "c.key"}));
}

TEST(ClientTls, RefusesWhatMakesNoSense) {
  EXPECT_EQ(resolve_error({{"--tls-cert", "c.pem"}}, {}),
            "--tls-cert: needs --tls-key too (a certificate and its private key)");
  EXPECT_EQ(resolve_error({}, {{"PRELUDE_TLS_KEY", "c.key"}}),
            "PRELUDE_TLS_KEY: needs --tls-cert too (a certificate and its private key)");
  EXPECT_EQ(resolve_error({{"--tls-ca", ""}}, {}), "--tls-ca: needs a file name");
  EXPECT_EQ(resolve_error({}, {{"PRELUDE_TLS", "yes"}}), "PRELUDE_TLS: must be 1 (TLS) or 0, got 'yes'");
}

// Certificates from scripts/dev-certs.sh: one CA with its server and client
// certificates, and another CA.
class TlsFiles : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    const char* source = std::getenv("PRELUDE_SOURCE_DIR");
    if (source == nullptr || std::system("command -v openssl > /dev/null") != 0) return;
    char pattern[] = "/tmp/prelude-tls-test.XXXXXX";
    if (mkdtemp(pattern) == nullptr) return;
    dir_ = pattern;
    const std::string script = std::string(source) + "/scripts/dev-certs.sh";
    if (std::system((script + " " + dir_ + "/a 2>/dev/null && " + script + " " + dir_ + "/b 2>/dev/null").c_str()) != 0)
      dir_.clear();
  }
  static void TearDownTestSuite() {
    if (!dir_.empty()) std::system(("rm -rf " + dir_).c_str());
  }
  void SetUp() override {
    if (dir_.empty())
      GTEST_SKIP() << "skipped, because openssl or $PRELUDE_SOURCE_DIR (for scripts/dev-certs.sh) is missing";
  }
  static PemFile file(const std::string& name, const std::string& source) { return {dir_ + "/" + name, source}; }
  // The UserError of building a client's credentials, or "".
  static std::string channel_error(const ClientTls& tls) {
    try {
      channel_credentials(tls);
    } catch (const UserError& e) {
      return e.what();
    }
    return "";
  }
  static std::string check_error(const PemFile& cert, const PemFile& ca, const std::string& host) {
    try {
      check_certificate(cert, ca, host);
    } catch (const UserError& e) {
      return e.what();
    }
    return "";
  }
  static std::string dir_;
};
std::string TlsFiles::dir_;

TEST_F(TlsFiles, DevCertsKeysAreOwnerOnly) {
  for (const char* key : {"a/ca.key", "a/server.key", "a/client.key"}) {
    struct stat st {};
    ASSERT_EQ(stat((dir_ + "/" + key).c_str(), &st), 0) << key;
    EXPECT_EQ(st.st_mode & 0777, 0600u) << key;
  }
}

TEST_F(TlsFiles, ChannelCredentialsFromGoodFiles) {
  ClientTls tls{true, file("a/ca.pem", "--tls-ca"), file("a/client.pem", "--tls-cert"),
                file("a/client.key", "--tls-key")};
  EXPECT_EQ(channel_error(tls), "");
}

TEST_F(TlsFiles, BadFilesAreNamedWithTheirFlag) {
  ClientTls missing{true, file("a/none.pem", "--tls-ca"), {}, {}};
  EXPECT_EQ(channel_error(missing), "--tls-ca " + dir_ + "/a/none.pem: cannot read: No such file or directory");
  ClientTls key_as_ca{true, file("a/ca.key", "PRELUDE_TLS_CA"), {}, {}};
  EXPECT_EQ(channel_error(key_as_ca),
            "PRELUDE_TLS_CA " + dir_ + "/a/ca.key: holds no PEM certificate (-----BEGIN CERTIFICATE-----)");
  ClientTls wrong_key{true, {}, file("a/client.pem", "--tls-cert"), file("a/server.key", "--tls-key")};
  EXPECT_EQ(channel_error(wrong_key), "--tls-key " + dir_ +
                                          "/a/server.key: is not the private key of the certificate in "
                                          "--tls-cert " +
                                          dir_ + "/a/client.pem");
  ClientTls cert_as_key{true, {}, file("a/client.pem", "--tls-cert"), file("a/client.pem", "--tls-key")};
  EXPECT_EQ(channel_error(cert_as_key), "--tls-key " + dir_ +
                                            "/a/client.pem: holds no unencrypted PEM private key "
                                            "(-----BEGIN PRIVATE KEY-----)");
}

TEST_F(TlsFiles, ServerCredentialsCheckTheirFlags) {
  auto error = [](const ServerTls& tls) -> std::string {
    try {
      server_credentials(tls, [](const std::string&) {});
    } catch (const UserError& e) {
      return e.what();
    }
    return "";
  };
  const PemFile none_cert{"", "--tls-cert"}, none_key{"", "--tls-key"}, none_ca{"", "--tls-client-ca"};
  EXPECT_EQ(error({file("a/server.pem", "--tls-cert"), file("a/server.key", "--tls-key"), none_ca}), "");
  EXPECT_EQ(error({file("a/server.pem", "--tls-cert"), file("a/server.key", "--tls-key"),
                   file("a/ca.pem", "--tls-client-ca")}),
            "");
  EXPECT_EQ(error({none_cert, none_key, file("a/ca.pem", "--tls-client-ca")}),
            "--tls-client-ca: needs --tls-cert and --tls-key (mutual TLS is TLS first)");
  EXPECT_EQ(error({file("a/server.pem", "--tls-cert"), none_key, none_ca}),
            "--tls-cert: needs --tls-key too (a certificate and its private key)");
}

TEST_F(TlsFiles, CertificatesCheckedAsTheOtherSideWould) {
  const PemFile ca = file("a/ca.pem", "--pool-tls-ca"), other_ca = file("b/ca.pem", "--pool-tls-ca");
  const PemFile server = file("a/server.pem", "--tls-cert"), client = file("a/client.pem", "--pool-tls-cert");
  EXPECT_EQ(check_error(server, ca, "127.0.0.1"), "");
  EXPECT_EQ(check_error(server, ca, "localhost"), "");
  EXPECT_EQ(check_error(server, ca, "::1"), "");
  EXPECT_EQ(check_error(client, ca, ""), "");  // a client certificate, checked as a server checks it
  EXPECT_EQ(
      check_error(server, ca, "10.1.2.3"),
      "--tls-cert " + dir_ + "/a/server.pem: the certificate does not name 10.1.2.3 (its subject alternative names)");
  EXPECT_EQ(check_error(server, other_ca, "127.0.0.1"),
            "--tls-cert " + dir_ + "/a/server.pem: does not verify against the CA in --pool-tls-ca " + dir_ +
                "/b/ca.pem: unable to get local issuer certificate");
  // Each certificate is for one side only (extended key usage).
  EXPECT_NE(check_error(client, ca, "localhost"), "");
  EXPECT_NE(check_error(server, ca, ""), "");
}

}  // namespace
}  // namespace prelude
