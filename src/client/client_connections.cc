// The client core's connections to rnotifyd (client.h), once open
// (client_openings.cc opens them): sessions and resumption, watches made on
// the server (first, or again after a reconnection), its events, losses.
#include <sys/epoll.h>

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

Status Client::attachRemote(Watch& watch, Connection& connection, std::string* note) {
  Dedup::Strategy strategy = Dedup::Strategy::kNone;
  auto reply = watchRemote(connection, watch.remotePath, watch.mask & IN_ALL_EVENTS, watch.recursive, watch.originKey,
                           &strategy, note);
  if (!reply) return reply.error();
  if (reply->status != 0) {
    return Error{reply->status,
                 "server path '" + watch.remotePath + "' on " + connection.description() + ": " + reply->message};
  }
  watch.remote = &connection;
  watch.remoteId = reply->watchId;
  watch.waitingForServer = false;
  ensureDedup();
  dedup_->setStrategy(watch.wd, strategy);
  watch.strategy = strategy;
  watch.lastSeq = 0;
  watch.source = connection.description() + " + local inotify, " + Dedup::name(strategy);
  byRemote_[{watch.remote, watch.remoteId}] = watch.wd;
  return {};
}

void Client::resync(Watch& watch) {
  watch.resyncWanted = false;
  if (watch.remote == nullptr) return;
  Connection& connection = *watch.remote;
  const int wd = watch.wd;
  auto entries = connection.snapshot(watch.remoteId, connectTimeoutMs() * 3);
  // Events that arrived meanwhile may have ended the watch.
  auto it = watches_.find(wd);
  if (it == watches_.end()) return;
  Watch& w = it->second;
  if (!entries) {
    if (!connection.alive()) {
      connectionLost(connection);
    } else {
      log::warn("cannot re-read '{}' on {}: {}", w.displayBase, connection.description(), entries.error().message);
      w.untilListing = false;
      connection.releaseDeferred();
    }
    return;
  }
  // Events sent after the listing are handed over once the view is the
  // listing. Changes made while the server listed are in both: those the
  // listing already shows are not reported a second time.
  struct Release {
    Client& client;
    Connection& c;
    int wd;
    ~Release() {
      if (auto it = client.watches_.find(wd); it != client.watches_.end()) it->second.afterListing = true;
      c.releaseDeferred();
      if (auto it = client.watches_.find(wd); it != client.watches_.end()) it->second.afterListing = false;
    }
  } release{*this, connection, wd};
  // A view costs ~150 bytes per entry: past this, a gap is announced
  // (IN_Q_OVERFLOW) but its differences are not computed.
  constexpr size_t kMaxViewEntries = 1000000;
  if (entries->size() > kMaxViewEntries) {
    log::warn("'{}': {} entries on the server; after a gap only the gap itself will be reported, not what changed",
              w.displayBase, entries->size());
    w.view.reset();
    return;
  }
  if (w.view) {
    size_t reported = 0;
    for (const TreeView::Change& change : w.view->diff(*entries, &nextCookie_)) {
      if ((change.mask & w.mask & IN_ALL_EVENTS) == 0) continue;
      push(w, change.mask | kInSynthesized | kInRemote, change.cookie, 0, change.dir, change.name);
      ++reported;
    }
    log::info("'{}': re-read {} entries on {}; {} changes missed meanwhile", w.displayBase, entries->size(),
              connection.description(), reported);
  } else {
    w.view = std::make_unique<TreeView>();
  }
  w.view->reset(*entries);
  w.untilListing = false;
}

void Client::runResyncs() {
  std::vector<int> wanted;
  for (auto& [wd, watch] : watches_) {
    if (watch.resyncWanted) wanted.push_back(wd);
  }
  for (int wd : wanted) {
    auto it = watches_.find(wd);
    if (it != watches_.end()) resync(it->second);
  }
}

void Client::restoreWatches(const std::string& key, Connection* connection) {
  // Watches the server resumed: the events it replays follow.
  if (auto resumed = resumed_.find(connection); resumed != resumed_.end()) {
    for (auto& [wd, watch] : watches_) {
      if (!watch.waitingForServer || watch.connectionKey != key || !resumed->second.count(watch.remoteId)) continue;
      watch.remote = connection;
      watch.waitingForServer = false;
      byRemote_[{watch.remote, watch.remoteId}] = wd;
      if (dedup_) dedup_->setStrategy(wd, watch.strategy);
      watch.source = connection->description() + " + local inotify, " + Dedup::name(watch.strategy);
      push(watch, kInRestored | kInRemote, 0, 0, {}, {});
    }
    resumed_.erase(resumed);
    connection->releaseDeferred();
    if (!connection->alive()) {
      connectionLost(*connection);
      return;
    }
  }
  std::vector<int> waiting;
  for (auto& [wd, watch] : watches_) {
    if (watch.waitingForServer && watch.connectionKey == key) waiting.push_back(wd);
  }
  for (int wd : waiting) {
    auto it = watches_.find(wd);
    if (it == watches_.end()) continue;
    Watch& watch = it->second;
    std::string note;
    if (watch.attaching) {
      attachFirst(watch, *connection);
      if (!connection->alive()) return;
      continue;
    }
    if (Status attached = attachRemote(watch, *connection, &note); !attached) {
      if (!connection->alive()) {
        connectionLost(*connection);  // lost again: schedules another try
        return;
      }
      log::warn("'{}': cannot watch on the server again: {}", watch.displayBase, attached.error().message);
      watch.waitingForServer = false;
      if (attached.error().code == ENOENT && watch.view) {
        // The watched directory went away while the server was unreachable.
        push(watch, IN_DELETE_SELF | kInSynthesized | kInRemote, 0, 0, {}, {});
        endWatch(watch);
      }
      continue;
    }
    if (watch.fallback) {
      log::warn("'{}': {} is reachable: its events come from the server again, no more polling", watch.displayBase,
                connection->description());
      dropFallback(watch);
      if (watches_.find(wd) == watches_.end()) continue;
      if (connection->welcome().capabilities & proto::kCapResync) resync(watch);
      continue;
    }
    push(watch, kInRestored | kInRemote, 0, 0, {}, {});
    if (watch.view) {
      // Until the listing, the server's events only repeat what the
      // listing's differences will tell: the gap lasts until then.
      watch.untilListing = true;
      resync(watch);
      if (!connection->alive()) return;
    }
  }
}

void Client::attachFirst(Watch& watch, Connection& connection) {
  // A watch added with RNOTIFY_NONBLOCK meets its server: what
  // chooseRemote and store() do for a watch that waited for it, told by
  // IN_RESTORED | IN_REMOTE (remote changes are reported from here on).
  const int wd = watch.wd;
  std::string note;
  if (Status attached = attachRemote(watch, connection, &note); !attached) {
    if (!connection.alive()) {
      connectionLost(connection);  // still attaching: the next attempt, local events meanwhile
      return;
    }
    // An add that waited would have failed (EACCES, ENOENT, ...) or fallen
    // back (ENOSYS, EOPNOTSUPP); this one is made already: it falls back and
    // says why (rnotify_watch_source(), the log). The server's refusal of
    // the path stands; after another failure (a request not answered in
    // time) the server is asked again when the connection is made again.
    const int code = attached.error().code;
    watch.attaching = false;
    const bool refused = code == ENOSYS || code == EOPNOTSUPP || code == EACCES || code == EPERM || code == ENOENT ||
                         code == ENOTDIR || code == ELOOP || code == ENAMETOOLONG || code == EINVAL;
    watch.waitingForServer = !refused;
    if (code == ENOSYS || code == EOPNOTSUPP) watch.connectionKey.clear();
    log::warn("'{}': {} did not take the watch: {}", watch.displayBase, connection.description(),
              attached.error().message);
    startFallback(watch, MountResolver::fromProc().resolve(watch.localRoot), attached.error().message);
    if (watch.fallback && watch.fallback->scans()) runSource(wd);
    return;
  }
  watch.attaching = false;
  if (!note.empty()) log::warn("'{}': {}", watch.displayBase, note);
  push(watch, kInRestored | kInRemote, 0, 0, {}, {});
  if (connection.welcome().capabilities & proto::kCapResync) resync(watch);  // the first listing, as store() takes it
}

std::string Client::agentKey(const SshTarget& target) const {
  std::string key;
  for (const std::string& a : agentArgv(target, config_->agent)) key += a + '\x1f';
  return key;
}

Result<Connection*> Client::connectionFor(const ResolvedPath& resolved, std::string* remotePath, std::string* why,
                                          std::string* connectionKey, bool wait) {
  if (Status loaded = loadConfigOnce(); !loaded) return loaded.error();
  switch (resolved.kind) {
    case MountKind::kSshfs: {
      std::string mountKey = resolved.mount.mountPoint + '\n' + resolved.mount.source;
      auto known = sshTargets_.find(mountKey);
      if (known == sshTargets_.end()) {
        auto target = findSshfsTarget(resolved.mount);
        if (!target) return target.error();
        known = sshTargets_.emplace(mountKey, std::move(*target)).first;
      }
      const SshTarget& target = known->second;
      std::vector<std::string> argv = agentArgv(target, config_->agent);
      *remotePath = serverPath(target, resolved.relative);
      const std::string key = agentKey(target);
      *connectionKey = key;
      if (auto retry = retries_.find(key); retry != retries_.end()) {
        if (firstUnderWay(key)) {
          if (!originKeys_.count(mountKey)) originKeys_[mountKey] = sshOriginKey(target);
          return Error{EINPROGRESS, "rnotifyd over ssh " + target.destination};
        }
        return Error{EAGAIN, retry->second.why.empty() ? "the server is not reachable" : retry->second.why};
      }
      std::string destination = target.destination;
      std::string agent = config_->agent;
      auto connection = connect(
          key, [argv, destination, agent] { return Connection::startAgent(argv, destination, agent, true); }, wait);
      if (!connection && connection.error().code == EINPROGRESS) {
        connection = Error{EINPROGRESS, "rnotifyd over ssh " + destination};
        if (!originKeys_.count(mountKey)) originKeys_[mountKey] = sshOriginKey(target);
      } else if (!connection) {
        sshTargets_.erase(mountKey);  // remounted with other options? look again next time
      } else if (!originKeys_.count(mountKey)) {
        originKeys_[mountKey] = sshOriginKey(target);
      }
      return connection;
    }
    case MountKind::kNfs:
    case MountKind::kSmb: {
      const ServerEntry* entry = findServer(*config_, resolved.mount);
      if (entry == nullptr) {
        *why = "no rnotifyd endpoint is configured for the " + resolved.mount.fsType + " mount of '" +
               resolved.mount.source + "' (add a [[server]] entry to ~/.config/rnotify/config.toml)";
        return nullptr;
      }
      *remotePath = serverPathFor(*entry, resolved.mount, resolved.relative);
      std::string endpoint = entry->endpoint;
      *connectionKey = endpoint;
      if (auto retry = retries_.find(endpoint); retry != retries_.end()) {
        if (firstUnderWay(endpoint)) return Error{EINPROGRESS, "rnotifyd at " + endpoint};
        return Error{EAGAIN, retry->second.why.empty() ? "the server is not reachable" : retry->second.why};
      }
      TlsSettings tls = entry->tls;
      auto connection = connect(
          endpoint, [endpoint, tls] { return Connection::startSocket(endpoint, tls, /*keepalive=*/true); }, wait);
      if (!connection && connection.error().code == EINPROGRESS) return Error{EINPROGRESS, "rnotifyd at " + endpoint};
      return connection;
    }
    case MountKind::kOtherNetwork:
      *why = "server-side watching is not available for " + resolved.mount.fsType + " mounts";
      return nullptr;
    case MountKind::kLocal:
      break;
  }
  return nullptr;
}

Result<Connection*> Client::adopt(const std::string& key, std::unique_ptr<Connection> opened) {
  Connection* connection = opened.get();
  // What was noted about it goes with it (a later connection may get its address).
  auto forget = [&] {
    resumed_.erase(connection);
    declared_.erase(connection);
  };
  if (Status attached = attachSession(key, *connection); !attached) {
    forget();
    return attached.error();
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
  return connection;
}

Status Client::attachSession(const std::string& key, Connection& connection) {
  if (!(connection.welcome().capabilities & proto::kCapResume)) return {};
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
  auto reply = connection.attach(attach, connectTimeoutMs());
  if (!reply) return reply.error();
  ticket.instanceId = connection.welcome().instanceId;
  if (reply->status == EEXIST) {
    // Another session holds this token (a second handle after a restart of
    // this one is impossible; be safe): start afresh with a new token.
    ticket = Ticket{};
    return attachSession(key, connection);
  }
  if (attach.instanceId != 0 && reply->status == 0) {
    std::set<uint32_t>& ids = resumed_[&connection];
    for (const proto::WatchPosition& p : attach.positions) {
      ids.insert(p.watchId);
      connection.setReceived(p.watchId, p.seq);
    }
    log::info("{}: {}; what happened meanwhile is replayed", connection.description(), reply->message);
  } else {
    if (attach.instanceId != 0) log::info("{}: cannot resume: {}", connection.description(), reply->message);
    connection.releaseDeferred();
  }
  return {};
}

bool Client::declare(Connection& connection, const std::string& originKey) {
  Declared& declared = declared_[&connection];
  for (const std::string& known : declared.origins) {
    if (known == originKey) return true;
  }
  proto::Declare request;
  request.origins = declared.origins;
  request.origins.push_back(originKey);
  auto reply = connection.request(request, connectTimeoutMs());
  if (!reply || reply->status != 0) {
    log::debug("{}: Declare refused: {}", connection.description(), reply ? reply->message : reply.error().message);
    return false;
  }
  declared.origins = std::move(request.origins);
  return true;
}

Result<proto::Reply> Client::watchRemote(Connection& connection, const std::string& remotePath, uint32_t mask,
                                         bool recursive, const std::string& originKey, Dedup::Strategy* strategy,
                                         std::string* note) {
  proto::Watch request;
  request.flags = recursive ? uint32_t{proto::kWatchRecursive} : 0u;
  request.mask = mask;
  request.path = remotePath;
  const DedupMode mode = config_->echoWindowMs == 0 ? DedupMode::kOff : config_->dedup;
  const uint64_t caps = connection.welcome().capabilities;
  // The entry's state on every event keeps the view current for a resync.
  if ((caps & proto::kCapResync) && (caps & proto::kCapStat)) request.flags |= proto::kWatchStat;
  const int timeout = connectTimeoutMs() * 3;
  std::string why;
  if (mode == DedupMode::kOff) {
    *strategy = Dedup::Strategy::kNone;
    return connection.request(request, timeout);
  }
  if (mode == DedupMode::kAuto || mode == DedupMode::kOrigin) {
    if (!(caps & proto::kCapOrigin)) {
      why = "the server cannot tell who made a change (rnotifyd runs without root)";
    } else if (originKey.empty()) {
      why = "the mount's ssh connection could not be identified (ProxyCommand or ProxyJump?)";
    } else if (!declare(connection, originKey)) {
      why = "the server refused the declaration of this host's connection";
    } else {
      proto::Watch attributed = request;
      attributed.flags |= proto::kWatchOrigin;
      auto reply = connection.request(attributed, timeout);
      if (!reply || reply->status != EOPNOTSUPP) {
        *strategy = Dedup::Strategy::kOrigin;
        return reply;
      }
      why = reply->message;
    }
    if (mode == DedupMode::kOrigin) *note = "origin attribution is not available: " + why;
  }
  if ((mode == DedupMode::kAuto || mode == DedupMode::kOrigin || mode == DedupMode::kState) &&
      (caps & proto::kCapStat)) {
    request.flags |= proto::kWatchStat;
    *strategy = Dedup::Strategy::kState;
  } else {
    if (mode == DedupMode::kState) *note = "the server does not send the state of entries; matching echoes only";
    *strategy = Dedup::Strategy::kEcho;
  }
  if (!note->empty()) *note += std::string("; using ") + Dedup::name(*strategy);
  return connection.request(request, timeout);
}

void Client::onRemoteEvents(Connection& connection, proto::Events& events) {
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
      dedup_->remote(watch.wd, event, Dedup::Clock::now());
    } else {
      push(watch, event.mask | kInRemote, event.cookie, event.seq, event.dir, event.name);
    }
  }
  armReleaseTimer();
}

void Client::connectionLost(Connection& connection) {
  if (!lost_.insert(&connection).second) return;  // told already
  ::epoll_ctl(epoll_.get(), EPOLL_CTL_DEL, connection.readFd(), nullptr);
  log::error("{}", connection.failure().message);
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
    push(watch, IN_Q_OVERFLOW | kInRemote, 0, 0, {}, {});
    it = byRemote_.erase(it);
  }
}

}  // namespace rnotify
