// The client core's sources other than rnotifyd (client.h): choosing one by
// the mount's fallbackOrder(), running it, handing its events to Dedup, and
// letting it go when the server serves the watch again.
#include <sys/epoll.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>

#include "client/client.h"
#include "client/client_internal.h"
#include "common/log.h"
#include "mounts/mount_resolver.h"
#include "mounts/sshfs_target.h"
#include "poll/sftp_tree.h"

namespace rnotify {

using namespace client_detail;

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

std::unique_ptr<WatchSource> Client::tryFallback(Watch& watch, const ResolvedPath& resolved, SourceKind kind,
                                                 std::string* why) {
  PollScanner::Options options = pollOptions(resolved);
  options.recursive = watch.recursive;
  switch (kind) {
    case SourceKind::kServer:
      break;
    case SourceKind::kCifsIoctl: {
      auto cifs = CifsNotify::start(watch.localRoot, watch.mask & IN_ALL_EVENTS, watch.recursive);
      if (cifs) return cifsSource(std::move(*cifs));
      *why = cifs.error().message;
      break;
    }
    case SourceKind::kLibsmbclient:
      return libsmbclientFor(watch, resolved, why);
    case SourceKind::kSftpScan: {
      // Through the mount, a scan sees a server-side change only when sshfs's
      // caches expire (20 s by default): read the server's tree over SFTP.
      const std::string mountKey = resolved.mount.mountPoint + '\n' + resolved.mount.source;
      auto known = sshTargets_.find(mountKey);
      if (known == sshTargets_.end()) {
        auto target = findSshfsTarget(resolved.mount);
        if (!target) {
          *why = target.error().message;
          break;
        }
        known = sshTargets_.emplace(mountKey, std::move(*target)).first;
      }
      if (auto retry = retries_.find(agentKey(known->second));
          retry != retries_.end() && retry->second.code == EHOSTUNREACH) {
        // ssh itself could not connect just now: SFTP goes over ssh too.
        *why = "not tried, ssh cannot reach " + known->second.destination +
               "; the mount itself is scanned instead, and sshfs's caches delay what is seen "
               "(up to dcache_timeout, 20 s by default)";
        break;
      }
      auto tree = scanOverSftp(known->second, serverPath(known->second, resolved.relative), watch.isDirectory, options);
      if (tree) return scanSource(std::move(*tree), kind);
      *why = tree.error().message +
             "; the mount itself is scanned instead, and sshfs's caches delay what is seen "
             "(up to dcache_timeout, 20 s by default)";
      break;
    }
    case SourceKind::kMountScan:
      return scanSource(scanMount(watch.localRoot, options), kind);
  }
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
  if (!watch.fallback) {  // a mount of a kind without fallbacks: scanning always works
    watch.fallback = tryFallback(watch, resolved, SourceKind::kMountScan, nullptr);
  }
  registerSource(watch);
  ensureDedup();
  // The fallbacks' reports: names and broad kinds, matched by name.
  dedup_->setStrategy(watch.wd, Dedup::Strategy::kPolled);
  watch.strategy = Dedup::Strategy::kPolled;
  std::string reasons;
  for (const std::string& reason : watch.skipped) reasons += (reasons.empty() ? "" : "; ") + reason;
  watch.source = watch.fallback->describe() + " + local inotify (" + reasons + ")";
  const std::string mountKey = resolved.mount.mountPoint + '\n' + resolved.mount.source;
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

void Client::dropFallback(Watch& watch) {
  if (!watch.fallback) return;
  const int wd = watch.wd;
  Result<std::vector<Event>> last = std::vector<Event>{};
  // Changes up to the server's watch were made are in this scan; those made
  // since come from the server (one made in between may come from both).
  if (watch.fallback->scans()) last = takeFromSource(watch);
  if (watches_.find(wd) == watches_.end()) return;
  if (watch.fallback->fd() >= 0) ::epoll_ctl(epoll_.get(), EPOLL_CTL_DEL, watch.fallback->fd(), nullptr);
  std::unique_ptr<WatchSource> gone = std::move(watch.fallback);
  scanned_.erase(wd);
  watch.skipped.clear();
  if (!last || !dedup_) return;
  const Dedup::Strategy after = watch.strategy;  // the server's, set by attachRemote
  dedup_->setStrategy(wd, Dedup::Strategy::kPolled);
  deliverFromSource(wd, *last);
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

std::unique_ptr<WatchSource> Client::libsmbclientFor(const Watch& watch, const ResolvedPath& resolved,
                                                     std::string* why) {
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
    return nullptr;
  }
  if (!resolved.relative.empty()) location->path += (location->path.empty() ? "" : "/") + resolved.relative;
  auto credentials = smbCredentials(user);
  if (!credentials) {
    *why = credentials.error().message;
    return nullptr;
  }
  auto smb = SmbNotify::start(*location, *credentials, watch.mask & IN_ALL_EVENTS, watch.recursive);
  if (!smb) {
    *why = smb.error().message;
    return nullptr;
  }
  return smbSource(std::move(*smb), smbUrl(*location));
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
  if (!credentials)
    return Error{credentials.error().code, "cannot watch '" + shown + "': " + credentials.error().message};
  auto smb = SmbNotify::start(*location, *credentials, mask & IN_ALL_EVENTS, recursive);
  if (!smb) return Error{smb.error().code, "cannot watch '" + shown + "': " + smb.error().message};
  Watch watch;
  watch.wd = nextWd_;
  const std::string base = inUrl.password.empty() ? url : shown;
  watch.displayBase = base.back() == '/' ? base : base + "/";
  watch.isDirectory = true;
  watch.mask = mask;
  watch.recursive = recursive;
  watch.fallback = smbSource(std::move(*smb), shown);
  watch.source = watch.fallback->describe();
  registerSource(watch);
  int wd = nextWd_++;
  watches_.emplace(wd, std::move(watch));
  return wd;
}

Result<std::vector<Event>> Client::takeFromSource(Watch& watch) {
  const int wd = watch.wd;
  auto events = watch.fallback->take();
  if (watch.fallback->readsMount() && watch.local != 0) {
    // The scan's own reads of the directories, reported by this host's
    // kernel: not something anyone did to the tree.
    scanningWd_ = wd;
    local_->drain();
    scanningWd_ = 0;
  }
  return events;
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
  if (watches_.find(wd) == watches_.end()) return;
  if (!events) {
    if (!watch.fallbackFailing) {
      log::warn("'{}': {}; trying again at each interval", watch.displayBase, events.error().message);
    }
    watch.fallbackFailing = true;
  } else {
    if (watch.fallbackFailing) log::warn("'{}': {} works again", watch.displayBase, watch.fallback->describe());
    watch.fallbackFailing = false;
    deliverFromSource(wd, *events);
  }
  it = watches_.find(wd);
  if (it == watches_.end() || !it->second.fallback || !it->second.fallback->failed()) {
    armReleaseTimer();
    return;
  }
  // The source ended (an SMB session broke): say so, and take the next one.
  const Error error = watch.fallback->error();
  const SourceKind ended = watch.fallback->kind();
  if (watch.fallback->fd() >= 0) ::epoll_ctl(epoll_.get(), EPOLL_CTL_DEL, watch.fallback->fd(), nullptr);
  log::error("'{}': {} ended: {}", watch.displayBase, watch.fallback->describe(), error.message);
  push(watch, IN_Q_OVERFLOW | kInRemote, 0, 0, {}, {});
  watch.fallback.reset();
  scanned_.erase(wd);
  if (watch.local == 0) {
    endWatch(watch);  // an smb:// watch has nothing else
    return;
  }
  // The cifs ioctl may fail only at its first call (an old kernel):
  // libsmbclient next, then polling.
  startFallback(watch, MountResolver::fromProc().resolve(watch.localRoot), error.message, ended);
  armReleaseTimer();
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
