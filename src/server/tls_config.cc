// rnotifyd's TLS options and server context; see tls_config.h.
#include "server/tls_config.h"

#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <sys/stat.h>

#include <CLI/CLI.hpp>

#include "common/log.h"

namespace rnotify {
namespace {

bool isTlsAddress(const std::string& text) { return text.rfind("tls:", 0) == 0; }

// Asio reports OpenSSL's reason ("no such file", "key values mismatch").
Error sslError(const std::string& what, const std::error_code& ec) { return Error{EINVAL, what + ": " + ec.message()}; }

}  // namespace

void addTlsOptions(CLI::App& app, TlsOptions& options) {
  const char* group = "TLS (tls:ADDRESS:PORT listeners)";
  app.add_option("--tls-cert", options.certFile, "The server's certificate chain (PEM) for tls: listeners")
      ->type_name("FILE")
      ->group(group);
  app.add_option("--tls-key", options.keyFile, "The private key of --tls-cert (PEM); must not be readable by all users")
      ->type_name("FILE")
      ->group(group);
  app.add_option("--tls-client-ca", options.clientCaFile,
                 "Authenticate clients by certificate: accept client certificates signed by this CA (PEM) and map "
                 "each to a local user (--tls-user-from). Use a CA that signs only rnotify client certificates: "
                 "anyone it signs a certificate for with CN=alice is alice")
      ->type_name("FILE")
      ->group(group);
  app.add_option("--tls-user-from", options.userFrom,
                 "Which part of a client certificate is the local user name: cn (the subject's common name, the "
                 "default) or email (the part before '@' of its one e-mail subjectAltName). Root is never mapped")
      ->check(CLI::IsMember({"cn", "email"}))
      ->type_name("RULE")
      ->group(group);
  app.add_option("--token-dir", options.tokenDir,
                 "Authenticate clients by token: DIR/USER holds USER's token (at least 16 bytes); a client sends "
                 "user and token after the handshake. Files must be mode 600, owned by rnotifyd's user or root; "
                 "DIR must not be writable by others. With --tls-client-ca too, clients without a certificate "
                 "send a token")
      ->type_name("DIR")
      ->group(group);
  app.add_flag("--insecure-tcp", options.insecureTcp,
               "Allow tcp: listeners on addresses other than loopback: no encryption and no authentication, "
               "for tests only")
      ->group(group);
}

Status checkTlsOptions(const TlsOptions& options, const std::vector<std::string>& listenAddresses) {
  bool tls = std::any_of(listenAddresses.begin(), listenAddresses.end(), isTlsAddress);
  bool tlsOptions = !options.certFile.empty() || !options.keyFile.empty() || !options.clientCaFile.empty() ||
                    !options.tokenDir.empty();
  if (!tls) {
    if (tlsOptions) {
      return Error{EINVAL, "--tls-cert, --tls-key, --tls-client-ca and --token-dir need a --listen tls:ADDRESS:PORT"};
    }
    return {};
  }
  if (options.certFile.empty() || options.keyFile.empty()) {
    return Error{EINVAL, "a tls: listener needs --tls-cert FILE and --tls-key FILE"};
  }
  if (options.clientCaFile.empty() && options.tokenDir.empty()) {
    return Error{EINVAL,
                 "a tls: listener needs a way to authenticate clients: --tls-client-ca FILE (client certificates) "
                 "or --token-dir DIR (tokens), or both"};
  }
  return {};
}

Result<std::shared_ptr<TlsServerContext>> TlsServerContext::create(const TlsOptions& options) {
  std::shared_ptr<TlsServerContext> context(new TlsServerContext());
  if (Status s = context->load(options); !s) return s.error();
  return context;
}

Status TlsServerContext::load(const TlsOptions& options) {
  SSL_CTX* ctx = ssl_.native_handle();
  // TLS 1.3 only: no legacy ciphers or renegotiation to reason about.
  SSL_CTX_set_min_proto_version(ctx, TLS1_3_VERSION);
  SSL_CTX_set_max_proto_version(ctx, TLS1_3_VERSION);
  // Each connection is a long-lived stream; resumption tickets buy nothing.
  SSL_CTX_set_num_tickets(ctx, 0);
  SSL_CTX_set_options(ctx, SSL_OP_NO_COMPRESSION);

  std::error_code ec;
  ssl_.use_certificate_chain_file(options.certFile, ec);
  if (ec) return sslError("cannot load --tls-cert " + options.certFile, ec);
  struct stat st;
  if (::stat(options.keyFile.c_str(), &st) != 0) return Error::fromErrno(errno, "--tls-key " + options.keyFile);
  if (st.st_mode & S_IROTH) {
    return Error{EACCES, "--tls-key " + options.keyFile + " is readable by all users; chmod o-r " + options.keyFile};
  }
  ssl_.use_private_key_file(options.keyFile, asio::ssl::context::pem, ec);
  if (ec) return sslError("cannot load --tls-key " + options.keyFile, ec);
  if (SSL_CTX_check_private_key(ctx) != 1) {
    return Error{EINVAL, "--tls-key " + options.keyFile + " is not the key of --tls-cert " + options.certFile};
  }

  auto rule = parseCertificateUserRule(options.userFrom);
  if (!rule) return rule.error();
  rule_ = *rule;
  if (!options.tokenDir.empty()) {
    auto tokens = TokenDirectory::open(options.tokenDir);
    if (!tokens) return tokens.error();
    tokens_ = std::move(*tokens);
  }
  if (options.clientCaFile.empty()) {
    ssl_.set_verify_mode(asio::ssl::verify_none);
    return {};
  }
  ssl_.load_verify_file(options.clientCaFile, ec);
  if (ec) return sslError("cannot load --tls-client-ca " + options.clientCaFile, ec);
  // Tells clients which CA to pick a certificate for.
  if (STACK_OF(X509_NAME)* names = SSL_load_client_CA_file(options.clientCaFile.c_str())) {
    SSL_CTX_set_client_CA_list(ctx, names);
  }
  // A certificate is required unless a token may stand in for it.
  ssl_.set_verify_mode(asio::ssl::verify_peer | (tokens_ ? 0 : asio::ssl::verify_fail_if_no_peer_cert));
  // A certificate that verifies but names no local user fails the handshake
  // itself, so that the client gets a TLS alert rather than a connection
  // that closes for no visible reason.
  ssl_.set_verify_callback([this](bool preverified, asio::ssl::verify_context& verify) {
    X509_STORE_CTX* store = verify.native_handle();
    if (!preverified || X509_STORE_CTX_get_error_depth(store) != 0) {
      if (!preverified) {
        log::info("TLS client certificate refused: {}", X509_verify_cert_error_string(X509_STORE_CTX_get_error(store)));
      }
      return preverified;
    }
    auto user = userOf(X509_STORE_CTX_get_current_cert(store));
    if (!user) {
      log::warn("TLS client certificate refused: {}", user.error().message);
      X509_STORE_CTX_set_error(store, X509_V_ERR_CERT_REJECTED);  // sent as a bad_certificate alert
      return false;
    }
    return true;
  });
  return {};
}

}  // namespace rnotify
