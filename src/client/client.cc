#include "client/client.h"

#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/stat.h>
#include <sys/timerfd.h>
#include <unistd.h>

#include <chrono>
#include <climits>
#include <cstdlib>
#include <utility>

#include "client/client_internal.h"
#include "common/log.h"
#include "event/event.h"
#include "rnotify/rnotify.h"

namespace rnotify {

using namespace client_detail;

namespace {

// inotifywait's %w: the path as given, with '/' after a directory.
std::string displayBase(const std::string& path, bool isDirectory) {
  std::string base = path;
  while (base.size() > 1 && base.back() == '/') base.pop_back();
  if (isDirectory && base.back() != '/') base.push_back('/');
  return base;
}

}  // namespace

Result<std::unique_ptr<Client>> Client::create(std::unique_ptr<Environment> environment) {
  std::unique_ptr<Client> client(new Client());
  client->env_ = environment ? std::move(environment) : systemEnvironment();
  client->timing_ = client->env_->timing();
  if (Status s = client->init(); !s) return s.error();
  return client;
}

Status Client::init() {
  epoll_.reset(::epoll_create1(EPOLL_CLOEXEC));
  if (!epoll_) return lastError("epoll_create1");
  ready_.reset(::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC));
  if (!ready_) return lastError("eventfd");
  auto watcher = makeWatcher(WatcherKind::kInotify, *this);
  if (!watcher) return watcher.error();
  local_ = std::move(*watcher);
  epoll_event ev{};
  ev.events = EPOLLIN;
  ev.data.u64 = kTagLocal;
  if (::epoll_ctl(epoll_.get(), EPOLL_CTL_ADD, local_->fd(), &ev) != 0) return lastError("epoll_ctl");
  ev.data.u64 = kTagReady;
  if (::epoll_ctl(epoll_.get(), EPOLL_CTL_ADD, ready_.get(), &ev) != 0) return lastError("epoll_ctl");
  release_.reset(::timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC));
  if (!release_) return lastError("timerfd_create");
  ev.data.u64 = kTagRelease;
  if (::epoll_ctl(epoll_.get(), EPOLL_CTL_ADD, release_.get(), &ev) != 0) return lastError("epoll_ctl");
  keepalive_.reset(::timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC));
  if (!keepalive_) return lastError("timerfd_create");
  ev.data.u64 = kTagKeepalive;
  if (::epoll_ctl(epoll_.get(), EPOLL_CTL_ADD, keepalive_.get(), &ev) != 0) return lastError("epoll_ctl");
  return {};
}

Client::~Client() = default;

Result<int> Client::addWatch(const std::string& path, uint32_t mask, unsigned flags) {
  // However it returns: answers its requests read for other watches, and
  // their deadlines, wake rnotify_fd().
  struct Rearm {
    Client& client;
    ~Rearm() {
      client.watchWrites();
      client.armReleaseTimer();
      client.updateReadiness();
    }
  } rearm{*this};
  if (path.empty()) return Error{ENOENT, "cannot watch '': empty path"};
  if ((mask & IN_ALL_EVENTS) == 0) return Error{EINVAL, "cannot watch '" + path + "': no events requested"};
  if (path.rfind("smb://", 0) == 0) return addSmbUrlWatch(path, mask, (flags & RNOTIFY_RECURSIVE) != 0);
  struct stat st;
  int statResult = (mask & IN_DONT_FOLLOW) ? ::lstat(path.c_str(), &st) : ::stat(path.c_str(), &st);
  if (statResult != 0) return Error::fromErrno(errno, "cannot watch '" + path + "'");
  const bool isDirectory = S_ISDIR(st.st_mode);
  if ((mask & IN_ONLYDIR) && !isDirectory) return Error{ENOTDIR, "cannot watch '" + path + "': not a directory"};
  // As with inotifywait -r, a recursive watch on a file is a watch on the file.
  const bool recursive = (flags & RNOTIFY_RECURSIVE) && isDirectory;
  char real[PATH_MAX];
  if (::realpath(path.c_str(), real) == nullptr) return Error::fromErrno(errno, "cannot watch '" + path + "'");

  const bool pollOnly = (flags & RNOTIFY_POLL) != 0;
  SubscriptionId localId = 0;
  if (!pollOnly) {
    SubscribeOptions options;
    options.mask = mask;
    options.recursive = recursive;
    auto local = local_->subscribe(real, options);
    if (!local) return Error{local.error().code, local.error().message};
    localId = *local;
  }
  auto undoLocal = [&] {
    if (localId != 0) local_->unsubscribe(localId);
  };

  Watch watch;
  watch.wd = nextWd_;
  watch.displayBase = displayBase(path, isDirectory);
  watch.isDirectory = isDirectory;
  watch.mask = mask;
  watch.localRoot = real;
  watch.local = localId;
  watch.source = "local inotify";
  watch.recursive = recursive;

  Status chosen = pollOnly                       ? watchByScans(watch)
                  : (flags & RNOTIFY_LOCAL_ONLY) ? Status{}
                                                 : chooseRemote(watch, !(flags & RNOTIFY_NONBLOCK));
  if (!chosen) {
    undoLocal();
    return Error{chosen.error().code, "cannot watch '" + path + "': " + chosen.error().message};
  }
  return store(std::move(watch), path, !(flags & RNOTIFY_NONBLOCK));
}

Status Client::watchByScans(Watch& watch) {
  if (Status loaded = loadConfigOnce(); !loaded) return loaded.error();
  ResolvedPath resolved = env_->resolve(watch.localRoot);
  std::string why;
  watch.fallback = tryFallback(watch, resolved, SourceKind::kMountScan, &why);
  if (!watch.fallback) return Error{EIO, why};
  watch.pollOnly = true;
  watch.source = watch.fallback->describe() + " (asked for)";
  if (watch.fallback->starting()) {
    // Until its first scan is complete, a change is part of the baseline.
    watch.sourceOnceStarted =
        std::exchange(watch.source, std::string(RNOTIFY_SOURCE_CONNECTING) + "the tree: " + watch.source +
                                        ", the first scan under way");
  }
  registerSource(watch);
  return {};
}

Status Client::chooseRemote(Watch& watch, bool wait) {
  ResolvedPath resolved = env_->resolve(watch.localRoot);
  if (resolved.kind == MountKind::kLocal) return {};
  std::string remotePath, why, key;
  auto connection = connectionFor(resolved, &remotePath, &why, &key, wait);
  if (resolved.kind == MountKind::kSshfs) {
    auto known = originKeys_.find(mountKey(resolved.mount));
    if (known != originKeys_.end()) watch.originKey = known->second;
  }
  watch.remotePath = remotePath;
  if (resolved.kind == MountKind::kNfs || resolved.kind == MountKind::kSmb) {
    watch.fileServer = true;
    const ServerEntry* entry = findServer(*config_, resolved.mount);
    watch.exportPath = entry != nullptr && entry->remoteRoot.empty();
    // smbd serves each client from a process of its own, which the server
    // can tell by address; NFS servers serve everyone from one.
    if (resolved.kind == MountKind::kSmb) watch.originKey = proto::kSmbPeerOrigin;
    if (resolved.kind == MountKind::kNfs) watch.nfsMount = resolved.mount.mountPoint;
  }
  if (!connection && connection.error().code == EINPROGRESS) {
    // Its server's first connection is under way (this watch's or an
    // earlier one's): it attaches when the server answers, and falls back
    // if the attempt fails (restoreWatches, firstAttemptFailed).
    watch.connectionKey = key;
    watch.waitingForServer = true;
    watch.attaching = true;
    watch.source = RNOTIFY_SOURCE_CONNECTING + connection.error().message + "; local inotify meanwhile";
    return {};
  }
  if (!connection) return serverUnreachable(watch, resolved, key, connection.error());
  if (*connection == nullptr) {
    startFallback(watch, resolved, why);
    return {};
  }
  watch.connectionKey = key;
  if (!wait) {
    // Asked of the open connection without waiting (store() queues it;
    // watchAnswered takes the answer in), as when it is under way.
    watch.waitingForServer = true;
    watch.attaching = true;
    watch.source =
        RNOTIFY_SOURCE_CONNECTING + (*connection)->description() + " (waiting for its answer); local inotify meanwhile";
    return {};
  }
  std::string note;
  if (Status attached = attachRemote(watch, **connection, &note); !attached) {
    const int code = attached.error().code;
    if (!(*connection)->alive()) connectionLost(**connection);
    // A path this host can see through an NFS or SMB mount that the
    // configured server does not find or lets not be watched: the entry
    // maps it wrongly, or the server's permissions differ. The mount still
    // works: the next source, with the reason.
    const bool configured = resolved.kind == MountKind::kNfs || resolved.kind == MountKind::kSmb;
    const bool notThere = code == ENOENT || code == ENOTDIR || code == EACCES || code == EPERM;
    if (code != ENOSYS && code != EOPNOTSUPP && !(configured && notThere)) return attached.error();
    watch.connectionKey.clear();  // the server cannot watch there: the next source, for good
    std::string why = attached.error().message;
    if (configured && notThere) {
      why += " (remote_root in its [[server]] entry, or --export NAME=DIR on the server, says where it is there)";
    }
    startFallback(watch, resolved, why);
  } else if (!note.empty()) {
    log::warn("'{}': {}", watch.displayBase, note);
  }
  return {};
}

Status Client::serverUnreachable(Watch& watch, const ResolvedPath& resolved, const std::string& key,
                                 const Error& error) {
  const int code = error.code;
  // Unreachable, or the agent is not installed: the next source, and the
  // server once it can be reached. Anything else (a refused token, a
  // wrong configuration) is the user's to fix: an error.
  const bool fallBack = code == ENOSYS || code == EHOSTUNREACH || code == ENETUNREACH || code == ECONNREFUSED ||
                        code == ETIMEDOUT || code == ECONNRESET || code == ECONNABORTED || code == EPIPE ||
                        code == ENOENT || code == EPROTO || code == EAGAIN;
  if (!fallBack || key.empty()) return error;
  watch.connectionKey = key;
  watch.waitingForServer = true;
  if (!retries_.count(key)) {
    Retry retry;
    retry.due = std::chrono::steady_clock::now() + backoff(0);
    retry.why = error.message;
    retries_[key] = retry;
  }
  // That attempt's failure (EAGAIN: none was made, the last one's stands).
  // EHOSTUNREACH: the fallbacks over ssh are not tried.
  if (code != EAGAIN) retries_[key].code = code;
  startFallback(watch, resolved, error.message);
  return {};
}

Result<int> Client::store(Watch&& watch, const std::string& path, bool wait) {
  if (watch.local != 0) byLocal_[watch.local] = watch.wd;
  int wd = nextWd_++;
  log::debug("watch {} on '{}': {}", wd, path, watch.source);
  Watch& stored = watches_.emplace(wd, std::move(watch)).first->second;
  if (stored.fallback && stored.fallback->scans()) {
    auto first = takeBaseline(stored, wait);
    if (watches_.find(wd) == watches_.end()) return wd;  // ended at once: its IGNORED is queued
    if (!first) {
      Error error = first.error();
      if (stored.local != 0) {
        local_->unsubscribe(stored.local);
        byLocal_.erase(stored.local);
      }
      if (stored.fallback && stored.fallback->fd() >= 0) {
        ::epoll_ctl(epoll_.get(), EPOLL_CTL_DEL, stored.fallback->fd(), nullptr);
      }
      watches_.erase(wd);
      scanned_.erase(wd);
      return Error{error.code, "cannot watch '" + path + "': " + error.message};
    }
    armReleaseTimer();
  }
  // RNOTIFY_NONBLOCK on an open connection: the server is asked now.
  if (stored.attaching) {
    auto open = connections_.find(stored.connectionKey);
    if (open != connections_.end() && open->second->alive() && !lost_.count(open->second.get()) &&
        !sessions_.count(stored.connectionKey)) {
      enqueue(*open->second, Job{Job::Kind::kAttach, wd});
    }
  }
  // The first listing, so that a later gap can be told in detail, asked for
  // now and taken in by next(). Events that arrive meanwhile are delivered
  // as usual (the listing includes them).
  if (stored.remote != nullptr && (stored.remote->welcome().capabilities & proto::kCapResync)) resync(stored);
  return wd;
}

void Client::ensureDedup() {
  if (dedup_) return;
  Dedup::Options options;
  options.window = std::chrono::milliseconds(config_->echoWindowMs);
  options.hold = std::chrono::milliseconds(config_->echoHoldMs);
  options.polledWindow = std::max(options.polledWindow, std::chrono::milliseconds(2 * config_->pollMaxMs));
  dedup_ = std::make_unique<Dedup>(options, [this](int wd, uint32_t m, uint32_t c, uint64_t seq, std::string_view dir,
                                                   std::string_view name) { emit(wd, m, c, seq, dir, name); });
}

Status Client::loadConfigOnce() {
  if (config_) return {};
  auto config = env_->loadConfig();
  if (!config) return config.error();
  config_ = std::move(*config);
  return {};
}

Status Client::removeWatch(int wd) {
  auto it = watches_.find(wd);
  if (it == watches_.end()) return Error{EINVAL, "no watch " + std::to_string(wd)};
  endWatch(it->second);  // brings rnotify_fd()'s readiness up to date
  watchWrites();
  return {};
}

void Client::endWatch(Watch& watch) {
  // Like inotify, the end of a watch is reported once, whichever side ended it.
  if (watch.local != 0) {
    local_->unsubscribe(watch.local);  // a no-op when the kernel already ended it
    byLocal_.erase(watch.local);
  }
  if (watch.remote != nullptr) {
    byRemote_.erase({watch.remote, watch.remoteId});
    proto::Unwatch unwatch;
    unwatch.watchId = watch.remoteId;
    Connection* remote = watch.remote;
    remote->requestNoWait(unwatch);
    watch.remote = nullptr;
    // The write found it dead: its other watches learn it now, not at the
    // next read (which a new connection to the same server would pre-empt).
    if (!remote->alive()) connectionLost(*remote);
  }
  if (watch.fallback && watch.fallback->fd() >= 0) {
    ::epoll_ctl(epoll_.get(), EPOLL_CTL_DEL, watch.fallback->fd(), nullptr);
  }
  if (dedup_) dedup_->forget(watch.wd);  // delivers what it still held
  nfsActivity_.forget(watch.wd);
  queue_.push_back(ClientEvent{watch.wd, IN_IGNORED, 0, 0, watch.displayBase, {}});
  scanned_.erase(watch.wd);
  askingAgain_.erase(watch.wd);
  watches_.erase(watch.wd);
  updateReadiness();
}

void Client::onEvent(SubscriptionId subscription, uint32_t mask, uint32_t cookie, std::string_view dir,
                     std::string_view name, int /*pid*/) {
  auto it = byLocal_.find(subscription);
  if (it == byLocal_.end()) return;
  Watch& watch = watches_.at(it->second);
  if ((mask & IN_IGNORED) && dir.empty()) {
    byLocal_.erase(it);
    watch.local = 0;  // the backend has already forgotten it
    endWatch(watch);
    return;
  }
  if (watch.wd == scanningWd_ && (mask & IN_ISDIR) && Dedup::readSide(mask)) return;
  if (watch.ownOpenings > 0 && mask == (IN_OPEN | IN_ISDIR) && dir.empty() && name.empty()) {
    --watch.ownOpenings;  // its source's opening of the directory (WatchSource::openedMount)
    return;
  }
  // What this host did through the mount comes back from the server too.
  if (watch.fallback && dedup_ && !watch.pollOnly) {
    // ... and in the next scan: make it soon, so that it is matched.
    watch.fallback->hurry(WatchSource::Clock::now() + std::chrono::milliseconds(100));
    dedup_->local(watch.wd, mask, cookie, dir, name, nullptr, Dedup::Clock::now());
    armReleaseTimer();
    return;
  }
  if (watch.remote == nullptr || !dedup_) {
    push(watch, mask, cookie, 0, dir, name);
    return;
  }
  EventStat state;
  const EventStat* stat = nullptr;
  if (dedup_->strategy(watch.wd) == Dedup::Strategy::kState && (mask & (IN_MODIFY | IN_ATTRIB | IN_CLOSE_WRITE))) {
    std::string path = watch.localRoot;
    if (watch.isDirectory) {
      if (!dir.empty()) path.append("/").append(dir);
      if (!name.empty()) path.append("/").append(name);
    }
    struct stat st;
    if (::lstat(path.c_str(), &st) == 0) {
      state = eventStatOf(st);
      stat = &state;
    }
  }
  dedup_->local(watch.wd, mask, cookie, dir, name, stat, Dedup::Clock::now());
  armReleaseTimer();
}

void Client::emit(int wd, uint32_t mask, uint32_t cookie, uint64_t seq, std::string_view dir, std::string_view name) {
  auto it = watches_.find(wd);
  if (it != watches_.end()) push(it->second, mask, cookie, seq, dir, name);
}

void Client::armReleaseTimer() {
  itimerspec spec{};
  auto due = dedup_ ? dedup_->nextRelease() : Dedup::Clock::time_point::max();
  for (const auto& [key, retry] : retries_) due = std::min(due, retry.due);
  for (const auto& [key, opening] : openings_) due = std::min(due, opening.deadline);
  // Answers read by a request waited for (inside addWatch), and deadlines of
  // requests under way: runCompletions() in next().
  for (const auto& [key, connection] : connections_) {
    if (!lost_.count(connection.get())) due = std::min(due, connection->nextDue());
  }
  for (int wd : scanned_) {
    auto it = watches_.find(wd);
    if (it != watches_.end() && it->second.fallback) due = std::min(due, it->second.fallback->deadline());
  }
  for (int wd : askingAgain_) {
    if (auto it = watches_.find(wd); it != watches_.end()) due = std::min(due, it->second.askAgain);
  }
  // Set only when it changes: a system call per API call otherwise. Once
  // the timer has been read (it went off), it is set again whatever the due.
  if (due == releaseArmed_) return;
  releaseArmed_ = due;
  if (due != Dedup::Clock::time_point::max()) {
    // CLOCK_MONOTONIC is steady_clock's clock on Linux.
    auto ns = std::chrono::duration_cast<std::chrono::nanoseconds>(due.time_since_epoch()).count();
    if (ns <= 0) ns = 1;
    spec.it_value.tv_sec = ns / 1000000000;
    spec.it_value.tv_nsec = ns % 1000000000;
  }
  ::timerfd_settime(release_.get(), TFD_TIMER_ABSTIME, &spec, nullptr);
}

void Client::push(Watch& watch, uint32_t mask, uint32_t cookie, uint64_t seq, std::string_view dir,
                  std::string_view name) {
  ClientEvent event;
  event.wd = watch.wd;
  event.mask = mask;
  event.cookie = cookie;
  event.seq = seq;
  event.path = watch.displayBase;
  if (!dir.empty()) {
    event.path.append(dir);
    event.path.push_back('/');
  }
  event.name.assign(name);
  // rnotify_fd() is told when the API call returns (updateReadiness): an
  // event handed out by the same next() costs no eventfd write and read.
  queue_.push_back(std::move(event));
}

void Client::updateReadiness() {
  if (!queue_.empty() && !readySignalled_) {
    uint64_t one = 1;
    [[maybe_unused]] ssize_t n = ::write(ready_.get(), &one, sizeof one);
    readySignalled_ = true;
  } else if (queue_.empty() && readySignalled_) {
    uint64_t value;
    [[maybe_unused]] ssize_t n = ::read(ready_.get(), &value, sizeof value);
    readySignalled_ = false;
  }
}

void Client::dispatch(const epoll_event& ready) {
  if (ready.data.u64 == kTagLocal) {
    local_->drain();
  } else if (ready.data.u64 == kTagKeepalive) {
    uint64_t expirations;
    [[maybe_unused]] ssize_t r = ::read(keepalive_.get(), &expirations, sizeof expirations);
    keepConnectionsAlive();
  } else if (ready.data.u64 == kTagRelease) {
    uint64_t expirations;
    [[maybe_unused]] ssize_t r = ::read(release_.get(), &expirations, sizeof expirations);
    releaseArmed_.reset();
  } else if (ready.data.u64 & kTagNotify) {
    runSource(static_cast<int>(ready.data.u64 & 0x7fffffff));
  } else if (ready.data.u64 != kTagReady) {
    auto* connection = static_cast<Connection*>(ready.data.ptr);
    if (const std::string* key = openingKey(connection)) {
      advanceOpening(*key);
    } else if (!connection->pump()) {
      connectionLost(*connection);
    }
  }
}

Result<int> Client::next(ClientEvent* out, int timeoutMs) {
  // However it returns (an exception included: the C API turns it into -1),
  // rnotify_fd() says whether events wait.
  struct Readiness {
    Client& client;
    ~Readiness() { client.updateReadiness(); }
  } readiness{*this};
  using Clock = std::chrono::steady_clock;
  const auto deadline = Clock::now() + std::chrono::milliseconds(timeoutMs < 0 ? 0 : timeoutMs);
  for (bool first = true;; first = false) {
    // Out of time, and the descriptors were served: what they brought is
    // taken in, and the sources' next slices wait for the next call
    // (they are due, so rnotify_fd() stays readable).
    const bool late = !first && timeoutMs >= 0 && Clock::now() >= deadline;
    runCompletions();
    if (!openings_.empty()) expireOpenings();
    if (!retries_.empty()) retryConnections();
    runResyncs();
    if (!askingAgain_.empty()) askAgainDue();
    if (!late) runDueSources();
    if (dedup_ && dedup_->held() > 0) {
      dedup_->release(Dedup::Clock::now());
    }
    armReleaseTimer();
    if (!queue_.empty()) {
      *out = std::move(queue_.front());
      queue_.pop_front();
      watchWrites();
      return 1;  // readiness: the guard above
    }
    if (late) {
      watchWrites();
      return 0;
    }
    int wait = -1;
    if (timeoutMs >= 0) {
      auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
      wait = left < 0 ? 0 : static_cast<int>(left);
    }
    watchWrites();
    epoll_event ready[16];
    int n = ::epoll_wait(epoll_.get(), ready, 16, wait);
    if (n < 0) {
      if (errno == EINTR) return Error{EINTR, "interrupted"};
      return lastError("epoll_wait");
    }
    for (int i = 0; i < n; ++i) dispatch(ready[i]);
    if (dedup_ && dedup_->held() > 0) {
      dedup_->release(Dedup::Clock::now());
      armReleaseTimer();
    }
    if (n == 0 && queue_.empty() && timeoutMs >= 0) return 0;
  }
}

const char* Client::watchSource(int wd) const {
  auto it = watches_.find(wd);
  return it == watches_.end() ? nullptr : it->second.source.c_str();
}

}  // namespace rnotify
