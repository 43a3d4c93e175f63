#include "client/client.h"

#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <climits>
#include <cstdlib>

#include "client/mount_resolver.h"
#include "client/sshfs_target.h"
#include "common/log.h"
#include "event/event.h"
#include "rnotify/rnotify.h"

namespace rnotify {
namespace {

constexpr uint64_t kTagLocal = 1;
constexpr uint64_t kTagReady = 2;

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
  return {};
}

Client::~Client() = default;

Result<int> Client::addWatch(const std::string& path, uint32_t mask, unsigned flags) {
  if (path.empty()) return Error{ENOENT, "cannot watch '': empty path"};
  if ((mask & IN_ALL_EVENTS) == 0) return Error{EINVAL, "cannot watch '" + path + "': no events requested"};
  struct stat st;
  int statResult = (mask & IN_DONT_FOLLOW) ? ::lstat(path.c_str(), &st) : ::stat(path.c_str(), &st);
  if (statResult != 0) return Error::fromErrno(errno, "cannot watch '" + path + "'");
  const bool isDirectory = S_ISDIR(st.st_mode);
  if ((mask & IN_ONLYDIR) && !isDirectory) return Error{ENOTDIR, "cannot watch '" + path + "': not a directory"};
  // As with inotifywait -r, a recursive watch on a file is a watch on the file.
  const bool recursive = (flags & RNOTIFY_RECURSIVE) && isDirectory;
  char real[PATH_MAX];
  if (::realpath(path.c_str(), real) == nullptr) return Error::fromErrno(errno, "cannot watch '" + path + "'");

  SubscribeOptions options;
  options.mask = mask;
  options.recursive = recursive;
  auto local = local_->subscribe(real, options);
  if (!local) return Error{local.error().code, local.error().message};

  Watch watch;
  watch.wd = nextWd_;
  watch.displayBase = displayBase(path, isDirectory);
  watch.isDirectory = isDirectory;
  watch.mask = mask;
  watch.local = *local;
  watch.source = "local inotify";

  if (!(flags & RNOTIFY_LOCAL_ONLY)) {
    ResolvedPath resolved = MountResolver::fromProc().resolve(real);
    if (resolved.kind != MountKind::kLocal) {
      std::string remotePath, why;
      auto connection = connectionFor(resolved, &remotePath, &why);
      if (!connection) {
        local_->unsubscribe(*local);
        return Error{connection.error().code, "cannot watch '" + path + "': " + connection.error().message};
      }
      if (*connection == nullptr) {
        log::warn("'{}': {}; only changes made by this host will be seen", path, why);
        watch.source = "local inotify only (" + why + ")";
      } else {
        proto::Watch request;
        request.flags = recursive ? uint32_t{proto::kWatchRecursive} : 0u;
        request.mask = mask & IN_ALL_EVENTS;
        request.path = remotePath;
        auto reply = (*connection)->request(request, connectTimeoutMs() * 3);
        if (!reply || reply->status != 0) {
          local_->unsubscribe(*local);
          if (!reply) {
            if (!(*connection)->alive()) connectionLost(**connection);
            return Error{reply.error().code, "cannot watch '" + path + "': " + reply.error().message};
          }
          return Error{reply->status, "cannot watch '" + path + "' (server path '" + remotePath + "' on " +
                                          (*connection)->description() + "): " + reply->message};
        }
        watch.remote = *connection;
        watch.remoteId = reply->watchId;
        if (!echo_ && config_->echoWindowMs > 0) {
          EchoMatcher::Options echo;
          echo.window = std::chrono::milliseconds(config_->echoWindowMs);
          echo_.emplace(echo);
        }
        watch.source = (*connection)->description() + " + local inotify";
        byRemote_[{watch.remote, watch.remoteId}] = watch.wd;
      }
    }
  }
  byLocal_[watch.local] = watch.wd;
  int wd = nextWd_++;
  log::debug("watch {} on '{}': {}", wd, path, watch.source);
  watches_.emplace(wd, std::move(watch));
  return wd;
}

Result<Connection*> Client::connectionFor(const ResolvedPath& resolved, std::string* remotePath, std::string* why) {
  if (!config_) {
    auto config = loadConfig();
    if (!config) return config.error();
    config_ = std::move(*config);
  }
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
      std::string destination = target.destination;
      std::string agent = config_->agent;
      auto connection =
          connect(key, [&]() { return Connection::overAgent(argv, destination, agent, connectTimeoutMs()); });
      if (!connection) sshTargets_.erase(mountKey);  // remounted with other options? look again next time
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
      return connect(endpoint, [&]() { return Connection::overSocket(endpoint, connectTimeoutMs()); });
    }
    case MountKind::kOtherNetwork:
      *why = "server-side watching is not available for " + resolved.mount.fsType + " mounts";
      return nullptr;
    case MountKind::kLocal:
      break;
  }
  return nullptr;
}

Result<Connection*> Client::connect(const std::string& key, std::function<Result<std::unique_ptr<Connection>>()> open) {
  if (auto it = connections_.find(key); it != connections_.end()) {
    if (it->second->alive()) return it->second.get();
    connections_.erase(it);
  }
  auto opened = open();
  if (!opened) return opened.error();
  Connection* connection = opened->get();
  connection->setEventsHandler([this](Connection& c, proto::Events& events) { onRemoteEvents(c, events); });
  epoll_event ev{};
  ev.events = EPOLLIN;
  ev.data.ptr = connection;
  if (::epoll_ctl(epoll_.get(), EPOLL_CTL_ADD, connection->readFd(), &ev) != 0) return lastError("epoll_ctl");
  connections_.emplace(key, std::move(*opened));
  return connection;
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
    watch.remote->requestNoWait(unwatch);
  }
  queue_.push_back(ClientEvent{watch.wd, IN_IGNORED, 0, 0, watch.displayBase, {}});
  if (echo_) echo_->forget(watch.wd);
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
  // What this host did through the mount comes back from the server too.
  if (watch.remote != nullptr && echo_ &&
      !echo_->admit(EchoMatcher::Side::kLocal, watch.wd, mask, dir, name, EchoMatcher::Clock::now())) {
    return;
  }
  push(watch, mask, cookie, 0, dir, name);
}

void Client::onRemoteEvents(Connection& connection, proto::Events& events) {
  for (const Event& event : events.events) {
    auto it = byRemote_.find({&connection, event.watch});
    if (it == byRemote_.end()) continue;  // a watch removed while its events were on the way
    Watch& watch = watches_.at(it->second);
    if ((event.mask & IN_IGNORED) && event.dir.empty()) {
      byRemote_.erase(it);
      watch.remote = nullptr;
      endWatch(watch);
      continue;
    }
    if (echo_ && !echo_->admit(EchoMatcher::Side::kRemote, watch.wd, event.mask, event.dir, event.name,
                               EchoMatcher::Clock::now())) {
      continue;
    }
    push(watch, event.mask | kInRemote, event.cookie, event.seq, event.dir, event.name);
  }
}

void Client::connectionLost(Connection& connection) {
  ::epoll_ctl(epoll_.get(), EPOLL_CTL_DEL, connection.readFd(), nullptr);
  log::error("{}", connection.failure().message);
  // Never silence: every watch served by it gets an overflow event, meaning
  // "remote events may have been missed from here on".
  for (auto it = byRemote_.begin(); it != byRemote_.end();) {
    if (it->first.first != &connection) {
      ++it;
      continue;
    }
    Watch& watch = watches_.at(it->second);
    watch.remote = nullptr;
    watch.source = "local inotify only (lost " + connection.description() + ")";
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
      } else if (ready[i].data.u64 != kTagReady) {
        auto* connection = static_cast<Connection*>(ready[i].data.ptr);
        if (!connection->pump()) connectionLost(*connection);
      }
    }
    if (n == 0 && queue_.empty() && timeoutMs >= 0) return 0;
  }
}

const char* Client::watchSource(int wd) const {
  auto it = watches_.find(wd);
  return it == watches_.end() ? nullptr : it->second.source.c_str();
}

}  // namespace rnotify
