// TlsTransport: a client connection over TLS 1.3 (asio::ssl on a TCP
// socket). The listener runs the TLS handshake (handshake()) before it hands
// the transport to the Server, so a Session only ever sees clients that
// completed it. The peer is the user of the client's certificate, if it sent
// one; otherwise, on a listener with --token-dir, nobody until the client's
// proto::Auth passes authenticate().
#pragma once

#include <asio.hpp>
#include <asio/ssl.hpp>
#include <memory>
#include <optional>
#include <string>

#include "server/tls_config.h"
#include "server/transport.h"

namespace rnotify {

class TlsTransport final : public Transport {
 public:
  TlsTransport(asio::ip::tcp::socket socket, std::shared_ptr<TlsServerContext> context, std::string description);

  // Runs the server side of the TLS handshake, closing the connection if it
  // takes longer than timeout (a client that connects and says nothing must
  // not hold a socket for ever). done gets the error, if any; on success the
  // peer is known (or a token is awaited).
  using HandshakeHandler = std::function<void(std::error_code, std::unique_ptr<TlsTransport>)>;
  static void handshake(std::unique_ptr<TlsTransport> transport, std::chrono::seconds timeout, HandshakeHandler done);

  void asyncReadSome(asio::mutable_buffer buffer, IoHandler handler) override;
  void asyncWrite(asio::const_buffer buffer, IoHandler handler) override;
  void close() override;
  std::string describe() const override { return description_; }
  std::optional<Peer> peer() const override { return peer_; }
  bool awaitsToken() const override { return !peer_ && context_->tokens().has_value(); }
  Status authenticate(std::string_view user, std::string_view token) override;

 private:
  // After the handshake: the user of the client's certificate, if any.
  Status identify();

  std::shared_ptr<TlsServerContext> context_;  // outlives the stream, which refers to its SSL_CTX
  asio::ssl::stream<asio::ip::tcp::socket> stream_;
  std::string description_;
  std::optional<Peer> peer_;
};

}  // namespace rnotify
