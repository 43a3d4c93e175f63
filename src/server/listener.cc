#include "server/listener.h"

#include <sys/socket.h>

#include "common/host_port.h"
#include "common/log.h"
#include "server/accept_backoff.h"
#include "server/server.h"
#include "server/tls_transport.h"
#include "server/transport.h"
#include "server/unix_socket_file.h"

namespace rnotify {
namespace {

class UnixListener final : public Listener {
 public:
  UnixListener(asio::io_context& io, Server& server, std::string path)
      : acceptor_(io), server_(server), path_(std::move(path)), backoff_(io, "unix:" + path_) {}
  ~UnixListener() override { stop(); }  // then file_ removes the socket file, if it is still ours

  Status open() {
    std::error_code ec;
    acceptor_.open(asio::local::stream_protocol(), ec);
    if (ec) return Error{ec.value(), "cannot listen on unix:" + path_ + ": " + ec.message()};
    auto file =
        UnixSocketFile::bindAndListen(acceptor_.native_handle(), path_, asio::socket_base::max_listen_connections);
    if (!file) return file.error();
    file_ = std::move(*file);
    accept();
    return {};
  }

  void stop() override {
    backoff_.cancel();
    std::error_code ignored;
    acceptor_.close(ignored);
  }
  std::string describe() const override { return "unix:" + path_; }

 private:
  void accept() {
    acceptor_.async_accept([this](std::error_code ec, asio::local::stream_protocol::socket socket) {
      if (ec) {
        if (ec != asio::error::operation_aborted && acceptor_.is_open()) {
          backoff_.failed(ec, acceptor_.native_handle(), [this] { accept(); });
        }
        return;
      }
      backoff_.succeeded();
      struct ucred cred {};
      socklen_t len = sizeof cred;
      std::string who = "unix";
      if (::getsockopt(socket.native_handle(), SOL_SOCKET, SO_PEERCRED, &cred, &len) == 0) {
        who = "unix uid " + std::to_string(cred.uid) + " pid " + std::to_string(cred.pid);
      }
      server_.adopt(std::make_unique<SocketTransport<asio::local::stream_protocol::socket>>(std::move(socket), who));
      accept();
    });
  }

  asio::local::stream_protocol::acceptor acceptor_;
  Server& server_;
  std::string path_;
  UnixSocketFile file_;
  AcceptBackoff backoff_;
};

// Plain TCP, or TLS when given a context.
class TcpListener final : public Listener {
 public:
  TcpListener(asio::io_context& io, Server& server, std::shared_ptr<TlsServerContext> tls)
      : acceptor_(io), server_(server), tls_(std::move(tls)), backoff_(io, tls_ ? "tls:" : "tcp:") {}
  ~TcpListener() override { stop(); }

  Status open(const ListenAddress& address, bool insecure) {
    const std::string scheme = tls_ ? "tls:" : "tcp:";
    std::error_code ec;
    auto ip = asio::ip::make_address(address.host, ec);
    if (ec) return Error{EINVAL, "cannot listen on " + scheme + address.host + ": not an IP address"};
    if (!tls_ && !ip.is_loopback() && !insecure) {
      return Error{EACCES, "refusing plain TCP on " + address.host +
                               ": it has neither encryption nor authentication; use --listen tls:" + address.host +
                               ":PORT, unix:PATH, ssh (--stdio) or a loopback address (--insecure-tcp allows it, "
                               "for tests)"};
    }
    if (!tls_ && !ip.is_loopback()) {
      log::warn("plain TCP on {}: anyone who can reach it can watch the exports, unauthenticated (--insecure-tcp)",
                address.host);
    }
    asio::ip::tcp::endpoint endpoint(ip, address.port);
    acceptor_.open(endpoint.protocol(), ec);
    if (!ec) acceptor_.set_option(asio::socket_base::reuse_address(true), ec);
    if (!ec) acceptor_.bind(endpoint, ec);
    if (!ec) acceptor_.listen(asio::socket_base::max_listen_connections, ec);
    if (ec)
      return Error{ec.value(), "cannot listen on " + scheme + address.host + ":" + std::to_string(address.port) + ": " +
                                   ec.message()};
    description_ = scheme + address.host + ":" + std::to_string(acceptor_.local_endpoint().port());
    backoff_.setDescription(description_);
    accept();
    return {};
  }

  void stop() override {
    backoff_.cancel();
    std::error_code ignored;
    acceptor_.close(ignored);
  }
  std::string describe() const override { return description_; }

 private:
  void accept() {
    acceptor_.async_accept([this](std::error_code ec, asio::ip::tcp::socket socket) {
      if (ec) {
        if (ec != asio::error::operation_aborted && acceptor_.is_open()) {
          backoff_.failed(ec, acceptor_.native_handle(), [this] { accept(); });
        }
        return;
      }
      backoff_.succeeded();
      std::error_code ignored;
      // Events are small and latency matters more than packet count.
      socket.set_option(asio::ip::tcp::no_delay(true), ignored);
      auto peer = socket.remote_endpoint(ignored);
      std::string who = (tls_ ? "tls " : "tcp ") + peer.address().to_string() + ":" + std::to_string(peer.port());
      if (tls_) {
        handshake(std::make_unique<TlsTransport>(std::move(socket), tls_, who));
      } else {
        server_.adopt(std::make_unique<SocketTransport<asio::ip::tcp::socket>>(std::move(socket), who));
      }
      accept();
    });
  }

  // Only a client that completes the TLS handshake (and, with client
  // certificates, proves it is a local user) becomes a session.
  void handshake(std::unique_ptr<TlsTransport> transport) {
    Server& server = server_;  // the listener may stop before the handshake ends; the server outlives both
    const auto timeout = std::chrono::seconds(server.limits().handshakeTimeoutSeconds);
    TlsTransport::handshake(std::move(transport), timeout,
                            [&server](std::error_code ec, std::unique_ptr<TlsTransport> done) {
                              if (ec) {
                                log::warn("{}: TLS handshake failed: {}", done->describe(), ec.message());
                                done->close();
                                return;
                              }
                              server.adopt(std::move(done));
                            });
  }

  asio::ip::tcp::acceptor acceptor_;
  Server& server_;
  std::shared_ptr<TlsServerContext> tls_;
  std::string description_;
  AcceptBackoff backoff_;
};

}  // namespace

Result<ListenAddress> parseListenAddress(const std::string& text) {
  ListenAddress address{};
  if (text.rfind("unix:", 0) == 0 && text.size() > 5) {
    address.kind = ListenAddress::Kind::kUnix;
    address.path = text.substr(5);
    return address;
  }
  const bool tls = text.rfind("tls:", 0) == 0;
  if (text.rfind("tcp:", 0) == 0 || tls) {
    std::string host;
    int port = -1;  // required; 0: any free port
    if (splitHostPort(std::string_view(text).substr(4), &host, &port, /*allowZero=*/true) && port >= 0) {
      address.kind = tls ? ListenAddress::Kind::kTls : ListenAddress::Kind::kTcp;
      address.host = host;
      address.port = static_cast<uint16_t>(port);
      return address;
    }
  }
  return Error{EINVAL, "bad listen address '" + text + "': use unix:PATH, tls:ADDRESS:PORT or tcp:ADDRESS:PORT"};
}

Result<std::unique_ptr<Listener>> Listener::start(asio::io_context& io, Server& server, const ListenAddress& address,
                                                  const TlsOptions& tls) {
  if (address.kind == ListenAddress::Kind::kUnix) {
    auto listener = std::make_unique<UnixListener>(io, server, address.path);
    if (Status s = listener->open(); !s) return s.error();
    return std::unique_ptr<Listener>(std::move(listener));
  }
  std::shared_ptr<TlsServerContext> context;
  if (address.kind == ListenAddress::Kind::kTls) {
    if (Status s = checkTlsOptions(tls, {"tls:"}); !s) return s.error();
    auto created = TlsServerContext::create(tls);
    if (!created) return created.error();
    context = std::move(*created);
  }
  auto listener = std::make_unique<TcpListener>(io, server, std::move(context));
  if (Status s = listener->open(address, tls.insecureTcp); !s) return s.error();
  return std::unique_ptr<Listener>(std::move(listener));
}

}  // namespace rnotify
