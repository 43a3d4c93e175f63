// Server: the heart of rnotifyd. One event loop (Asio) drains the watcher
// backend and all client connections; the SubscriptionRegistry routes each
// kernel event to the sessions that subscribed. The kernel is drained by one
// loop: every readable wake-up reads everything queued, then flushes each
// session that received events.
#pragma once

#include <asio.hpp>
#include <cstdint>
#include <list>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <tuple>
#include <unordered_map>
#include <vector>

#include "server/access_guard.h"
#include "server/auth_throttle.h"
#include "server/confined_tree.h"
#include "server/export_roots.h"
#include "server/origin_resolver.h"
#include "server/session.h"
#include "watch/watcher.h"

namespace rnotify {

struct ServerLimits {
  uint32_t maxWatchesPerClient = 8192;
  uint32_t maxFrame = proto::kDefaultMaxFrame;
  // A client this far behind: its events are dropped until it has read what
  // was queued, then its watches that lost some get IN_Q_OVERFLOW.
  size_t maxQueuedBytesPerClient = 64u << 20;
  int handshakeTimeoutSeconds = 10;
  uint32_t maxClients = 1024;    // connections (and sessions waiting for a comeback) at once
  int frameTimeoutSeconds = 30;  // a frame begun must be complete within this (slow senders)
  int idleTimeoutSeconds = 0;    // a client that sends nothing this long is dropped (0: never)
  // A client that promised keepalives (proto::kCapKeepalive) and sent
  // nothing this long is gone: its session is parked or closed, as for a
  // broken connection (0: never).
  int keepaliveTimeoutSeconds = 30;
  size_t maxUnreadReplies = 1u << 20;  // bytes of answers a client leaves unread before its requests wait
  // Resume (proto::kCapResume): events kept per session for a replay, and how
  // long the watches of a lost connection wait for their client.
  size_t journalRecords = 65536;
  size_t journalBytes = 16u << 20;
  int resumeGraceSeconds = 120;
  // What one user (or one unauthenticated address) can make the server hold
  // (issue 15): connections, sessions waiting for a comeback, journal bytes
  // of all sessions together, clients that hold no watch.
  uint32_t maxClientsPerUser = 64;
  uint32_t maxParkedPerUser = 64;  // past it, that user's oldest waiting session ends
  uint32_t maxParked = 256;        // past it, a lost connection is not kept (its client re-reads)
  size_t journalBytesTotal = 256u << 20;
  int idleUnwatchedTimeoutSeconds = 300;  // a client without any watch this long is dropped (0: never)
  // Snapshots: one is listed at a time per client, the others wait in a
  // queue of this length (more: Reply EBUSY); a listing enters at most this
  // many directory levels (each an open descriptor).
  uint32_t maxQueuedSnapshots = 16;
  uint32_t maxSnapshotDepth = 256;
  // Token authentication (Auth): after this many failures from one address
  // within a minute, its further attempts are refused for 1 s, 2 s, 4 s ...
  uint32_t authFailuresBeforeDelay = 5;
};

class Server final : public EventSink {
 public:
  static Result<std::unique_ptr<Server>> create(asio::io_context& io, ExportRoots exports, ServerLimits limits,
                                                WatcherKind kind);
  ~Server() override;

  // Starts a session on an accepted connection.
  void adopt(std::unique_ptr<Transport> transport);
  // Closes every session and stops watching; the loop then runs out of work.
  void shutdown();
  // Called when the last session closes (used by --stdio to exit).
  void onIdle(std::function<void()> callback) { onIdle_ = std::move(callback); }

  // For sessions.
  // *tree receives what is watched: its root's descriptor, through which the
  // session reaches it from then on, and its canonical server path.
  // attributed: the watch needs the acting pid of its events (origin flags).
  // as: the client's credentials when the kernel must check its permission
  // (the daemon runs as another user); nothing for clients that are the
  // daemon's own user. Watches made for another user are guarded: a change
  // of permissions or place above them makes their session re-check them.
  // exportPath: `path` is as an NFS or SMB client names it
  // (ExportRoots::mapExportPath); messages quote it as it came.
  Result<SubscriptionId> watch(Session& session, const std::string& path, uint32_t mask, bool recursive,
                               bool attributed, bool exportPath, std::unique_ptr<ConfinedTree>* tree,
                               const Credentials* as = nullptr);
  AccessGuard& guard() { return *guard_; }
  const ExportRoots& exports() const { return exports_; }
  void unwatch(SubscriptionId id);
  void sessionClosed(Session& session);
  void markDirty(Session& session) { dirty_.push_back(&session); }
  // Resume: whether a client can come back to this server (it listens, or
  // takes connections handed over by ssh agents), and the sessions by token.
  bool resumable() const { return resumable_; }
  void setResumable(bool resumable) { resumable_ = resumable; }
  // A session token belongs to the identity that made it (Session::owner()):
  // the same token from another identity names no session.
  Session* sessionByToken(const std::string& owner, std::pair<uint64_t, uint64_t> token) const {
    auto it = byToken_.find(TokenKey{owner, token.first, token.second});
    return it == byToken_.end() ? nullptr : it->second;
  }
  // Whether another identity than `owner` holds this token (for the log only).
  bool tokenHeldByAnother(const std::string& owner, std::pair<uint64_t, uint64_t> token) const;
  void registerToken(Session& session);
  // Per-user bounds. admitClient: false when `user` has maxClientsPerUser
  // connections already (the caller refuses this one); leaveClient undoes it.
  bool admitClient(const std::string& user);
  void leaveClient(const std::string& user);
  // A session whose connection broke asks to wait for its client: false when
  // maxParked sessions wait already; past maxParkedPerUser the user's oldest
  // waiting session ends. unpark: it waits no longer (closed, resumed).
  bool park(Session& session);
  void unpark(Session& session);
  size_t parkedCount() const { return parked_.size(); }
  JournalBudget& journalBudget() { return journalBudget_; }
  AuthThrottle& authThrottle() { return authThrottle_; }
  // Routes a subscription's events to another session (a resumed one).
  void retarget(SubscriptionId id, Session& session) {
    if (auto it = subscriptions_.find(id); it != subscriptions_.end()) it->second = &session;
  }
  // Reads what the kernel has queued now (a Snapshot does, right after its
  // walk, so that every event from before the walk's end precedes its Reply).
  void drainKernel() {
    watcher_->drain();
    std::vector<Session*> dirty;
    dirty.swap(dirty_);
    for (Session* session : dirty) session->flush();
  }
  asio::io_context& io() { return io_; }
  size_t sessionCount() const { return sessions_.size(); }
  const ServerLimits& limits() const { return limits_; }
  uint64_t instanceId() const { return instanceId_; }
  const std::string& workingDirectory() const { return cwd_; }
  std::string_view backendName() const { return watcher_->name(); }
  std::string_view backendFor(SubscriptionId id) const { return watcher_->backendFor(id); }
  // Origin attribution: offered when this process may read other users'
  // /proc entries; possible for a watch whose backend reports pids.
  bool offersAttribution() const { return attribution_; }
  bool canAttribute(SubscriptionId id) const { return attribution_ && watcher_->reportsPids(id); }
  OriginResolver& origins() { return origins_; }

  void onEvent(SubscriptionId subscription, uint32_t mask, uint32_t cookie, std::string_view dir, std::string_view name,
               int pid) override;

 private:
  Server(asio::io_context& io, ExportRoots exports, ServerLimits limits);
  void waitForKernel();
  // The guard saw a change above (or of) a watch's root.
  void onGuardEvent(SubscriptionId id, uint32_t mask);
  void onKernelRead() override {
    eventDirectory_ = 0;  // a backend that does not say gets the path check alone
    guard_->poll();
  }
  void onEventDirectory(uint64_t ino) override { eventDirectory_ = ino; }

  using TokenKey = std::tuple<std::string, uint64_t, uint64_t>;  // owner, token

  asio::io_context& io_;
  ExportRoots exports_;
  ServerLimits limits_;
  // Before sessions_: the sessions' journals give their bytes back to it.
  JournalBudget journalBudget_;
  AuthThrottle authThrottle_;
  std::unordered_map<std::string, uint32_t> clientsByUser_;
  std::list<Session*> parked_;  // oldest first
  std::unique_ptr<Watcher> watcher_;
  uint64_t eventDirectory_ = 0;  // see onEventDirectory
  OriginResolver origins_;
  bool attribution_ = OriginResolver::privileged();
  std::unique_ptr<asio::posix::stream_descriptor> kernelFd_;
  std::unique_ptr<AccessGuard> guard_;
  std::unordered_map<SubscriptionId, Session*> subscriptions_;  // the SubscriptionRegistry
  std::set<std::shared_ptr<Session>> sessions_;
  std::vector<Session*> dirty_;
  std::map<TokenKey, Session*> byToken_;
  bool resumable_ = false;
  std::function<void()> onIdle_;
  uint64_t instanceId_ = 0;
  uint64_t nextSessionId_ = 1;
  std::string cwd_;
  bool shuttingDown_ = false;
  int selfPid_ = 0;
};

}  // namespace rnotify
