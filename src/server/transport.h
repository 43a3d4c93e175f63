// Transport: the byte stream a Session talks over, whatever carries it (the
// ssh agent's stdin/stdout, a unix socket, a TCP socket, TLS). Sessions see
// only this, so adding a transport touches no protocol code. A transport also
// says who is at the other end, as far as it can tell (peer()).
#pragma once

#include <sys/types.h>

#include <asio.hpp>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "common/result.h"

namespace rnotify {

using IoHandler = std::function<void(std::error_code, size_t)>;

// Who is at the other end of a connection: a local user, and how the
// transport knows. uid and gid are the user's on this host; for kUnixSocket
// they are the connecting process's (SO_PEERCRED), for the others the user's
// passwd entry.
struct Peer {
  enum class Method {
    kProcessOwner,    // ssh stdio: ssh authenticated the user, rnotifyd runs as that user
    kUnixSocket,      // the kernel's SO_PEERCRED on a unix socket
    kTlsCertificate,  // a TLS client certificate from --tls-client-ca, mapped by --tls-user-from
    kToken,           // a bearer token from --token-dir, sent in proto::Auth over TLS
  };
  uid_t uid = 0;
  gid_t gid = 0;
  std::string user;  // the local user name; "uid N" for a unix peer without a passwd entry
  Method method = Method::kUnixSocket;
};
const char* methodName(Peer::Method method);  // "unix socket credentials", "TLS client certificate", ...

// The process at the other end of a connected unix socket (SO_PEERCRED).
std::optional<Peer> unixSocketPeer(int fd);
// The local user `name` (getpwnam); nothing if there is none.
std::optional<Peer> localUser(const std::string& name, Peer::Method method);

class Transport {
 public:
  virtual ~Transport() = default;
  virtual void asyncReadSome(asio::mutable_buffer buffer, IoHandler handler) = 0;
  virtual void asyncWrite(asio::const_buffer buffer, IoHandler handler) = 0;
  virtual void close() = 0;
  virtual std::string describe() const = 0;  // for logs: "stdio", "unix:/run/x.sock uid 1000", "tcp 127.0.0.1:4242"

  // The authenticated user, or nothing: plain TCP (no identity), or a TLS
  // connection that has yet to send its token (awaitsToken()).
  virtual std::optional<Peer> peer() const { return std::nullopt; }
  // True while the client must still authenticate with proto::Auth (a TLS
  // listener with --token-dir, and the client presented no certificate).
  virtual bool awaitsToken() const { return false; }
  // Checks an Auth's user and token; on success peer() is that user from
  // then on and awaitsToken() is false. The error (EACCES) is the same for
  // an unknown user and a wrong token; it is for the log, not the client.
  virtual Status authenticate(std::string_view user, std::string_view token) {
    (void)user;
    (void)token;
    return Error{EOPNOTSUPP, "this connection is not authenticated by token"};
  }
};

// Any Asio stream socket (local or TCP). A unix socket's peer is the
// connecting process's user (SO_PEERCRED, read once at accept); plain TCP
// has none.
template <typename Socket>
class SocketTransport final : public Transport {
 public:
  SocketTransport(Socket socket, std::string description)
      : socket_(std::move(socket)), description_(std::move(description)) {
    if constexpr (std::is_same_v<typename Socket::protocol_type, asio::local::stream_protocol>) {
      peer_ = unixSocketPeer(socket_.native_handle());
    }
  }
  void asyncReadSome(asio::mutable_buffer buffer, IoHandler handler) override {
    socket_.async_read_some(buffer, std::move(handler));
  }
  void asyncWrite(asio::const_buffer buffer, IoHandler handler) override {
    asio::async_write(socket_, buffer, std::move(handler));
  }
  void close() override {
    std::error_code ignored;
    socket_.shutdown(Socket::shutdown_both, ignored);
    socket_.close(ignored);
  }
  std::string describe() const override { return description_; }
  std::optional<Peer> peer() const override { return peer_; }

 private:
  Socket socket_;
  std::string description_;
  std::optional<Peer> peer_;
};

// stdin/stdout of the agent started by ssh (like sftp-server).
class StdioTransport final : public Transport {
 public:
  explicit StdioTransport(asio::io_context& io);
  void asyncReadSome(asio::mutable_buffer buffer, IoHandler handler) override;
  void asyncWrite(asio::const_buffer buffer, IoHandler handler) override;
  void close() override;
  std::string describe() const override { return "stdio"; }
  // ssh authenticated the user and started this process as that user.
  std::optional<Peer> peer() const override { return peer_; }

 private:
  asio::posix::stream_descriptor in_;
  asio::posix::stream_descriptor out_;
  std::optional<Peer> peer_;
};

}  // namespace rnotify
