#include "client/client.h"

#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/stat.h>
#include <sys/timerfd.h>
#include <unistd.h>

#include <chrono>
#include <climits>
#include <cmath>
#include <random>
#include <cstdlib>

#include "mounts/mount_resolver.h"
#include "poll/sftp_tree.h"
#include "mounts/sshfs_target.h"
#include "common/log.h"
#include "event/event.h"
#include "rnotify/rnotify.h"

namespace rnotify {
namespace {

constexpr uint64_t kTagLocal = 1;
constexpr uint64_t kTagReady = 2;
constexpr uint64_t kTagRelease = 3;
constexpr uint64_t kTagKeepalive = 4;
// An SMB notify descriptor: this bit and the watch descriptor (connections
// are registered by their address, which never has it).
constexpr uint64_t kTagNotify = uint64_t{1} << 63;

int connectTimeoutMs() {
  if (const char* env = std::getenv("RNOTIFY_CONNECT_TIMEOUT_MS")) {
    int value = std::atoi(env);
    if (value > 0) return value;
  }
  return 20000;
}

// inotifywait's %w: the path as given, with '/' after a directory.
std::string displayBase(const std::string& path, bool isDirectory) {
  std::string base = path;
  while (base.size() > 1 && base.back() == '/') base.pop_back();
  if (isDirectory && base.back() != '/') base.push_back('/');
  return base;
}

}  // namespace

Result<std::unique_ptr<Client>> Client::create() {
  std::unique_ptr<Client> client(new Client());
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

void Client::armKeepalive() {
  if (keepaliveArmed_ || !config_) return;
  // Twice per interval: a silence is noticed within 3.5 intervals.
  const long ms = std::max(config_->keepaliveMs / 2, 50);
  itimerspec spec{};
  spec.it_interval.tv_sec = ms / 1000;
  spec.it_interval.tv_nsec = (ms % 1000) * 1000000;
  spec.it_value = spec.it_interval;
  if (::timerfd_settime(keepalive_.get(), 0, &spec, nullptr) == 0) keepaliveArmed_ = true;
}

void Client::keepConnectionsAlive() {
  const std::chrono::milliseconds interval(config_ ? config_->keepaliveMs : 2000);
  std::vector<Connection*> silent;
  for (auto& [key, connection] : connections_) {
    if (lost_.count(connection.get())) continue;  // handled; waiting to be replaced
    if (!connection->keepAlive(interval)) silent.push_back(connection.get());
  }
  for (Connection* connection : silent) connectionLost(*connection);
  // No connection left to keep: no more wake-ups until one is made.
  bool live = false;
  for (const auto& [key, connection] : connections_) live |= !lost_.count(connection.get());
  if (!live && keepaliveArmed_) {
    itimerspec off{};
    ::timerfd_settime(keepalive_.get(), 0, &off, nullptr);
    keepaliveArmed_ = false;
  }
}

Client::~Client() = default;

Result<int> Client::addWatch(const std::string& path, uint32_t mask, unsigned flags) {
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

  if (pollOnly) {
    if (Status loaded = loadConfigOnce(); !loaded) return loaded.error();
    ResolvedPath resolved = MountResolver::fromProc().resolve(real);
    PollScanner::Options options = pollOptions(resolved);
    options.recursive = recursive;
    watch.poll = scanMount(real, options);
    polled_.insert(watch.wd);
    watch.pollOnly = true;
    watch.source = watch.poll->describe() + " (asked for)";
  } else if (!(flags & RNOTIFY_LOCAL_ONLY)) {
    ResolvedPath resolved = MountResolver::fromProc().resolve(real);
    if (resolved.kind != MountKind::kLocal) {
      std::string remotePath, why, key;
      auto connection = connectionFor(resolved, &remotePath, &why, &key);
      if (resolved.kind == MountKind::kSshfs) {
        auto known = originKeys_.find(resolved.mount.mountPoint + '\n' + resolved.mount.source);
        if (known != originKeys_.end()) watch.originKey = known->second;
      }
      watch.remotePath = remotePath;
      if (!connection) {
        const int code = connection.error().code;
        // Unreachable, or the agent is not installed: poll, and watch on
        // the server once it can be reached. Anything else (a refused token,
        // a wrong configuration) is the user's to fix: an error.
        const bool fallBack = code == ENOSYS || code == EHOSTUNREACH || code == ENETUNREACH || code == ECONNREFUSED ||
                              code == ETIMEDOUT || code == ECONNRESET || code == ECONNABORTED || code == EPIPE ||
                              code == ENOENT || code == EPROTO || code == EAGAIN;
        if (!fallBack || key.empty()) {
          undoLocal();
          return Error{code, "cannot watch '" + path + "': " + connection.error().message};
        }
        watch.connectionKey = key;
        watch.waitingForServer = true;
        if (!retries_.count(key)) {
          Retry retry;
          retry.due = std::chrono::steady_clock::now() + backoff(0);
          retry.why = connection.error().message;
          retries_[key] = retry;
        }
        startPolling(watch, resolved, connection.error().message);
      } else if (*connection == nullptr) {
        std::string smbWhy;
        if (resolved.kind != MountKind::kSmb || !startSmbNotify(watch, resolved, &smbWhy)) {
          startPolling(watch, resolved, smbWhy.empty() ? why : why + "; " + smbWhy);
        }
      } else {
        for (const auto& [k, c] : connections_) {
          if (c.get() == *connection) watch.connectionKey = k;
        }
        std::string note;
        if (Status attached = attachRemote(watch, **connection, &note); !attached) {
          const int code = attached.error().code;
          if (!(*connection)->alive()) connectionLost(**connection);
          if (code != ENOSYS && code != EOPNOTSUPP) {
            undoLocal();
            return Error{code, "cannot watch '" + path + "': " + attached.error().message};
          }
          watch.connectionKey.clear();  // the server cannot watch there: poll for good
          startPolling(watch, resolved, attached.error().message);
        } else if (!note.empty()) {
          log::warn("'{}': {}", path, note);
        }
      }
    }
  }
  if (watch.local != 0) byLocal_[watch.local] = watch.wd;
  if (watch.cifs || watch.smb) watchNotifyFd(watch);
  int wd = nextWd_++;
  log::debug("watch {} on '{}': {}", wd, path, watch.source);
  Watch& stored = watches_.emplace(wd, std::move(watch)).first->second;
  if (stored.poll) {
    // The baseline: changes from now on are reported.
    auto first = scanWatch(stored);
    if (watches_.find(wd) == watches_.end()) return wd;  // ended at once: its IGNORED is queued
    if (!first) {
      Error error = first.error();
      if (stored.local != 0) {
        local_->unsubscribe(stored.local);
        byLocal_.erase(stored.local);
      }
      watches_.erase(wd);
      polled_.erase(wd);
      return Error{error.code, "cannot watch '" + path + "': " + error.message};
    }
    armReleaseTimer();
  }
  // The first listing, so that a later gap can be told in detail. Events that
  // arrive meanwhile are delivered as usual (the listing includes them).
  if (stored.remote != nullptr && (stored.remote->welcome().capabilities & proto::kCapResync)) resync(stored);
  return wd;
}

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
  auto config = loadConfig();
  if (!config) return config.error();
  config_ = std::move(*config);
  return {};
}

PollScanner::Options Client::pollOptions(const ResolvedPath& resolved) const {
  PollScanner::Options options;
  options.interval.initial = std::chrono::milliseconds(config_->pollIntervalMs);
  options.interval.min = std::chrono::milliseconds(config_->pollMinMs);
  options.interval.max = std::chrono::milliseconds(config_->pollMaxMs);
  // FUSE filesystems may renumber an inode the kernel forgot (sshfs without
  // use_ino does): a name then identifies an entry, not its number.
  options.stableInodes = resolved.kind == MountKind::kLocal || resolved.mount.fsType.rfind("fuse", 0) != 0;
  return options;
}

void Client::startPolling(Watch& watch, const ResolvedPath& resolved, const std::string& why) {
  PollScanner::Options options = pollOptions(resolved);
  options.recursive = watch.recursive;
  std::string how;
  if (resolved.kind == MountKind::kSshfs) {
    // Through the mount, a scan sees a server-side change only when sshfs's
    // caches expire (20 s by default): read the server's tree over SFTP.
    const std::string mountKey = resolved.mount.mountPoint + '\n' + resolved.mount.source;
    auto known = sshTargets_.find(mountKey);
    if (known == sshTargets_.end()) {
      if (auto target = findSshfsTarget(resolved.mount)) known = sshTargets_.emplace(mountKey, std::move(*target)).first;
    }
    if (known != sshTargets_.end()) {
      auto tree = scanOverSftp(known->second, serverPath(known->second, resolved.relative), watch.isDirectory, options);
      if (tree) {
        watch.poll = std::move(*tree);
      } else {
        how = "; SFTP scans are not possible either (" + tree.error().message +
              "), so the mount itself is scanned and sshfs's caches delay what is seen (up to dcache_timeout, 20 s by "
              "default)";
      }
    }
  }
  if (!watch.poll) {
    watch.poll = scanMount(watch.localRoot, options);
    if (std::string advice = pollMountAdvice(resolved.mount); !advice.empty()) how += "; " + advice;
  }
  polled_.insert(watch.wd);
  ensureDedup();
  dedup_->setStrategy(watch.wd, Dedup::Strategy::kPolled);
  watch.strategy = Dedup::Strategy::kPolled;
  watch.source = watch.poll->describe() + " + local inotify (" + why + ")";
  const std::string mountKey = resolved.mount.mountPoint + '\n' + resolved.mount.source;
  if (fallbackTold_.insert(mountKey).second) {
    log::warn("{} ({} mount of {}): {}; falling back to {}{}{}", resolved.mount.mountPoint, resolved.mount.fsType,
              resolved.mount.source, why, watch.poll->describe(), how,
              watch.waitingForServer ? "; the server is tried again in the background" : "");
  }
}

void Client::stopPolling(Watch& watch) {
  if (!watch.poll) return;
  // Changes up to the server's watch were made are in this scan; those made
  // since come from the server (one made in between may come from both).
  const int wd = watch.wd;
  auto last = scanWatch(watch);
  if (watches_.find(wd) == watches_.end()) return;
  auto poll = std::move(watch.poll);
  polled_.erase(wd);
  if (!last || !dedup_) return;
  const Dedup::Strategy after = watch.strategy;  // the server's, set by attachRemote
  dedup_->setStrategy(wd, Dedup::Strategy::kPolled);
  deliverPolled(wd, *last);
  if (watches_.count(wd)) dedup_->setStrategy(wd, after);
}

Result<SmbCredentials> Client::smbCredentials(const std::string& user) {
  std::string file = config_->smbCredentials;
  if (const char* env = std::getenv("RNOTIFY_SMB_CREDENTIALS"); env != nullptr && *env != '\0') file = env;
  if (file.empty()) {
    const char* home = std::getenv("HOME");
    std::string fallback = std::string(home ? home : "") + "/.config/rnotify/smb-credentials";
    if (home != nullptr && ::access(fallback.c_str(), F_OK) == 0) file = fallback;
  }
  if (file.empty()) {
    SmbCredentials guest;
    guest.user = user;  // no password: a guest, or a share that needs none
    return guest;
  }
  auto credentials = readCredentialsFile(file);
  if (credentials && credentials->user.empty()) credentials->user = user;
  return credentials;
}

bool Client::startSmbNotify(Watch& watch, const ResolvedPath& resolved, std::string* why, bool tryCifs) {
  const uint32_t mask = watch.mask & IN_ALL_EVENTS;
  // The cifs client's own ioctl first: the mount's session and credentials.
  Result<std::unique_ptr<CifsNotify>> cifs = Error{ENOTTY, "the cifs ioctl failed"};
  if (tryCifs) cifs = CifsNotify::start(watch.localRoot, mask, watch.recursive);
  std::string how;
  if (cifs) {
    watch.cifs = std::move(*cifs);
    how = "SMB2 change notify (the cifs client's CIFS_IOC_NOTIFY_INFO)";
  } else {
    int port = 0;
    std::string user;
    for (size_t at = 0; at < resolved.mount.superOptions.size();) {
      size_t end = resolved.mount.superOptions.find(',', at);
      if (end == std::string::npos) end = resolved.mount.superOptions.size();
      std::string option = resolved.mount.superOptions.substr(at, end - at);
      if (option.rfind("port=", 0) == 0) port = std::atoi(option.c_str() + 5);
      if (option.rfind("username=", 0) == 0) user = option.substr(9);
      at = end + 1;
    }
    auto location = parseMountSource(resolved.mount.source, port);
    if (!location) {
      *why = "SMB2 change notify: " + location.error().message;
      return false;
    }
    if (!resolved.relative.empty()) location->path += (location->path.empty() ? "" : "/") + resolved.relative;
    auto credentials = smbCredentials(user);
    if (!credentials) {
      *why = "SMB2 change notify: " + credentials.error().message;
      return false;
    }
    auto smb = SmbNotify::start(*location, *credentials, mask, watch.recursive);
    if (!smb) {
      *why = "SMB2 change notify is not possible (" + cifs.error().message + "; " + smb.error().message + ")";
      return false;
    }
    watch.smb = std::move(*smb);
    how = "SMB2 change notify (libsmbclient, " + smbUrl(*location) + ")";
  }
  ensureDedup();
  dedup_->setStrategy(watch.wd, Dedup::Strategy::kPolled);  // the server's reports: names and broad kinds
  watch.strategy = Dedup::Strategy::kPolled;
  watch.source = how + " + local inotify";
  return true;
}

Result<int> Client::addSmbUrlWatch(const std::string& url, uint32_t mask, bool recursive) {
  if (Status loaded = loadConfigOnce(); !loaded) return loaded.error();
  SmbCredentials inUrl;
  auto location = parseSmbUrl(url, &inUrl);
  // Messages name the share without what the URL may hold of credentials.
  if (!location) return Error{location.error().code, "cannot watch the smb:// URL: " + location.error().message};
  const std::string shown = smbUrl(*location);
  Result<SmbCredentials> credentials = inUrl;
  if (inUrl.password.empty()) credentials = smbCredentials(inUrl.user);
  if (!credentials) return Error{credentials.error().code, "cannot watch '" + shown + "': " + credentials.error().message};
  auto smb = SmbNotify::start(*location, *credentials, mask & IN_ALL_EVENTS, recursive);
  if (!smb) return Error{smb.error().code, "cannot watch '" + shown + "': " + smb.error().message};
  Watch watch;
  watch.wd = nextWd_;
  const std::string base = inUrl.password.empty() ? url : shown;
  watch.displayBase = base.back() == '/' ? base : base + "/";
  watch.isDirectory = true;
  watch.mask = mask;
  watch.recursive = recursive;
  watch.smb = std::move(*smb);
  watch.source = "SMB2 change notify (libsmbclient, " + shown + ")";
  watchNotifyFd(watch);
  int wd = nextWd_++;
  watches_.emplace(wd, std::move(watch));
  return wd;
}

void Client::watchNotifyFd(Watch& watch) {
  epoll_event ev{};
  ev.events = EPOLLIN;
  ev.data.u64 = kTagNotify | static_cast<uint64_t>(watch.wd);
  int fd = watch.cifs ? watch.cifs->fd() : watch.smb->fd();
  ::epoll_ctl(epoll_.get(), EPOLL_CTL_ADD, fd, &ev);
}

void Client::onNotify(int wd) {
  auto it = watches_.find(wd);
  if (it == watches_.end()) return;
  Watch& watch = it->second;
  std::vector<Event> events = watch.cifs ? watch.cifs->take() : watch.smb ? watch.smb->take() : std::vector<Event>{};
  const bool failed = watch.cifs ? watch.cifs->failed() : watch.smb ? watch.smb->failed() : false;
  const auto now = Dedup::Clock::now();
  for (Event& event : events) {
    if (watches_.find(wd) == watches_.end()) return;
    const uint32_t kind = event.mask & IN_ALL_EVENTS;
    if (kind != 0 && (kind & watch.mask) == 0) continue;
    if (event.mask & IN_Q_OVERFLOW) {
      // The server lost track (STATUS_NOTIFY_ENUM_DIR): say so; what changed
      // meanwhile is not known in detail.
      push(watch, IN_Q_OVERFLOW | kInRemote, 0, 0, {}, {});
      continue;
    }
    if (watch.local == 0 || !dedup_) {
      push(watch, event.mask | kInRemote, event.cookie, 0, event.dir, event.name);
    } else {
      dedup_->remote(wd, event, now);
    }
  }
  if (failed && watches_.count(wd)) {
    Error error = watch.cifs ? watch.cifs->error() : watch.smb->error();
    ::epoll_ctl(epoll_.get(), EPOLL_CTL_DEL, watch.cifs ? watch.cifs->fd() : watch.smb->fd(), nullptr);
    log::error("'{}': SMB2 change notify ended: {}", watch.displayBase, error.message);
    push(watch, IN_Q_OVERFLOW | kInRemote, 0, 0, {}, {});
    const bool wasCifs = watch.cifs != nullptr;
    watch.cifs.reset();
    watch.smb.reset();
    if (watch.local == 0) {
      endWatch(watch);  // an smb:// watch has nothing else
    } else {
      // The cifs ioctl may fail only at its first call (an old kernel):
      // libsmbclient next, then polling.
      ResolvedPath resolved = MountResolver::fromProc().resolve(watch.localRoot);
      std::string why;
      if (!wasCifs || !startSmbNotify(watch, resolved, &why, false)) {
        startPolling(watch, resolved, "SMB2 change notify ended (" + error.message + ")" + (why.empty() ? "" : "; " + why));
      } else {
        watchNotifyFd(watch);
      }
      armReleaseTimer();
    }
  }
  armReleaseTimer();
}

Result<std::vector<Event>> Client::scanWatch(Watch& watch) {
  const int wd = watch.wd;
  auto events = watch.poll->scan();
  if (watch.poll->readsMount() && watch.local != 0) {
    // The scan's own reads of the directories, reported by this host's
    // kernel: not something anyone did to the tree.
    scanningWd_ = wd;
    local_->drain();
    scanningWd_ = 0;
  }
  return events;
}

void Client::runPolls() {
  const auto now = PolledTree::Clock::now();
  std::vector<int> due;
  for (int wd : polled_) {
    auto it = watches_.find(wd);  // not there yet while addWatch makes it
    if (it != watches_.end() && it->second.poll && it->second.poll->deadline() <= now) due.push_back(wd);
  }
  for (int wd : due) {
    auto it = watches_.find(wd);
    if (it == watches_.end() || !it->second.poll) continue;
    Watch& watch = it->second;
    auto events = scanWatch(watch);
    if (watches_.find(wd) == watches_.end()) continue;
    if (!events) {
      if (!watch.pollFailing) log::warn("'{}': {}; trying again at each interval", watch.displayBase, events.error().message);
      watch.pollFailing = true;
      continue;
    }
    if (watch.pollFailing) log::warn("'{}': scanning works again", watch.displayBase);
    watch.pollFailing = false;
    deliverPolled(wd, *events);
  }
  armReleaseTimer();
}

void Client::deliverPolled(int wd, std::vector<Event>& events) {
  const auto now = Dedup::Clock::now();
  for (Event& event : events) {
    auto it = watches_.find(wd);
    if (it == watches_.end()) return;
    Watch& watch = it->second;
    if ((event.mask & IN_IGNORED) && event.dir.empty() && event.name.empty()) {
      endWatch(watch);  // the root is gone
      return;
    }
    const uint32_t kind = event.mask & IN_ALL_EVENTS;
    if (kind != 0 && (kind & watch.mask) == 0) continue;
    if (watch.pollOnly || !dedup_) {
      push(watch, event.mask, event.cookie, 0, event.dir, event.name);
    } else {
      dedup_->remote(wd, event, now);
    }
  }
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

std::chrono::milliseconds Client::backoff(int attempt) {
  // 250 ms doubling to a cap, each with +-20 % jitter so that many clients
  // cut off together do not come back together.
  static thread_local std::minstd_rand random(std::random_device{}());
  int capMs = 30000;
  if (const char* env = std::getenv("RNOTIFY_RECONNECT_MAX_MS")) {
    if (int v = std::atoi(env); v > 0) capMs = v;
  }
  double ms = std::min<double>(capMs, 250.0 * std::pow(2.0, std::min(attempt, 20)));
  std::uniform_real_distribution<double> jitter(0.8, 1.2);
  return std::chrono::milliseconds(static_cast<int64_t>(ms * jitter(random)));
}

void Client::retryConnections() {
  auto now = std::chrono::steady_clock::now();
  std::vector<std::string> due;
  for (const auto& [key, retry] : retries_) {
    if (retry.due <= now && !openings_.count(key)) due.push_back(key);
  }
  for (const std::string& key : due) {
    retries_.at(key).due = std::chrono::steady_clock::time_point::max();  // while the attempt lasts
    auto started = openers_.at(key)();
    if (!started) {
      retryFailed(key, started.error());
      continue;
    }
    Opening& opening = openings_[key];
    opening.connection = std::move(*started);
    opening.timeoutMs = connectTimeoutMs();
    opening.deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(opening.timeoutMs);
    epoll_event ev{};
    ev.events = opening.connection->wanted();
    ev.data.ptr = opening.connection.get();
    ::epoll_ctl(epoll_.get(), EPOLL_CTL_ADD, opening.connection->pollFd(), &ev);
    advanceOpening(key);  // a unix socket may be connected already
  }
}

const std::string* Client::openingKey(const Connection* connection) const {
  for (const auto& [key, opening] : openings_) {
    if (opening.connection.get() == connection) return &key;
  }
  return nullptr;
}

void Client::advanceOpening(std::string key) {
  auto it = openings_.find(key);
  if (it == openings_.end()) return;
  Connection& connection = *it->second.connection;
  const Connection::Phase phase = connection.advance();
  if (phase != Connection::Phase::kReady && phase != Connection::Phase::kFailed) {
    epoll_event ev{};
    ev.events = connection.wanted();
    ev.data.ptr = &connection;
    ::epoll_ctl(epoll_.get(), EPOLL_CTL_MOD, connection.pollFd(), &ev);
    return;
  }
  std::unique_ptr<Connection> opened = std::move(it->second.connection);
  openings_.erase(it);
  ::epoll_ctl(epoll_.get(), EPOLL_CTL_DEL, opened->pollFd(), nullptr);
  if (phase == Connection::Phase::kFailed) {
    retryFailed(key, opened->failure());
    return;
  }
  forgetConnection(key);
  auto adopted = adopt(key, std::move(opened));
  if (!adopted) {
    retryFailed(key, adopted.error());
    return;
  }
  retries_.erase(key);
  log::warn("{}: connected again; restoring its watches", (*adopted)->description());
  restoreWatches(key, *adopted);
}

void Client::expireOpenings() {
  const auto now = std::chrono::steady_clock::now();
  std::vector<std::string> late;
  for (const auto& [key, opening] : openings_) {
    if (opening.deadline <= now) late.push_back(key);
  }
  for (const std::string& key : late) {
    auto it = openings_.find(key);
    std::unique_ptr<Connection> connection = std::move(it->second.connection);
    const Error why = connection->timeoutError(it->second.timeoutMs);
    openings_.erase(it);
    ::epoll_ctl(epoll_.get(), EPOLL_CTL_DEL, connection->pollFd(), nullptr);
    connection.reset();  // an agent is ended here
    retryFailed(key, why);
  }
}

void Client::retryFailed(const std::string& key, const Error& why) {
  Retry& retry = retries_[key];
  ++retry.attempt;
  auto wait = backoff(retry.attempt);
  log::info("still cannot reach the server ({}); next try in {} ms", why.message, wait.count());
  retry.due = std::chrono::steady_clock::now() + wait;
  retry.why = why.message;
  armReleaseTimer();
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
    if (watch.poll) {
      log::warn("'{}': {} is reachable: its events come from the server again, no more polling", watch.displayBase,
                connection->description());
      stopPolling(watch);
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

Result<Connection*> Client::connectionFor(const ResolvedPath& resolved, std::string* remotePath, std::string* why,
                                          std::string* connectionKey) {
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
      std::string key;
      for (const std::string& a : argv) key += a + '\x1f';
      *connectionKey = key;
      if (auto retry = retries_.find(key); retry != retries_.end()) {
        return Error{EAGAIN, retry->second.why.empty() ? "the server is not reachable" : retry->second.why};
      }
      std::string destination = target.destination;
      std::string agent = config_->agent;
      auto connection = connect(key, [argv, destination, agent] {
        return Connection::startAgent(argv, destination, agent, /*keepalive=*/true);
      });
      if (!connection) {
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
        return Error{EAGAIN, retry->second.why.empty() ? "the server is not reachable" : retry->second.why};
      }
      TlsSettings tls = entry->tls;
      return connect(endpoint, [endpoint, tls] {
        return Connection::startSocket(endpoint, tls, /*keepalive=*/true);
      });
    }
    case MountKind::kOtherNetwork:
      *why = "server-side watching is not available for " + resolved.mount.fsType + " mounts";
      return nullptr;
    case MountKind::kLocal:
      break;
  }
  return nullptr;
}

void Client::forgetConnection(const std::string& key) {
  auto it = connections_.find(key);
  if (it == connections_.end()) return;
  // Found dead by a write (nothing has read it since): the watches it
  // served are told and wait for the server again before it goes.
  connectionLost(*it->second);
  lost_.erase(it->second.get());
  declared_.erase(it->second.get());
  resumed_.erase(it->second.get());
  connections_.erase(it);
}

Result<Connection*> Client::connect(const std::string& key, Opener open) {
  if (auto it = connections_.find(key); it != connections_.end() && it->second->alive()) return it->second.get();
  forgetConnection(key);
  openers_[key] = open;
  auto opened = open();
  if (!opened) return opened.error();
  if (Status ready = (*opened)->finish(connectTimeoutMs()); !ready) return ready.error();
  return adopt(key, std::move(*opened));
}

Result<Connection*> Client::adopt(const std::string& key, std::unique_ptr<Connection> opened) {
  Connection* connection = opened.get();
  if (Status attached = attachSession(key, *connection); !attached) return attached.error();
  connection->setEventsHandler([this](Connection& c, proto::Events& events) { onRemoteEvents(c, events); });
  epoll_event ev{};
  ev.events = EPOLLIN;
  ev.data.ptr = connection;
  if (::epoll_ctl(epoll_.get(), EPOLL_CTL_ADD, connection->readFd(), &ev) != 0) return lastError("epoll_ctl");
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

Status Client::removeWatch(int wd) {
  auto it = watches_.find(wd);
  if (it == watches_.end()) return Error{EINVAL, "no watch " + std::to_string(wd)};
  endWatch(it->second);
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
  if (watch.cifs) ::epoll_ctl(epoll_.get(), EPOLL_CTL_DEL, watch.cifs->fd(), nullptr);
  if (watch.smb) ::epoll_ctl(epoll_.get(), EPOLL_CTL_DEL, watch.smb->fd(), nullptr);
  if (dedup_) dedup_->forget(watch.wd);  // delivers what it still held
  queue_.push_back(ClientEvent{watch.wd, IN_IGNORED, 0, 0, watch.displayBase, {}});
  polled_.erase(watch.wd);
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
  // What this host did through the mount comes back from the server too.
  if ((watch.poll || watch.cifs || watch.smb) && dedup_ && !watch.pollOnly) {
    // ... and in the next scan: make it soon, so that it is matched.
    if (watch.poll) watch.poll->hurry(PolledTree::Clock::now() + std::chrono::milliseconds(100));
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
  for (int wd : polled_) {
    auto it = watches_.find(wd);
    if (it != watches_.end() && it->second.poll) due = std::min(due, it->second.poll->deadline());
  }
  if (due != Dedup::Clock::time_point::max()) {
    // CLOCK_MONOTONIC is steady_clock's clock on Linux.
    auto ns = std::chrono::duration_cast<std::chrono::nanoseconds>(due.time_since_epoch()).count();
    if (ns <= 0) ns = 1;
    spec.it_value.tv_sec = ns / 1000000000;
    spec.it_value.tv_nsec = ns % 1000000000;
  }
  ::timerfd_settime(release_.get(), TFD_TIMER_ABSTIME, &spec, nullptr);
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
  queue_.push_back(std::move(event));
  updateReadiness();
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

Result<int> Client::next(ClientEvent* out, int timeoutMs) {
  using Clock = std::chrono::steady_clock;
  const auto deadline = Clock::now() + std::chrono::milliseconds(timeoutMs < 0 ? 0 : timeoutMs);
  for (;;) {
    if (!openings_.empty()) expireOpenings();
    if (!retries_.empty()) retryConnections();
    runResyncs();
    runPolls();
    if (dedup_ && dedup_->held() > 0) {
      dedup_->release(Dedup::Clock::now());
    }
    armReleaseTimer();
    if (!queue_.empty()) {
      *out = std::move(queue_.front());
      queue_.pop_front();
      updateReadiness();
      return 1;
    }
    int wait = -1;
    if (timeoutMs >= 0) {
      auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
      wait = left < 0 ? 0 : static_cast<int>(left);
    }
    epoll_event ready[16];
    int n = ::epoll_wait(epoll_.get(), ready, 16, wait);
    if (n < 0) {
      if (errno == EINTR) return Error{EINTR, "interrupted"};
      return lastError("epoll_wait");
    }
    for (int i = 0; i < n; ++i) {
      if (ready[i].data.u64 == kTagLocal) {
        local_->drain();
      } else if (ready[i].data.u64 == kTagKeepalive) {
        uint64_t expirations;
        [[maybe_unused]] ssize_t r = ::read(keepalive_.get(), &expirations, sizeof expirations);
        keepConnectionsAlive();
      } else if (ready[i].data.u64 == kTagRelease) {
        uint64_t expirations;
        [[maybe_unused]] ssize_t r = ::read(release_.get(), &expirations, sizeof expirations);
      } else if (ready[i].data.u64 & kTagNotify) {
        onNotify(static_cast<int>(ready[i].data.u64 & 0x7fffffff));
      } else if (ready[i].data.u64 != kTagReady) {
        auto* connection = static_cast<Connection*>(ready[i].data.ptr);
        if (const std::string* key = openingKey(connection)) {
          advanceOpening(*key);
        } else if (!connection->pump()) {
          connectionLost(*connection);
        }
      }
    }
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
