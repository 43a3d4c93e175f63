// Client: the client core behind rnotify.h. It decides per watch where events
// come from (MountResolver, then the mount's fallbackOrder(): local inotify;
// an rnotifyd reached over ssh for sshfs mounts or a configured endpoint for
// NFS/SMB; else a WatchSource: SMB2 change notify, SFTP or mount scans),
// keeps one Connection per server, and merges the local kernel's events on
// the path (what this host did) with the remote ones (IN_REMOTE) into one
// ordered queue, through Dedup. Everything runs in the caller's thread,
// inside the API's calls; the pollable fd is an epoll set of the inotify fd,
// every connection (reconnections too, while they are made), the sources'
// descriptors, timerfds, and an eventfd raised while events wait. What it
// takes from the machine (configuration, mounts, ssh, connections, fallback
// sources) comes from its Environment (environment.h).
// client.cc: watches, the local kernel, the queue and next();
// client_openings.cc: connections to rnotifyd made (and made again);
// client_connections.cc: which connection, its requests, its events, losses;
// client_jobs.cc: what an open connection does for its watches, without
// blocking; client_sources.cc: the other sources.
#pragma once

#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>

#include "client/dedup.h"
#include "client/environment.h"
#include "client/nfs_activity.h"
#include "client/watch_source.h"
#include "common/result.h"
#include "common/unique_fd.h"
#include "mounts/config.h"
#include "mounts/sshfs_target.h"
#include "poll/tree_view.h"
#include "transport/connection.h"
#include "watch/watcher.h"

namespace rnotify {

struct ClientEvent {
  int wd = 0;
  uint32_t mask = 0;
  uint32_t cookie = 0;
  uint64_t seq = 0;
  std::string path;  // like inotifywait's %w
  std::string name;
};

class Client final : public EventSink {
 public:
  // environment: where configuration, mounts, connections and fallback
  // sources come from (nullptr: systemEnvironment()).
  static Result<std::unique_ptr<Client>> create(std::unique_ptr<Environment> environment = nullptr);
  ~Client() override;

  int fd() const { return epoll_.get(); }
  Result<int> addWatch(const std::string& path, uint32_t mask, unsigned flags);
  Status removeWatch(int wd);
  // 1: *out filled; 0: timeout; error: EINTR or a failure.
  Result<int> next(ClientEvent* out, int timeoutMs);
  const char* watchSource(int wd) const;
  uint64_t echoesAbsorbed() const { return dedup_ ? dedup_->absorbed() + dedup_->paired() : 0; }

  void onEvent(SubscriptionId subscription, uint32_t mask, uint32_t cookie, std::string_view dir, std::string_view name,
               int pid) override;

 private:
  struct Watch {
    int wd = 0;
    std::string displayBase;  // "dir/" for a directory, "file" for a file
    bool isDirectory = false;
    uint32_t mask = 0;
    std::string localRoot;     // the real path watched, for stat
    SubscriptionId local = 0;  // 0: none
    Connection* remote = nullptr;
    uint32_t remoteId = 0;
    std::string source;
    // How the remote watch was made, to make it again after a reconnection.
    std::string connectionKey;  // "" when the watch never had a remote source
    std::string remotePath;
    bool exportPath = false;  // remotePath as an NFS/SMB client names it (no remote_root): rnotifyd maps it
    bool fileServer = false;  // an NFS or SMB mount: the server's read-side events are its own serving
    std::string nfsMount;     // an NFS mount's mount point: its counters say whether this host is busy on it
    int ownOpenings = 0;      // OPENs of the directory by its source, still to come from the local kernel
    std::string originKey;
    bool recursive = false;
    bool waitingForServer = false;   // lost, or not made yet: a connection, or asking again, is due
    bool attaching = false;          // RNOTIFY_NONBLOCK: its server's first connection, or its answer, is under way
    std::unique_ptr<TreeView> view;  // what the server's tree looked like, for resync
    bool resyncWanted = false;
    bool afterListing = false;   // handing over the events that came after a listing
    bool untilListing = false;   // reconnected: the coming listing stands for the events before it
    bool gapBeforeView = false;  // lost before the first listing came: nothing to compare the next one with
    Dedup::Strategy strategy = Dedup::Strategy::kNone;
    uint64_t lastSeq = 0;  // of the server's events, for resuming after a reconnection
    // The remote source when no rnotifyd serves the watch: a fallback
    // (until the server is reachable again, when waitingForServer) or for
    // good (RNOTIFY_POLL, no server for the mount, an smb:// URL).
    std::unique_ptr<WatchSource> fallback;
    bool pollOnly = false;          // RNOTIFY_POLL: the scans are the only source
    bool fallbackFailing = false;   // its last round failed (told once)
    bool handingOver = false;       // the server serves it: the fallback's last round is under way
    std::string sourceOnceStarted;  // `source` when the fallback has started (it says "connecting" until then)
    // Not taken by its connection for a passing reason (no answer in time,
    // a limit): asked again then, on the same connection (askAgainDue).
    std::chrono::steady_clock::time_point askAgain = std::chrono::steady_clock::time_point::max();
    int askedAgain = 0;
    // Why each source tried before the current one is not used, in order.
    std::vector<std::string> skipped;
  };
  // What a connection has been told about this host (proto::Declare).
  struct Declared {
    std::vector<std::string> origins;
  };

  Client() = default;
  Status init();
  // *key: the connection's key, also when it could not be made.
  // wait: false (RNOTIFY_NONBLOCK) starts a missing connection in next()'s
  // epoll set and says EINPROGRESS instead of waiting for it.
  Result<Connection*> connectionFor(const struct ResolvedPath& resolved, std::string* remotePath, std::string* why,
                                    std::string* key, bool wait);
  // connectionFor an sshfs mount (its agent over the mount's ssh) and for
  // an NFS or SMB mount (the configured [[server]]).
  Result<Connection*> agentConnection(const ResolvedPath& resolved, std::string* remotePath, std::string* key,
                                      bool wait);
  Result<Connection*> configuredConnection(const ResolvedPath& resolved, std::string* remotePath, std::string* why,
                                           std::string* key, bool wait);
  // An sshfs mount's ssh settings, found once (sshTargets_).
  Result<const SshTarget*> sshTargetOf(const MountInfo& mount);
  Status loadConfigOnce();
  // The parts of addWatch: the remote side by RNOTIFY_POLL, or by the
  // mount's list of sources; then the watch kept, its baseline taken.
  Status watchByScans(Watch& watch);
  Status chooseRemote(Watch& watch, bool wait);
  // chooseRemote when the server could not be reached: the next source and
  // a later attempt, or the error when it is the user's to fix.
  Status serverUnreachable(Watch& watch, const struct ResolvedPath& resolved, const std::string& key,
                           const Error& error);
  // wait: false (RNOTIFY_NONBLOCK) takes a scan's baseline in next() when
  // its source has started, not before returning.
  Result<int> store(Watch&& watch, const std::string& path, bool wait);
  // The first round of a watch's scans: changes from then on are reported.
  // With `wait`, until the source has started (or given way to the next).
  Result<std::vector<Event>> takeBaseline(Watch& watch, bool wait);
  void ensureDedup();
  // Gives `watch` the first source of its mount's fallbackOrder() after
  // `after` that starts; `why`: the reason `after` does not serve it. Tells
  // it once per mount.
  void startFallback(Watch& watch, const struct ResolvedPath& resolved, const std::string& why,
                     SourceKind after = SourceKind::kServer);
  // One candidate: the source, or nullptr and *why.
  std::unique_ptr<WatchSource> tryFallback(Watch& watch, const struct ResolvedPath& resolved, SourceKind kind,
                                           std::string* why);
  PollScanner::Options pollOptions(const struct ResolvedPath& resolved) const;
  // What libsmbclient needs for a cifs mount: the share, and credentials.
  bool smbRequest(const ResolvedPath& resolved, SourceRequest* request, std::string* why);
  Result<int> addSmbUrlWatch(const std::string& url, uint32_t mask, bool recursive);
  void registerSource(Watch& watch);
  // Takes what the watch's source has (its descriptor was readable, or its
  // deadline passed) and delivers it; a source that ended gives way to the
  // next of the list.
  void runSource(int wd);
  // The source failed (error()): the next of the list (its baseline is the
  // caller's to take); an overflow when it had served.
  void replaceFailedSource(Watch& watch);
  void runDueSources();
  // One take(); for a scan through the mount, the local kernel's reports of
  // the scan's own reads are dropped. The watch may be gone afterwards.
  Result<std::vector<Event>> takeFromSource(Watch& watch);
  // Drains the local kernel, dropping the watch's read-side reports of
  // directories: a scan's own listings. The watch may be gone afterwards.
  void dropOwnReads(Watch& watch);
  void deliverFromSource(int wd, std::vector<Event>& events);
  // The server serves the watch again: a scan's last round (when it has
  // completed: at once through the mount, later over SFTP), IN_RESTORED,
  // then no source.
  void handOver(Watch& watch);
  void deliverLastRound(Watch& watch, Result<std::vector<Event>>& events);
  // Starts a connection (Connection::startAgent or startSocket).
  using Opener = std::function<Result<std::unique_ptr<Connection>>()>;
  // Opens a connection and waits for it (a watch being added waits for its
  // server, as inotify_add_watch waits for the kernel); with wait false,
  // schedules its first attempt at once (retryConnections) and says
  // EINPROGRESS.
  Result<Connection*> connect(const std::string& key, const Opener& open, bool wait);
  // The first attempt of key's first connection failed: its waiting
  // watches fall back (startFallback) while the server is tried again.
  void firstAttemptFailed(const std::string& key, const Error& why);
  // Takes an established connection in: session (waited for, or the
  // connection's first job), events, epoll, keepalive.
  Result<Connection*> adopt(const std::string& key, std::unique_ptr<Connection> opened, bool wait);
  // Forgets the connection kept for key (dead: its loss was handled).
  void forgetConnection(const std::string& key);
  void onRemoteEvents(Connection& connection, struct proto::Events& events);
  void connectionLost(Connection& connection);
  void push(Watch& watch, uint32_t mask, uint32_t cookie, uint64_t seq, std::string_view dir, std::string_view name);
  void emit(int wd, uint32_t mask, uint32_t cookie, uint64_t seq, std::string_view dir, std::string_view name);
  // A request waited for (wait: inside addWatch, as inotify_add_watch
  // waits) or answered later (from next(): then runs from
  // Connection::runCompleted()).
  void ask(Connection& connection, proto::Message message, int timeoutMs, bool wait, Connection::ReplyHandler then);
  // The server's answer to a watch, with the de-duplication in force.
  struct RemoteAnswer {
    Result<proto::Reply> reply{Error{}};
    Dedup::Strategy strategy = Dedup::Strategy::kNone;
    std::string note;  // why a weaker de-duplication than asked for
  };
  using AnswerHandler = std::function<void(RemoteAnswer)>;
  // Subscribes on the server with the best de-duplication both sides allow.
  void watchRemote(Connection& connection, const Watch& watch, bool wait, AnswerHandler then);
  void watchWithoutOrigin(Connection& connection, proto::Watch request, const std::string& why, bool wait,
                          AnswerHandler then);
  void declare(Connection& connection, const std::string& originKey, bool wait, std::function<void(bool)> then);
  void armReleaseTimer();
  // Makes the remote side of a watch, waiting for the server's answer.
  // Error: the server refused the watch.
  Status attachRemote(Watch& watch, Connection& connection, std::string* note);
  // Takes the server's answer to a watch in. Error: the server refused it.
  Status applyAnswer(Watch& watch, Connection& connection, RemoteAnswer& answer);
  // Asks for a listing (the first, or after a gap: compared with the view,
  // its differences reported), as a job of the watch's connection.
  void resync(Watch& watch);
  void takeListing(Connection& connection, int wd, Result<std::vector<proto::TreeEntry>> entries);
  void runResyncs();
  // A watch its open connection did not take for a passing reason is asked
  // for again after a backoff (scheduleAskAgain), while the connection stays.
  void scheduleAskAgain(Watch& watch);
  void askAgainDue();
  std::set<int> askingAgain_;  // watches with an askAgain time
  // Starts a new attempt for each lost connection that is due. Attempts
  // proceed in next()'s epoll set (advanceOpening) and never block it.
  void retryConnections();
  void advanceOpening(std::string key);  // by value: the opening goes
  const std::string* openingKey(const Connection* connection) const;
  void expireOpenings();
  void retryFailed(const std::string& key, const Error& why);
  // The session of a connection opened in next()'s epoll set is made
  // (kSession): the connection serves its key from now on.
  void sessionMade(const std::string& key, Connection& connection, const Status& made);
  // A lost connection is back: resume or re-make the watches it served.
  void restoreWatches(const std::string& key, Connection* connection);
  // A waiting watch's answer from the server (kAttach), for a watch whose
  // server's first connection it did not wait for (Watch::attaching:
  // attachedFirst) or one made again after a loss (reattached).
  void watchAnswered(Connection& connection, int wd, RemoteAnswer& answer);
  void attachedFirst(Watch& watch, Connection& connection, const Status& attached, const std::string& note);
  void reattached(Watch& watch, Connection& connection, const Status& attached, const std::string& note);

  // What a connection does for the watches after it is open, without
  // blocking next(): one job at a time per connection, each a request and
  // what its answer leads to.
  struct Job {
    enum class Kind { kSession, kAttach, kListing } kind = Kind::kAttach;
    int wd = 0;
  };
  struct Jobs {
    std::deque<Job> queue;
    bool running = false;
    bool starting = false;  // inside runJobs (a job that ends at once does not recurse)
    Job current;            // while running
    std::string key;
  };
  void enqueue(Connection& connection, Job job, bool first = false);
  void runJobs(Connection& connection);
  void startJob(Connection& connection, const Job& job);
  void jobDone(Connection& connection);
  // Runs the answered requests' continuations on every connection.
  void runCompletions();
  std::chrono::milliseconds backoff(int attempt);
  void endWatch(Watch& watch);
  // One descriptor of epoll_ that next() found ready (by its tag).
  void dispatch(const struct epoll_event& ready);
  void updateReadiness();
  // Liveness of every open connection (Connection::keepAlive); a silent
  // one is lost like a broken one.
  void keepConnectionsAlive();
  void armKeepalive();
  // Connections with frames waiting for room are in epoll_ for EPOLLOUT,
  // the others not: called before epoll_wait and before an API call returns.
  void watchWrites();

  std::unique_ptr<Environment> env_;
  ClientTiming timing_;
  UniqueFd epoll_;
  UniqueFd ready_;    // eventfd: readable while queue_ is not empty when an API call returns
  UniqueFd release_;  // timerfd: when the next held local report is due
  // What release_ was last set to (armReleaseTimer); none before the first
  // setting and once it has been read.
  std::optional<std::chrono::steady_clock::time_point> releaseArmed_;
  UniqueFd keepalive_;  // timerfd: every keepalive_ms while connections are open (see keepConnectionsAlive)
  bool keepaliveArmed_ = false;
  bool readySignalled_ = false;
  std::unique_ptr<Watcher> local_;
  std::map<std::string, std::unique_ptr<Connection>> connections_;
  // The ssh settings of each sshfs mount (mount point + source), found once:
  // finding them scans /proc.
  std::map<std::string, SshTarget> sshTargets_;
  std::map<int, Watch> watches_;
  std::map<SubscriptionId, int> byLocal_;
  std::map<std::pair<Connection*, uint32_t>, int> byRemote_;
  std::deque<ClientEvent> queue_;
  std::optional<Config> config_;
  std::unique_ptr<Dedup> dedup_;
  NfsActivity nfsActivity_;  // NFS watches: may a server report still get its local twin?
  std::map<Connection*, Declared> declared_;
  std::map<std::string, std::string> originKeys_;  // sshfs mount key -> its ssh connection as the server sees it
  std::map<std::string, Opener> openers_;          // how to open each connection again
  // Reconnections under way: started, not yet ready (by key).
  struct Opening {
    std::unique_ptr<Connection> connection;
    std::chrono::steady_clock::time_point deadline;
    int timeoutMs = 0;
  };
  std::map<std::string, Opening> openings_;
  struct Retry {
    int attempt = 0;
    std::chrono::steady_clock::time_point due;
    std::string why;            // the last failure
    int code = 0;               // of the last failure (EHOSTUNREACH: ssh itself could not connect)
    bool firstAttempt = false;  // made by connect(wait = false); no attempt has ended yet
  };
  // Key's first connection is under way: its first attempt has not ended
  // (its watches may all be gone meanwhile: a watch added now still joins),
  // or watches wait for a later attempt (Watch::attaching, after the
  // connection was lost before it took them). They have no fallback yet.
  bool firstUnderWay(const std::string& key) const;
  // The connection key of the agent on an sshfs mount's server.
  std::string agentKey(const SshTarget& target) const;
  std::set<std::string> fallbackTold_;  // mounts whose fallback to polling was told
  std::set<int> scanned_;  // the watches whose source has a deadline: only they are looked at for due rounds
  int scanningWd_ = 0;     // the watch whose source's own directory reads are being drained
  std::map<std::string, Retry> retries_;  // connections to open (again), by key
  // Each connection's session on its server (proto::Attach), so that after a
  // reconnection the server replays what was missed instead of a re-read.
  struct Ticket {
    uint64_t token[2] = {0, 0};
    uint64_t instanceId = 0;  // of the server the session was made with
  };
  std::map<std::string, Ticket> tickets_;
  std::map<Connection*, std::set<uint32_t>> resumed_;  // watch ids the server resumed
  std::set<const Connection*> lost_;                   // connections whose loss was handled (connectionLost)
  std::set<const Connection*> writing_;                // waiting in epoll_ for room to write (watchWrites)
  // Names this client's session on a new connection (proto::Attach):
  // resumes what the previous connection left, or starts afresh.
  void attachSession(const std::string& key, Connection& connection, bool wait, std::function<void(Status)> then);
  std::map<Connection*, Jobs> jobs_;
  std::set<std::string> sessions_;    // keys whose new connection's session is under way (kSession)
  uint32_t nextCookie_ = 0x40000000;  // for synthesized moves; far from the kernels' numbers
  int nextWd_ = 1;
};

}  // namespace rnotify
