// Connection: opening one. An agent spawned over ssh, or a unix, TCP or TLS
// socket connected without blocking; then the TLS handshake, Hello/Welcome
// and the token, one step per advance() as the descriptor becomes ready, so
// that a caller's event loop drives it (Client's reconnections); finish()
// drives the same steps to the end for callers that may wait.
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pwd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>

#include "common/deadline.h"
#include "common/host_port.h"
#include "common/log.h"
#include "common/unix_address.h"
#include "transport/connection.h"

namespace rnotify {
namespace {

using Clock = std::chrono::steady_clock;

Result<std::string> readTokenFile(const std::string& path) {
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd) return Error::fromErrno(errno, "cannot read token_file " + path);
  struct stat st;
  if (::fstat(fd.get(), &st) != 0) return lastError("stat token_file " + path);
  if (st.st_mode & (S_IRWXG | S_IRWXO)) {
    return Error{EACCES, "token_file " + path + " is accessible to other users, who could use the token; chmod 600 " +
                             path + " (and consider the token leaked)"};
  }
  std::string token(proto::kMaxToken + 3, '\0');
  ssize_t n = ::read(fd.get(), token.data(), token.size());
  if (n < 0) return lastError("read token_file " + path);
  token.resize(static_cast<size_t>(n));
  while (!token.empty() && (token.back() == '\n' || token.back() == '\r' || token.back() == ' ')) token.pop_back();
  if (token.empty() || token.size() > proto::kMaxToken || token.find('\0') != std::string::npos) {
    return Error{EINVAL, "token_file " + path + " must hold one token of 1 to " + std::to_string(proto::kMaxToken) +
                             " bytes (no NUL)"};
  }
  return token;
}

std::string localUserName() {
  passwd pw{}, *found = nullptr;
  char buffer[4096];
  if (::getpwuid_r(::getuid(), &pw, buffer, sizeof buffer, &found) == 0 && found != nullptr) return pw.pw_name;
  return std::to_string(::getuid());
}

// The addresses an endpoint names, to connect to in turn. Name resolution
// (getaddrinfo) has no deadline: a numeric address needs none.
Result<std::vector<std::pair<sockaddr_storage, socklen_t>>> resolveEndpoint(const std::string& endpoint) {
  std::vector<std::pair<sockaddr_storage, socklen_t>> addresses;
  if (endpoint.rfind("unix:", 0) == 0) {
    auto addr = unixAddress(endpoint.substr(5));
    if (!addr) return Error{addr.error().code, "bad endpoint '" + endpoint + "': " + addr.error().message};
    sockaddr_storage storage{};
    std::memcpy(&storage, &*addr, sizeof *addr);
    addresses.emplace_back(storage, static_cast<socklen_t>(sizeof *addr));
    return addresses;
  }
  if (endpoint.rfind("tcp:", 0) == 0 || endpoint.rfind("tls:", 0) == 0) {
    std::string host;
    int port = -1;
    if (!splitHostPort(std::string_view(endpoint).substr(4), &host, &port) || port < 0) {
      return Error{EINVAL, "bad endpoint '" + endpoint + "'"};
    }
    addrinfo hints{};
    hints.ai_socktype = SOCK_STREAM;
    addrinfo* found = nullptr;
    if (int rc = ::getaddrinfo(host.c_str(), std::to_string(port).c_str(), &hints, &found); rc != 0) {
      return Error{EHOSTUNREACH, "cannot resolve " + endpoint + ": " + gai_strerror(rc)};
    }
    std::unique_ptr<addrinfo, decltype(&::freeaddrinfo)> guard(found, &::freeaddrinfo);
    for (addrinfo* a = found; a != nullptr; a = a->ai_next) {
      if (a->ai_addrlen > sizeof(sockaddr_storage)) continue;
      sockaddr_storage storage{};
      std::memcpy(&storage, a->ai_addr, a->ai_addrlen);
      addresses.emplace_back(storage, a->ai_addrlen);
    }
    if (addresses.empty()) return Error{EHOSTUNREACH, "cannot resolve " + endpoint + ": no address"};
    return addresses;
  }
  return Error{EINVAL, "bad endpoint '" + endpoint + "': use unix:PATH, tls:HOST:PORT or tcp:HOST:PORT"};
}

}  // namespace

Result<std::unique_ptr<Connection>> Connection::startAgent(const std::vector<std::string>& argv,
                                                           const std::string& destination,
                                                           const std::string& agentCommand, bool keepalive) {
  auto agent = AgentProcess::spawn(argv);
  if (!agent) return agent.error();
  std::unique_ptr<Connection> c(new Connection());
  c->keepalive_ = keepalive;
  c->agent_ = std::move(*agent);
  // Writes never wait: frames ssh's pipe has no room for wait in the outbox.
  ::fcntl(c->agent_->input(), F_SETFL, ::fcntl(c->agent_->input(), F_GETFL) | O_NONBLOCK);
  c->destination_ = destination;
  c->agentCommand_ = agentCommand;
  c->description_ = "rnotifyd over ssh " + destination;
  c->sendHello();
  return c;
}

Result<std::unique_ptr<Connection>> Connection::startSocket(const std::string& endpoint, const TlsSettings& tls,
                                                            bool keepalive) {
  const bool secure = endpoint.rfind("tls:", 0) == 0;
  if (secure && tls.ca.empty() && tls.fingerprint.empty()) {
    return Error{EINVAL, "cannot verify rnotifyd at " + endpoint +
                             ": its [[server]] entry needs tls_ca or tls_fingerprint in config.toml"};
  }
  std::unique_ptr<Connection> c(new Connection());
  c->keepalive_ = keepalive;
  if (secure && !tls.tokenFile.empty()) {
    auto token = readTokenFile(tls.tokenFile);
    if (!token) return token.error();
    c->token_ = std::move(*token);
    c->tokenUser_ = tls.tokenUser.empty() ? localUserName() : tls.tokenUser;
  }
  auto addresses = resolveEndpoint(endpoint);
  if (!addresses) return addresses.error();
  c->addresses_ = std::move(*addresses);
  std::reverse(c->addresses_.begin(), c->addresses_.end());  // taken from the back
  c->endpoint_ = endpoint;
  c->secure_ = secure;
  c->tlsSettings_ = tls;
  int port = -1;
  if (secure) splitHostPort(std::string_view(endpoint).substr(4), &c->tlsHost_, &port);  // resolved above: well-formed
  c->destination_ = endpoint;
  c->description_ = "rnotifyd at " + endpoint;
  c->connectNext();
  if (c->phase_ == Phase::kFailed) return c->failure_;
  return c;
}

void Connection::connectNext() {
  while (!addresses_.empty()) {
    auto [address, length] = addresses_.back();
    addresses_.pop_back();
    socket_.reset(::socket(address.ss_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
    if (!socket_) {
      connectErrno_ = errno;
      continue;
    }
    const int rc = ::connect(socket_.get(), reinterpret_cast<const sockaddr*>(&address), length);
    if (rc == 0) {
      afterConnect();
      return;
    }
    if (errno == EINPROGRESS || errno == EINTR) {  // under way (EINTR: finishes in the background)
      phase_ = Phase::kConnecting;
      wantWrite_ = true;
      return;
    }
    // EAGAIN: a unix listener's queue is full (nothing was started).
    connectErrno_ = errno;
  }
  socket_.reset();
  phase_ = Phase::kFailed;
  fail(connectErrno_ == EAGAIN
           ? Error{EAGAIN, "rnotifyd at " + endpoint_ + " is busy (its queue of new connections is full)"}
           : Error::fromErrno(connectErrno_, "cannot connect to rnotifyd at " + endpoint_));
}

void Connection::afterConnect() {
  int one = 1;
  ::setsockopt(socket_.get(), IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);  // fails harmlessly on unix sockets
  if (secure_) {
    auto channel = TlsChannel::begin(socket_.get(), tlsHost_, tlsSettings_, description_);
    if (!channel) {
      fail(channel.error());
      return;
    }
    tls_ = std::move(*channel);
    phase_ = Phase::kTls;
    return;
  }
  sendHello();
}

void Connection::sendHello() {
  proto::Hello hello;
  char host[256] = "";
  ::gethostname(host, sizeof host - 1);
  hello.clientName = std::string("rnotify " RNOTIFY_VERSION " on ") + host;
  hello.capabilities = proto::kCapOrigin | proto::kCapStat | proto::kCapResync | proto::kCapResume |
                       proto::kCapExports | proto::kCapSmbPeer | (keepalive_ ? uint64_t{proto::kCapKeepalive} : 0) |
                       (token_.empty() ? 0 : uint64_t{proto::kCapAuth});
  phase_ = Phase::kHello;
  wantWrite_ = false;
  (void)send(hello);  // a failure marks the connection dead
}

Connection::Phase Connection::advance() {
  if (!alive_) phase_ = Phase::kFailed;
  if (phase_ == Phase::kConnecting) {
    struct pollfd p = {socket_.get(), POLLOUT, 0};
    if (::poll(&p, 1, 0) <= 0) return phase_;  // not yet
    int error = 0;
    socklen_t size = sizeof error;
    if (::getsockopt(socket_.get(), SOL_SOCKET, SO_ERROR, &error, &size) != 0) error = errno;
    if (error != 0) {
      connectErrno_ = error;
      connectNext();
    } else {
      afterConnect();
    }
  }
  if (phase_ == Phase::kTls) {
    short want = 0;
    auto done = tls_->step(&want);
    if (!done) {
      fail(done.error());
    } else if (*done) {
      sendHello();
    } else {
      wantWrite_ = want == POLLOUT;
    }
  }
  if (phase_ == Phase::kHello) {
    pump();
    if (alive_ && welcomed_) {
      log::debug("connected: {} ({}, protocol v{})", description_, welcome_.serverName, welcome_.version);
      if (!token_.empty() && (welcome_.capabilities & proto::kCapAuth)) {
        // A server that knows this client by its certificate does not ask.
        proto::Message auth = proto::Auth{0, tokenUser_, token_};
        authRequest_ = assignRequestId(auth);
        phase_ = Phase::kAuth;
        (void)send(auth);
      } else {
        phase_ = Phase::kReady;
      }
    }
  }
  if (phase_ == Phase::kAuth) {
    pump();
    if (auto it = replies_.find(authRequest_); it != replies_.end()) {
      proto::Reply reply = std::move(it->second);
      replies_.erase(it);
      if (reply.status != 0) {
        // The refusal names the reason better than the Fatal that follows it
        // (often in the same read).
        alive_ = false;
        failure_ =
            Error{reply.status, description_ + " refused the token of user '" + tokenUser_ + "': " + reply.message +
                                    " (check token_file and token_user, and the server's --token-dir)"};
      } else if (alive_) {
        phase_ = Phase::kReady;
      }
    }
  }
  if (!alive_) phase_ = Phase::kFailed;
  return phase_;
}

Status Connection::finish(int timeoutMs) {
  const auto deadline = Clock::now() + std::chrono::milliseconds(timeoutMs);
  for (;;) {
    const Phase phase = advance();
    if (phase == Phase::kReady) return {};
    if (phase == Phase::kFailed) return failure_;
    // Hello or Auth not all written yet (never seen: they are small and
    // the pipe or socket is new): pollWith waits for room too.
    const short events = static_cast<short>(wantWrite_ ? POLLOUT : POLLIN);
    if (pollWith(pollFd(), events, remainingMs(deadline)) == 0) return timeoutError(timeoutMs);
    if (!flush()) return failure_;
  }
}

Error Connection::timeoutError(int timeoutMs) const {
  switch (phase_) {
    case Phase::kConnecting:
      return Error{ETIMEDOUT, "cannot connect to rnotifyd at " + endpoint_ + ": no answer within " +
                                  std::to_string(timeoutMs) + " ms"};
    case Phase::kTls:
      return Error{ETIMEDOUT, "TLS handshake with " + description_ + " did not finish within " +
                                  std::to_string(timeoutMs / 1000) + " s; is it a tls: listener?"};
    case Phase::kAuth:
      return Error{ETIMEDOUT, description_ + " did not answer within " + std::to_string(timeoutMs / 1000) + " s"};
    default:
      return Error{ETIMEDOUT, "no answer from " + description_ + " within " + std::to_string(timeoutMs / 1000) +
                                  " s; check that the server is reachable"};
  }
}

Result<std::unique_ptr<Connection>> Connection::overAgent(const std::vector<std::string>& argv,
                                                          const std::string& destination,
                                                          const std::string& agentCommand, int timeoutMs,
                                                          bool keepalive) {
  auto c = startAgent(argv, destination, agentCommand, keepalive);
  if (!c) return c.error();
  if (Status s = (*c)->finish(timeoutMs); !s) return s.error();
  return c;
}

Result<std::unique_ptr<Connection>> Connection::overSocket(const std::string& endpoint, int timeoutMs) {
  return overSocket(endpoint, TlsSettings{}, timeoutMs);
}

Result<std::unique_ptr<Connection>> Connection::overSocket(const std::string& endpoint, const TlsSettings& tls,
                                                           int timeoutMs, bool keepalive) {
  // One budget for the connect, the TLS and the protocol handshakes. A unix
  // listener whose queue is full is tried again until then.
  const auto deadline = Clock::now() + std::chrono::milliseconds(timeoutMs);
  for (;;) {
    auto c = startSocket(endpoint, tls, keepalive);
    if (!c && c.error().code == EAGAIN && remainingMs(deadline) > 0) {
      ::poll(nullptr, 0, std::min(10, remainingMs(deadline)));
      continue;
    }
    if (!c) return c.error();
    if (Status s = (*c)->finish(remainingMs(deadline)); !s) {
      return (*c)->phase() == Phase::kFailed || s.error().code != ETIMEDOUT ? s.error() : (*c)->timeoutError(timeoutMs);
    }
    return c;
  }
}

}  // namespace rnotify
