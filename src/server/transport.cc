#include "server/transport.h"

#include <pwd.h>
#include <sys/socket.h>
#include <unistd.h>

namespace rnotify {
namespace {

std::string userNameOf(uid_t uid) {
  passwd pw{}, *found = nullptr;
  char buffer[4096];
  if (::getpwuid_r(uid, &pw, buffer, sizeof buffer, &found) == 0 && found != nullptr) return pw.pw_name;
  return "uid " + std::to_string(uid);
}

}  // namespace

const char* methodName(Peer::Method method) {
  switch (method) {
    case Peer::Method::kProcessOwner:
      return "ssh (the agent runs as the user)";
    case Peer::Method::kUnixSocket:
      return "unix socket credentials";
    case Peer::Method::kTlsCertificate:
      return "TLS client certificate";
    case Peer::Method::kToken:
      return "token";
  }
  return "unknown";
}

std::optional<Peer> unixSocketPeer(int fd) {
  struct ucred cred {};
  socklen_t length = sizeof cred;
  if (::getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &length) != 0) return std::nullopt;
  Peer peer;
  peer.uid = cred.uid;
  peer.gid = cred.gid;
  peer.method = Peer::Method::kUnixSocket;
  peer.user = userNameOf(cred.uid);
  return peer;
}

std::optional<Peer> localUser(const std::string& name, Peer::Method method) {
  passwd pw{}, *found = nullptr;
  char buffer[4096];
  if (name.empty() || ::getpwnam_r(name.c_str(), &pw, buffer, sizeof buffer, &found) != 0 || found == nullptr) {
    return std::nullopt;
  }
  return Peer{pw.pw_uid, pw.pw_gid, pw.pw_name, method};
}

// Duplicates so that closing the session never closes fd 0/1 themselves:
// a stray later write to fd 1 must not land in some other file.
StdioTransport::StdioTransport(asio::io_context& io) : in_(io, ::dup(STDIN_FILENO)), out_(io, ::dup(STDOUT_FILENO)) {
  peer_ = Peer{::getuid(), ::getgid(), userNameOf(::getuid()), Peer::Method::kProcessOwner};
}

void StdioTransport::asyncReadSome(asio::mutable_buffer buffer, IoHandler handler) {
  in_.async_read_some(buffer, std::move(handler));
}

void StdioTransport::asyncWrite(asio::const_buffer buffer, IoHandler handler) {
  asio::async_write(out_, buffer, std::move(handler));
}

void StdioTransport::close() {
  std::error_code ignored;
  in_.close(ignored);
  out_.close(ignored);
}

}  // namespace rnotify
