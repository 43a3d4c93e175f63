// The client core's connections to rnotifyd (client.h), once open
// (client_openings.cc opens them; client_jobs.cc makes the session and the
// watches on them without blocking): which connection serves a mount, the
// session and watch requests, the server's events, losses.
#include <sys/epoll.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <random>

#include "client/client.h"
#include "client/client_internal.h"
#include "common/log.h"
#include "mounts/mount_resolver.h"
#include "mounts/sshfs_target.h"

namespace rnotify {

using namespace client_detail;

void Client::ask(Connection& connection, proto::Message message, int timeoutMs, bool wait,
                 Connection::ReplyHandler then) {
  if (wait) {
    then(connection.request(std::move(message), timeoutMs));
  } else {
    connection.requestAsync(std::move(message), timeoutMs, std::move(then));
  }
}

Status Client::attachRemote(Watch& watch, Connection& connection, std::string* note) {
  RemoteAnswer answer;
  watchRemote(connection, watch, /*wait=*/true, [&answer](RemoteAnswer a) { answer = std::move(a); });
  *note = answer.note;
  return applyAnswer(watch, connection, answer);
}

Status Client::applyAnswer(Watch& watch, Connection& connection, RemoteAnswer& answer) {
  if (!answer.reply) return answer.reply.error();
  const proto::Reply& reply = *answer.reply;
  if (reply.status != 0) {
    return Error{reply.status,
                 "server path '" + watch.remotePath + "' on " + connection.description() + ": " + reply.message};
  }
  watch.remote = &connection;
  watch.remoteId = reply.watchId;
  watch.waitingForServer = false;
  ensureDedup();
  dedup_->setStrategy(watch.wd, answer.strategy);
  watch.strategy = answer.strategy;
  if (!watch.nfsMount.empty()) nfsActivity_.start(watch.wd, watch.nfsMount);
  watch.lastSeq = 0;
  watch.source = connection.description() + " + local inotify, " + Dedup::name(answer.strategy);
  byRemote_[{watch.remote, watch.remoteId}] = watch.wd;
  return {};
}

std::string Client::agentKey(const SshTarget& target) const {
  std::string key;
  for (const std::string& a : agentArgv(target, config_->agent)) key += a + '\x1f';
  return key;
}

Result<const SshTarget*> Client::sshTargetOf(const MountInfo& mount) {
  const std::string key = mountKey(mount);
  auto known = sshTargets_.find(key);
  if (known == sshTargets_.end()) {
    auto target = env_->sshTarget(mount);
    if (!target) return target.error();
    known = sshTargets_.emplace(key, std::move(*target)).first;
  }
  return &known->second;
}

Result<Connection*> Client::connectionFor(const ResolvedPath& resolved, std::string* remotePath, std::string* why,
                                          std::string* connectionKey, bool wait) {
  if (Status loaded = loadConfigOnce(); !loaded) return loaded.error();
  switch (resolved.kind) {
    case MountKind::kSshfs:
      return agentConnection(resolved, remotePath, connectionKey, wait);
    case MountKind::kNfs:
    case MountKind::kSmb:
      return configuredConnection(resolved, remotePath, why, connectionKey, wait);
    case MountKind::kOtherNetwork:
      *why = "server-side watching is not available for " + resolved.mount.fsType + " mounts";
      return nullptr;
    case MountKind::kLocal:
      break;
  }
  return nullptr;
}

Result<Connection*> Client::agentConnection(const ResolvedPath& resolved, std::string* remotePath,
                                            std::string* connectionKey, bool wait) {
  auto found = sshTargetOf(resolved.mount);
  if (!found) return found.error();
  const SshTarget& target = **found;
  const std::string mountKey = rnotify::mountKey(resolved.mount);
  *remotePath = serverPath(target, resolved.relative);
  const std::string key = agentKey(target);
  *connectionKey = key;
  const std::string underWay = "rnotifyd over ssh " + target.destination;
  if (auto retry = retries_.find(key); retry != retries_.end()) {
    if (!firstUnderWay(key)) {
      return Error{EAGAIN, retry->second.why.empty() ? "the server is not reachable" : retry->second.why};
    }
    if (!originKeys_.count(mountKey)) originKeys_[mountKey] = env_->originKey(target);
    return Error{EINPROGRESS, underWay};
  }
  Environment* env = env_.get();
  auto connection = connect(
      key,
      [env, argv = agentArgv(target, config_->agent), destination = target.destination, agent = config_->agent] {
        return env->startAgent(argv, destination, agent);
      },
      wait);
  if (!connection && connection.error().code != EINPROGRESS) {
    sshTargets_.erase(mountKey);  // remounted with other options? look again next time
    return connection;
  }
  if (!originKeys_.count(mountKey)) originKeys_[mountKey] = env_->originKey(target);
  if (!connection) return Error{EINPROGRESS, underWay};
  return connection;
}

Result<Connection*> Client::configuredConnection(const ResolvedPath& resolved, std::string* remotePath,
                                                 std::string* why, std::string* connectionKey, bool wait) {
  const ServerEntry* entry = findServer(*config_, resolved.mount);
  if (entry == nullptr) {
    *why = "no rnotifyd endpoint is configured for the " + resolved.mount.fsType + " mount of '" +
           resolved.mount.source + "' (add a [[server]] entry to ~/.config/rnotify/config.toml)";
    return nullptr;
  }
  *remotePath = serverPathFor(*entry, resolved.mount, resolved.relative);
  const std::string endpoint = entry->endpoint;
  *connectionKey = endpoint;
  if (auto retry = retries_.find(endpoint); retry != retries_.end()) {
    if (firstUnderWay(endpoint)) return Error{EINPROGRESS, "rnotifyd at " + endpoint};
    return Error{EAGAIN, retry->second.why.empty() ? "the server is not reachable" : retry->second.why};
  }
  Environment* env = env_.get();
  auto connection = connect(
      endpoint, [env, endpoint, tls = entry->tls] { return env->startSocket(endpoint, tls); }, wait);
  if (!connection && connection.error().code == EINPROGRESS) return Error{EINPROGRESS, "rnotifyd at " + endpoint};
  return connection;
}

Result<Connection*> Client::adopt(const std::string& key, std::unique_ptr<Connection> opened, bool wait) {
  Connection* connection = opened.get();
  // What was noted about it goes with it (a later connection may get its address).
  auto forget = [&] {
    resumed_.erase(connection);
    declared_.erase(connection);
    jobs_.erase(connection);
  };
  if (wait) {
    Status attached;
    attachSession(key, *connection, /*wait=*/true, [&attached](const Status& made) { attached = made; });
    if (!attached) {
      forget();
      return attached.error();
    }
  }
  connection->setEventsHandler([this](Connection& c, proto::Events& events) { onRemoteEvents(c, events); });
  epoll_event ev{};
  ev.events = EPOLLIN;
  ev.data.ptr = connection;
  if (::epoll_ctl(epoll_.get(), EPOLL_CTL_ADD, connection->readFd(), &ev) != 0) {
    forget();
    return lastError("epoll_ctl");
  }
  connections_.emplace(key, std::move(opened));
  armKeepalive();
  jobs_[connection].key = key;
  if (!wait) {
    // The session first; the watches after it (sessionMade).
    sessions_.insert(key);
    enqueue(*connection, Job{Job::Kind::kSession, 0});
  }
  return connection;
}

void Client::attachSession(const std::string& key, Connection& connection, bool wait,
                           std::function<void(Status)> then) {
  if (!(connection.welcome().capabilities & proto::kCapResume)) {
    then({});
    return;
  }
  Ticket& ticket = tickets_[key];
  if (ticket.token[0] == 0 && ticket.token[1] == 0) {
    std::random_device random;
    for (uint64_t& half : ticket.token) half = (uint64_t{random()} << 32) | random() | 1;
  }
  proto::Attach attach;
  attach.token[0] = ticket.token[0];
  attach.token[1] = ticket.token[1];
  if (ticket.instanceId != 0) {
    attach.instanceId = ticket.instanceId;
    for (const auto& [wd, watch] : watches_) {
      if (watch.waitingForServer && watch.connectionKey == key && watch.remoteId != 0) {
        attach.positions.push_back({watch.remoteId, watch.lastSeq});
      }
    }
    if (attach.positions.empty()) attach.instanceId = 0;
  }
  Connection* c = &connection;
  auto answered = [this, key, c, wait, attach, then = std::move(then)](Result<proto::Reply> reply) mutable {
    if (!reply) {
      then(reply.error());
      return;
    }
    Ticket& ticket = tickets_[key];
    ticket.instanceId = c->welcome().instanceId;
    if (reply->status == EEXIST) {
      // Another session holds this token (a second handle after a restart of
      // this one is impossible; be safe): start afresh with a new token.
      ticket = Ticket{};
      attachSession(key, *c, wait, std::move(then));
      return;
    }
    if (attach.instanceId != 0 && reply->status == 0) {
      std::set<uint32_t>& ids = resumed_[c];
      for (const proto::WatchPosition& p : attach.positions) {
        ids.insert(p.watchId);
        c->setReceived(p.watchId, p.seq);
      }
      log::info("{}: {}; what happened meanwhile is replayed", c->description(), reply->message);
    } else {
      if (attach.instanceId != 0) log::info("{}: cannot resume: {}", c->description(), reply->message);
      // A new session: the ids the server gave before mean nothing to it
      // (nor are they positions to resume later).
      for (auto& [wd, watch] : watches_) {
        if (watch.waitingForServer && watch.connectionKey == key) watch.remoteId = 0;
      }
      c->releaseDeferred();
    }
    then({});
  };
  if (wait) {
    answered(connection.attach(attach, timing_.connectTimeoutMs));
  } else {
    connection.attachAsync(attach, timing_.connectTimeoutMs, std::move(answered));
  }
}

void Client::declare(Connection& connection, const std::string& originKey, bool wait, std::function<void(bool)> then) {
  Declared& declared = declared_[&connection];
  for (const std::string& known : declared.origins) {
    if (known == originKey) {
      then(true);
      return;
    }
  }
  proto::Declare request;
  request.origins = declared.origins;
  request.origins.push_back(originKey);
  // Taken as declared from now on: a request made before the answer comes
  // lists it too, and the server reads them in order.
  declared.origins = request.origins;
  Connection* c = &connection;
  ask(connection, request, timing_.connectTimeoutMs, wait,
      [this, c, originKey, then = std::move(then)](Result<proto::Reply> reply) {
        if (!reply || reply->status != 0) {
          log::debug("{}: Declare refused: {}", c->description(), reply ? reply->message : reply.error().message);
          if (auto it = declared_.find(c); it != declared_.end()) {
            auto& origins = it->second.origins;
            origins.erase(std::remove(origins.begin(), origins.end(), originKey), origins.end());
          }
          then(false);
          return;
        }
        then(true);
      });
}

void Client::watchRemote(Connection& connection, const Watch& watch, bool wait, AnswerHandler then) {
  proto::Watch request;
  request.flags = watch.recursive ? uint32_t{proto::kWatchRecursive} : 0u;
  request.mask = watch.mask & IN_ALL_EVENTS;
  request.path = watch.remotePath;
  if (watch.exportPath && (connection.welcome().capabilities & proto::kCapExports)) {
    request.flags |= proto::kWatchExportPath;
  }
  // On an NFS or SMB server, what reads a file is nearly always the file
  // server itself serving its clients, this host among them (one ls -la
  // gave dozens of OPEN/ACCESS/CLOSE_NOWRITE): not asked for. This host's
  // own reads still come from its kernel. A watch for reads alone asks.
  constexpr uint32_t kReadSide = IN_OPEN | IN_ACCESS | IN_CLOSE_NOWRITE;
  if (watch.fileServer && (request.mask & ~kReadSide) != 0) request.mask &= ~kReadSide;
  const DedupMode mode = config_->echoWindowMs == 0 ? DedupMode::kOff : config_->dedup;
  const uint64_t caps = connection.welcome().capabilities;
  // The entry's state on every event keeps the view current for a resync.
  if ((caps & proto::kCapResync) && (caps & proto::kCapStat)) request.flags |= proto::kWatchStat;
  const int timeout = timing_.connectTimeoutMs * 3;
  if (mode == DedupMode::kOff) {
    ask(connection, request, timeout, wait, [then = std::move(then)](Result<proto::Reply> reply) {
      then(RemoteAnswer{std::move(reply), Dedup::Strategy::kNone, {}});
    });
    return;
  }
  if (mode != DedupMode::kAuto && mode != DedupMode::kOrigin) {
    watchWithoutOrigin(connection, request, {}, wait, std::move(then));
    return;
  }
  if (!(caps & proto::kCapOrigin)) {
    watchWithoutOrigin(connection, request, "the server cannot tell who made a change (rnotifyd runs without root)",
                       wait, std::move(then));
    return;
  }
  if (watch.originKey.empty()) {
    watchWithoutOrigin(connection, request,
                       "the mount's ssh connection could not be identified (ProxyCommand or ProxyJump?)", wait,
                       std::move(then));
    return;
  }
  if (watch.originKey == proto::kSmbPeerOrigin && !(caps & proto::kCapSmbPeer)) {
    watchWithoutOrigin(connection, request, "the server cannot tell its SMB clients apart (an older rnotifyd)", wait,
                       std::move(then));
    return;
  }
  Connection* c = &connection;
  declare(connection, watch.originKey, wait,
          [this, c, request, timeout, wait, then = std::move(then)](bool declared) mutable {
            if (!declared) {
              watchWithoutOrigin(*c, request, "the server refused the declaration of this host's connection", wait,
                                 std::move(then));
              return;
            }
            proto::Watch attributed = request;
            attributed.flags |= proto::kWatchOrigin;
            ask(*c, attributed, timeout, wait,
                [this, c, request, wait, then = std::move(then)](Result<proto::Reply> reply) mutable {
                  if (!reply || reply->status != EOPNOTSUPP) {
                    then(RemoteAnswer{std::move(reply), Dedup::Strategy::kOrigin, {}});
                    return;
                  }
                  watchWithoutOrigin(*c, request, reply->message, wait, std::move(then));
                });
          });
}

void Client::watchWithoutOrigin(Connection& connection, proto::Watch request, const std::string& why, bool wait,
                                AnswerHandler then) {
  const DedupMode mode = config_->dedup;
  const uint64_t caps = connection.welcome().capabilities;
  std::string note;
  if (mode == DedupMode::kOrigin) note = "origin attribution is not available: " + why;
  Dedup::Strategy strategy;
  if (mode != DedupMode::kEcho && (caps & proto::kCapStat)) {
    request.flags |= proto::kWatchStat;
    strategy = Dedup::Strategy::kState;
  } else {
    if (mode == DedupMode::kState) note = "the server does not send the state of entries; matching echoes only";
    strategy = Dedup::Strategy::kEcho;
  }
  if (!note.empty()) note += std::string("; using ") + Dedup::name(strategy);
  ask(connection, request, timing_.connectTimeoutMs * 3, wait,
      [strategy, note, then = std::move(then)](Result<proto::Reply> reply) {
        then(RemoteAnswer{std::move(reply), strategy, note});
      });
}

void Client::onRemoteEvents(Connection& connection, proto::Events& events) {
  // NFS watches: one look at a mount's counters per batch, one verdict per watch.
  std::map<std::string, std::optional<NfsActivity::Counters>> counters;
  std::map<int, bool> busy;
  for (const Event& event : events.events) {
    auto it = byRemote_.find({&connection, event.watch});
    if (it == byRemote_.end()) continue;  // a watch removed while its events were on the way
    Watch& watch = watches_.at(it->second);
    watch.lastSeq = event.seq;
    if ((event.mask & IN_IGNORED) && event.dir.empty()) {
      byRemote_.erase(it);
      watch.remote = nullptr;
      endWatch(watch);
      continue;
    }
    if (watch.untilListing && !(event.mask & (IN_Q_OVERFLOW | IN_IGNORED))) continue;
    if (watch.view) {
      if (event.mask & IN_Q_OVERFLOW) {
        watch.resyncWanted = true;  // the server lost events: re-read, report the differences
      } else if (watch.afterListing && watch.view->alreadyShows(event)) {
        continue;  // made while the server listed: the listing's differences told it
      } else {
        watch.view->apply(event);
      }
    }
    if (dedup_) {
      bool mayBeOwn = false;
      if (!watch.nfsMount.empty() &&
          (watch.strategy == Dedup::Strategy::kEcho || watch.strategy == Dedup::Strategy::kState)) {
        auto [look, first] = busy.try_emplace(watch.wd, false);
        if (first) {
          auto [read, unread] = counters.try_emplace(watch.nfsMount);
          if (unread) read->second = nfsActivity_.read(watch.nfsMount);
          look->second = nfsActivity_.busy(watch.wd, read->second, NfsActivity::Clock::now(), dedup_->hold());
        }
        mayBeOwn = look->second;
      }
      dedup_->remote(watch.wd, event, Dedup::Clock::now(), mayBeOwn);
    } else {
      push(watch, event.mask | kInRemote, event.cookie, event.seq, event.dir, event.name);
    }
  }
  armReleaseTimer();
}

void Client::watchWrites() {
  for (const auto& [key, owned] : connections_) {
    Connection* connection = owned.get();
    if (lost_.count(connection)) continue;
    const bool want = connection->wantsWrite();
    if (want == (writing_.count(connection) > 0)) continue;
    epoll_event ev{};
    ev.data.ptr = connection;
    if (connection->writeFd() == connection->readFd()) {
      ev.events = want ? uint32_t{EPOLLIN | EPOLLOUT} : uint32_t{EPOLLIN};
      ::epoll_ctl(epoll_.get(), EPOLL_CTL_MOD, connection->readFd(), &ev);
    } else if (want) {
      ev.events = EPOLLOUT;
      ::epoll_ctl(epoll_.get(), EPOLL_CTL_ADD, connection->writeFd(), &ev);
    } else {
      ::epoll_ctl(epoll_.get(), EPOLL_CTL_DEL, connection->writeFd(), nullptr);
    }
    if (want) {
      writing_.insert(connection);
    } else {
      writing_.erase(connection);
    }
  }
}

void Client::connectionLost(Connection& connection) {
  if (!lost_.insert(&connection).second) return;  // told already
  ::epoll_ctl(epoll_.get(), EPOLL_CTL_DEL, connection.readFd(), nullptr);
  if (writing_.erase(&connection) && connection.writeFd() != connection.readFd()) {
    ::epoll_ctl(epoll_.get(), EPOLL_CTL_DEL, connection.writeFd(), nullptr);
  }
  log::error("{}", connection.failure().message);
  // Its requests under way end here: the watches they were for wait for
  // the next connection (waitingForServer), as those it served do.
  connection.cancelPending();
  std::string sessionKey;
  if (auto jobs = jobs_.find(&connection); jobs != jobs_.end()) {
    jobs->second.queue.clear();
    jobs->second.running = false;
    if (sessions_.erase(jobs->second.key)) sessionKey = jobs->second.key;
  }
  for (const auto& [key, c] : connections_) {
    if (c.get() == &connection && openers_.count(key) && !retries_.count(key)) {
      Retry retry;
      retry.due = std::chrono::steady_clock::now() + backoff(0);
      retry.why = connection.failure().message;
      retry.code = connection.failure().code;
      // Watches it had not taken yet (RNOTIFY_NONBLOCK) stay attaching:
      // if the next attempt fails, they fall back (firstUnderWay).
      retries_[key] = retry;
      log::info("will try to reach it again in the background");
    }
  }
  // Never silence: every watch served by it gets an overflow event, meaning
  // "remote events may have been missed from here on".
  declared_.erase(&connection);
  for (auto it = byRemote_.begin(); it != byRemote_.end();) {
    if (it->first.first != &connection) {
      ++it;
      continue;
    }
    Watch& watch = watches_.at(it->second);
    watch.remote = nullptr;
    watch.waitingForServer = !watch.connectionKey.empty();
    watch.resyncWanted = false;
    if (dedup_) dedup_->forget(watch.wd);  // local reports flow straight through from now on
    watch.source = "local inotify only (lost " + connection.description() + "; reconnecting)";
    if (watch.handingOver && watch.fallback && dedup_) {
      // Lost before the fallback's last round was in: the fallback goes on,
      // and the next connection makes the watch anew (not resumed), so that
      // it is handed over again (reattached).
      watch.handingOver = false;
      watch.remoteId = 0;
      watch.strategy = Dedup::Strategy::kPolled;
      dedup_->setStrategy(watch.wd, watch.strategy);
      watch.source =
          watch.fallback->describe() + " + local inotify (lost " + connection.description() + "; reconnecting)";
    }
    push(watch, IN_Q_OVERFLOW | kInRemote, 0, 0, {}, {});
    if (!watch.view) watch.gapBeforeView = true;
    it = byRemote_.erase(it);
  }
  // Lost before its session was made: a failed attempt (the next one is
  // scheduled; watches whose first attempt it was fall back meanwhile).
  if (!sessionKey.empty()) retryFailed(sessionKey, connection.failure());
}

}  // namespace rnotify
