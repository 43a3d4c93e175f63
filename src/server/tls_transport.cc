// TLS connections of rnotifyd; see tls_transport.h.
#include "server/tls_transport.h"

#include <openssl/ssl.h>
#include <openssl/x509.h>

#include "common/log.h"

namespace rnotify {

TlsTransport::TlsTransport(asio::ip::tcp::socket socket, std::shared_ptr<TlsServerContext> context,
                           std::string description)
    : context_(std::move(context)), stream_(std::move(socket), context_->ssl()), description_(std::move(description)) {}

void TlsTransport::handshake(std::unique_ptr<TlsTransport> transport, std::chrono::seconds timeout,
                             HandshakeHandler done) {
  // Shared by the handshake's handler and the timer's: whichever runs second
  // must know that the other has run.
  struct Deadline {
    explicit Deadline(const asio::any_io_executor& executor) : timer(executor) {}
    asio::steady_timer timer;
    bool finished = false;
    bool expired = false;
  };
  TlsTransport* raw = transport.get();
  auto deadline = std::make_shared<Deadline>(raw->stream_.get_executor());
  deadline->timer.expires_after(timeout);
  // Until `finished`, the transport is alive: the handshake's handler owns it.
  deadline->timer.async_wait([deadline, raw](std::error_code ec) {
    if (ec || deadline->finished) return;
    deadline->expired = true;
    std::error_code ignored;
    raw->stream_.lowest_layer().close(ignored);
  });
  raw->stream_.async_handshake(asio::ssl::stream_base::server, [deadline, transport = std::move(transport),
                                                                done = std::move(done)](std::error_code ec) mutable {
    deadline->finished = true;
    deadline->timer.cancel();
    if (deadline->expired) ec = std::make_error_code(std::errc::timed_out);
    if (!ec) {
      if (Status s = transport->identify(); !s) {
        log::warn("{}: {}", transport->description_, s.error().message);
        ec = std::make_error_code(std::errc::permission_denied);
      }
    }
    done(ec, std::move(transport));
  });
}

Status TlsTransport::identify() {
  SSL* ssl = stream_.native_handle();
  std::unique_ptr<X509, void (*)(X509*)> certificate(SSL_get1_peer_certificate(ssl), X509_free);
  if (!certificate) {
    if (context_->tokens()) return {};  // it must send a token (proto::Auth) before anything else
    return Error{EACCES, "the client sent no certificate"};
  }
  // The handshake verified it against --tls-client-ca; this is a second look
  // in case the verification mode ever lets a failure through.
  if (SSL_get_verify_result(ssl) != X509_V_OK) {
    return Error{EACCES, std::string("client certificate not verified: ") +
                             X509_verify_cert_error_string(SSL_get_verify_result(ssl))};
  }
  auto user = context_->userOf(certificate.get());
  if (!user) return user.error();
  peer_ = *user;
  return {};
}

Status TlsTransport::authenticate(std::string_view user, std::string_view token) {
  if (peer_) return Error{EINVAL, "already authenticated as " + peer_->user + " (" + methodName(peer_->method) + ")"};
  if (!context_->tokens()) return Transport::authenticate(user, token);
  auto peer = context_->tokens()->check(user, token);
  if (!peer) return peer.error();
  peer_ = *peer;
  return {};
}

void TlsTransport::asyncReadSome(asio::mutable_buffer buffer, IoHandler handler) {
  stream_.async_read_some(buffer, std::move(handler));
}

void TlsTransport::asyncWrite(asio::const_buffer buffer, IoHandler handler) {
  asio::async_write(stream_, buffer, std::move(handler));
}

// No close_notify: the protocol ends connections with its own Fatal frame,
// and waiting for the peer's close_notify would let a client hold us up.
void TlsTransport::close() {
  std::error_code ignored;
  stream_.lowest_layer().shutdown(asio::ip::tcp::socket::shutdown_both, ignored);
  stream_.lowest_layer().close(ignored);
}

}  // namespace rnotify
