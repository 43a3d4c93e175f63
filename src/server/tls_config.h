// TLS for rnotifyd's network listeners: the command-line options, their
// checks, and the OpenSSL context a tls: listener serves with. TLS 1.3 only;
// every client must authenticate, by a client certificate from
// --tls-client-ca (mapped to a local user by --tls-user-from) or by a token
// from --token-dir sent in proto::Auth. With both, a client that presents a
// certificate is that certificate's user, and one that does not must send a
// token. Plain tcp: listeners carry no identity and no encryption, so they are
// refused on anything but loopback unless --insecure-tcp says otherwise.
#pragma once

#include <asio.hpp>
#include <asio/ssl.hpp>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "common/result.h"
#include "server/tls_identity.h"

namespace CLI {
class App;
}

namespace rnotify {

struct TlsOptions {
  std::string certFile;         // --tls-cert: the server's certificate chain (PEM)
  std::string keyFile;          // --tls-key: its private key (PEM)
  std::string clientCaFile;     // --tls-client-ca: CA(s) whose client certificates are accepted
  std::string userFrom = "cn";  // --tls-user-from: cn | email
  std::string tokenDir;         // --token-dir: a token file per user
  bool insecureTcp = false;     // --insecure-tcp: allow plain tcp: on non-loopback addresses
};

// Registers the options above on rnotifyd's command line.
void addTlsOptions(CLI::App& app, TlsOptions& options);

// Usage errors: a tls: listener without a certificate, a key or a way to
// authenticate clients; TLS options without a tls: listener to use them.
Status checkTlsOptions(const TlsOptions& options, const std::vector<std::string>& listenAddresses);

// What a tls: listener serves with, loaded once at start.
class TlsServerContext {
 public:
  static Result<std::shared_ptr<TlsServerContext>> create(const TlsOptions& options);

  asio::ssl::context& ssl() { return ssl_; }
  // The user a verified client certificate maps to (--tls-user-from).
  Result<Peer> userOf(X509* certificate) const { return userOfCertificate(certificate, rule_); }
  // Token authentication (--token-dir), if configured.
  const std::optional<TokenDirectory>& tokens() const { return tokens_; }

 private:
  TlsServerContext() : ssl_(asio::ssl::context::tls_server) {}
  Status load(const TlsOptions& options);

  asio::ssl::context ssl_;
  CertificateUserRule rule_ = CertificateUserRule::kCommonName;
  std::optional<TokenDirectory> tokens_;
};

}  // namespace rnotify
