#include "server/session.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/inotify.h>
#include <sys/stat.h>

#include <algorithm>
#include <cstring>
#include <vector>

#include "common/log.h"
#include "proto/wire.h"
#include "server/server.h"

namespace rnotify {
namespace {

// Room left in an EVENTS frame for one more record of the largest size.
constexpr size_t kRecordReserve = 2 + 4 + 8 + 4 + 4 + 2 + proto::kMaxPath + 2 + proto::kMaxName + 2 + 40;
constexpr uint32_t kOriginFlags = proto::kWatchOrigin | proto::kWatchOthersOnly;
// Directory descriptors a session keeps for stat attachments (an openat2 per
// event was most of the cost of an event with stat).
constexpr size_t kMaxStatDirs = 64;

}  // namespace

Session::Session(Server& server, std::unique_ptr<Transport> transport, uint64_t id)
    : server_(server),
      transport_(std::move(transport)),
      id_(id),
      description_("client " + std::to_string(id) + " (" + transport_->describe() + ")"),
      reader_(proto::kMinMaxFrame),  // a Hello must fit in 4 KiB; the full limit applies after it
      handshakeTimer_(server.io()),
      graceTimer_(server.io()),
      watchdog_(server.io()) {}

Session::~Session() = default;

void Session::adoptPeer() {
  if (auto peer = transport_->peer()) {
    Credentials who = credentialsOfUid(peer->uid, peer->gid);
    who.how = methodName(peer->method);
    if (!peer->user.empty()) who.user = peer->user;
    description_ += " user " + who.user;
    actAs_.reset();
    if (mustActAs(who)) actAs_ = std::move(who);
  } else if (!transport_->awaitsToken() && ::geteuid() == 0) {
    // No identity (plain TCP): a root daemon lets it see only what anybody
    // may see, as the user nobody.
    Credentials nobody = credentialsOfUser("nobody").value_or(Credentials{65534, 65534, {65534}, "nobody", ""});
    nobody.user = "nobody (unauthenticated)";
    nobody.how = "none";
    description_ += " unauthenticated";
    actAs_ = std::move(nobody);
  }
}

void Session::start() {
  adoptPeer();
  log::info("{}: connected", description_);
  if (!identify()) return;
  lastReceived_ = std::chrono::steady_clock::now();
  unwatchedSince_ = lastReceived_;
  armWatchdog();
  handshakeTimer_.expires_after(std::chrono::seconds(server_.limits().handshakeTimeoutSeconds));
  // The handshake includes the token (Auth) where the transport awaits one.
  handshakeTimer_.async_wait([self = shared_from_this()](std::error_code ec) {
    if (!ec && (!self->handshakeDone_ || self->transport_->awaitsToken())) {
      self->close(ETIMEDOUT, "no handshake in time");
    }
  });
  readMore();
}

std::string Session::peerAddress() const {
  if (auto peer = transport_->peer(); peer && peer->method == Peer::Method::kUnixSocket) {
    return "uid " + std::to_string(peer->uid);
  }
  // "tls 192.0.2.7:50412", "tcp [::1]:50412": the address is what the port follows.
  std::string text = transport_->describe();
  const size_t colon = text.rfind(':');
  return colon == std::string::npos ? text : text.substr(0, colon);
}

bool Session::identify() {
  auto peer = transport_->peer();
  owner_ = peer ? "uid " + std::to_string(peer->uid) + " (" + peer->user + ")" : peerAddress() + " (unauthenticated)";
  if (owner_ == countedAs_) return true;
  if (!countedAs_.empty()) server_.leaveClient(countedAs_);
  countedAs_.clear();
  // The daemon's own user (every client of a per-user agent daemon; root on
  // a shared one) can take nothing from another user: only --max-clients applies.
  if (peer && peer->uid == ::geteuid()) return true;
  if (!server_.admitClient(owner_)) {
    const uint32_t limit = server_.limits().maxClientsPerUser;
    log::warn("{}: refused: {} has {} connections already (--max-clients-per-user)", description_, owner_, limit);
    close(EUSERS, "too many connections of " + owner_ + ": this server takes " + std::to_string(limit) + " per user");
    return false;
  }
  countedAs_ = owner_;
  return true;
}

void Session::readMore() {
  if (readInFlight_ || readPaused_ || closed_ || parked_) return;
  readInFlight_ = true;
  transport_->asyncReadSome(asio::buffer(readBuffer_), [self = shared_from_this()](std::error_code ec, size_t n) {
    self->readInFlight_ = false;
    if (self->closed_ || self->parked_) return;
    if (ec) {
      if (self->reader_.pending() > 0) {
        log::warn("{}: connection ended in the middle of a frame ({} bytes unread)", self->description_,
                  self->reader_.pending());
      } else if (ec != asio::error::eof && ec != asio::error::operation_aborted) {
        log::info("{}: read failed: {}", self->description_, ec.message());
      }
      if (!self->parked_) self->lost();
      return;
    }
    self->onBytes(n);
    self->readMore();
  });
}

void Session::armWatchdog() {
  watchdog_.expires_after(std::chrono::seconds(2));
  watchdog_.async_wait([self = shared_from_this()](std::error_code ec) {
    if (ec || self->closed_) return;
    self->releaseDeletedRoots();
    if (!self->parked_) {
      const auto& limits = self->server_.limits();
      const auto now = std::chrono::steady_clock::now();
      // While reading is paused the frames waiting are the server's doing.
      if (!self->readPaused_ && self->partialSince_ != std::chrono::steady_clock::time_point{} &&
          now - self->partialSince_ > std::chrono::seconds(limits.frameTimeoutSeconds)) {
        log::warn("{}: a frame was left unfinished for {} s; closing", self->description_, limits.frameTimeoutSeconds);
        self->close(ETIMEDOUT, "a frame was left unfinished for " + std::to_string(limits.frameTimeoutSeconds) + " s");
        return;
      }
      // A silent partition (no FIN, no RST) leaves the socket open for ever:
      // a client that promised to send at least every 10 s and did not is
      // gone (parked if it can come back).
      if ((self->capabilities_ & proto::kCapKeepalive) && limits.keepaliveTimeoutSeconds > 0 && !self->readPaused_ &&
          now - self->lastReceived_ > std::chrono::seconds(limits.keepaliveTimeoutSeconds)) {
        log::warn("{}: nothing received for {} s (its keepalives stopped); the connection is lost", self->description_,
                  limits.keepaliveTimeoutSeconds);
        self->lost();
        if (!self->closed_) self->armWatchdog();  // a parked session's is still wanted
        return;
      }
      if (limits.idleTimeoutSeconds > 0 && !self->readPaused_ &&
          now - self->lastReceived_ > std::chrono::seconds(limits.idleTimeoutSeconds)) {
        log::warn("{}: nothing received for {} s; closing", self->description_, limits.idleTimeoutSeconds);
        self->close(ETIMEDOUT, "nothing received for " + std::to_string(limits.idleTimeoutSeconds) + " s");
        return;
      }
      // A client with watches may rightly be silent for ever; one without
      // any only holds a connection (a slot of its user's and the server's).
      if (!self->watches_.empty() || !self->handshakeDone_) {
        self->unwatchedSince_ = now;
      } else if (limits.idleUnwatchedTimeoutSeconds > 0 &&
                 now - self->unwatchedSince_ > std::chrono::seconds(limits.idleUnwatchedTimeoutSeconds)) {
        log::info("{}: no watch for {} s; closing", self->description_, limits.idleUnwatchedTimeoutSeconds);
        self->close(ETIMEDOUT, "no watch for " + std::to_string(limits.idleUnwatchedTimeoutSeconds) +
                                   " s: connections without watches are closed (--idle-unwatched-timeout)");
        return;
      }
    }
    self->armWatchdog();
  });
}

void Session::onBytes(size_t n) {
  lastReceived_ = std::chrono::steady_clock::now();
  if (reader_.pending() == 0) partialSince_ = lastReceived_;
  reader_.feed(std::string_view(readBuffer_, n));
  takeFrames();
}

void Session::takeFrames() {
  while (!closed_ && !parked_) {
    // Checked between frames, not once per read: one read of small
    // requests (thousands of Snapshots, say) must not queue unbounded work.
    // The rest waits in the reader and, unread, in the socket.
    if (unwritten() > server_.limits().maxUnreadReplies) {
      readPaused_ = true;
      return;
    }
    auto next = reader_.next();
    if (!next) {
      log::warn("{}: protocol error, closing: {}", description_, next.error().message);
      close(next.error().code, next.error().message);
      return;
    }
    if (!next->has_value()) {
      if (reader_.pending() == 0) partialSince_ = {};
      return;
    }
    handle(**next);
  }
}

void Session::handle(proto::Message& message) {
  if (!handshakeDone_ && !std::holds_alternative<proto::Hello>(message)) {
    log::warn("{}: sent a request before the handshake", description_);
    close(EPROTO, "the first frame must be HELLO");
    return;
  }
  // A TLS client without a certificate on a --token-dir listener: Auth
  // first, and nothing else until it succeeds.
  if (handshakeDone_ && transport_->awaitsToken() && !std::holds_alternative<proto::Auth>(message) &&
      !std::holds_alternative<proto::Fatal>(message)) {
    log::warn("{}: sent a request before authenticating", description_);
    close(EACCES, "authenticate first: this server needs your token (Auth) before anything else");
    return;
  }
  std::visit(
      [this](auto& m) {
        using T = std::decay_t<decltype(m)>;
        if constexpr (std::is_same_v<T, proto::Hello>) {
          onHello(m);
        } else if constexpr (std::is_same_v<T, proto::Watch>) {
          onWatch(m);
        } else if constexpr (std::is_same_v<T, proto::Unwatch>) {
          onUnwatch(m);
        } else if constexpr (std::is_same_v<T, proto::Declare>) {
          onDeclare(m);
        } else if constexpr (std::is_same_v<T, proto::Snapshot>) {
          onSnapshot(m);
        } else if constexpr (std::is_same_v<T, proto::Attach>) {
          onAttach(m);
        } else if constexpr (std::is_same_v<T, proto::Ack>) {
          onAck(m);
        } else if constexpr (std::is_same_v<T, proto::Auth>) {
          onAuth(m);
        } else if constexpr (std::is_same_v<T, proto::Ping>) {
          send(proto::Pong{m.token});
        } else if constexpr (std::is_same_v<T, proto::Pong>) {
          // Keepalive answer; receiving it was the point.
        } else if constexpr (std::is_same_v<T, proto::Fatal>) {
          // Code 0: the client is leaving on purpose (nothing to keep for it).
          if (m.code != 0) log::warn("{}: client reported an error: {}", description_, m.message);
          close();
        } else {
          log::warn("{}: sent a frame only a server may send", description_);
          close(EPROTO, "unexpected frame type from a client");
        }
      },
      message);
}

void Session::onHello(const proto::Hello& hello) {
  if (handshakeDone_) {
    close(EPROTO, "HELLO sent twice");
    return;
  }
  if (hello.maxVersion < proto::kMinVersion || hello.minVersion > proto::kVersion) {
    log::warn("{}: no common protocol version (client speaks {}..{}, server {}..{})", description_, hello.minVersion,
              hello.maxVersion, proto::kMinVersion, proto::kVersion);
    close(EPROTONOSUPPORT, "no common protocol version: this server speaks " + std::to_string(proto::kMinVersion) +
                               ".." + std::to_string(proto::kVersion));
    return;
  }
  if (transport_->awaitsToken() && !(hello.capabilities & proto::kCapAuth)) {
    log::warn("{}: sent neither a client certificate nor a token", description_);
    close(EACCES, "this server needs a client certificate or a token (token_file in the client's [[server]] entry)");
    return;
  }
  handshakeDone_ = true;
  if (!transport_->awaitsToken()) handshakeTimer_.cancel();
  reader_.setMaxFrame(server_.limits().maxFrame);
  log::info("{}: handshake from '{}'", description_, hello.clientName);
  proto::Welcome welcome;
  welcome.version = std::min(hello.maxVersion, proto::kVersion);
  uint64_t offered = proto::kCapStat | proto::kCapResync |
                     (server_.offersAttribution() ? uint64_t{proto::kCapOrigin} : 0) |
                     (server_.resumable() ? uint64_t{proto::kCapResume} : 0) |
                     (transport_->awaitsToken() ? uint64_t{proto::kCapAuth} : 0) |
                     (server_.limits().keepaliveTimeoutSeconds > 0 ? uint64_t{proto::kCapKeepalive} : 0);
  capabilities_ = hello.capabilities & offered;
  welcome.capabilities = capabilities_;
  welcome.instanceId = server_.instanceId();
  welcome.maxFrame = server_.limits().maxFrame;
  welcome.serverName = "rnotifyd " RNOTIFY_VERSION " (" + std::string(server_.backendName()) + ")";
  send(welcome);
}

void Session::onWatch(const proto::Watch& watch) {
  proto::Reply reply;
  reply.requestId = watch.requestId;
  if ((watch.flags & ~proto::kKnownWatchFlags) != 0) {
    reply.status = EINVAL;
    reply.message = "unknown watch flags";
  } else if ((watch.flags & kOriginFlags) && !(capabilities_ & proto::kCapOrigin)) {
    reply.status = EOPNOTSUPP;
    reply.message = "this server cannot tell who made a change (rnotifyd needs root for that)";
  } else if ((watch.flags & proto::kWatchStat) && !(capabilities_ & proto::kCapStat)) {
    reply.status = EINVAL;
    reply.message = "stat data was not negotiated";
  } else if ((watch.mask & IN_ALL_EVENTS) == 0) {
    reply.status = EINVAL;
    reply.message = "no events requested for '" + watch.path + "'";
  } else if (watches_.size() >= server_.limits().maxWatchesPerClient) {
    reply.status = ENOSPC;
    reply.message =
        "too many watches for one client (limit " + std::to_string(server_.limits().maxWatchesPerClient) + ")";
    // Once per client: a flood of refused requests must not flood the log too.
    if (!watchLimitLogged_) log::warn("{}: watch limit reached; later refusals are not logged", description_);
    watchLimitLogged_ = true;
  } else {
    std::unique_ptr<ConfinedTree> tree;
    // Checking as the client, the server must also see permission changes
    // of directories (ATTRIB, moves), whether or not the client asked.
    const uint32_t kernelMask = watch.mask | (actAs_ ? uint32_t{IN_ATTRIB | IN_MOVE | IN_MOVE_SELF} : 0u);
    auto id = server_.watch(*this, watch.path, kernelMask, watch.flags & proto::kWatchRecursive,
                            (watch.flags & kOriginFlags) != 0, &tree, client());
    const std::string resolved = tree ? tree->path() : std::string();
    if (id && (watch.flags & kOriginFlags) && !server_.canAttribute(*id)) {
      std::string backend(server_.backendFor(*id));
      server_.unwatch(*id);
      id = Error{EOPNOTSUPP, "changes under '" + resolved + "' cannot be attributed: it is watched with " + backend +
                                 ", which does not report who made them (fanotify does, on most local filesystems)"};
    }
    if (id) {
      WatchState state;
      state.flags = watch.flags;
      state.root = resolved;
      state.mask = watch.mask;
      state.tree = std::move(tree);
      watches_.emplace(*id, std::move(state));
      reply.watchId = *id;
      reply.message = resolved;
      log::info("{}: watch {} on '{}' ({}{}{})", description_, *id, resolved, server_.backendFor(*id),
                (watch.flags & kOriginFlags) ? ", attributed" : "", (watch.flags & proto::kWatchStat) ? ", stat" : "");
    } else {
      reply.status = id.error().code;
      reply.message = id.error().message;
      log::info("{}: watch on '{}' refused: {}", description_, watch.path, id.error().message);
    }
  }
  send(reply);
}

void Session::onUnwatch(const proto::Unwatch& unwatch) {
  proto::Reply reply;
  reply.requestId = unwatch.requestId;
  if (watches_.erase(unwatch.watchId) == 0) {
    reply.status = EINVAL;
    reply.message = "no such watch";
  } else {
    server_.unwatch(unwatch.watchId);
    if (journal_) journal_->forget(unwatch.watchId);
    reply.watchId = unwatch.watchId;
  }
  send(reply);
}

void Session::onDeclare(const proto::Declare& declare) {
  proto::Reply reply;
  reply.requestId = declare.requestId;
  if (!(capabilities_ & proto::kCapOrigin)) {
    reply.status = EOPNOTSUPP;
    reply.message = "origin attribution was not negotiated";
  } else {
    declared_.clear();
    declared_.insert(declare.origins.begin(), declare.origins.end());
    std::string list;
    for (const std::string& origin : declare.origins) list += (list.empty() ? "" : ", ") + origin;
    log::info("{}: its own connections: {}", description_, list.empty() ? "none" : list);
  }
  send(reply);
}

int Session::openListingRoot(const WatchState& state) { return state.tree->openListing(client()); }

uint8_t Session::accessTo(SubscriptionId watch, WatchState& state, std::string_view dir, uint64_t dirIno) {
  dirKey_.assign(reinterpret_cast<const char*>(&watch), sizeof watch);
  dirKey_.append(dir);
  auto it = access_.find(dirKey_);
  if (it == access_.end() || (dirIno != 0 && it->second.ino != dirIno)) {
    if (access_.size() >= 4096) access_.clear();
    Access checked;
    checked.bits = state.tree->access(dir, client(), &checked.ino);
    const bool forbidden = checked.bits == 0 && errno == EACCES;
    if (forbidden) checked.ino = dirIno;  // later events of that directory: refused from the cache
    it = access_.insert_or_assign(dirKey_, checked).first;
    // The path names another directory now, or none: a rename came between
    // the event and this check. Judged by the path, the event could be
    // credited to a directory the client may list while it happened in one
    // it may not. (A refusal is a refusal, whatever the directory.)
    if (dirIno != 0 && checked.ino != dirIno && !forbidden) return kMoved;
  }
  return it->second.bits;
}

void Session::dropListability() {
  access_.clear();
  dropStatDirs();
}

void Session::dropStatDirs() {
  if (statDirs_ == 0) return;
  for (auto& [id, state] : watches_) state.dirs.clear();
  statDirs_ = 0;
}

void Session::attachStat(WatchState& state, std::string_view dir, std::string_view name) {
  scratch_.hasStat = false;
  // The directory is opened as the client, once, and the entry looked up in
  // it through that descriptor: the state is of an entry of a directory the
  // client could search when it was opened, never of what the same path
  // names after a rename or an exchange.
  dirKey_.assign(dir);
  auto it = state.dirs.find(dirKey_);
  // Its mode or owner changed since the check: check again, as the client.
  if (it != state.dirs.end() && ConfinedTree::changedSince(it->second.fd.get(), it->second.checked)) {
    state.dirs.erase(it);
    it = state.dirs.end();
  }
  if (it == state.dirs.end()) {
    if (statDirs_ >= kMaxStatDirs) dropStatDirs();
    WatchState::StatDir opened;
    opened.fd = state.tree->openDirAs(dir, client(), &opened.searchable, &opened.checked);
    if (!opened.fd) return;
    it = state.dirs.emplace(dirKey_, std::move(opened)).first;
    ++statDirs_;
  }
  if (!it->second.searchable) return;
  struct stat st;
  scratch_.hasStat = ConfinedTree::statAt(it->second.fd.get(), name, &st);
  if (scratch_.hasStat) scratch_.stat = eventStatOf(st);
  // The root is not kept: a descriptor held on it would defer its
  // IN_DELETE_SELF (subdirectories kept are let go when they are removed or
  // moved: dropStatDirs).
  if (dir.empty()) {
    state.dirs.erase(it);
    --statDirs_;
  }
}

void Session::suspendForRecheck(SubscriptionId watch, uint32_t mask) {
  auto it = watches_.find(watch);
  if (closed_ || !actAs_ || it == watches_.end()) return;
  dropListability();
  WatchState& state = it->second;
  state.recheckMask |= mask;
  if (state.suspended) return;  // its re-check is on the way
  state.suspended = true;
  asio::post(server_.io(), [weak = weak_from_this(), watch] {
    if (auto self = weak.lock()) {
      self->recheckAccess(watch);
      self->flush();
    }
  });
}

void Session::releaseDeletedRoots(std::string_view name) {
  for (auto& [id, state] : watches_) {
    if (!state.tree) continue;
    if (!name.empty()) {
      // Only roots that had this name when watched (a renamed one waits
      // for the watchdog).
      const std::string& path = state.tree->path();
      if (path.size() <= name.size() || path.compare(path.size() - name.size(), name.size(), name) != 0 ||
          path[path.size() - name.size() - 1] != '/') {
        continue;
      }
    }
    // A descriptor kept for stat attachments holds its directory as well.
    std::erase_if(state.dirs, [](const auto& entry) {
      struct stat st;
      return ::fstat(entry.second.fd.get(), &st) != 0 || st.st_nlink == 0;
    });
  }
}

void Session::recheckAccess(SubscriptionId watch) {
  auto it = watches_.find(watch);
  if (closed_ || !actAs_ || it == watches_.end()) return;
  dropListability();
  WatchState& state = it->second;
  const uint32_t mask = state.recheckMask;
  const bool heldBack = state.heldBack;
  std::vector<WatchState::Held> held = std::move(state.held);
  state.held.clear();
  held_ -= std::min(held_, held.size());
  state.recheckMask = 0;
  state.suspended = state.heldBack = false;
  const ConfinedTree& tree = *state.tree;
  std::string lost = tree.whyUnreachable(*actAs_);
  if (lost.empty() && (mask & (IN_MOVE_SELF | IN_IGNORED | IN_Q_OVERFLOW))) {
    // Still reachable, maybe through other directories now: guard those.
    if (Status guarded = server_.guard().guard(watch, tree); !guarded) {
      lost = "it moved while it was being checked; watch it again";
    }
  }
  if (!lost.empty()) {
    revoke(watch, lost);
  } else if (heldBack) {
    queueEvent(watch, IN_Q_OVERFLOW, 0, {}, {}, 0);  // what was held back is re-read
  } else {
    // They happened before this check: judged now, as the client, like any
    // event (one whose directory was renamed since suspends the watch again).
    replaying_ = true;
    for (const WatchState::Held& event : held) {
      queueEvent(watch, event.mask, event.cookie, event.dir, event.name, event.pid, event.dirIno);
    }
    replaying_ = false;
  }
}

void Session::holdBack(WatchState& state) {
  held_ -= std::min(held_, state.held.size());
  state.held.clear();
  state.heldBack = true;
}

bool Session::canHold() {
  if (held_ < kMaxHeld) return true;
  // Counted again (watches that ended or moved here took theirs along).
  held_ = 0;
  for (const auto& [id, state] : watches_) held_ += state.held.size();
  return held_ < kMaxHeld;
}

void Session::revoke(SubscriptionId watch, const std::string& why) {
  const std::string root = watches_.at(watch).root;
  log::info("{}: watch {} on '{}' ended: {}", description_, watch, root, why);
  server_.unwatch(watch);
  queueEvent(watch, IN_IGNORED, 0, {}, {}, 0);  // the last event of the watch
  // Unsolicited (request 0): tells the client why its watch ended.
  proto::Reply notice;
  notice.watchId = watch;
  notice.status = EACCES;
  notice.message = "watch " + std::to_string(watch) + " on '" + root + "' ended: " + why;
  send(notice);
}

void Session::queueEvent(SubscriptionId watch, uint32_t mask, uint32_t cookie, std::string_view dir,
                         std::string_view name, int pid, uint64_t dirIno) {
  if (closed_) return;
  auto it = watches_.find(watch);
  if (it == watches_.end()) return;
  WatchState& state = it->second;
  // A directory's permissions may have changed, or its name may now be
  // another's: ask the kernel again, open again.
  if ((mask & IN_ISDIR) && (mask & (IN_ATTRIB | IN_MOVE | IN_MOVE_SELF))) dropListability();
  if ((mask & IN_ISDIR) && (mask & IN_DELETE)) {
    dropStatDirs();
    // A directory removed: if it is also the root of one of this client's
    // watches, let go of it now, so that its IN_DELETE_SELF comes at once.
    if (!name.empty()) releaseDeletedRoots(name);
  }
  if (actAs_ && !(mask & (IN_IGNORED | IN_Q_OVERFLOW))) {
    if (state.suspended) {
      if (state.heldBack) return;
      if (!canHold()) {
        holdBack(state);
        return;
      }
      state.held.push_back({mask, cookie, pid, dirIno, std::string(dir), std::string(name)});
      ++held_;
      return;
    }
    // The root's own deletion needs no check (it no longer opens); anything
    // else of a root that does not open is held back (see accessTo).
    if (!(mask & IN_DELETE_SELF) || !dir.empty() || !name.empty()) {
      // The root's own permissions or place changed: may the client still
      // reach it? Nothing more until the re-check after this drain.
      // (Not for one the re-check that lets it through already saw.)
      if (dir.empty() && name.empty() && (mask & (IN_ATTRIB | IN_MOVE_SELF)) && !replaying_) {
        suspendForRecheck(watch, mask);
      }
      const uint8_t access = accessTo(watch, state, dir, dirIno);
      if (access & kMoved) {
        // Held back with what follows until the tree has settled (after this
        // drain); the client then re-reads the watch (IN_Q_OVERFLOW).
        suspendForRecheck(watch, 0);
        holdBack(state);
        return;
      }
      if (!(access & ConfinedTree::kList)) return;
    }
    // Only there to see permission changes.
    if ((mask & IN_ALL_EVENTS) != 0 && (mask & IN_ALL_EVENTS & state.mask) == 0) return;
  }
  if (shedding_ && !(mask & IN_IGNORED)) {
    overflowed_.insert(watch);
    ++shed_;
    return;
  }
  scratch_.origin = Origin::kUnknown;
  if ((state.flags & kOriginFlags) && pid > 0) {
    const std::string& key = server_.origins().keyOf(pid);
    scratch_.origin = !key.empty() && declared_.count(key) != 0 ? Origin::kSelf : Origin::kOther;
    if (scratch_.origin == Origin::kSelf && (state.flags & proto::kWatchOthersOnly)) return;
  }
  scratch_.hasStat = false;
  if ((state.flags & proto::kWatchStat) && !(mask & (IN_IGNORED | IN_Q_OVERFLOW))) attachStat(state, dir, name);
  if (!batchOpen_) {
    batchStart_ = proto::beginEvents(pending_);
    batchCount_ = 0;
    batchOpen_ = true;
    server_.markDirty(*this);
  }
  scratch_.watch = watch;
  scratch_.seq = ++state.seq;
  scratch_.mask = mask;
  scratch_.cookie = cookie;
  scratch_.dir.assign(dir);
  scratch_.name.assign(name);
  const size_t recordStart = pending_.size();
  proto::appendEvent(pending_, scratch_);
  ++batchCount_;
  if (journal_) journal_->append(watch, scratch_.seq, std::string_view(pending_).substr(recordStart));
  if ((mask & IN_IGNORED) && dir.empty()) {
    watches_.erase(it);
    if (journal_) journal_->ended(watch);
  }
  if (pending_.size() - batchStart_ + kRecordReserve > server_.limits().maxFrame) {
    closeBatch();
    batchStart_ = proto::beginEvents(pending_);
    batchCount_ = 0;
    batchOpen_ = true;
  }
}

void Session::endShedding() {
  shedding_ = false;
  log::warn("{}: caught up; {} events were dropped on {} watches, which are told to re-read", description_, shed_,
            overflowed_.size());
  for (SubscriptionId watch : overflowed_) queueEvent(watch, IN_Q_OVERFLOW, 0, {}, {}, 0);
  overflowed_.clear();
  shed_ = 0;
  closeBatch();
}

void Session::closeBatch() {
  if (!batchOpen_) return;
  batchOpen_ = false;
  if (batchCount_ == 0) {
    pending_.resize(batchStart_);
  } else {
    proto::finishEvents(pending_, batchStart_, batchCount_);
  }
}

void Session::flush() {
  if (closed_) return;
  closeBatch();
  if (parked_) {
    pending_.clear();  // nobody to send to; the journal has the events
    return;
  }
  if (!shedding_ && pending_.size() > server_.limits().maxQueuedBytesPerClient) {
    // Never block the loop and never grow without bound: drop this client's
    // events from here on and tell it which watches lost some once it has
    // caught up, so that it re-reads them.
    log::warn("{}: client is not reading ({} bytes queued); dropping its events until it catches up", description_,
              pending_.size());
    shedding_ = true;
  }
  startWrite();
}

void Session::send(const proto::Message& message) {
  if (closed_) return;
  closeBatch();
  proto::encode(message, pending_);
  startWrite();
}

void Session::startWrite() {
  if (writeInFlight_ || batchOpen_ || pending_.empty() || parked_) return;
  writing_.swap(pending_);
  pending_.clear();
  writeInFlight_ = true;
  transport_->asyncWrite(asio::buffer(writing_), [self = shared_from_this()](std::error_code ec, size_t) {
    self->writeInFlight_ = false;
    self->writing_.clear();
    if (self->parked_) return;
    if (ec) {
      if (!self->closed_) log::info("{}: write failed: {}", self->description_, ec.message());
      self->closeAfterWrite_ = false;
      if (!self->closed_) self->lost();
      self->transport_->close();
      return;
    }
    if (self->closeAfterWrite_ && self->pending_.empty()) {
      self->transport_->close();
      return;
    }
    if (self->shedding_ && self->pending_.empty()) self->endShedding();
    self->startWrite();
    if (self->closed_ || self->unwritten() > self->server_.limits().maxUnreadReplies / 2) return;
    if (self->walkWaitsForWrite_) {
      self->walkWaitsForWrite_ = false;
      self->postWalk();
    }
    if (self->readPaused_) {
      self->readPaused_ = false;
      self->takeFrames();  // those already received first
      self->readMore();
    }
  });
}

void Session::close(int code, const std::string& why) {
  if (closed_) return;
  closed_ = true;
  parked_ = false;
  handshakeTimer_.cancel();
  graceTimer_.cancel();
  watchdog_.cancel();
  dropSnapshots();
  if (!countedAs_.empty()) server_.leaveClient(countedAs_);
  countedAs_.clear();
  releaseWatches();
  if (code != 0) {
    batchOpen_ = false;
    pending_.clear();
    proto::encode(proto::Fatal{code, why}, pending_);
    closeAfterWrite_ = true;
    if (!writeInFlight_) {
      // Bypass startWrite's closed_ checks: this is the last frame.
      writing_.swap(pending_);
      pending_.clear();
      writeInFlight_ = true;
      transport_->asyncWrite(asio::buffer(writing_), [self = shared_from_this()](std::error_code, size_t) {
        self->writeInFlight_ = false;
        self->transport_->close();
      });
    }
  } else {
    transport_->close();
  }
  log::info("{}: closed", description_);
  server_.sessionClosed(*this);
}

void Session::releaseWatches() {
  for (auto& [watch, seq] : watches_) server_.unwatch(watch);
  watches_.clear();
}

void Session::lost() {
  if (attached_ && server_.resumable() && server_.limits().resumeGraceSeconds > 0 && !watches_.empty()) {
    park();
  } else {
    close();
  }
}

void Session::park() {
  if (!server_.park(*this)) {
    close();
    return;
  }
  parked_ = true;
  dropSnapshots();                                           // nobody to send them to; the client asks again
  if (!countedAs_.empty()) server_.leaveClient(countedAs_);  // no connection: counted among the parked
  countedAs_.clear();
  handshakeTimer_.cancel();
  transport_->close();
  batchOpen_ = false;
  pending_.clear();
  const int grace = server_.limits().resumeGraceSeconds;
  log::info("{}: connection lost; keeping its {} watches and their events for {} s in case it comes back", description_,
            watches_.size(), grace);
  graceTimer_.expires_after(std::chrono::seconds(grace));
  graceTimer_.async_wait([self = shared_from_this()](std::error_code ec) {
    if (ec || !self->parked_ || self->closed_) return;
    log::info("{}: did not come back within {} s; its watches end", self->description_,
              self->server_.limits().resumeGraceSeconds);
    self->close();
  });
}

void Session::handOver() {
  closed_ = true;
  parked_ = false;
  handshakeTimer_.cancel();
  graceTimer_.cancel();
  watchdog_.cancel();
  dropSnapshots();
  if (!countedAs_.empty()) server_.leaveClient(countedAs_);
  countedAs_.clear();
  transport_->close();
  log::info("{}: taken over by a new connection", description_);
  server_.sessionClosed(*this);
}

void Session::onAttach(const proto::Attach& attach) {
  proto::Reply reply;
  reply.requestId = attach.requestId;
  const std::pair<uint64_t, uint64_t> token{attach.token[0], attach.token[1]};
  // A token names a session of this identity only: another user who learnt
  // or guessed it gets the answer of an unknown token (no oracle either).
  Session* old = server_.sessionByToken(owner_, token);
  if (old == nullptr && attach.instanceId != 0 && server_.tokenHeldByAnother(owner_, token)) {
    log::warn("{}: Attach with the token of another user's session; answered as an unknown token", description_);
  }
  std::unordered_map<SubscriptionId, uint64_t> replayFrom;
  std::vector<SubscriptionId> gaps;
  if (!(capabilities_ & proto::kCapResume)) {
    reply.status = EOPNOTSUPP;
    reply.message = "resuming was not negotiated";
    send(reply);
    return;
  }
  if (attached_ || !watches_.empty()) {
    reply.status = EINVAL;
    reply.message = "Attach must be the first request, and come once";
    send(reply);
    return;
  }
  if (attach.instanceId == 0) {
    if (old != nullptr) {
      reply.status = EEXIST;
      reply.message = "a session with this token exists";
      send(reply);
      return;
    }
    reply.message = "new session";
  } else if (attach.instanceId != server_.instanceId()) {
    reply.status = ESTALE;
    reply.message = "rnotifyd started again since (its watches and events are gone); this is a new session";
  } else if (old == nullptr || old == this) {
    reply.status = ENOENT;
    reply.message = "the session is gone (it ended, or did not come back within " +
                    std::to_string(server_.limits().resumeGraceSeconds) + " s); this is a new session";
  } else {
    takeOver(*old, attach.positions, &replayFrom, &gaps);
    reply.message = "resumed " + std::to_string(watches_.size()) + " watches";
    if (!gaps.empty()) reply.message += ", " + std::to_string(gaps.size()) + " of them with a gap";
  }
  attached_ = true;
  token_[0] = attach.token[0];
  token_[1] = attach.token[1];
  if (!journal_) {
    journal_ = std::make_unique<Journal>(server_.limits().journalRecords, server_.limits().journalBytes,
                                         &server_.journalBudget());
  }
  server_.registerToken(*this);
  send(reply);
  if (attach.instanceId != 0 && reply.status == 0) {
    replay(replayFrom);
    for (SubscriptionId watch : gaps) queueEvent(watch, IN_Q_OVERFLOW, 0, {}, {}, 0);
    closeBatch();
    startWrite();
  }
}

void Session::takeOver(Session& old, const std::vector<proto::WatchPosition>& positions,
                       std::unordered_map<SubscriptionId, uint64_t>* replayFrom, std::vector<SubscriptionId>* gaps) {
  watches_ = std::move(old.watches_);
  old.watches_.clear();
  declared_ = std::move(old.declared_);
  journal_ = std::move(old.journal_);
  std::unordered_set<SubscriptionId> shed = std::move(old.overflowed_);
  old.handOver();
  for (auto& [id, state] : watches_) server_.retarget(id, *this);
  std::unordered_map<SubscriptionId, uint64_t> wanted;
  for (const proto::WatchPosition& p : positions) wanted[p.watchId] = p.seq;
  uint64_t replayed = 0;
  for (auto it = watches_.begin(); it != watches_.end();) {
    auto want = wanted.find(it->first);
    if (want == wanted.end()) {  // the client no longer wants it
      server_.unwatch(it->first);
      journal_->forget(it->first);
      it = watches_.erase(it);
      continue;
    }
    if (want->second > it->second.seq || !journal_->canReplay(it->first, want->second) || shed.count(it->first)) {
      gaps->push_back(it->first);
    } else {
      (*replayFrom)[it->first] = want->second;
      replayed += it->second.seq - want->second;
    }
    ++it;
  }
  // Watches that ended (IN_IGNORED) while the client was away: their last
  // events are still to be replayed.
  for (const auto& [id, seq] : wanted) {
    if (!watches_.count(id) && journal_->canReplay(id, seq)) (*replayFrom)[id] = seq;
  }
  log::info("{}: resumed a session of {} watches: {} events to replay, {} watches with a gap", description_,
            watches_.size(), replayed, gaps->size());
}

void Session::replay(const std::unordered_map<SubscriptionId, uint64_t>& replayFrom) {
  closeBatch();
  size_t start = proto::beginEvents(pending_);
  uint32_t count = 0;
  journal_->forEach([&](uint32_t watch, uint64_t seq, std::string_view record) {
    auto it = replayFrom.find(watch);
    if (it == replayFrom.end() || seq <= it->second) return;
    if (pending_.size() - start + record.size() > server_.limits().maxFrame) {
      proto::finishEvents(pending_, start, count);
      start = proto::beginEvents(pending_);
      count = 0;
    }
    pending_.append(record);
    ++count;
  });
  if (count == 0) {
    pending_.resize(start);
  } else {
    proto::finishEvents(pending_, start, count);
  }
}

void Session::onAuth(const proto::Auth& auth) {
  proto::Reply reply;
  reply.requestId = auth.requestId;
  if (!(capabilities_ & proto::kCapAuth) || !transport_->awaitsToken()) {
    reply.status = EINVAL;
    reply.message = "this connection needs no token (it is authenticated, or not by token)";
    send(reply);
    return;
  }
  // Guessing is throttled per address: its token is not even checked while
  // it waits, so no guess is learnt from during that time.
  const std::string address = peerAddress();
  const auto now = std::chrono::steady_clock::now();
  if (auto wait = server_.authThrottle().blockedFor(address, now); wait.count() > 0) {
    log::warn("{}: token authentication refused without a check: too many failures from {} (for {} s more)",
              description_, address, wait.count());
    reply.status = EAGAIN;
    reply.message =
        "too many failed authentications from " + address + "; try again in " + std::to_string(wait.count()) + " s";
    send(reply);
    close(EAGAIN, reply.message);
    return;
  }
  if (Status s = transport_->authenticate(auth.user, auth.token); !s) {
    // The log says why (no such file, wrong token); the client learns only
    // that it failed, and gets no second try on this connection.
    log::warn("{}: token authentication as '{}' failed: {}", description_, auth.user, s.error().message);
    server_.authThrottle().failed(address, now);
    reply.status = EACCES;
    reply.message = "wrong user or token";
    send(reply);
    close(EACCES, "authentication failed");
    return;
  }
  handshakeTimer_.cancel();
  adoptPeer();
  if (!identify()) return;  // counted as this user from now on
  log::info("{}: authenticated by token", description_);
  reply.message = "authenticated as " + auth.user;
  send(reply);
}

void Session::onAck(const proto::Ack& ack) {
  if (!journal_) return;
  // Only watches this session holds, or that ended with records still
  // here: the journal keeps no state for any other id a client names.
  const uint64_t before = ignoredAcks_;
  for (const proto::WatchPosition& p : ack.positions) {
    if (!journal_->acknowledge(p.watchId, p.seq)) ++ignoredAcks_;
  }
  if (before == 0 && ignoredAcks_ > 0) {
    log::info("{}: acknowledged events of watches it does not hold; ignored (not logged again)", description_);
  }
}

}  // namespace rnotify
