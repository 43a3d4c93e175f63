// Listener: accepts client connections on a unix socket or a TCP port, plain
// or TLS, and hands each to the Server (a TLS one once its handshake is done).
// Plain TCP has no authentication or encryption, so it is refused on anything
// but a loopback address unless TlsOptions::insecureTcp says otherwise.
// A unix listener refuses a path another process answers on and removes only
// its own socket file (server/unix_socket_file.h); every listener backs off
// when accept() runs out of descriptors (server/accept_backoff.h).
#pragma once

#include <asio.hpp>
#include <memory>
#include <string>
#include <variant>

#include "common/result.h"
#include "server/tls_config.h"

namespace rnotify {

class Server;

struct ListenAddress {
  enum class Kind { kUnix, kTcp, kTls } kind;
  std::string path;  // unix
  std::string host;  // tcp, tls
  uint16_t port = 0;
};

// "unix:/run/rnotifyd.sock", "tcp:127.0.0.1:4242", "tcp:[::1]:4242",
// "tls:0.0.0.0:7311".
Result<ListenAddress> parseListenAddress(const std::string& text);

class Listener {
 public:
  // tls: the options of tls: listeners and whether plain tcp: may leave loopback.
  static Result<std::unique_ptr<Listener>> start(asio::io_context& io, Server& server, const ListenAddress& address,
                                                 const TlsOptions& tls = {});
  virtual ~Listener() = default;
  virtual void stop() = 0;
  virtual std::string describe() const = 0;
};

}  // namespace rnotify
