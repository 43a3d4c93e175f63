#include "server/listener.h"

#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/log.h"
#include "server/server.h"
#include "server/transport.h"

namespace rnotify {
namespace {

class UnixListener final : public Listener {
 public:
  UnixListener(asio::io_context& io, Server& server, std::string path)
      : acceptor_(io), server_(server), path_(std::move(path)) {}
  ~UnixListener() override {
    stop();
    ::unlink(path_.c_str());
  }

  Status open() {
    // A socket file left by a previous run that died is replaced; any other
    // kind of file is not ours to remove.
    struct stat st;
    if (::lstat(path_.c_str(), &st) == 0) {
      if (!S_ISSOCK(st.st_mode))
        return Error{EEXIST, "cannot listen on '" + path_ + "': it exists and is not a socket"};
      ::unlink(path_.c_str());
    }
    std::error_code ec;
    asio::local::stream_protocol::endpoint endpoint(path_);
    acceptor_.open(endpoint.protocol(), ec);
    if (!ec) acceptor_.bind(endpoint, ec);
    if (!ec) acceptor_.listen(asio::socket_base::max_listen_connections, ec);
    if (ec) return Error{ec.value(), "cannot listen on unix:" + path_ + ": " + ec.message()};
    accept();
    return {};
  }

  void stop() override {
    std::error_code ignored;
    acceptor_.close(ignored);
  }
  std::string describe() const override { return "unix:" + path_; }

 private:
  void accept() {
    acceptor_.async_accept([this](std::error_code ec, asio::local::stream_protocol::socket socket) {
      if (ec) {
        if (ec != asio::error::operation_aborted) log::warn("unix:{}: accept failed: {}", path_, ec.message());
        if (acceptor_.is_open()) accept();
        return;
      }
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
};

class TcpListener final : public Listener {
 public:
  TcpListener(asio::io_context& io, Server& server) : acceptor_(io), server_(server) {}
  ~TcpListener() override { stop(); }

  Status open(const ListenAddress& address) {
    std::error_code ec;
    auto ip = asio::ip::make_address(address.host, ec);
    if (ec) return Error{EINVAL, "cannot listen on tcp:" + address.host + ": not an IP address"};
    if (!ip.is_loopback()) {
      return Error{EACCES, "refusing plain TCP on " + address.host +
                               ": without TLS only loopback addresses are allowed; use --listen unix:PATH, "
                               "ssh (--stdio), or a loopback address"};
    }
    asio::ip::tcp::endpoint endpoint(ip, address.port);
    acceptor_.open(endpoint.protocol(), ec);
    if (!ec) acceptor_.set_option(asio::socket_base::reuse_address(true), ec);
    if (!ec) acceptor_.bind(endpoint, ec);
    if (!ec) acceptor_.listen(asio::socket_base::max_listen_connections, ec);
    if (ec)
      return Error{ec.value(),
                   "cannot listen on tcp:" + address.host + ":" + std::to_string(address.port) + ": " + ec.message()};
    description_ = "tcp:" + address.host + ":" + std::to_string(acceptor_.local_endpoint().port());
    accept();
    return {};
  }

  void stop() override {
    std::error_code ignored;
    acceptor_.close(ignored);
  }
  std::string describe() const override { return description_; }

 private:
  void accept() {
    acceptor_.async_accept([this](std::error_code ec, asio::ip::tcp::socket socket) {
      if (ec) {
        if (ec != asio::error::operation_aborted) log::warn("{}: accept failed: {}", description_, ec.message());
        if (acceptor_.is_open()) accept();
        return;
      }
      std::error_code ignored;
      // Events are small and latency matters more than packet count.
      socket.set_option(asio::ip::tcp::no_delay(true), ignored);
      auto peer = socket.remote_endpoint(ignored);
      std::string who = "tcp " + peer.address().to_string() + ":" + std::to_string(peer.port());
      server_.adopt(std::make_unique<SocketTransport<asio::ip::tcp::socket>>(std::move(socket), who));
      accept();
    });
  }

  asio::ip::tcp::acceptor acceptor_;
  Server& server_;
  std::string description_;
};

}  // namespace

Result<ListenAddress> parseListenAddress(const std::string& text) {
  ListenAddress address{};
  if (text.rfind("unix:", 0) == 0 && text.size() > 5) {
    address.kind = ListenAddress::Kind::kUnix;
    address.path = text.substr(5);
    return address;
  }
  if (text.rfind("tcp:", 0) == 0) {
    std::string rest = text.substr(4);
    size_t colon = rest.rfind(':');
    if (colon != std::string::npos && colon > 0) {
      std::string host = rest.substr(0, colon);
      if (host.size() > 2 && host.front() == '[' && host.back() == ']') host = host.substr(1, host.size() - 2);
      try {
        int port = std::stoi(rest.substr(colon + 1));
        if (port >= 0 && port <= 65535) {
          address.kind = ListenAddress::Kind::kTcp;
          address.host = host;
          address.port = static_cast<uint16_t>(port);
          return address;
        }
      } catch (const std::exception&) {
      }
    }
  }
  return Error{EINVAL, "bad listen address '" + text + "': use unix:PATH or tcp:ADDRESS:PORT"};
}

Result<std::unique_ptr<Listener>> Listener::start(asio::io_context& io, Server& server, const ListenAddress& address) {
  if (address.kind == ListenAddress::Kind::kUnix) {
    auto listener = std::make_unique<UnixListener>(io, server, address.path);
    if (Status s = listener->open(); !s) return s.error();
    return std::unique_ptr<Listener>(std::move(listener));
  }
  auto listener = std::make_unique<TcpListener>(io, server);
  if (Status s = listener->open(address); !s) return s.error();
  return std::unique_ptr<Listener>(std::move(listener));
}

}  // namespace rnotify
