#include "server/server.h"

#include <malloc.h>
#include <sys/stat.h>
#include <unistd.h>

#include <climits>
#include <random>

#include "common/log.h"

namespace rnotify {

Server::Server(asio::io_context& io, ExportRoots exports, ServerLimits limits)
    : io_(io),
      exports_(std::move(exports)),
      limits_(limits),
      journalBudget_{limits.journalBytesTotal, 0},
      authThrottle_(limits.authFailuresBeforeDelay, std::chrono::seconds(60), 4096) {
  std::random_device random;
  instanceId_ = (uint64_t{random()} << 32) | random();
  char cwd[PATH_MAX];
  cwd_ = ::getcwd(cwd, sizeof cwd) ? cwd : "/";
  selfPid_ = ::getpid();
}

Result<std::unique_ptr<Server>> Server::create(asio::io_context& io, ExportRoots exports, ServerLimits limits,
                                               WatcherKind kind) {
  std::unique_ptr<Server> server(new Server(io, std::move(exports), limits));
  auto watcher = makeWatcher(kind, *server);
  if (!watcher) return watcher.error();
  server->watcher_ = std::move(*watcher);
  server->kernelFd_ = std::make_unique<asio::posix::stream_descriptor>(io, server->watcher_->fd());
  auto guard =
      AccessGuard::create(io, [s = server.get()](SubscriptionId id, uint32_t mask) { s->onGuardEvent(id, mask); });
  if (!guard) return guard.error();
  server->guard_ = std::move(*guard);
  server->waitForKernel();
  return server;
}

Server::~Server() {
  // The watcher owns its descriptor; Asio must not close it a second time.
  if (kernelFd_) kernelFd_->release();
}

void Server::waitForKernel() {
  kernelFd_->async_wait(asio::posix::stream_descriptor::wait_read, [this](std::error_code ec) {
    if (ec || shuttingDown_) return;
    watcher_->drain();
    for (Session* session : dirty_) session->flush();
    dirty_.clear();
    waitForKernel();
  });
}

void Server::adopt(std::unique_ptr<Transport> transport) {
  if (shuttingDown_) {
    transport->close();
    return;
  }
  auto session = std::make_shared<Session>(*this, std::move(transport), nextSessionId_++);
  sessions_.insert(session);
  session->start();
  if (sessions_.size() > limits_.maxClients) {
    log::warn("{}: refused: {} clients already (--max-clients)", session->describe(), limits_.maxClients);
    session->close(EUSERS, "too many clients: this server takes " + std::to_string(limits_.maxClients) + " at once");
  }
}

void Server::shutdown() {
  if (shuttingDown_) return;
  shuttingDown_ = true;
  kernelFd_->cancel();
  guard_->stop();
  std::vector<std::shared_ptr<Session>> open(sessions_.begin(), sessions_.end());
  for (auto& session : open) session->close(ESHUTDOWN, "the server is shutting down");
}

Result<SubscriptionId> Server::watch(Session& session, const std::string& path, uint32_t mask, bool recursive,
                                     bool attributed, bool exportPath, std::unique_ptr<ConfinedTree>* tree,
                                     const Credentials* as) {
  auto resolved = exportPath ? exports_.resolveEntry(exports_.mapExportPath(path), cwd_, as, path)
                             : exports_.resolveEntry(path, cwd_, as);
  if (!resolved) return resolved.error();
  SubscribeOptions options;
  options.mask = mask;
  options.recursive = recursive;
  options.pids = attributed;  // the pid probe costs kernel work per event: only where it is used
  // The watcher reaches the entry through (its duplicate of) the descriptor
  // resolved as the client, not by looking the path up again.
  options.rootFd = resolved->fd.get();
  auto id = watcher_->subscribe(resolved->path, options);
  if (!id) return id.error();
  const size_t index = resolved->exportIndex;
  auto confined = std::make_unique<ConfinedTree>(resolved->fd, exports_.fd(index), exports_.mountFd(index),
                                                 exports_.roots()[index], resolved->path);
  if (as != nullptr && mustActAs(*as)) {
    if (Status guarded = guard_->guard(*id, *confined); !guarded) {
      watcher_->unsubscribe(*id);
      return Error{EACCES, "'" + path + "' moved or was replaced while it was being watched; try again"};
    }
  }
  subscriptions_[*id] = &session;
  *tree = std::move(confined);
  return id;
}

void Server::unwatch(SubscriptionId id) {
  guard_->release(id);
  if (subscriptions_.erase(id) != 0) watcher_->unsubscribe(id);
}

void Server::onGuardEvent(SubscriptionId id, uint32_t mask) {
  auto it = subscriptions_.find(id);
  if (it == subscriptions_.end()) {
    guard_->release(id);
    return;
  }
  // Inside a drain of the watcher: the watch is suspended at once and
  // re-checked after the drain (ending it unsubscribes).
  it->second->suspendForRecheck(id, mask);
}

void Server::sessionClosed(Session& session) {
  std::erase(dirty_, &session);
  unpark(session);
  if (session.attached()) {
    auto it = byToken_.find(TokenKey{session.owner(), session.token().first, session.token().second});
    if (it != byToken_.end() && it->second == &session) byToken_.erase(it);
  }
  // Destroy it once the current handler is done with it.
  asio::post(io_, [this, self = session.shared_from_this()] {
    sessions_.erase(self);
    // What a client made the daemon allocate (a journal, a flood's buffers)
    // goes back to the system, not only to malloc's free lists.
    ::malloc_trim(0);
    if (sessions_.empty() && onIdle_) onIdle_();
  });
}

void Server::registerToken(Session& session) {
  byToken_[TokenKey{session.owner(), session.token().first, session.token().second}] = &session;
}

bool Server::tokenHeldByAnother(const std::string& owner, std::pair<uint64_t, uint64_t> token) const {
  for (const auto& [key, session] : byToken_) {
    if (std::get<1>(key) == token.first && std::get<2>(key) == token.second && std::get<0>(key) != owner) return true;
  }
  return false;
}

bool Server::admitClient(const std::string& user) {
  uint32_t& count = clientsByUser_[user];
  if (count >= limits_.maxClientsPerUser) {
    if (count == 0) clientsByUser_.erase(user);
    return false;
  }
  ++count;
  return true;
}

void Server::leaveClient(const std::string& user) {
  auto it = clientsByUser_.find(user);
  if (it == clientsByUser_.end()) return;
  if (--it->second == 0) clientsByUser_.erase(it);
}

bool Server::park(Session& session) {
  if (parked_.size() >= limits_.maxParked) {
    // Not another user's waiting session: nobody can end those of others.
    log::warn("{}: not kept for a comeback: {} sessions wait already (--max-parked)", session.describe(),
              limits_.maxParked);
    return false;
  }
  size_t mine = 0;
  Session* oldest = nullptr;
  for (Session* s : parked_) {
    if (s->owner() != session.owner()) continue;
    if (oldest == nullptr) oldest = s;
    ++mine;
  }
  if (mine >= limits_.maxParkedPerUser && oldest != nullptr) {
    log::warn("{}: its user has {} sessions waiting for a comeback (--max-parked-per-user); the oldest ends",
              session.describe(), mine);
    parked_.remove(oldest);
    oldest->close();
  }
  if (limits_.maxParkedPerUser == 0) return false;
  parked_.push_back(&session);
  return true;
}

void Server::unpark(Session& session) { parked_.remove(&session); }

void Server::onEvent(SubscriptionId subscription, uint32_t mask, uint32_t cookie, std::string_view dir,
                     std::string_view name, int pid) {
  auto it = subscriptions_.find(subscription);
  if (it == subscriptions_.end()) return;
  // rnotifyd's own reads (a Snapshot's walk) are nobody's change.
  if (pid != 0 && pid == selfPid_) return;
  Session* session = it->second;
  // The backend forgets a subscription after reporting IN_IGNORED for it.
  if ((mask & IN_IGNORED) && dir.empty()) {
    subscriptions_.erase(it);
    guard_->release(subscription);
  }
  session->queueEvent(subscription, mask, cookie, dir, name, pid, eventDirectory_);
}

}  // namespace rnotify
