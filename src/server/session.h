// Session: one client connection on the server. It reads frames, answers the
// handshake and WATCH/UNWATCH requests, and streams that client's events in
// batches: every event queued during one drain of the kernel goes out in one
// EVENTS frame and one write, and a write is started as soon as the drain
// ends, so batching never holds an event back while the kernel queue is empty.
#pragma once

#include <chrono>
#include <cstdint>
#include <deque>
#include <memory>
#include <optional>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "event/event.h"
#include "proto/codec.h"
#include "server/confined_tree.h"
#include "server/credentials.h"
#include "server/journal.h"
#include "server/transport.h"
#include "server/tree_walk.h"
#include "watch/watcher.h"

namespace rnotify {

class Server;

class Session : public std::enable_shared_from_this<Session> {
 public:
  Session(Server& server, std::unique_ptr<Transport> transport, uint64_t id);
  ~Session();

  void start();
  // Closes the connection (after sending Fatal, if code != 0) and releases its watches.
  void close(int code = 0, const std::string& why = {});
  // Called by the server's event sink, once per event for a watch of this session.
  // pid: who caused it (0 unknown), for watches that asked for the origin.
  // dirIno: the inode of the event's directory where the backend knows it
  // (0 otherwise): an event is judged by its directory's path only while
  // that path still names that directory.
  void queueEvent(SubscriptionId watch, uint32_t mask, uint32_t cookie, std::string_view dir, std::string_view name,
                  int pid, uint64_t dirIno = 0);
  // Sends what has been queued. Called after each drain of the watcher.
  void flush();
  bool closed() const { return closed_; }
  // Waiting for its client to come back (kCapResume): the connection is gone,
  // the watches and the journal are kept until the grace period ends.
  bool parked() const { return parked_; }
  bool attached() const { return attached_; }
  std::pair<uint64_t, uint64_t> token() const { return {token_[0], token_[1]}; }
  const Journal* journal() const { return journal_.get(); }
  uint64_t id() const { return id_; }
  const std::string& describe() const { return description_; }
  // Who the client is, for the bounds per user and the ownership of its
  // session token: "uid N (user)", or the address of an unauthenticated one.
  const std::string& owner() const { return owner_; }
  // Revocation: a change of permissions or place at or above a watch's root
  // (mask: what the guard saw). If the client may no longer reach the root
  // from its export, the watch ends: IN_IGNORED, and a notice saying why.
  // In two steps: suspendForRecheck holds the watch's events back at once
  // (it may be called inside a drain of the watcher); the re-check, posted
  // to run after the drain, ends the watch (the events held are dropped) or
  // resumes it: the events held are then judged and sent as if they came
  // now, or, if more than kMaxHeld were held on this connection or one's
  // directory was renamed meanwhile, replaced by IN_Q_OVERFLOW so that the
  // client re-reads the watch.
  void suspendForRecheck(SubscriptionId watch, uint32_t mask);
  // `ending`: the watch's IN_IGNORED came first (it is not guarded again).
  void recheckAccess(SubscriptionId watch, bool ending = false);
  // Lets go of descriptors that hold deleted directories (see
  // ConfinedTree::releaseIfDeleted); with a name, only of watch roots that
  // had that name (a directory of that name was just removed).
  void releaseDeletedRoots(std::string_view name = {});

 private:
  void readMore();
  void onBytes(size_t n);
  // Handles the frames received one at a time, and stops (leaving the rest
  // unread) while the answers not yet written exceed maxUnreadReplies.
  void takeFrames();
  size_t unwritten() const { return pending_.size() + writing_.size(); }
  // Sets owner_ from the transport's peer and counts this connection for
  // its user; false (and closed) past maxClientsPerUser.
  bool identify();
  // The peer's address without the port, for Auth throttling ("uid N" for a unix peer).
  std::string peerAddress() const;
  // The peer's IP address alone ("192.0.2.7", "::1"); "" for a unix peer.
  std::string peerHost() const;
  // Whether an event by a process of this origin key is this client's own.
  bool isOwn(const std::string& key) const;
  void handle(proto::Message& message);
  void onHello(const proto::Hello& hello);
  void onWatch(const proto::Watch& watch);
  void onUnwatch(const proto::Unwatch& unwatch);
  void onDeclare(const proto::Declare& declare);
  void onSnapshot(const proto::Snapshot& snapshot);
  void onAttach(const proto::Attach& attach);
  void onAck(const proto::Ack& ack);
  void onAuth(const proto::Auth& auth);
  // The transport's authenticated user: its credentials, for acting as it.
  void adoptPeer();
  // The connection broke: park (if the session can be resumed) or close.
  void lost();
  void park();
  // A new connection took this session's watches over.
  void handOver();
  // What close() and handOver() share: marked closed, timers and snapshots
  // stopped, the client's slot given back (the watches are the caller's).
  void stopServing();
  // Takes the watches of `old` over; *replayFrom receives, per watch the
  // client named, the seq after which to replay; *gaps the watches whose
  // events are no longer all in the journal.
  void takeOver(Session& old, const std::vector<proto::WatchPosition>& positions,
                std::unordered_map<SubscriptionId, uint64_t>* replayFrom, std::vector<SubscriptionId>* gaps);
  void replay(const std::unordered_map<SubscriptionId, uint64_t>& replayFrom);
  void revoke(SubscriptionId watch, const std::string& why);
  void send(const proto::Message& message);
  void closeBatch();
  void startWrite();
  void releaseWatches();

  Server& server_;
  std::unique_ptr<Transport> transport_;
  uint64_t id_;
  std::string description_;
  proto::FrameReader reader_;
  char readBuffer_[64 * 1024];
  bool handshakeDone_ = false;
  bool closed_ = false;
  bool closeAfterWrite_ = false;

  struct WatchState {
    uint64_t seq = 0;    // last sequence number sent
    uint32_t flags = 0;  // proto::WatchFlag
    std::string root;    // the watched server path, as resolved (for messages)
    uint32_t mask = 0;   // the events the client asked for (the kernel may report more: see actAs_)
    // The watched tree, known by its root's identity: every filesystem
    // access for this watch (listability, stat, listings) goes through it.
    std::unique_ptr<ConfinedTree> tree;
    // Revocation: held back until re-checked (see suspendForRecheck).
    bool suspended = false;
    struct Held {
      uint32_t mask, cookie;
      int pid;
      uint64_t dirIno;
      std::string dir, name;
    };
    std::vector<Held> held;    // while suspended, for the re-check's verdict
    bool heldBack = false;     // events were dropped while suspended
    uint32_t recheckMask = 0;  // what the guard saw since the last re-check
    // For kWatchStat: directories opened as the client, and whether it may
    // search each (see ConfinedTree::openDirAs).
    struct StatDir {
      UniqueFd fd;
      bool searchable = false;
      struct stat checked = {};                      // mode and owner when checked: others mean check again
      std::chrono::steady_clock::time_point used{};  // the root's: last attachment (kRootHold)
    };
    std::unordered_map<std::string, StatDir> dirs;
  };
  // The directory a Snapshot lists, opened as the client (-1 and errno).
  int openListingRoot(const WatchState& state);
  // Drops the events a suspended watch holds: IN_Q_OVERFLOW after the re-check.
  void holdBack(WatchState& state);
  // Room for one more held event on this connection?
  bool canHold();
  // Snapshots (session_snapshot.cc): one listing at a time, a chunk per
  // turn of the loop, paused while the output is over the cap.
  struct SnapshotRequest {
    uint32_t requestId = 0;
    uint32_t watchId = 0;
  };
  std::deque<SnapshotRequest> snapshots_;  // waiting, at most maxQueuedSnapshots
  std::unique_ptr<TreeWalk> walk_;
  SnapshotRequest walking_;
  uint64_t walkEntries_ = 0;
  bool walkPosted_ = false;
  bool walkWaitsForWrite_ = false;
  void startSnapshot();
  void postWalk();
  void walkChunk();
  void finishSnapshot();
  void endSnapshot(int status, const std::string& message);
  void dropSnapshots();  // the session ends: every walk stops, its descriptors close
  std::unordered_map<SubscriptionId, WatchState> watches_;
  uint64_t capabilities_ = 0;                 // in force after the handshake
  std::unordered_set<std::string> declared_;  // origins that are this client's own
  // The Watch flags that ask for origin attribution.
  static constexpr uint32_t kOriginFlags = proto::kWatchOrigin | proto::kWatchOthersOnly;
  // Authorization: the client's credentials when the daemon runs as another
  // user. Events in directories it may not list are not sent; the answer
  // per (watch, directory) is cached until a directory's permissions may
  // have changed (an ATTRIB or a move of a directory, any guard event).
  std::optional<Credentials> actAs_;
  const Credentials* client() const { return actAs_ ? &*actAs_ : nullptr; }
  // ConfinedTree::access per directory of a watch, by watch id and the
  // directory's path in it. Not by server path alone: two watches of one
  // session may have the same path while watching two directories (one was
  // moved away and another made in its place); they would take turns
  // invalidating each other's answer, checking again for every event.
  struct Access {
    uint8_t bits = 0;  // ConfinedTree::kList, kSearch
    uint64_t ino = 0;  // of the directory the path named when checked (0: it did not open)
  };
  std::unordered_map<std::string, Access> access_;
  std::string dirKey_;  // scratch
  // kMoved: the path no longer names the event's directory (dirIno), which
  // has moved since the event: the event cannot be judged by its path.
  static constexpr uint8_t kMoved = 0x80;
  uint8_t accessTo(SubscriptionId watch, WatchState& state, std::string_view dir, uint64_t dirIno);
  void dropStatDirs();
  void dropListability();
  void attachStat(WatchState& state, std::string_view dir, std::string_view name);
  // The roots opened for stat attachments are kept while events come
  // (opening one again as the client for each event cost about 10 us of
  // latency), each let go kRootHold after its own watch last used it: a
  // descriptor held on a root defers its IN_DELETE_SELF until it is closed.
  static constexpr std::chrono::milliseconds kRootHold{50};
  asio::steady_timer rootRelease_;
  bool rootReleaseArmed_ = false;
  void armRootRelease(std::chrono::steady_clock::duration after);
  // Lets go of the roots unused for kRootHold; when the next one is due.
  std::chrono::steady_clock::time_point releaseIdleRoots();
  // Lets go of the root kept for `state`'s stat attachments, if any.
  void dropRoot(WatchState& state);
  // Descriptors of directories kept for stat attachments, in all watches
  // (counted from the last drop; at most kMaxStatDirs are kept).
  size_t statDirs_ = 0;
  // Events held by suspended watches, all watches together (see
  // suspendForRecheck): past this, a watch's are dropped for IN_Q_OVERFLOW.
  static constexpr size_t kMaxHeld = 1024;
  size_t held_ = 0;
  bool replaying_ = false;  // sending what a re-check let through
  // Backpressure: past the queued-bytes limit, events are dropped instead of
  // queued, and the watches that lost some get IN_Q_OVERFLOW (the client
  // then re-reads them) once the queue has been written out.
  bool shedding_ = false;
  std::unordered_set<SubscriptionId> overflowed_;
  uint64_t shed_ = 0;
  void endShedding();
  std::string pending_;  // frames waiting to be written
  std::string writing_;  // the buffer of the write in flight
  bool writeInFlight_ = false;
  bool batchOpen_ = false;
  size_t batchStart_ = 0;
  uint32_t batchCount_ = 0;
  Event scratch_;  // reused so that queueing an event allocates nothing once warm
  asio::steady_timer handshakeTimer_;
  // Resume (kCapResume).
  bool attached_ = false;
  bool parked_ = false;
  uint64_t token_[2] = {0, 0};
  std::unique_ptr<Journal> journal_;
  asio::steady_timer graceTimer_;
  // Limits on slow or silent senders, and on requests whose answers are not read.
  asio::steady_timer watchdog_;
  std::chrono::steady_clock::time_point lastReceived_;
  std::chrono::steady_clock::time_point partialSince_{};  // a frame begun and not finished, since
  bool readPaused_ = false;
  bool readInFlight_ = false;
  bool watchLimitLogged_ = false;
  std::chrono::steady_clock::time_point unwatchedSince_;  // without any watch since (idle-unwatched timeout)
  void armWatchdog();
  // Identity and bounds (issue 15).
  std::string owner_;
  std::string countedAs_;  // the per-user count this connection is in ("": none)
  uint64_t ignoredAcks_ = 0;
};

}  // namespace rnotify
