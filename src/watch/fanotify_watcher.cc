#include "watch/fanotify_watcher.h"

#include <fcntl.h>
#include <linux/openat2.h>
#include <sys/fanotify.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <utility>

#include "common/log.h"
#include "watch/capability.h"
#include "watch/confined_open.h"
#include "watch/file_handle.h"
#include "watch/watch_path.h"

namespace rnotify {
namespace {

// Every filesystem mark asks for these, whatever its subscribers want, so that
// the cache follows the tree. On a filesystem mark FAN_EVENT_ON_CHILD is
// implied; it is spelled out for clarity. DELETE_SELF and MOVE_SELF are not
// here: on a filesystem mark they would queue a second event for every file
// deleted or moved anywhere on it. They are asked for on inode marks of the
// objects that need them (subscription roots and watched files); a
// subdirectory's own DELETE_SELF and MOVE_SELF are derived from the
// DELETE|ONDIR and RENAME|ONDIR its parent reports.
constexpr uint64_t kMarkBaseMask = FAN_CREATE | FAN_DELETE | FAN_RENAME | FAN_ONDIR | FAN_EVENT_ON_CHILD;
constexpr uint64_t kSelfEvents = FAN_DELETE_SELF | FAN_MOVE_SELF;

// A drain reads at most this much (4 MiB, as InotifyWatcher) before letting
// the owner's loop do other work; a sustained flood must not starve clients.
constexpr size_t kBufferSize = 256 * 1024;
constexpr int kMaxReadsPerDrain = 16;
// Directories whose path is remembered: at most ~25 MB, whatever the size of
// the watched trees (a miss costs an open_by_handle_at and a readlink).
constexpr size_t kCacheCapacity = 1 << 16;

uint64_t markMaskFor(uint32_t wanted) {
  uint64_t mask = wanted & IN_ALL_EVENTS & ~(IN_MOVED_FROM | IN_MOVED_TO | kSelfEvents);
  if (wanted & (IN_MOVED_FROM | IN_MOVED_TO)) mask |= FAN_RENAME;
  return mask;
}

std::string parentOf(const std::string& path) {
  size_t slash = path.rfind('/');
  return slash == 0 ? "/" : path.substr(0, slash);
}

// open_by_handle_at resolves through a descriptor on the mount, and it must
// not be O_PATH. Holding the watched directory itself open would delay its
// DELETE_SELF until we let go, so we hold the root of its mount: walk up
// while ".." stays on the same mount. Opened before the mark exists, so that
// its open goes unreported.
UniqueFd openMountRoot(int dirFd, int mountId) {
  UniqueFd current = openMountRootPath(dirFd, mountId);
  if (!current) return current;
  return UniqueFd(::openat(current.get(), ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC));
}

// fanotify_mark cannot take an O_PATH descriptor as its object, but it
// follows the descriptor's /proc link.
int markInode(int group, unsigned int flags, uint64_t mask, int objectFd) {
  const std::string link = "/proc/self/fd/" + std::to_string(objectFd);
  return ::fanotify_mark(group, flags | FAN_MARK_INODE, mask, AT_FDCWD, link.c_str());
}

// An O_PATH descriptor of the directory at `path` (absolute, as
// /proc/self/fd shows it: no symbolic links in it), if it is on mount
// mountId; invalid with errno set otherwise.
UniqueFd openDirectoryOnMount(const std::string& path, int mountId) {
  open_how how{};
  how.flags = O_PATH | O_DIRECTORY | O_CLOEXEC;
  how.resolve = RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS;
  UniqueFd dir(static_cast<int>(::syscall(SYS_openat2, AT_FDCWD, path.c_str(), &how, sizeof how)));
  if (dir && mountIdOf(dir.get()) != mountId) {
    errno = EXDEV;
    return UniqueFd();
  }
  return dir;
}

Error pathError(int code, const std::string& path) { return Error::fromErrno(code, "cannot watch '" + path + "'"); }

Error markError(int code, const std::string& path) {
  const char* why;
  switch (code) {
    case ENODEV:
      why = "its filesystem has no fsid, as FUSE filesystems (sshfs) do; inotify can watch it";
      break;
    case EXDEV:
      why = "its filesystem shares its fsid with another (a btrfs subvolume?); inotify can watch it";
      break;
    case EOPNOTSUPP:
      why = "its filesystem cannot name files by handle; inotify can watch it";
      break;
    case EPERM:
      why = "filesystem marks need CAP_SYS_ADMIN; run rnotifyd as root or use inotify";
      break;
    case EINVAL:
      why = "the kernel cannot report renames on filesystem marks (needs Linux 5.17)";
      break;
    default:
      why = "fanotify_mark failed";
  }
  return Error::fromErrno(code, "cannot watch '" + path + "' with fanotify (" + why + ")");
}

}  // namespace

Result<std::unique_ptr<FanotifyWatcher>> FanotifyWatcher::create(EventSink& sink) {
  // fanotify_init works unprivileged since 5.13, but filesystem marks need
  // CAP_SYS_ADMIN and open_by_handle_at CAP_DAC_READ_SEARCH: refuse early so
  // that the automatic choice falls back to inotify at once.
  if (!hasCapability(CAP_SYS_ADMIN) || !hasCapability(CAP_DAC_READ_SEARCH)) {
    return Error{EPERM, "fanotify needs CAP_SYS_ADMIN and CAP_DAC_READ_SEARCH (run rnotifyd as root, or use inotify)"};
  }
  int fd = ::fanotify_init(FAN_CLASS_NOTIF | FAN_CLOEXEC | FAN_NONBLOCK | FAN_REPORT_DFID_NAME_TARGET, O_RDONLY);
  if (fd < 0) {
    if (errno == EINVAL) return Error{EINVAL, "fanotify_init: the kernel cannot report target file ids (needs 5.17)"};
    return lastError("fanotify_init");
  }
  return std::unique_ptr<FanotifyWatcher>(new FanotifyWatcher(UniqueFd(fd), sink));
}

FanotifyWatcher::FanotifyWatcher(UniqueFd fd, EventSink& sink)
    : fd_(std::move(fd)), sink_(sink), buffer_(std::make_unique<char[]>(kBufferSize)), cache_(kCacheCapacity) {}

// Closing the fanotify descriptor drops every mark at once.
FanotifyWatcher::~FanotifyWatcher() = default;

Result<SubscriptionId> FanotifyWatcher::subscribe(const std::string& rawPath, const SubscribeOptions& options) {
  auto checked = watchPath(rawPath);
  if (!checked) return checked.error();
  const std::string& path = *checked;

  // O_PATH: no FAN_OPEN/FAN_CLOSE of our own for the subscriber to see.
  // The caller's descriptor when it has one (rnotifyd opened the path
  // beneath an export); the path is then only a name for messages.
  const int follow = (options.mask & IN_DONT_FOLLOW) ? O_NOFOLLOW : 0;
  UniqueFd pathFd =
      options.rootFd >= 0 ? duplicate(options.rootFd) : UniqueFd(::open(path.c_str(), O_PATH | O_CLOEXEC | follow));
  if (!pathFd) return pathError(errno, path);
  struct stat st;
  if (::fstat(pathFd.get(), &st) != 0) return pathError(errno, path);
  const bool isDir = S_ISDIR(st.st_mode);
  if (options.recursive && !isDir)
    return Error{ENOTDIR, "cannot watch '" + path + "': not a directory (a recursive watch needs one)"};
  if ((options.mask & IN_ONLYDIR) && !isDir) return Error{ENOTDIR, "cannot watch '" + path + "': not a directory"};
  // Events are matched to the subscription by the real path of their
  // directory (resolved from its handle), against this: where the object
  // is, not what the caller's string (or a link in it) named.
  std::string canonical = pathOfFd(pathFd.get());
  if (canonical.empty()) return Error{ENOENT, "cannot watch '" + path + "': it has no path any more"};
  struct statfs fsStat;
  if (::fstatfs(pathFd.get(), &fsStat) != 0) return pathError(errno, path);
  std::array<char, 8> fsid;
  std::memcpy(fsid.data(), &fsStat.f_fsid, fsid.size());
  int mountId = -1;
  auto key = handleKeyOf(pathFd.get(), fsid, &mountId);
  if (!key) return markError(key.error().code, path);

  Filesystem* fs = filesystemFor(*key);
  if (fs == nullptr) {
    UniqueFd parentFd;
    if (!isDir) {
      // A file has no way up but its path; whatever that reaches by now
      // serves only if it is a directory on the file's own mount.
      parentFd = openDirectoryOnMount(parentOf(canonical), mountId);
      if (!parentFd) return pathError(errno, path);
    }
    auto marked = markFilesystem(isDir ? pathFd.get() : parentFd.get(), canonical, fsid, mountId);
    if (!marked) return marked.error();
    fs = *marked;
  } else if (fs->mountId != mountId) {
    // Handles resolve through the mount first marked; a second mount of the
    // same filesystem (a bind mount) would give this watch paths it never asked for.
    Directory* seen = isDir ? directory(fs, *key) : nullptr;
    if (!isDir || seen == nullptr || seen->path != canonical) {
      return Error{EXDEV, "cannot watch '" + path + "' with fanotify: it is reached through another mount of " +
                              "a filesystem already watched at '" + fs->path + "'; inotify can watch it"};
    }
  }

  // The object's own DELETE_SELF and MOVE_SELF, once per root or file.
  const bool firstOnObject = isDir ? [&] {
    const Directory* d = cache_.find(*key);
    return d == nullptr || d->pins == 0;
  }()
                                   : files_.find(*key) == files_.end();
  if (firstOnObject && markInode(fd_.get(), FAN_MARK_ADD, kSelfEvents | (isDir ? FAN_ONDIR : 0), pathFd.get()) != 0) {
    Error e = markError(errno, path);
    if (fs->subscriptions.empty()) releaseFilesystem(fs);
    return e;
  }

  auto subscription = std::make_unique<Subscription>();
  Subscription* s = subscription.get();
  s->id = nextId_++;
  s->fs = fs;
  s->mask = options.mask & IN_ALL_EVENTS;
  s->recursive = options.recursive;
  if (isDir) {
    Directory* root = cache_.find(*key);
    if (root == nullptr) {
      root = cache_.insert(*key, canonical);
    } else if (root->path != canonical) {
      if (!root->path.empty() && !root->stale) cache_.repath(root->path, canonical);
      if (root->path != canonical) cache_.setPath(root, canonical);
    }
    root->pins++;
    s->root = root;
    fs->directorySubscriptions++;
  } else {
    auto it = files_.find(*key);
    if (it == files_.end()) {
      auto watch = std::make_unique<FileWatch>();
      watch->key = *key;
      it = files_.emplace(watch->key, std::move(watch)).first;
    }
    it->second->subscriptions.push_back(s);
    s->file = it->second.get();
  }
  fs->subscriptions.push_back(s);
  subscriptions_.emplace(s->id, std::move(subscription));
  ++generation_;
  SubscriptionId id = s->id;
  if (Status marked = updateMark(fs); !marked) {
    endSubscription(s);
    return marked.error();
  }
  log::debug("fanotify: subscription {} on {} ({} filesystem marks)", id, canonical, filesystems_.size());
  return id;
}

Result<FanotifyWatcher::Filesystem*> FanotifyWatcher::markFilesystem(int dirFd, const std::string& path,
                                                                     std::array<char, 8> fsid, int mountId) {
  UniqueFd mountFd = openMountRoot(dirFd, mountId);
  if (!mountFd) return pathError(errno, path);
  if (::fanotify_mark(fd_.get(), FAN_MARK_ADD | FAN_MARK_FILESYSTEM, kMarkBaseMask, mountFd.get(), nullptr) != 0) {
    return markError(errno, path);
  }
  auto fs = std::make_unique<Filesystem>();
  fs->fsid = fsid;
  fs->mountFd = std::move(mountFd);
  fs->mountId = mountId;
  fs->path = path;
  fs->markMask = kMarkBaseMask;
  filesystems_.push_back(std::move(fs));
  log::debug("fanotify: marked the filesystem of {}", path);
  return filesystems_.back().get();
}

Status FanotifyWatcher::updateMark(Filesystem* fs) {
  uint64_t wanted = kMarkBaseMask;
  for (const Subscription* s : fs->subscriptions) wanted |= markMaskFor(s->mask);
  const uint64_t added = wanted & ~fs->markMask;
  const uint64_t removed = fs->markMask & ~wanted;
  if (added != 0 &&
      ::fanotify_mark(fd_.get(), FAN_MARK_ADD | FAN_MARK_FILESYSTEM, added, fs->mountFd.get(), nullptr) != 0) {
    return markError(errno, fs->path);
  }
  if (removed != 0 &&
      ::fanotify_mark(fd_.get(), FAN_MARK_REMOVE | FAN_MARK_FILESYSTEM, removed, fs->mountFd.get(), nullptr) != 0) {
    log::warn("fanotify: could not narrow the mark on {}: {}", fs->path, std::strerror(errno));
  }
  fs->markMask = wanted;
  return {};
}

void FanotifyWatcher::unsubscribe(SubscriptionId id) {
  auto it = subscriptions_.find(id);
  if (it != subscriptions_.end()) endSubscription(it->second.get());
}

void FanotifyWatcher::endSubscription(Subscription* s) {
  Filesystem* fs = s->fs;
  std::erase(fs->subscriptions, s);
  if (s->root != nullptr) {
    fs->directorySubscriptions--;
    if (--s->root->pins == 0) {
      unmarkInode(fs, s->root->key, kSelfEvents | FAN_ONDIR);
      if (s->root->path.empty()) cache_.erase(s->root);
    }
  }
  if (FileWatch* watch = s->file) {
    std::erase(watch->subscriptions, s);
    if (watch->subscriptions.empty()) {
      std::string key = watch->key;
      unmarkInode(fs, key, kSelfEvents);
      files_.erase(key);
    }
  }
  subscriptions_.erase(s->id);
  ++generation_;
  if (fs->subscriptions.empty()) {
    releaseFilesystem(fs);
  } else {
    (void)updateMark(fs);
  }
}

// The object may be gone (its mark went with it) or not: resolved by handle.
void FanotifyWatcher::unmarkInode(Filesystem* fs, std::string_view key, uint64_t mask) {
  UniqueFd object = openHandle(fs->mountFd.get(), key);
  if (!object) return;
  if (markInode(fd_.get(), FAN_MARK_REMOVE, mask, object.get()) != 0 && errno != ENOENT) {
    log::debug("fanotify: could not remove an inode mark under {}: {}", fs->path, std::strerror(errno));
  }
}

void FanotifyWatcher::releaseFilesystem(Filesystem* fs) {
  if (draining_) {
    // Events of this buffer may still point at it; let go after the buffer.
    if (std::find(releaseLater_.begin(), releaseLater_.end(), fs) == releaseLater_.end()) releaseLater_.push_back(fs);
    return;
  }
  ::fanotify_mark(fd_.get(), FAN_MARK_REMOVE | FAN_MARK_FILESYSTEM, fs->markMask, fs->mountFd.get(), nullptr);
  cache_.eraseWithPrefix(std::string_view(fs->fsid.data(), fs->fsid.size()));
  log::debug("fanotify: unmarked the filesystem of {}", fs->path);
  std::erase_if(filesystems_, [fs](const auto& owned) { return owned.get() == fs; });
}

FanotifyWatcher::Filesystem* FanotifyWatcher::filesystemFor(std::string_view key) const {
  if (key.size() < kFsidSize) return nullptr;
  for (const auto& fs : filesystems_) {
    if (std::memcmp(fs->fsid.data(), key.data(), kFsidSize) == 0) return fs.get();
  }
  return nullptr;
}

void FanotifyWatcher::drain() {
  for (int reads = 0; reads < kMaxReadsPerDrain; ++reads) {
    ssize_t n = ::read(fd_.get(), buffer_.get(), kBufferSize);
    if (n > 0) sink_.onKernelRead();
    if (n < 0) {
      if (errno == EINTR) continue;
      if (errno != EAGAIN) log::error("fanotify: read failed: {}", std::strerror(errno));
      if (!renamed_.empty()) settleRenamedDirectories();
      return;
    }
    if (n == 0) return;
    processBuffer(static_cast<size_t>(n));
  }
}

}  // namespace rnotify
