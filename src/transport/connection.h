// Connection: the client's side of one protocol connection to an rnotifyd,
// either through an agent process (ssh ... rnotifyd --stdio) or a unix, TCP
// or TLS socket (TLS: see client/tls_channel.h; a token, if configured, is
// sent in proto::Auth right after the handshake). A request is either waited
// for (request(), with a deadline, as inotify_add_watch waits) or answered
// later (requestAsync(): its handler runs from runCompleted(), which an event
// loop calls); events are handed to the events handler when the owner pumps
// the connection.
#pragma once

#include <sys/epoll.h>
#include <sys/socket.h>

#include <chrono>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "common/result.h"
#include "common/unique_fd.h"
#include "mounts/tls_settings.h"
#include "proto/codec.h"
#include "transport/agent_process.h"
#include "transport/tls_channel.h"

namespace rnotify {

class Connection {
 public:
  using EventsHandler = std::function<void(Connection&, proto::Events&)>;

  // destination names the server in messages ("root@host"); agentCommand is
  // the remote command, for the "not installed" message. keepalive: the
  // caller promises to call keepAlive() (proto::kCapKeepalive), and the
  // server may then take a silent client as gone.
  static Result<std::unique_ptr<Connection>> overAgent(const std::vector<std::string>& argv,
                                                       const std::string& destination, const std::string& agentCommand,
                                                       int timeoutMs, bool keepalive = false);
  // endpoint: "unix:PATH", "tcp:HOST:PORT" or "tls:HOST:PORT"; tls: the
  // [[server]] entry's TLS settings (tls: endpoints need them).
  static Result<std::unique_ptr<Connection>> overSocket(const std::string& endpoint, int timeoutMs);
  static Result<std::unique_ptr<Connection>> overSocket(const std::string& endpoint, const TlsSettings& tls,
                                                        int timeoutMs, bool keepalive = false);

  // Establishment without waiting, for an event loop: start*() spawns the
  // agent or starts the connect and returns at once; each advance() does
  // what can be done now (connect result, TLS handshake step, Hello/Welcome,
  // token) and returns where it stands; wanted() says what to wait for on
  // pollFd() before the next advance(). The deadline is the caller's
  // (timeoutError() words it). overAgent/overSocket are start + finish.
  enum class Phase { kConnecting, kTls, kHello, kAuth, kReady, kFailed };
  static Result<std::unique_ptr<Connection>> startAgent(const std::vector<std::string>& argv,
                                                        const std::string& destination, const std::string& agentCommand,
                                                        bool keepalive);
  static Result<std::unique_ptr<Connection>> startSocket(const std::string& endpoint, const TlsSettings& tls,
                                                         bool keepalive);
  Phase advance();
  Phase phase() const { return phase_; }
  int pollFd() const { return readFd(); }
  uint32_t wanted() const {
    uint32_t events = wantWrite_ ? uint32_t{EPOLLOUT} : uint32_t{EPOLLIN};
    // Hello or Auth not all written yet (a socket; an agent's Hello always
    // fits into its new pipe, whose descriptor is not the one polled here).
    if (wantsWrite() && writeFd() == pollFd()) events |= EPOLLOUT;
    return events;
  }
  // Waits (poll) and advances until ready, failed, or timeoutMs passed.
  Status finish(int timeoutMs);
  // What an establishment that did not end in time ran into.
  Error timeoutError(int timeoutMs) const;
  // Gives up an establishment at once: an agent is killed (SIGKILL), not
  // asked to leave and waited for.
  void abandon() {
    if (agent_) agent_->kill();
    fail(Error{ECANCELED, "abandoned"});
  }

  ~Connection();

  void setEventsHandler(EventsHandler handler) { onEvents_ = std::move(handler); }
  // Names this client's session (proto::Attach, capability resume): a new
  // one, or after a reconnection the one to resume. Events that arrive after
  // it (a replay) are held until releaseDeferred().
  Result<proto::Reply> attach(const proto::Attach& attach, int timeoutMs);
  // The last event received for a watch (0: none), for a later Attach.
  uint64_t received(uint32_t watchId) const {
    auto it = received_.find(watchId);
    return it == received_.end() ? 0 : it->second;
  }
  // Gives the connection up without telling the server (as a broken link
  // would): the server keeps the session for a comeback.
  void drop(Error why) { fail(std::move(why)); }
  // A resumed watch: where the previous connection left it.
  void setReceived(uint32_t watchId, uint64_t seq) { received_[watchId] = seq; }
  int readFd() const;
  // Frames wait for the peer to make room: wait for EPOLLOUT on writeFd()
  // (the agent's stdin; else the socket, readFd() too) and pump() then.
  // Nothing is ever waited for inside send(): a peer that takes nothing
  // for 5 s (judged by runCompleted(), keepAlive() and request()), or lets
  // 16 MiB pile up (send()), fails the connection.
  bool wantsWrite() const { return alive_ && outboxWritten_ < outbox_.size(); }
  int writeFd() const;
  const std::string& description() const { return description_; }
  bool alive() const { return alive_; }
  const Error& failure() const { return failure_; }
  const proto::Welcome& welcome() const { return welcome_; }

  // Sends Watch, Unwatch or Declare and waits for its Reply.
  Result<proto::Reply> request(proto::Message message, int timeoutMs);
  // Lists what a watch covers now (proto::Snapshot). Events sent before the
  // listing go to the events handler as always; events that come after it
  // are held until releaseDeferred(), so that the caller can first take the
  // listing in. EBUSY while a snapshotAsync() is under way.
  Result<std::vector<proto::TreeEntry>> snapshot(uint32_t watchId, int timeoutMs);
  void releaseDeferred();
  // Sends Watch, Unwatch or Declare; its Reply is dropped when it arrives.
  void requestNoWait(proto::Message message);

  // Requests answered without waiting: the message goes out now, and the
  // handler gets its Reply, or why there is none (the connection failed, or
  // timeoutMs passed: ETIMEDOUT, and a late Reply is dropped), from a later
  // runCompleted(), never from inside pump() or request(). A handler may
  // make further requests; it must not destroy the connection.
  using ReplyHandler = std::function<void(Result<proto::Reply>)>;
  using ListingHandler = std::function<void(Result<std::vector<proto::TreeEntry>>)>;
  void requestAsync(proto::Message message, int timeoutMs, ReplyHandler handler);
  // attach() without waiting: events are held from now until releaseDeferred().
  void attachAsync(const proto::Attach& attach, int timeoutMs, ReplyHandler handler);
  // snapshot() without waiting; one listing at a time (listingPending()).
  // Events that come after the listing are held until releaseDeferred(),
  // which the handler calls once it has taken the listing in.
  void snapshotAsync(uint32_t watchId, int timeoutMs, ListingHandler handler);
  bool listingPending() const { return listingRequest_ != 0; }
  // When runCompleted() next has something to do: a handler to run (now:
  // time_point::min()), the earliest deadline, or time_point::max().
  std::chrono::steady_clock::time_point nextDue() const;
  // Runs the handlers of the requests answered, failed or past their
  // deadline since the last call. Call it after pump() and now and then
  // (deadlines are checked here).
  void runCompleted();
  // Forgets the handlers of the requests under way, without running them
  // (their replies are dropped): the owner has given the connection up.
  void cancelPending();
  // Reads and handles everything available without blocking. False once the
  // connection has failed; failure() then says why.
  bool pump();
  // Liveness (proto::kCapKeepalive), called about every interval: reads what
  // is there, sends Ping if nothing was sent for an interval (the server
  // answers at once), and fails the connection (ETIMEDOUT) when nothing at
  // all has arrived for three intervals: a silent partition, a frozen
  // server. False once the connection has failed.
  bool keepAlive(std::chrono::milliseconds interval);

 private:
  Connection() = default;
  // Tries the next resolved address: connected, under way, or all failed.
  void connectNext();
  void afterConnect();
  void sendHello();
  // Queues the frame and writes what the peer takes now (flush()); the
  // rest waits for wantsWrite()'s caller. An error only once the connection
  // has failed.
  Status send(const proto::Message& message);
  // Writes what waits, as far as the peer takes it without waiting. False
  // once the connection has failed.
  bool flush();
  // Frames have waited for room for the stall limit (5 s) with nothing
  // taken: the connection fails (ETIMEDOUT). True once it has failed.
  bool writeStalled();
  Result<size_t> writeSome(std::string_view data);
  // read(2) on the connection, through TLS if any: bytes, 0 at the end, or an error (EAGAIN: nothing now).
  Result<size_t> readSome(char* buffer, size_t size);
  // Waits until something can be read, or written when frames wait.
  bool waitReady(int timeoutMs);
  // poll(2) of fd for `events`, and of writeFd() for room while frames wait
  // (one entry when they are the same descriptor); EINTR is retried.
  int pollWith(int fd, short events, int timeoutMs) const;
  void fail(Error error);
  void handle(proto::Message& message);
  uint32_t assignRequestId(proto::Message& message);
  void acknowledge(bool force);
  Error explainAgentExit();

  Phase phase_ = Phase::kConnecting;
  bool wantWrite_ = false;
  std::vector<std::pair<sockaddr_storage, socklen_t>> addresses_;  // still to try (sockets)
  int connectErrno_ = EHOSTUNREACH;                                // the last address's failure
  std::string endpoint_;
  std::string tlsHost_;
  TlsSettings tlsSettings_;
  bool secure_ = false;
  uint32_t authRequest_ = 0;

  std::optional<AgentProcess> agent_;
  UniqueFd socket_;
  std::unique_ptr<TlsChannel> tls_;  // on socket_, for tls: endpoints
  std::string tokenUser_;            // with token_: proto::Auth's fields
  std::string token_;
  std::string description_;
  std::string destination_;
  std::string agentCommand_;
  proto::FrameReader reader_;
  proto::Welcome welcome_;
  bool welcomed_ = false;
  bool alive_ = true;
  Error failure_;
  EventsHandler onEvents_;
  uint32_t nextRequestId_ = 1;
  std::map<uint32_t, proto::Reply> replies_;
  struct Pending {
    std::chrono::steady_clock::time_point deadline;
    int timeoutMs = 0;
    ReplyHandler onReply;      // or
    ListingHandler onListing;  // for a Snapshot
    bool watch = false;        // a proto::Watch
  };
  // Watch requests given up at their deadline: if the server made the watch
  // after all, it is removed when its late Reply comes.
  std::vector<uint32_t> lateWatches_;
  std::map<uint32_t, Pending> pending_;  // requestAsync()'s, by request id
  struct Completed {
    uint32_t id = 0;
    Pending pending;
    Result<proto::Reply> reply{Error{}};
  };
  std::deque<Completed> completed_;  // answered, for runCompleted()
  void complete(uint32_t id, Result<proto::Reply> reply);
  std::map<uint32_t, std::vector<proto::TreeEntry>> listings_;  // Entries by request, until its Reply
  uint32_t listingRequest_ = 0;                                 // the Snapshot being awaited
  bool listingStarted_ = false;  // its Entries or Reply arrived: later events are deferred
  std::deque<proto::Events> deferred_;
  std::vector<uint32_t> unwanted_;         // requests whose replies nobody waits for
  bool holding_ = false;                   // after an Attach: events wait for releaseDeferred()
  std::map<uint32_t, uint64_t> received_;  // per watch, the last seq received
  std::map<uint32_t, uint64_t> unacked_;   // ... of those not acknowledged yet
  size_t unackedEvents_ = 0;
  std::chrono::steady_clock::time_point lastAck_{};
  std::chrono::steady_clock::time_point lastReceived_{};  // of any byte (keepAlive)
  std::chrono::steady_clock::time_point lastSent_{};      // of any frame
  std::string outbox_;                                    // frames not written yet, from outboxWritten_
  size_t outboxWritten_ = 0;
  uint64_t tlsSent_ = 0;                                   // TlsChannel::bytesSent() at the last flush
  std::chrono::steady_clock::time_point writeProgress_{};  // the last byte written, or the first queued
  uint64_t nextPing_ = 1;
  bool keepalive_ = false;  // announces kCapKeepalive
};

}  // namespace rnotify
