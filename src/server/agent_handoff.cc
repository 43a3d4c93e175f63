#include "server/agent_handoff.h"

#include <fcntl.h>
#include <poll.h>
#include <sys/file.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <climits>
#include <cstdlib>
#include <cstring>

#include "common/log.h"
#include "common/unix_address.h"
#include "server/server.h"
#include "server/transport.h"

namespace rnotify {
namespace {

using Clock = std::chrono::steady_clock;

Result<UniqueFd> connectTo(const std::string& path) {
  auto addr = unixAddress(path);
  if (!addr) return addr.error();
  UniqueFd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (!fd) return lastError("socket");
  if (::connect(fd.get(), reinterpret_cast<const sockaddr*>(&*addr), sizeof *addr) != 0) {
    return Error::fromErrno(errno, "cannot connect to " + path);
  }
  return fd;
}

// Starts the daemon detached from this agent (its own session, reparented),
// with /dev/null as its standard streams: it must not hold ssh's pipes.
Status spawnDaemon(const std::vector<std::string>& argv) {
  std::vector<char*> args;
  args.reserve(argv.size() + 1);
  for (const std::string& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  pid_t child = ::fork();
  if (child < 0) return lastError("fork");
  if (child == 0) {
    ::setsid();
    if (::fork() != 0) ::_exit(0);
    int null = ::open("/dev/null", O_RDWR);
    if (null >= 0) {
      ::dup2(null, STDIN_FILENO);
      ::dup2(null, STDOUT_FILENO);
      ::dup2(null, STDERR_FILENO);
      if (null > STDERR_FILENO) ::close(null);
    }
    ::execv(args[0], args.data());
    ::_exit(127);
  }
  int status = 0;
  while (::waitpid(child, &status, 0) < 0 && errno == EINTR) {
  }
  return {};
}

std::string describePeer(int fd) {
  struct ucred cred {};
  socklen_t len = sizeof cred;
  if (::getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) != 0) return "ssh agent";
  return "ssh agent pid " + std::to_string(cred.pid) + " uid " + std::to_string(cred.uid);
}

// The ssh agent's stdin and stdout, handed over; the agent's control socket
// tells when the agent is gone (killed): that ends the connection as ssh
// breaking would. Closing the transport releases the agent, which exits.
class HandedOverTransport final : public Transport {
 public:
  HandedOverTransport(asio::io_context& io, int in, int out, asio::local::stream_protocol::socket control,
                      std::string description)
      : state_(std::make_shared<State>(io, in, out, std::move(control))), description_(std::move(description)) {
    std::weak_ptr<State> weak = state_;
    state_->control.async_wait(asio::socket_base::wait_read, [weak](std::error_code ec) {
      if (ec) return;
      if (auto state = weak.lock()) state->close();  // the agent never writes: readable means it is gone
    });
  }
  ~HandedOverTransport() override { state_->close(); }
  void asyncReadSome(asio::mutable_buffer buffer, IoHandler handler) override {
    state_->in.async_read_some(buffer, std::move(handler));
  }
  void asyncWrite(asio::const_buffer buffer, IoHandler handler) override {
    asio::async_write(state_->out, buffer, std::move(handler));
  }
  void close() override { state_->close(); }
  std::string describe() const override { return description_; }
  // The agent ssh started, checked to be this daemon's own user at accept.
  std::optional<Peer> peer() const override { return peer_; }
  void setPeer(std::optional<Peer> peer) { peer_ = std::move(peer); }

 private:
  std::optional<Peer> peer_;
  struct State {
    State(asio::io_context& io, int inFd, int outFd, asio::local::stream_protocol::socket c)
        : in(io, inFd), out(io, outFd), control(std::move(c)) {}
    void close() {
      std::error_code ignored;
      in.close(ignored);
      out.close(ignored);
      control.close(ignored);
    }
    asio::posix::stream_descriptor in;
    asio::posix::stream_descriptor out;
    asio::local::stream_protocol::socket control;
  };
  std::shared_ptr<State> state_;
  std::string description_;
};

}  // namespace

Result<std::string> agentRuntimeDir() {
  std::string dir;
  if (const char* env = std::getenv("RNOTIFY_RUNTIME_DIR"); env != nullptr && *env != '\0') {
    dir = env;
  } else if (const char* xdg = std::getenv("XDG_RUNTIME_DIR"); xdg != nullptr && *xdg == '/') {
    dir = std::string(xdg) + "/rnotify";
  } else {
    dir = "/tmp/rnotify-" + std::to_string(::getuid());
  }
  if (::mkdir(dir.c_str(), 0700) != 0 && errno != EEXIST) {
    return Error::fromErrno(errno, "cannot create the runtime directory '" + dir + "'");
  }
  struct stat st;
  if (::lstat(dir.c_str(), &st) != 0) return Error::fromErrno(errno, "cannot read '" + dir + "'");
  if (!S_ISDIR(st.st_mode) || st.st_uid != ::getuid() || (st.st_mode & 077) != 0) {
    return Error{EACCES, "the runtime directory '" + dir +
                             "' is not a private directory of this user (it must be a directory, owned by uid " +
                             std::to_string(::getuid()) + ", mode 0700)"};
  }
  return dir;
}

std::string agentSocketPath(const std::string& dir, const std::vector<std::string>& options) {
  // FNV-1a over the program's identity and its options.
  char exe[PATH_MAX] = "";
  ssize_t n = ::readlink("/proc/self/exe", exe, sizeof exe - 1);
  std::string key = std::string(exe, n > 0 ? static_cast<size_t>(n) : 0) + '\0' + RNOTIFY_VERSION;
  for (const std::string& o : options) key += '\0' + o;
  uint64_t hash = 1469598103934665603ull;
  for (unsigned char c : key) hash = (hash ^ c) * 1099511628211ull;
  char name[40];
  std::snprintf(name, sizeof name, "/agent-%016llx.sock", static_cast<unsigned long long>(hash));
  return dir + name;
}

Result<int> handOffToDaemon(const std::string& socketPath, const std::vector<std::string>& daemonArgv) {
  auto daemon = connectTo(socketPath);
  if (!daemon) {
    if (Status s = spawnDaemon(daemonArgv); !s) return s.error();
    auto deadline = Clock::now() + std::chrono::seconds(5);
    while (!daemon && Clock::now() < deadline) {
      struct pollfd none {};
      ::poll(&none, 0, 10);  // the daemon is starting
      daemon = connectTo(socketPath);
    }
    if (!daemon) return daemon.error();
  }
  // One byte, with the two descriptors attached.
  char byte = 'A';
  iovec iov{&byte, 1};
  alignas(cmsghdr) char control[CMSG_SPACE(2 * sizeof(int))] = {};
  msghdr msg{};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  msg.msg_control = control;
  msg.msg_controllen = sizeof control;
  cmsghdr* cm = CMSG_FIRSTHDR(&msg);
  cm->cmsg_level = SOL_SOCKET;
  cm->cmsg_type = SCM_RIGHTS;
  cm->cmsg_len = CMSG_LEN(2 * sizeof(int));
  const int fds[2] = {STDIN_FILENO, STDOUT_FILENO};
  std::memcpy(CMSG_DATA(cm), fds, sizeof fds);
  ssize_t sent;
  do {
    sent = ::sendmsg(daemon->get(), &msg, MSG_NOSIGNAL);
  } while (sent < 0 && errno == EINTR);
  if (sent != 1) return lastError("handing the connection to the daemon");
  // From here on only the daemon holds ssh's pipes: when it is done with
  // them (or dies), ssh sees the end of the stream.
  int null = ::open("/dev/null", O_RDWR | O_CLOEXEC);
  ::dup2(null, STDIN_FILENO);
  ::dup2(null, STDOUT_FILENO);
  ::close(null);
  log::debug("handed the connection to the daemon at {}", socketPath);
  char sink[64];
  for (;;) {
    ssize_t n = ::read(daemon->get(), sink, sizeof sink);
    if (n > 0 || (n < 0 && errno == EINTR)) continue;
    return 0;
  }
}

AgentAcceptor::AgentAcceptor(asio::io_context& io, Server& server, std::string path)
    : acceptor_(io), server_(server), path_(std::move(path)), backoff_(io, path_) {}

AgentAcceptor::~AgentAcceptor() {
  stop();
  // Removing by path is safe here, unlike for --listen sockets: the lock is
  // still held (lock_ closes after this), so no other daemon can have bound
  // the path since, and the directory is this user's alone.
  ::unlink(path_.c_str());
}

void AgentAcceptor::stop() {
  backoff_.cancel();
  std::error_code ignored;
  acceptor_.close(ignored);
}

Result<std::unique_ptr<AgentAcceptor>> AgentAcceptor::start(asio::io_context& io, Server& server,
                                                            const std::string& socketPath) {
  std::unique_ptr<AgentAcceptor> a(new AgentAcceptor(io, server, socketPath));
  std::string lockPath = socketPath + ".lock";
  a->lock_.reset(::open(lockPath.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600));
  if (!a->lock_) return lastError("cannot open " + lockPath);
  if (::flock(a->lock_.get(), LOCK_EX | LOCK_NB) != 0) {
    a->path_.clear();  // not ours to remove
    return Error{EEXIST, "another rnotifyd already serves " + socketPath};
  }
  ::unlink(socketPath.c_str());  // left by a daemon that died
  std::error_code ec;
  asio::local::stream_protocol::endpoint endpoint(socketPath);
  a->acceptor_.open(endpoint.protocol(), ec);
  if (!ec) a->acceptor_.bind(endpoint, ec);
  if (!ec) a->acceptor_.listen(asio::socket_base::max_listen_connections, ec);
  if (ec) return Error{ec.value(), "cannot listen on " + socketPath + ": " + ec.message()};
  a->accept();
  return a;
}

void AgentAcceptor::accept() {
  acceptor_.async_accept([this](std::error_code ec, asio::local::stream_protocol::socket socket) {
    if (ec) {
      if (ec != asio::error::operation_aborted && acceptor_.is_open()) {
        backoff_.failed(ec, acceptor_.native_handle(), [this] { accept(); });
      }
      return;
    }
    backoff_.succeeded();
    ++accepted_;
    auto shared = std::make_shared<asio::local::stream_protocol::socket>(std::move(socket));
    shared->async_wait(asio::socket_base::wait_read, [this, shared](std::error_code waitError) {
      if (!waitError) receive(shared);
    });
    accept();
  });
}

void AgentAcceptor::receive(const std::shared_ptr<asio::local::stream_protocol::socket>& socket) {
  const int fd = socket->native_handle();
  struct ucred cred {};
  socklen_t len = sizeof cred;
  if (::getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) != 0 || cred.uid != ::getuid()) {
    log::warn("{}: refused an agent of another user (uid {})", path_, cred.uid);
    return;
  }
  char byte = 0;
  iovec iov{&byte, 1};
  alignas(cmsghdr) char control[CMSG_SPACE(2 * sizeof(int))] = {};
  msghdr msg{};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  msg.msg_control = control;
  msg.msg_controllen = sizeof control;
  ssize_t n = ::recvmsg(fd, &msg, MSG_CMSG_CLOEXEC | MSG_DONTWAIT);
  int fds[2] = {-1, -1};
  int got = 0;
  for (cmsghdr* cm = CMSG_FIRSTHDR(&msg); n == 1 && cm != nullptr; cm = CMSG_NXTHDR(&msg, cm)) {
    if (cm->cmsg_level == SOL_SOCKET && cm->cmsg_type == SCM_RIGHTS) {
      got = static_cast<int>((cm->cmsg_len - CMSG_LEN(0)) / sizeof(int));
      std::memcpy(fds, CMSG_DATA(cm), std::min(got, 2) * sizeof(int));
    }
  }
  if (n != 1 || got != 2 || (msg.msg_flags & MSG_CTRUNC)) {
    for (int i = 0; i < std::min(got, 2); ++i) ::close(fds[i]);
    log::warn("{}: an agent connected but handed over no connection", path_);
    return;
  }
  std::string who = describePeer(fd);
  std::optional<Peer> peer = unixSocketPeer(fd);
  if (peer) peer->method = Peer::Method::kProcessOwner;
  auto transport = std::make_unique<HandedOverTransport>(server_.io(), fds[0], fds[1], std::move(*socket), who);
  transport->setPeer(std::move(peer));
  server_.adopt(std::move(transport));
}

}  // namespace rnotify
