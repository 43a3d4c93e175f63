#include "transport/connection.h"

#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstring>

#include "common/deadline.h"
#include "common/log.h"
#include "common/write_no_signal.h"

namespace rnotify {
namespace {

using Clock = std::chrono::steady_clock;

// How long the frames waiting to be written may wait for the peer to make
// room: a peer that reads nothing for that long is treated as gone (its
// connection fails, and the watches it served are told). And how much may
// wait at all: a server that takes in less than the application asks for
// (watch requests by the hundred thousand into a stopped server).
constexpr auto kWriteStall = std::chrono::milliseconds(5000);
constexpr size_t kMaxOutboxBytes = size_t{16} << 20;

std::string lastLine(const std::string& text) {
  std::string t = text;
  while (!t.empty() && (t.back() == '\n' || t.back() == '\r')) t.pop_back();
  size_t nl = t.rfind('\n');
  return nl == std::string::npos ? t : t.substr(nl + 1);
}

// The token in token_file, which only its owner may read (like an ssh key).
}  // namespace

Connection::~Connection() {
  // Leaving on purpose: the server need not keep anything for a comeback.
  // Written if there is room now; what still waits is lost with the
  // connection (the server then keeps the session for its grace period).
  if (!alive_ || !welcomed_) return;
  try {
    (void)send(proto::Fatal{0, "the client closed the connection"});
  } catch (...) {  // NOLINT(bugprone-empty-catch): out of memory while leaving; the close says enough
  }
}

int Connection::readFd() const { return agent_ ? agent_->output() : socket_.get(); }

int Connection::writeFd() const { return agent_ ? agent_->input() : socket_.get(); }

Status Connection::send(const proto::Message& message) {
  if (!alive_) return failure_;
  const auto now = Clock::now();
  if (!wantsWrite()) writeProgress_ = now;  // the stall is counted from here
  proto::encode(message, outbox_);
  lastSent_ = now;
  if (!flush()) return failure_;
  if (outbox_.size() - outboxWritten_ > kMaxOutboxBytes) {
    fail(Error{ENOBUFS, description_ + " takes in less than is asked of it: " + std::to_string(kMaxOutboxBytes >> 20) +
                            " MiB of frames wait to be written"});
    return failure_;
  }
  return {};
}

Result<size_t> Connection::writeSome(std::string_view data) {
  if (tls_) return tls_->writeSome(data);
  for (;;) {
    ssize_t n = writeNoSignal(writeFd(), data.data(), data.size());
    if (n >= 0) return static_cast<size_t>(n);
    if (errno == EINTR) continue;
    if (errno == EAGAIN) return Error{EAGAIN, "no room yet"};
    return Error::fromErrno(errno, "writing to " + description_);
  }
}

bool Connection::flush() {
  while (alive_ && wantsWrite()) {
    auto n = writeSome(std::string_view(outbox_).substr(outboxWritten_));
    if (!n) {
      if (n.error().code != EAGAIN) fail(n.error());
      break;
    }
    outboxWritten_ += *n;
    writeProgress_ = Clock::now();
  }
  // TLS may have sent part of a record it has not counted yet: progress too.
  if (tls_ && tls_->bytesSent() != tlsSent_) {
    tlsSent_ = tls_->bytesSent();
    writeProgress_ = Clock::now();
  }
  if (outboxWritten_ == outbox_.size()) {
    outbox_.clear();
    outboxWritten_ = 0;
    if (outbox_.capacity() > (size_t{1} << 20)) outbox_.shrink_to_fit();  // a burst is over
  } else if (outboxWritten_ >= (size_t{64} << 10) && outboxWritten_ >= outbox_.size() / 2) {
    outbox_.erase(0, outboxWritten_);  // TLS allows the bytes to move (SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER)
    outboxWritten_ = 0;
  }
  return alive_;
}

bool Connection::writeStalled() {
  if (!flush() || !wantsWrite()) return !alive_;
  if (Clock::now() - writeProgress_ < kWriteStall) return false;
  fail(Error{ETIMEDOUT, description_ + " read nothing for " +
                            std::to_string(std::chrono::duration_cast<std::chrono::seconds>(kWriteStall).count()) +
                            " s while " + std::to_string(outbox_.size() - outboxWritten_) +
                            " bytes waited to be written"});
  return true;
}

bool Connection::waitReady(int timeoutMs) {
  if (tls_ && tls_->pending()) return true;  // decrypted or buffered bytes the socket no longer shows
  return pollWith(readFd(), POLLIN, timeoutMs) > 0;
}

int Connection::pollWith(int fd, short events, int timeoutMs) const {
  struct pollfd p[2] = {{fd, events, 0}, {writeFd(), POLLOUT, 0}};
  nfds_t count = 1;
  if (wantsWrite()) {
    if (writeFd() == fd) {
      p[0].events |= POLLOUT;
    } else {
      count = 2;
    }
  }
  int n;
  do {
    n = ::poll(p, count, timeoutMs);
  } while (n < 0 && errno == EINTR);
  return n;
}

Result<size_t> Connection::readSome(char* buffer, size_t size) {
  if (tls_) return tls_->read(buffer, size);
  for (;;) {
    ssize_t n = ::read(readFd(), buffer, size);
    if (n >= 0) return static_cast<size_t>(n);
    if (errno == EINTR) continue;
    if (errno == EAGAIN) return Error{EAGAIN, "no data yet"};
    return Error::fromErrno(errno, "reading from " + description_);
  }
}

Error Connection::explainAgentExit() {
  int code = agent_->reap(2000);
  std::string err = agent_->stderrText();
  std::string said = lastLine(err);
  if (code == 127 || err.find("not found") != std::string::npos ||
      err.find("No such file or directory") != std::string::npos) {
    return Error{ENOSYS, "rnotifyd is not installed on " + destination_ + ": ssh ran '" + agentCommand_ +
                             "' and got \"" + said +
                             "\". Install rnotify on the server (rnotifyd must be on the PATH of a "
                             "non-interactive ssh session), or give its location with agent = \"/path/to/rnotifyd "
                             "--stdio\" in ~/.config/rnotify/config.toml or the RNOTIFY_AGENT environment variable"};
  }
  if (code == 255) {
    return Error{EHOSTUNREACH, "cannot reach " + destination_ + " with ssh: " + (said.empty() ? "ssh failed" : said)};
  }
  return Error{ECONNRESET, description_ + " ended (exit status " + std::to_string(code) + ")" +
                               (said.empty() ? std::string() : ": " + said)};
}

void Connection::fail(Error error) {
  if (!alive_) return;
  alive_ = false;
  failure_ = std::move(error);
}

bool Connection::pump() {
  if (!flush()) return false;  // what waited to be written first: the socket may have room now
  char buffer[64 * 1024];
  for (;;) {
    auto n = readSome(buffer, sizeof buffer);
    if (n && *n > 0) {
      lastReceived_ = Clock::now();
      reader_.feed(std::string_view(buffer, *n));
      for (;;) {
        auto next = reader_.next();
        if (!next) {
          fail(Error{next.error().code, description_ + " sent a malformed frame: " + next.error().message});
          return false;
        }
        if (!next->has_value()) break;
        handle(**next);
        if (!alive_) return false;
      }
      // A short read of a pipe or socket took all there was: a read that
      // would say EAGAIN is saved (the descriptor is polled level-triggered,
      // so what comes later wakes the loop). TLS may hold a decrypted record
      // back: it reads on until EAGAIN.
      if (!tls_ && *n < sizeof buffer) {
        acknowledge(false);
        return alive_;
      }
      continue;
    }
    if (!n && n.error().code == EAGAIN) {
      acknowledge(false);
      return alive_;
    }
    if (n) {
      if (agent_ && !welcomed_) {
        fail(explainAgentExit());
      } else if (agent_) {
        int code = agent_->reap(2000);
        std::string said = lastLine(agent_->stderrText());
        fail(Error{ECONNRESET, "lost the connection to " + description_ + " (exit status " + std::to_string(code) +
                                   (said.empty() ? std::string() : ": " + said) +
                                   "); changes made elsewhere are no longer reported for its watches"});
      } else {
        fail(Error{
            ECONNRESET,
            description_ + " closed the connection; changes made elsewhere are no longer reported for its watches"});
      }
    } else {
      fail(n.error());
    }
    return false;
  }
}

void Connection::handle(proto::Message& message) {
  if (auto* events = std::get_if<proto::Events>(&message)) {
    for (const Event& event : events->events) {
      received_[event.watch] = event.seq;
      unacked_[event.watch] = event.seq;
    }
    unackedEvents_ += events->events.size();
    if (listingStarted_ || holding_) {
      // After the listing: the caller applies these once it has taken the
      // listing in, not to the state the listing replaces.
      deferred_.push_back(std::move(*events));
    } else if (onEvents_) {
      onEvents_(*this, *events);
    }
  } else if (auto* entries = std::get_if<proto::Entries>(&message)) {
    if (entries->requestId == listingRequest_) listingStarted_ = true;
    if (std::find(unwanted_.begin(), unwanted_.end(), entries->requestId) == unwanted_.end()) {
      auto& list = listings_[entries->requestId];
      for (proto::TreeEntry& e : entries->entries) list.push_back(std::move(e));
    }
  } else if (auto* reply = std::get_if<proto::Reply>(&message); reply && reply->requestId == 0) {
    // A notice, not an answer (no request has id 0): the server ended a
    // watch on its own, e.g. because this user may no longer read it. Its
    // IN_IGNORED comes as an event; the reason is for the user.
    log::warn("{}: {}", description_, reply->message);
  } else if (auto* reply = std::get_if<proto::Reply>(&message)) {
    if (reply->requestId == listingRequest_) listingStarted_ = true;
    if (auto it = std::find(unwanted_.begin(), unwanted_.end(), reply->requestId); it != unwanted_.end()) {
      unwanted_.erase(it);
      auto late = std::find(lateWatches_.begin(), lateWatches_.end(), reply->requestId);
      if (late != lateWatches_.end()) {
        lateWatches_.erase(late);
        if (reply->status == 0 && reply->watchId != 0) {
          proto::Unwatch unwatch;
          unwatch.watchId = reply->watchId;
          requestNoWait(unwatch);
        }
      }
    } else if (pending_.count(reply->requestId)) {
      complete(reply->requestId, std::move(*reply));
    } else {
      replies_[reply->requestId] = std::move(*reply);
    }
  } else if (auto* welcome = std::get_if<proto::Welcome>(&message)) {
    welcome_ = std::move(*welcome);
    welcomed_ = true;
    reader_.setMaxFrame(std::max(welcome_.maxFrame, proto::kDefaultMaxFrame));
  } else if (auto* ping = std::get_if<proto::Ping>(&message)) {
    (void)send(proto::Pong{ping->token});  // a failure marks the connection dead
  } else if (auto* fatal = std::get_if<proto::Fatal>(&message)) {
    fail(Error{fatal->code, description_ + " ended the connection: " + fatal->message});
  } else if (!std::holds_alternative<proto::Pong>(message)) {
    fail(Error{EPROTO, description_ + " sent a frame only a client may send"});
  }
}

uint32_t Connection::assignRequestId(proto::Message& message) {
  uint32_t id = nextRequestId_++;
  if (auto* w = std::get_if<proto::Watch>(&message)) w->requestId = id;
  if (auto* u = std::get_if<proto::Unwatch>(&message)) u->requestId = id;
  if (auto* d = std::get_if<proto::Declare>(&message)) d->requestId = id;
  if (auto* p = std::get_if<proto::Snapshot>(&message)) p->requestId = id;
  if (auto* a = std::get_if<proto::Attach>(&message)) a->requestId = id;
  if (auto* a = std::get_if<proto::Auth>(&message)) a->requestId = id;
  return id;
}

Result<std::vector<proto::TreeEntry>> Connection::snapshot(uint32_t watchId, int timeoutMs) {
  proto::Snapshot request;
  request.watchId = watchId;
  if (listingPending()) return Error{EBUSY, "another listing is under way on " + description_};
  uint32_t id = nextRequestId_;  // request() assigns this one
  listingRequest_ = id;
  listingStarted_ = false;
  auto reply = this->request(request, timeoutMs);
  listingRequest_ = 0;
  listingStarted_ = false;
  std::vector<proto::TreeEntry> entries;
  if (auto it = listings_.find(id); it != listings_.end()) {
    entries = std::move(it->second);
    listings_.erase(it);
  }
  if (!reply) return reply.error();
  if (reply->status != 0) return Error{reply->status, description_ + ": " + reply->message};
  return entries;
}

void Connection::acknowledge(bool force) {
  // Acknowledgements let the server drop what it kept for a replay; one small
  // frame per 256 events, or per second of trickle, is enough for that.
  if (!(welcome_.capabilities & proto::kCapResume) || unacked_.empty() || !alive_) return;
  auto now = Clock::now();
  if (!force && unackedEvents_ < 256 && now - lastAck_ < std::chrono::seconds(1)) return;
  proto::Ack ack;
  for (const auto& [watch, seq] : unacked_) ack.positions.push_back({watch, seq});
  unacked_.clear();
  unackedEvents_ = 0;
  lastAck_ = now;
  (void)send(ack);  // a failure marks the connection dead
}

Result<proto::Reply> Connection::attach(const proto::Attach& attach, int timeoutMs) {
  holding_ = true;
  return request(attach, timeoutMs);
}

void Connection::releaseDeferred() {
  holding_ = false;
  if (listingRequest_ == 0) listingStarted_ = false;
  while (!deferred_.empty()) {
    proto::Events events = std::move(deferred_.front());
    deferred_.pop_front();
    if (onEvents_) onEvents_(*this, events);
  }
}

Result<proto::Reply> Connection::request(proto::Message message, int timeoutMs) {
  if (!alive_) return failure_;
  uint32_t id = assignRequestId(message);
  if (Status s = send(message); !s) return s.error();
  auto deadline = Clock::now() + std::chrono::milliseconds(timeoutMs);
  for (;;) {
    if (auto it = replies_.find(id); it != replies_.end()) {
      proto::Reply reply = std::move(it->second);
      replies_.erase(it);
      return reply;
    }
    if (!alive_ || writeStalled()) return failure_;
    const int left = remainingMs(deadline);
    if (left == 0) {
      unwanted_.push_back(id);
      if (std::holds_alternative<proto::Watch>(message)) lateWatches_.push_back(id);
      return Error{ETIMEDOUT, description_ + " did not answer within " + std::to_string(timeoutMs / 1000) + " s"};
    }
    // While frames wait for room, the stall is judged at least every 100 ms.
    if (waitReady(wantsWrite() ? std::min(left, 100) : left)) pump();
  }
}

bool Connection::keepAlive(std::chrono::milliseconds interval) {
  if (!pump()) return false;  // what arrived meanwhile counts
  if (writeStalled()) return false;
  if (!welcomed_ || !(welcome_.capabilities & proto::kCapKeepalive)) return true;
  const auto now = Clock::now();
  if (now - lastReceived_ >= 3 * interval) {
    const auto silent = std::chrono::duration_cast<std::chrono::milliseconds>(now - lastReceived_).count();
    fail(Error{ETIMEDOUT, "lost the connection to " + description_ + ": nothing arrived for " + std::to_string(silent) +
                              " ms, not even the answer to a ping"});
    return false;
  }
  if (now - lastSent_ >= interval) (void)send(proto::Ping{nextPing_++});  // a failure marks it dead
  return alive_;
}

void Connection::requestAsync(proto::Message message, int timeoutMs, ReplyHandler handler) {
  const uint32_t id = assignRequestId(message);
  pending_[id] = Pending{Clock::now() + std::chrono::milliseconds(timeoutMs),
                         timeoutMs,
                         std::move(handler),
                         {},
                         std::holds_alternative<proto::Watch>(message)};
  if (!alive_) return;  // runCompleted() tells the handler
  (void)send(message);  // a failure marks the connection dead: the same
}

void Connection::attachAsync(const proto::Attach& attach, int timeoutMs, ReplyHandler handler) {
  holding_ = true;
  requestAsync(attach, timeoutMs, std::move(handler));
}

void Connection::snapshotAsync(uint32_t watchId, int timeoutMs, ListingHandler handler) {
  if (listingPending()) {
    // One at a time: told at once (from runCompleted()), nothing sent.
    const uint32_t id = nextRequestId_++;
    completed_.push_back(Completed{id, Pending{{}, timeoutMs, {}, std::move(handler), false},
                                   Error{EBUSY, "another listing is under way on " + description_}});
    return;
  }
  proto::Snapshot request;
  request.watchId = watchId;
  listingRequest_ = nextRequestId_;  // requestAsync() assigns this one
  listingStarted_ = false;
  requestAsync(request, timeoutMs, {});
  pending_[listingRequest_].onListing = std::move(handler);
}

void Connection::complete(uint32_t id, Result<proto::Reply> reply) {
  auto it = pending_.find(id);
  if (it == pending_.end()) return;
  completed_.push_back(Completed{id, std::move(it->second), std::move(reply)});
  pending_.erase(it);
}

void Connection::runCompleted() {
  (void)writeStalled();  // a failure ends what is pending, below
  auto now = Clock::now();
  // An answer already here is not given up for a deadline that passed while
  // nobody read (the application was busy): read first.
  if (alive_ &&
      std::any_of(pending_.begin(), pending_.end(), [&](const auto& p) { return p.second.deadline <= now; })) {
    (void)pump();  // a failure is handled below
    now = Clock::now();
  }
  std::vector<uint32_t> ended;
  for (const auto& [id, pending] : pending_) {
    if (!alive_ || pending.deadline <= now) ended.push_back(id);
  }
  for (uint32_t id : ended) {
    if (alive_) {
      unwanted_.push_back(id);  // its Reply, should it come, is dropped
      if (pending_.at(id).watch) lateWatches_.push_back(id);
      const int seconds = pending_.at(id).timeoutMs / 1000;
      complete(id, Error{ETIMEDOUT, description_ + " did not answer within " + std::to_string(seconds) + " s"});
    } else {
      complete(id, failure_);
    }
  }
  while (!completed_.empty()) {
    Completed done = std::move(completed_.front());
    completed_.pop_front();
    if (done.pending.onListing) {
      // Events after the listing stay held (listingStarted_ until the
      // handler releases them); its entries go to the handler.
      if (done.id == listingRequest_) listingRequest_ = 0;
      std::vector<proto::TreeEntry> entries;
      if (auto it = listings_.find(done.id); it != listings_.end()) {
        entries = std::move(it->second);
        listings_.erase(it);
      }
      Result<std::vector<proto::TreeEntry>> listing = std::move(entries);
      if (!done.reply) {
        listing = done.reply.error();
      } else if (done.reply->status != 0) {
        listing = Error{done.reply->status, description_ + ": " + done.reply->message};
      }
      if (done.pending.onListing) done.pending.onListing(std::move(listing));
      continue;
    }
    if (done.pending.onReply) done.pending.onReply(std::move(done.reply));
  }
}

Clock::time_point Connection::nextDue() const {
  if (!completed_.empty() || (!alive_ && !pending_.empty())) return Clock::time_point::min();
  Clock::time_point due = Clock::time_point::max();
  for (const auto& [id, pending] : pending_) due = std::min(due, pending.deadline);
  if (wantsWrite()) due = std::min(due, writeProgress_ + kWriteStall);
  return due;
}

void Connection::cancelPending() {
  for (const auto& [id, pending] : pending_) unwanted_.push_back(id);
  listingRequest_ = 0;
  listingStarted_ = false;
  holding_ = false;
  deferred_.clear();
  pending_.clear();
  completed_.clear();
}

void Connection::requestNoWait(proto::Message message) {
  if (!alive_) return;
  unwanted_.push_back(assignRequestId(message));
  (void)send(message);  // a failure marks the connection dead
}

}  // namespace rnotify
