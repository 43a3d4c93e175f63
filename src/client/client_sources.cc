// The client core's sources other than rnotifyd (client.h): choosing one by
// the mount's fallbackOrder(), running it, handing its events to Dedup, and
// letting it go when the server serves the watch again.
#include <poll.h>
#include <sys/epoll.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>

#include "client/client.h"
#include "client/client_internal.h"
#include "common/log.h"
#include "mounts/sshfs_target.h"
#include "poll/polled_tree.h"
#include "rnotify/rnotify.h"

namespace rnotify {

using namespace client_detail;

namespace {

// Through the mount, a scan sees a server-side change only when sshfs's
// caches expire (20 s by default): SFTP reads the server's tree.
constexpr const char* kSftpInstead =
    "; the mount itself is scanned instead, and sshfs's caches delay what is seen "
    "(up to dcache_timeout, 20 s by default)";

}  // namespace

PollScanner::Options Client::pollOptions(const ResolvedPath& resolved) const {
  PollScanner::Options options;
  options.interval.initial = std::chrono::milliseconds(config_->pollIntervalMs);
  options.interval.min = std::chrono::milliseconds(config_->pollMinMs);
  options.interval.max = std::chrono::milliseconds(config_->pollMaxMs);
  // FUSE filesystems may renumber an inode the kernel forgot (sshfs without
  // use_ino does): a name then identifies an entry, not its number.
  options.stableInodes = resolved.kind == MountKind::kLocal || resolved.mount.fsType.rfind("fuse", 0) != 0;
  // NFS and cifs answer a file's statx from their attribute caches (NFS:
  // up to acregmax, 60 s by default, for a file that has been quiet), so an
  // append or a chmod on the server would show that much later: ask the
  // server (one round trip per file statx'd; the scan's slices keep that out
  // of one call).
  if (resolved.kind == MountKind::kNfs || resolved.kind == MountKind::kSmb) options.sync = PollFs::Sync::kAll;
  // A scan of the mount works this long per call, so that rnotify_next(..., 0)
  // stays under a millisecond on a large tree (an NFS directory's statx is a
  // round trip to the server).
  options.slice = std::chrono::microseconds(500);
  return options;
}

std::unique_ptr<WatchSource> Client::tryFallback(Watch& watch, const ResolvedPath& resolved, SourceKind kind,
                                                 std::string* why) {
  SourceRequest request;
  request.kind = kind;
  request.localRoot = watch.localRoot;
  request.mask = watch.mask & IN_ALL_EVENTS;
  request.recursive = watch.recursive;
  request.isDirectory = watch.isDirectory;
  request.scan = pollOptions(resolved);
  request.scan.recursive = watch.recursive;
  switch (kind) {
    case SourceKind::kServer:
      *why = "not a fallback";
      return nullptr;
    case SourceKind::kLibsmbclient:
      if (!smbRequest(resolved, &request, why)) return nullptr;
      break;
    case SourceKind::kSftpScan: {
      auto target = sshTargetOf(resolved.mount);
      if (!target) {
        *why = target.error().message;
        return nullptr;
      }
      if (auto retry = retries_.find(agentKey(**target));
          retry != retries_.end() && retry->second.code == EHOSTUNREACH) {
        // ssh itself could not connect just now: SFTP goes over ssh too.
        *why = "not tried, ssh cannot reach " + (*target)->destination + kSftpInstead;
        return nullptr;
      }
      request.ssh = *target;
      request.serverPath = serverPath(**target, resolved.relative);
      request.startTimeoutMs = timing_.connectTimeoutMs;
      break;
    }
    case SourceKind::kCifsIoctl:
    case SourceKind::kMountScan:
      break;
  }
  auto source = env_->startSource(request);
  if (source) return std::move(*source);
  *why = source.error().message + (kind == SourceKind::kSftpScan ? kSftpInstead : "");
  return nullptr;
}

void Client::startFallback(Watch& watch, const ResolvedPath& resolved, const std::string& why, SourceKind after) {
  const std::vector<SourceKind>& order = fallbackOrder(resolved.kind);
  auto next = std::find(order.begin(), order.end(), after);
  next = next == order.end() ? order.begin() : next + 1;
  watch.skipped.push_back(std::string(sourceKindName(after)) + ": " + why);
  const size_t toldBefore = watch.skipped.size();
  for (; next != order.end() && !watch.fallback; ++next) {
    if (*next == SourceKind::kServer) continue;
    std::string whyNot;
    watch.fallback = tryFallback(watch, resolved, *next, &whyNot);
    if (!watch.fallback) watch.skipped.push_back(std::string(sourceKindName(*next)) + ": " + whyNot);
  }
  if (!watch.fallback && std::find(order.begin(), order.end(), SourceKind::kMountScan) == order.end()) {
    std::string whyNot;  // a mount of a kind without fallbacks
    watch.fallback = tryFallback(watch, resolved, SourceKind::kMountScan, &whyNot);
    if (!watch.fallback) watch.skipped.push_back(std::string(sourceKindName(SourceKind::kMountScan)) + ": " + whyNot);
  }
  std::string reasons;
  for (const std::string& reason : watch.skipped) reasons += (reasons.empty() ? "" : "; ") + reason;
  if (!watch.fallback) {
    // Scans of the mount start without I/O: only a test's environment fails them.
    log::error("'{}': no source for the server's changes ({}); local events only", watch.displayBase, reasons);
    watch.source = "local inotify (" + reasons + ")";
    return;
  }
  registerSource(watch);
  // Its opening of the directory, which this host's kernel reports.
  if (watch.fallback->openedMount()) ++watch.ownOpenings;
  ensureDedup();
  // The fallbacks' reports: names and broad kinds, matched by name.
  dedup_->setStrategy(watch.wd, Dedup::Strategy::kPolled);
  watch.strategy = Dedup::Strategy::kPolled;
  watch.source = watch.fallback->describe() + " + local inotify (" + reasons + ")";
  watch.sourceOnceStarted.clear();
  if (watch.fallback->starting()) {
    // Its baseline is not taken yet: the server's changes are not reported
    // until then, which is what RNOTIFY_SOURCE_CONNECTING says.
    watch.sourceOnceStarted = std::exchange(watch.source, std::string(RNOTIFY_SOURCE_CONNECTING) +
                                                              "the server: " + watch.fallback->describe() +
                                                              ", the first scan under way; local inotify meanwhile");
  }
  const std::string mountKey = rnotify::mountKey(resolved.mount);
  if (fallbackTold_.insert(mountKey).second) {
    std::string how;
    for (size_t i = toldBefore; i < watch.skipped.size(); ++i) how += "; not " + watch.skipped[i];
    if (watch.fallback->kind() == SourceKind::kMountScan) {
      if (std::string advice = pollMountAdvice(resolved.mount); !advice.empty()) how += "; " + advice;
    }
    log::warn("{} ({} mount of {}): {}; falling back to {}{}{}", resolved.mount.mountPoint, resolved.mount.fsType,
              resolved.mount.source, why, watch.fallback->describe(), how,
              watch.waitingForServer ? "; the server is tried again in the background" : "");
  }
}

void Client::registerSource(Watch& watch) {
  if (!watch.fallback) return;
  if (watch.fallback->fd() >= 0) {
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.u64 = kTagNotify | static_cast<uint64_t>(watch.wd);
    ::epoll_ctl(epoll_.get(), EPOLL_CTL_ADD, watch.fallback->fd(), &ev);
  }
  if (watch.fallback->deadline() != WatchSource::Clock::time_point::max() || watch.fallback->scans()) {
    scanned_.insert(watch.wd);
  }
}

void Client::handOver(Watch& watch) {
  if (!watch.fallback) return;
  // Changes up to the server's watch were made are in the last round; those
  // made since come from the server (one made in between may come from both).
  const int wd = watch.wd;
  watch.handingOver = true;
  // The server's source string stands from here on.
  watch.sourceOnceStarted.clear();
  watch.fallback->finish();
  auto last = takeFromSource(watch);  // may end the watch (the local kernel's IGNORED)
  auto it = watches_.find(wd);
  if (it != watches_.end()) deliverLastRound(it->second, last);
}

void Client::deliverLastRound(Watch& watch, Result<std::vector<Event>>& events) {
  const int wd = watch.wd;
  // Only around a delivery: a change of strategy forgets what Dedup held
  // for the watch, and most calls of a round over SFTP deliver nothing.
  if (events && !events->empty() && dedup_) {
    const Dedup::Strategy after = watch.strategy;  // the server's, set by attachRemote
    dedup_->setStrategy(wd, Dedup::Strategy::kPolled);
    deliverFromSource(wd, *events);
    if (watches_.count(wd)) dedup_->setStrategy(wd, after);
  }
  auto it = watches_.find(wd);
  if (it == watches_.end() || !it->second.fallback || !it->second.fallback->finished()) return;
  Watch& served = it->second;
  // The last round failed: what changed between the last good one and the
  // server's watch is not known.
  if (!events) push(served, IN_Q_OVERFLOW | kInRemote, 0, 0, {}, {});
  if (served.fallback->fd() >= 0) ::epoll_ctl(epoll_.get(), EPOLL_CTL_DEL, served.fallback->fd(), nullptr);
  std::unique_ptr<WatchSource> gone = std::move(served.fallback);
  scanned_.erase(wd);
  served.skipped.clear();
  served.sourceOnceStarted.clear();
  served.handingOver = false;
  // The server's changes are reported from here on, the scans have ended.
  push(served, kInRestored | kInRemote, 0, 0, {}, {});
}

bool Client::smbRequest(const ResolvedPath& resolved, SourceRequest* request, std::string* why) {
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
    *why = location.error().message;
    return false;
  }
  if (!resolved.relative.empty()) location->path += (location->path.empty() ? "" : "/") + resolved.relative;
  auto credentials = env_->smbCredentials(*config_, user);
  if (!credentials) {
    *why = credentials.error().message;
    return false;
  }
  request->smb = std::move(*location);
  request->credentials = std::move(*credentials);
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
  if (inUrl.password.empty()) credentials = env_->smbCredentials(*config_, inUrl.user);
  if (!credentials)
    return Error{credentials.error().code, "cannot watch '" + shown + "': " + credentials.error().message};
  SourceRequest request;
  request.kind = SourceKind::kLibsmbclient;
  request.mask = mask & IN_ALL_EVENTS;
  request.recursive = recursive;
  request.smb = *location;
  request.credentials = std::move(*credentials);
  auto smb = env_->startSource(request);
  if (!smb) return Error{smb.error().code, "cannot watch '" + shown + "': " + smb.error().message};
  Watch watch;
  watch.wd = nextWd_;
  const std::string base = inUrl.password.empty() ? url : shown;
  watch.displayBase = base.back() == '/' ? base : base + "/";
  watch.isDirectory = true;
  watch.mask = mask;
  watch.recursive = recursive;
  watch.fallback = std::move(*smb);
  watch.source = watch.fallback->describe();
  registerSource(watch);
  int wd = nextWd_++;
  watches_.emplace(wd, std::move(watch));
  return wd;
}

Result<std::vector<Event>> Client::takeFromSource(Watch& watch) {
  auto events = watch.fallback->take();
  if (!watch.sourceOnceStarted.empty() && !watch.handingOver && !watch.fallback->starting()) {
    watch.source = std::exchange(watch.sourceOnceStarted, {});
  }
  // The scan's own reads of the directories, reported by this host's
  // kernel: not something anyone did to the tree.
  if (watch.fallback->readsMount()) dropOwnReads(watch);
  return events;
}

void Client::dropOwnReads(Watch& watch) {
  if (watch.local == 0) return;
  scanningWd_ = watch.wd;
  local_->drain();
  scanningWd_ = 0;
}

Result<std::vector<Event>> Client::takeBaseline(Watch& watch, bool wait) {
  const int wd = watch.wd;
  // As a request to a server: at most 3 x the connect timeout; a source
  // still starting then goes on in next().
  const auto giveUp = WatchSource::Clock::now() + 3 * std::chrono::milliseconds(timing_.connectTimeoutMs);
  auto first = takeFromSource(watch);
  for (;;) {
    auto it = watches_.find(wd);
    if (it == watches_.end() || !it->second.fallback) return first;
    WatchSource& source = *it->second.fallback;
    if (!source.starting()) return first;
    if (source.failed()) {
      replaceFailedSource(it->second);
      it = watches_.find(wd);
      if (it == watches_.end() || !it->second.fallback || !wait) return std::vector<Event>{};
      first = takeFromSource(it->second);
      continue;
    }
    // A scan of the mount goes on until it is complete: every call advances it.
    if (!first || !wait || (source.kind() != SourceKind::kMountScan && WatchSource::Clock::now() >= giveUp)) {
      return first;
    }
    // Bounded by the source's own deadlines (its start, its scan).
    // A due source's deadline may be time_point::min(): no subtraction then.
    const auto due = source.deadline();
    const auto now = WatchSource::Clock::now();
    const auto ms = due <= now ? 0 : std::chrono::ceil<std::chrono::milliseconds>(due - now).count();
    pollfd ready{source.fd(), POLLIN, 0};
    ::poll(&ready, source.fd() >= 0 ? 1 : 0, static_cast<int>(std::clamp<int64_t>(ms, 0, 1000)));
    first = takeFromSource(it->second);
  }
}

void Client::runDueSources() {
  const auto now = WatchSource::Clock::now();
  std::vector<int> due;
  for (int wd : scanned_) {
    auto it = watches_.find(wd);  // not there yet while addWatch makes it
    if (it != watches_.end() && it->second.fallback && it->second.fallback->deadline() <= now) due.push_back(wd);
  }
  for (int wd : due) runSource(wd);
  armReleaseTimer();
}

void Client::runSource(int wd) {
  auto it = watches_.find(wd);
  if (it == watches_.end() || !it->second.fallback) return;
  Watch& watch = it->second;
  auto events = takeFromSource(watch);
  if (watches_.find(wd) == watches_.end() || !watch.fallback) return;
  if (watch.handingOver) {
    deliverLastRound(watch, events);
    return;
  }
  if (watch.fallback->failed()) {
    if (events) deliverFromSource(wd, *events);
    it = watches_.find(wd);
    if (it == watches_.end() || !it->second.fallback) return;
    replaceFailedSource(it->second);
    // The next source's baseline at once (as firstAttemptFailed takes it).
    it = watches_.find(wd);
    if (it != watches_.end() && it->second.fallback && it->second.fallback->scans()) runSource(wd);
    armReleaseTimer();
    return;
  }
  if (!events) {
    if (!watch.fallbackFailing) {
      log::warn("'{}': {}; trying again at each interval", watch.displayBase, events.error().message);
    }
    watch.fallbackFailing = true;
  } else {
    // A session that replaced a broken one works once it has scanned.
    if (watch.fallbackFailing && !watch.fallback->starting()) {
      log::warn("'{}': {} works again", watch.displayBase, watch.fallback->describe());
      watch.fallbackFailing = false;
    }
    deliverFromSource(wd, *events);
  }
  armReleaseTimer();
}

void Client::replaceFailedSource(Watch& watch) {
  const int wd = watch.wd;
  const Error error = watch.fallback->error();
  const SourceKind ended = watch.fallback->kind();
  const bool served = !watch.fallback->starting();
  if (watch.fallback->fd() >= 0) ::epoll_ctl(epoll_.get(), EPOLL_CTL_DEL, watch.fallback->fd(), nullptr);
  if (served) {
    log::error("'{}': {} ended: {}", watch.displayBase, watch.fallback->describe(), error.message);
    push(watch, IN_Q_OVERFLOW | kInRemote, 0, 0, {}, {});
  } else {
    log::warn("'{}': {} could not start: {}", watch.displayBase, watch.fallback->describe(), error.message);
  }
  watch.fallback.reset();
  watch.fallbackFailing = false;
  watch.sourceOnceStarted.clear();
  scanned_.erase(wd);
  if (watch.local == 0) {
    endWatch(watch);  // an smb:// watch has nothing else
    return;
  }
  // The cifs ioctl may fail only at its first call (an old kernel):
  // libsmbclient next, then polling. SFTP that cannot start: the mount.
  startFallback(watch, env_->resolve(watch.localRoot),
                error.message + (ended == SourceKind::kSftpScan ? kSftpInstead : ""), ended);
}

void Client::deliverFromSource(int wd, std::vector<Event>& events) {
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
    if (event.mask & IN_Q_OVERFLOW) {
      // The server lost track (STATUS_NOTIFY_ENUM_DIR): say so; what changed
      // meanwhile is not known in detail.
      push(watch, IN_Q_OVERFLOW | kInRemote, 0, 0, {}, {});
    } else if (watch.pollOnly) {
      push(watch, event.mask, event.cookie, 0, event.dir, event.name);  // scans of this host's own tree
    } else if (watch.local == 0 || !dedup_) {
      push(watch, event.mask | kInRemote, event.cookie, 0, event.dir, event.name);
    } else {
      dedup_->remote(wd, event, now);
    }
  }
}

}  // namespace rnotify
