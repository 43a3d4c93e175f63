// Session: one client of rnotifyd. Its life (handshake, identity, the
// watchdog, close) and its requests (Hello, Watch, Unwatch, Declare, Auth,
// Ack). What it may see: session_access.cc; events out: session_events.cc;
// resumption: session_resume.cc; snapshots: session_snapshot.cc.
#include "server/session.h"

#include <sys/inotify.h>

#include <algorithm>
#include <vector>

#include "common/log.h"
#include "common/proc_net.h"
#include "proto/wire.h"
#include "server/server.h"

namespace rnotify {
Session::Session(Server& server, std::unique_ptr<Transport> transport, uint64_t id)
    : server_(server),
      transport_(std::move(transport)),
      id_(id),
      description_("client " + std::to_string(id) + " (" + transport_->describe() + ")"),
      reader_(proto::kMinMaxFrame),  // a Hello must fit in 4 KiB; the full limit applies after it
      rootRelease_(server.io()),
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
  uint64_t offered = proto::kCapStat | proto::kCapResync | proto::kCapExports |
                     (server_.offersAttribution() ? uint64_t{proto::kCapOrigin} | proto::kCapSmbPeer : 0) |
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
  } else if ((watch.flags & proto::kWatchExportPath) && !(capabilities_ & proto::kCapExports)) {
    reply.status = EINVAL;
    reply.message = "export paths were not negotiated";
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
    auto id =
        server_.watch(*this, watch.path, kernelMask, watch.flags & proto::kWatchRecursive,
                      (watch.flags & kOriginFlags) != 0, (watch.flags & proto::kWatchExportPath) != 0, &tree, client());
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
    std::string list;
    for (const std::string& origin : declare.origins) {
      // "smb peer": the SMB client is the host this connection comes from,
      // however its address was translated on the way (smbd sees the same
      // one). Kept as it is and matched against the connection's address of
      // the moment (isOwn): a session resumed from elsewhere has another.
      if (origin == proto::kSmbPeerOrigin && peerHost().empty()) {
        reply.status = EOPNOTSUPP;
        reply.message = "'" + origin + "' needs a TCP connection: this one's address is not known";
        break;
      }
      list +=
          (list.empty() ? "" : ", ") + (origin == proto::kSmbPeerOrigin ? origin + " (" + peerHost() + ")" : origin);
    }
    if (reply.status == 0) {
      declared_.clear();
      declared_.insert(declare.origins.begin(), declare.origins.end());
      log::info("{}: its own connections: {}", description_, list.empty() ? "none" : list);
    }
  }
  send(reply);
}

std::string Session::peerHost() const {
  if (auto peer = transport_->peer(); peer && peer->method == Peer::Method::kUnixSocket) return {};
  // "tls 192.0.2.7:50412", "tcp [::1]:50412"
  const std::string text = transport_->describe();
  const size_t space = text.find(' ');
  const size_t colon = text.rfind(':');
  if (space == std::string::npos || colon == std::string::npos || colon <= space) return {};
  std::string_view address(text.data() + space + 1, colon - space - 1);
  if (address.size() >= 2 && address.front() == '[' && address.back() == ']') {
    address = address.substr(1, address.size() - 2);
  }
  return canonicalAddress(address);
}

bool Session::isOwn(const std::string& key) const {
  if (key.empty()) return false;
  if (declared_.count(key) != 0) return true;
  // "smb <address> <port>": an smbd serving the host of an "smb peer"
  // declaration, at the address this connection comes from now.
  if (key.compare(0, 4, "smb ") != 0 || declared_.count(proto::kSmbPeerOrigin) == 0) return false;
  const size_t port = key.rfind(' ');
  return port > 4 && key.compare(4, port - 4, peerHost()) == 0;
}

void Session::stopServing() {
  closed_ = true;
  parked_ = false;
  handshakeTimer_.cancel();
  graceTimer_.cancel();
  watchdog_.cancel();
  rootRelease_.cancel();
  dropSnapshots();
  if (!countedAs_.empty()) server_.leaveClient(countedAs_);
  countedAs_.clear();
}

void Session::close(int code, const std::string& why) {
  if (closed_) return;
  stopServing();
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
