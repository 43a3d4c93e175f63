// The client core's work on an open connection (client.h), done in
// next()'s epoll set without waiting: one job at a time per connection
// (the session, a watch made for the first time or again after a loss, a
// listing), each a request whose answer Connection::runCompleted() hands
// to its continuation here.
#include <algorithm>
#include <cerrno>
#include <string>
#include <utility>
#include <vector>

#include "client/client.h"
#include "client/client_internal.h"
#include "common/log.h"

namespace rnotify {

using namespace client_detail;

namespace {

// The server's answers that stand (the path, the permission, what it can
// watch); any other failure is passing and worth asking again.
bool refusedForGood(int code) {
  return code == ENOSYS || code == EOPNOTSUPP || code == EACCES || code == EPERM || code == ENOENT || code == ENOTDIR ||
         code == ELOOP || code == ENAMETOOLONG || code == EINVAL;
}

}  // namespace

void Client::resync(Watch& watch) {
  watch.resyncWanted = false;
  if (watch.remote != nullptr) enqueue(*watch.remote, Job{Job::Kind::kListing, watch.wd});
}

void Client::takeListing(Connection& connection, int wd, Result<std::vector<proto::TreeEntry>> entries) {
  // Events sent after the listing are handed over once the view is the
  // listing. Changes made while the server listed are in both: after a gap,
  // those the listing's differences told are not reported a second time
  // (diffed); after the first listing (nothing told), all are.
  struct Release {
    Client& client;
    Connection& c;
    int wd;
    bool diffed = false;
    ~Release() {
      if (!c.alive()) return;
      auto mark = [&](bool on) {
        if (auto it = client.watches_.find(wd); it != client.watches_.end()) it->second.afterListing = on;
      };
      if (diffed) mark(true);
      c.releaseDeferred();
      if (diffed) mark(false);
    }
  } release{*this, connection, wd};
  // Events that arrived meanwhile may have ended the watch.
  auto it = watches_.find(wd);
  if (it == watches_.end() || it->second.remote != &connection) return;
  Watch& w = it->second;
  // Back after a gap: remote changes are reported again from here on, the
  // differences first.
  if (!entries && !connection.alive()) {
    connectionLost(connection);
    return;
  }
  if (w.untilListing) push(w, kInRestored | kInRemote, 0, 0, {}, {});
  if (!entries) {
    log::warn("cannot re-read '{}' on {}: {}", w.displayBase, connection.description(), entries.error().message);
    w.untilListing = false;
    return;
  }
  // A view costs ~150 bytes per entry: past this, a gap is announced
  // (IN_Q_OVERFLOW) but its differences are not computed.
  constexpr size_t kMaxViewEntries = 1000000;
  if (entries->size() > kMaxViewEntries) {
    log::warn("'{}': {} entries on the server; after a gap only the gap itself will be reported, not what changed",
              w.displayBase, entries->size());
    w.view.reset();
    w.untilListing = false;
    return;
  }
  if (w.view) {
    release.diffed = true;
    size_t reported = 0;
    for (const TreeView::Change& change : w.view->advance(TreeView::Listing::of(*entries), &nextCookie_)) {
      if ((change.mask & w.mask & IN_ALL_EVENTS) == 0) continue;
      push(w, change.mask | kInSynthesized | kInRemote, change.cookie, 0, change.dir, change.name);
      ++reported;
    }
    log::info("'{}': re-read {} entries on {}; {} changes missed meanwhile", w.displayBase, entries->size(),
              connection.description(), reported);
  } else {
    w.view = std::make_unique<TreeView>();
    w.view->reset(*entries);
    log::debug("'{}': first listing, {} entries, on {}", w.displayBase, entries->size(), connection.description());
    if (std::exchange(w.gapBeforeView, false)) {
      // Lost right after the watch was made, before its first listing came:
      // what changed in the gap cannot be told. The overflow says so again,
      // after IN_RESTORED, as a rescan request.
      log::warn(
          "'{}': the connection was lost before the tree's first listing came; what changed meanwhile is "
          "not known",
          w.displayBase);
      push(w, IN_Q_OVERFLOW | kInRemote, 0, 0, {}, {});
    }
  }
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

void Client::scheduleAskAgain(Watch& watch) {
  watch.askAgain = std::chrono::steady_clock::now() + backoff(watch.askedAgain++);
  askingAgain_.insert(watch.wd);
  armReleaseTimer();
}

void Client::askAgainDue() {
  const auto now = std::chrono::steady_clock::now();
  std::vector<int> due;
  for (int wd : askingAgain_) {
    auto it = watches_.find(wd);
    if (it == watches_.end() || it->second.askAgain <= now) due.push_back(wd);
  }
  for (int wd : due) {
    askingAgain_.erase(wd);
    auto it = watches_.find(wd);
    if (it == watches_.end()) continue;
    Watch& watch = it->second;
    watch.askAgain = std::chrono::steady_clock::time_point::max();
    if (!watch.waitingForServer || watch.remote != nullptr) continue;
    // Only on a connection that stayed: a new one asks all waiting watches.
    auto open = connections_.find(watch.connectionKey);
    if (open == connections_.end() || !open->second->alive() || lost_.count(open->second.get()) ||
        sessions_.count(watch.connectionKey)) {
      continue;
    }
    enqueue(*open->second, Job{Job::Kind::kAttach, wd});
  }
}

void Client::enqueue(Connection& connection, Job job, bool first) {
  Jobs& jobs = jobs_[&connection];
  auto same = [&](const Job& other) { return other.kind == job.kind && other.wd == job.wd; };
  // A listing or a watch already asked for (not answered yet) answers a
  // second wish.
  if (job.kind != Job::Kind::kSession &&
      ((jobs.running && same(jobs.current)) || std::any_of(jobs.queue.begin(), jobs.queue.end(), same))) {
    return;
  }
  if (first) {
    jobs.queue.push_front(job);
  } else {
    jobs.queue.push_back(job);
  }
  runJobs(connection);
}

void Client::runJobs(Connection& connection) {
  auto found = jobs_.find(&connection);
  if (found == jobs_.end() || found->second.starting) return;
  Jobs& jobs = found->second;
  jobs.starting = true;
  while (!jobs.running && !jobs.queue.empty()) {
    const Job job = jobs.queue.front();
    jobs.queue.pop_front();
    jobs.running = true;
    jobs.current = job;
    startJob(connection, job);
  }
  jobs.starting = false;
}

void Client::jobDone(Connection& connection) {
  auto found = jobs_.find(&connection);
  if (found == jobs_.end()) return;
  found->second.running = false;
  runJobs(connection);
}

void Client::startJob(Connection& connection, const Job& job) {
  Connection* c = &connection;
  const int wd = job.wd;
  const std::string key = jobs_.at(c).key;
  auto watch = watches_.find(wd);
  switch (job.kind) {
    case Job::Kind::kSession:
      attachSession(key, connection, /*wait=*/false, [this, c, key](const Status& made) {
        sessionMade(key, *c, made);
        jobDone(*c);
      });
      return;
    case Job::Kind::kAttach:
      // Removed, or made by another route, while it waited for its turn.
      if (watch == watches_.end() || !watch->second.waitingForServer || watch->second.connectionKey != key) break;
      watchRemote(connection, watch->second, /*wait=*/false, [this, c, wd](RemoteAnswer answer) {
        watchAnswered(*c, wd, answer);
        jobDone(*c);
      });
      return;
    case Job::Kind::kListing:
      if (watch == watches_.end() || watch->second.remote != c) break;
      connection.snapshotAsync(watch->second.remoteId, timing_.connectTimeoutMs * 3,
                               [this, c, wd](Result<std::vector<proto::TreeEntry>> entries) {
                                 takeListing(*c, wd, std::move(entries));
                                 jobDone(*c);
                               });
      return;
  }
  jobDone(connection);
}

void Client::runCompletions() {
  std::vector<Connection*> open;
  for (const auto& [key, connection] : connections_) {
    if (!lost_.count(connection.get())) open.push_back(connection.get());
  }
  for (Connection* connection : open) {
    connection->runCompleted();
    // Found dead without a read: a write failed or stalled.
    if (!connection->alive()) connectionLost(*connection);
  }
}

void Client::sessionMade(const std::string& key, Connection& connection, const Status& made) {
  if (!made) {
    // Lost, refused or not answered: as a failed attempt.
    if (connection.alive()) connection.drop(made.error());
    connectionLost(connection);  // a failed attempt: retried (sessions_ said so)
    return;
  }
  sessions_.erase(key);
  const bool first = firstUnderWay(key);
  retries_.erase(key);
  if (first) {
    log::info("{}: connected; its watches are made", connection.description());
  } else {
    log::warn("{}: connected again; restoring its watches", connection.description());
  }
  restoreWatches(key, &connection);
}

void Client::restoreWatches(const std::string& key, Connection* connection) {
  // Watches the server resumed: the events it replays follow.
  if (auto resumed = resumed_.find(connection); resumed != resumed_.end()) {
    for (auto& [wd, watch] : watches_) {
      if (!watch.waitingForServer || watch.connectionKey != key || !resumed->second.count(watch.remoteId)) continue;
      watch.remote = connection;
      watch.waitingForServer = false;
      watch.gapBeforeView = false;  // the server replays the gap
      byRemote_[{watch.remote, watch.remoteId}] = wd;
      if (dedup_) dedup_->setStrategy(wd, watch.strategy);
      watch.source = connection->description() + " + local inotify, " + Dedup::name(watch.strategy);
      if (watch.untilListing) {
        // Made again on a connection lost before its listing came: the
        // listing is still owed (IN_RESTORED comes with it).
        enqueue(*connection, Job{Job::Kind::kListing, wd});
      } else {
        push(watch, kInRestored | kInRemote, 0, 0, {}, {});
      }
    }
    resumed_.erase(resumed);
    connection->releaseDeferred();
    if (!connection->alive()) {
      connectionLost(*connection);
      return;
    }
  }
  for (auto& [wd, watch] : watches_) {
    if (watch.waitingForServer && watch.connectionKey == key) enqueue(*connection, Job{Job::Kind::kAttach, wd});
  }
}

void Client::watchAnswered(Connection& connection, int wd, RemoteAnswer& answer) {
  auto it = watches_.find(wd);
  const std::string& key = jobs_.at(&connection).key;
  if (it == watches_.end() || !it->second.waitingForServer || it->second.connectionKey != key) {
    // Removed while the server made it: the server's watch goes too.
    if (answer.reply && answer.reply->status == 0 && connection.alive()) {
      proto::Unwatch unwatch;
      unwatch.watchId = answer.reply->watchId;
      connection.requestNoWait(unwatch);
    }
    return;
  }
  Watch& watch = it->second;
  const Status attached = applyAnswer(watch, connection, answer);
  if (attached) watch.askedAgain = 0;
  if (watch.attaching) {
    attachedFirst(watch, connection, attached, answer.note);
  } else {
    reattached(watch, connection, attached, answer.note);
  }
}

void Client::reattached(Watch& watch, Connection& connection, const Status& attached, const std::string& note) {
  if (!attached) {
    if (!connection.alive()) {
      connectionLost(connection);  // lost again: schedules another try
      return;
    }
    const int code = attached.error().code;
    const bool refused = refusedForGood(code);
    // Told once; the asking again that follows, at debug level.
    if (watch.askedAgain == 0) {
      log::warn("'{}': cannot watch on the server again: {}", watch.displayBase, attached.error().message);
    } else {
      log::debug("'{}': still cannot watch on the server: {}", watch.displayBase, attached.error().message);
    }
    watch.waitingForServer = !refused;
    if (!refused) {
      if (!watch.fallback) {
        watch.source = "local inotify only (" + connection.description() +
                       " did not take the watch: " + attached.error().message + "; asking again)";
      }
      scheduleAskAgain(watch);
      return;
    }
    if (attached.error().code == ENOENT && watch.view) {
      // The watched directory went away while the server was unreachable.
      push(watch, IN_DELETE_SELF | kInSynthesized | kInRemote, 0, 0, {}, {});
      endWatch(watch);
    }
    return;
  }
  if (!note.empty()) log::warn("'{}': {}", watch.displayBase, note);
  if (watch.fallback) {
    log::warn("'{}': {} is reachable: its events come from the server again, no more polling", watch.displayBase,
              connection.description());
    const int wd = watch.wd;
    watch.gapBeforeView = false;  // the scans cover the time without a server
    // Its last round (the changes up to the server's watch), then
    // IN_RESTORED, once that round is complete (later calls of next()).
    handOver(watch);
    if (watches_.find(wd) == watches_.end()) return;
    if (connection.welcome().capabilities & proto::kCapResync) {
      enqueue(connection, Job{Job::Kind::kListing, wd}, /*first=*/true);
    }
    return;
  }
  // Without a view (lost before its first listing came, or never taken by
  // the server before), the listing is the first one, owed since: what a
  // later gap is compared with; takeListing says whether this gap is known.
  if (watch.view || (connection.welcome().capabilities & proto::kCapResync)) {
    // Until the listing, the server's events only repeat what the
    // listing's differences will tell: the gap lasts until then, and
    // IN_RESTORED comes with them (takeListing).
    watch.untilListing = true;
    enqueue(connection, Job{Job::Kind::kListing, watch.wd}, /*first=*/true);
    return;
  }
  push(watch, kInRestored | kInRemote, 0, 0, {}, {});
}

void Client::attachedFirst(Watch& watch, Connection& connection, const Status& attached, const std::string& note) {
  // A watch added with RNOTIFY_NONBLOCK meets its server: what
  // chooseRemote and store() do for a watch that waited for it, told by
  // IN_RESTORED | IN_REMOTE (remote changes are reported from here on).
  const int wd = watch.wd;
  if (!attached) {
    if (!connection.alive()) {
      connectionLost(connection);  // still attaching: the next attempt, local events meanwhile
      return;
    }
    // An add that waited would have failed (EACCES, ENOENT, ...) or fallen
    // back (ENOSYS, EOPNOTSUPP); this one is made already: it falls back and
    // says why (rnotify_watch_source(), the log). The server's refusal of
    // the path stands; after a passing failure (no answer in time, a limit)
    // it is asked again after a backoff (scheduleAskAgain), and again when
    // the connection is made again.
    const int code = attached.error().code;
    watch.attaching = false;
    const bool refused = refusedForGood(code);
    watch.waitingForServer = !refused;
    if (code == ENOSYS || code == EOPNOTSUPP) watch.connectionKey.clear();
    log::warn("'{}': {} did not take the watch: {}", watch.displayBase, connection.description(),
              attached.error().message);
    if (!refused) scheduleAskAgain(watch);
    startFallback(watch, env_->resolve(watch.localRoot), attached.error().message);
    if (auto it = watches_.find(wd); it != watches_.end() && it->second.fallback && it->second.fallback->scans()) {
      runSource(wd);
    }
    return;
  }
  watch.attaching = false;
  if (!note.empty()) log::warn("'{}': {}", watch.displayBase, note);
  push(watch, kInRestored | kInRemote, 0, 0, {}, {});
  // The first listing, as store() asks for it.
  if (connection.welcome().capabilities & proto::kCapResync) {
    enqueue(connection, Job{Job::Kind::kListing, wd}, /*first=*/true);
  }
}

}  // namespace rnotify
