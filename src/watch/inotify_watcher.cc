#include "watch/inotify_watcher.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <unistd.h>

#include <climits>
#include <cstring>
#include <optional>

#include "common/log.h"
#include "event/event.h"
#include "watch/auto_watcher.h"
#include "watch/fanotify_watcher.h"
#include "watch/watch_path.h"

namespace rnotify {
namespace {

// Every kernel watch asks for these, so that a watch whose directory goes away
// or moves is noticed even when no subscriber asked for it.
constexpr uint32_t kSelfMask = IN_DELETE_SELF | IN_MOVE_SELF;
constexpr uint32_t kFlagBits = IN_DONT_FOLLOW | IN_ONLYDIR | IN_EXCL_UNLINK;
// Reading a directory makes the kernel report OPEN, ACCESS and CLOSE_NOWRITE
// on it (and on its parent's watch); while rnotify itself reads a tree (the
// initial walk, or a new directory), the watches involved do not ask for
// these, so that a subscriber never sees rnotify's own reads.
constexpr uint32_t kReadSideMask = IN_OPEN | IN_ACCESS | IN_CLOSE_NOWRITE;
// A drain reads at most this many buffers before letting the owner's loop do
// other work; a sustained flood must not starve client writes.
constexpr int kMaxReadsPerDrain = 64;

std::string_view relativeTo(const std::string& path, const std::string& root) {
  if (path.size() <= root.size()) return {};
  return std::string_view(path).substr(root == "/" ? 1 : root.size() + 1);
}

std::pair<std::string, std::string> splitParent(const std::string& path) {
  size_t slash = path.rfind('/');
  if (slash == 0) return {"/", path.substr(1)};
  return {path.substr(0, slash), path.substr(slash + 1)};
}

bool isDirectoryEntry(int dirFd, const dirent* entry) {
  if (entry->d_type == DT_DIR) return true;
  if (entry->d_type != DT_UNKNOWN) return false;
  struct stat st;
  return ::fstatat(dirFd, entry->d_name, &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISDIR(st.st_mode);
}

// Lists a directory without following a symlink in its place.
Result<std::vector<std::pair<std::string, bool>>> listDirectory(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  if (fd < 0) return lastError("open '" + path + "'");
  DIR* dir = ::fdopendir(fd);
  if (dir == nullptr) {
    Error e = lastError("fdopendir '" + path + "'");
    ::close(fd);
    return e;
  }
  std::vector<std::pair<std::string, bool>> entries;
  while (const dirent* entry = ::readdir(dir)) {
    if (std::strcmp(entry->d_name, ".") == 0 || std::strcmp(entry->d_name, "..") == 0) continue;
    entries.emplace_back(entry->d_name, isDirectoryEntry(::dirfd(dir), entry));
  }
  ::closedir(dir);
  return entries;
}

Error watchError(int code, const std::string& path) {
  if (code == ENOSPC) {
    return Error{ENOSPC, "cannot watch '" + path +
                             "': the inotify watch limit is reached; raise fs.inotify.max_user_watches "
                             "(sysctl) or watch a smaller tree"};
  }
  return Error::fromErrno(code, "cannot watch '" + path + "'");
}

}  // namespace

Result<std::unique_ptr<Watcher>> InotifyWatcher::create(EventSink& sink, std::unique_ptr<PidProbe> probe) {
  int fd = ::inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
  if (fd < 0) {
    if (errno == EMFILE) {
      return Error{EMFILE, "inotify_init1: too many inotify instances; raise fs.inotify.max_user_instances"};
    }
    return lastError("inotify_init1");
  }
  return std::unique_ptr<Watcher>(new InotifyWatcher(UniqueFd(fd), sink, std::move(probe)));
}

// Closing the inotify descriptor drops every kernel watch at once.
InotifyWatcher::~InotifyWatcher() = default;

Result<SubscriptionId> InotifyWatcher::subscribe(const std::string& rawPath, const SubscribeOptions& options) {
  auto checked = watchPath(rawPath);
  if (!checked) return checked.error();
  const std::string& path = *checked;

  uint32_t flags = options.mask & kFlagBits;
  if (options.recursive) flags |= IN_ONLYDIR;
  struct stat st;
  int statResult = (flags & IN_DONT_FOLLOW) ? ::lstat(path.c_str(), &st) : ::stat(path.c_str(), &st);
  if (statResult != 0) return watchError(errno, path);
  if ((flags & IN_ONLYDIR) && !S_ISDIR(st.st_mode)) {
    return Error{ENOTDIR, "cannot watch '" + path + "': not a directory (a recursive watch needs one)"};
  }

  const uint32_t wanted = options.mask & IN_ALL_EVENTS;
  Node* node;
  if (auto it = byPath_.find(path); it != byPath_.end()) {
    node = it->second;
  } else {
    auto [parentPath, name] = splitParent(path);
    Node* parent = nullptr;
    if (auto p = byPath_.find(parentPath); p != byPath_.end() && path != "/") parent = p->second;
    uint32_t mask = kSelfMask | wanted | (options.recursive ? kTreeMask : 0);
    if (options.recursive) mask &= ~kReadSideMask;
    bool pids = options.pids || (parent != nullptr && wantsPids(parent, false));
    auto added = addNode(path, parent, name, mask, flags, pids);
    if (!added) return added.error();
    node = *added;
  }

  auto subscription = std::make_unique<Subscription>();
  subscription->id = nextId_++;
  subscription->root = node;
  subscription->mask = wanted;
  subscription->recursive = options.recursive;
  subscription->pids = options.pids && probe_ != nullptr;
  SubscriptionId id = subscription->id;
  node->rooted.push_back(subscription.get());
  subscriptions_.emplace(id, std::move(subscription));
  if (options.recursive) {
    walking_ = true;
    refreshMask(node);
    Status walked = walkExisting(node);
    walking_ = false;
    if (!walked) {
      unsubscribe(id);
      return walked.error();
    }
    if (wanted & kReadSideMask) refreshSubtree(node);
  } else {
    refreshMask(node);
  }
  log::debug("inotify: subscription {} on {} ({} kernel watches)", id, path, nodes_.size());
  return id;
}

void InotifyWatcher::unsubscribe(SubscriptionId id) {
  auto it = subscriptions_.find(id);
  if (it == subscriptions_.end()) return;
  Node* node = it->second->root;
  std::erase(node->rooted, it->second.get());
  subscriptions_.erase(it);
  pruneSubtree(node);
}

Result<InotifyWatcher::Node*> InotifyWatcher::addNode(const std::string& path, Node* parent, std::string_view name,
                                                      uint32_t mask, uint32_t flags, bool pids) {
  // The probe's mark comes first: every event of the new watch then has its
  // fanotify record (and a few before it, which are never asked for).
  std::optional<PidProbe::Marking> marking;
  if (probe_ && pids) {
    auto prepared = probe_->prepare(path, !(flags & IN_DONT_FOLLOW), mask);
    if (prepared) {
      marking = std::move(*prepared);
    } else {
      log::debug("inotify: no pids for events in '{}': {}", path, prepared.error().message);
    }
  }
  int wd = ::inotify_add_watch(fd_.get(), path.c_str(), mask | flags);
  if (wd < 0) {
    int code = errno;
    if (marking) probe_->abandon(std::move(*marking));
    return watchError(code, path);
  }
  if (marking) probe_->bind(wd, std::move(*marking));
  if (auto existing = nodes_.find(wd); existing != nodes_.end()) {
    // The same directory under a path we already knew (it was moved here, or a
    // watch on it existed for another subscription): the kernel shares the watch.
    Node* node = existing->second.get();
    if (parent != nullptr && node->parent == nullptr && node != parent) {
      node->parent = parent;
      parent->children[std::string(name)] = node;
      repath(node, path);
    }
    node->kernelMask = mask;
    return node;
  }
  auto node = std::make_unique<Node>();
  node->wd = wd;
  node->path = path;
  node->parent = parent;
  node->kernelMask = mask;
  node->flags = flags;
  Node* raw = node.get();
  if (parent != nullptr) parent->children[std::string(name)] = raw;
  byPath_[path] = raw;
  nodes_.emplace(wd, std::move(node));
  return raw;
}

uint32_t InotifyWatcher::inheritedMask(const Node* node) const {
  uint32_t mask = 0;
  for (const Node* n = node; n != nullptr; n = n->parent) {
    for (const Subscription* s : n->rooted) {
      if (s->recursive) mask |= s->mask | kTreeMask;
    }
  }
  return mask;
}

uint32_t InotifyWatcher::wantedMask(const Node* node) const {
  uint32_t mask = kSelfMask | inheritedMask(node);
  for (const Subscription* s : node->rooted) mask |= s->mask;
  return walking_ ? mask & ~kReadSideMask : mask;
}

void InotifyWatcher::refreshSubtree(Node* root) {
  std::vector<Node*> stack{root};
  while (!stack.empty()) {
    Node* node = stack.back();
    stack.pop_back();
    refreshMask(node);
    for (auto& [name, child] : node->children) stack.push_back(child);
  }
}

void InotifyWatcher::refreshMask(Node* node) {
  uint32_t mask = wantedMask(node);
  if (mask != node->kernelMask) {
    int wd = ::inotify_add_watch(fd_.get(), node->path.c_str(), mask | node->flags);
    if (wd != node->wd) {
      // The path now names another directory (renamed behind our back).
      if (wd >= 0 && nodes_.find(wd) == nodes_.end()) ::inotify_rm_watch(fd_.get(), wd);
      log::warn("inotify: could not update the watch on '{}' (it moved or vanished)", node->path);
      return;
    }
    node->kernelMask = mask;
  }
  if (probe_) probe_->update(node->wd, node->path, !(node->flags & IN_DONT_FOLLOW), wantsPids(node, true) ? mask : 0);
}

bool InotifyWatcher::wantsPids(const Node* node, bool rooted) const {
  if (!probe_) return false;
  for (const Node* n = node; n != nullptr; n = n->parent) {
    for (const Subscription* s : n->rooted) {
      if (s->pids && (s->recursive || (rooted && n == node))) return true;
    }
  }
  return false;
}

Status InotifyWatcher::walkExisting(Node* root) {
  std::vector<Node*> stack{root};
  while (!stack.empty()) {
    Node* node = stack.back();
    stack.pop_back();
    auto entries = listDirectory(node->path);
    if (!entries) {
      if (node == root) return entries.error();
      continue;  // vanished or unreadable below the root: nothing to watch there
    }
    for (auto& [name, isDir] : *entries) {
      if (!isDir) continue;
      if (auto c = node->children.find(name); c != node->children.end()) {
        refreshMask(c->second);
        stack.push_back(c->second);
        continue;
      }
      auto added = addNode(joinPath(node->path, name), node, name, (kSelfMask | inheritedMask(node)) & ~kReadSideMask,
                           IN_ONLYDIR | IN_DONT_FOLLOW, wantsPids(node, false));
      if (!added) {
        int code = added.error().code;
        if (code == ENOENT || code == ENOTDIR || code == EACCES) continue;
        return added.error();
      }
      refreshMask(*added);
      stack.push_back(*added);
    }
  }
  return {};
}

bool InotifyWatcher::isNeeded(const Node* node) const {
  return !node->rooted.empty() || (node->parent != nullptr && inheritedMask(node->parent) != 0);
}

void InotifyWatcher::pruneSubtree(Node* node) {
  std::vector<Node*> children;
  for (auto& [name, child] : node->children) children.push_back(child);
  for (Node* child : children) pruneSubtree(child);
  if (isNeeded(node)) {
    refreshMask(node);
  } else {
    removeNode(node, true);
  }
}

void InotifyWatcher::removeNode(Node* node, bool removeKernelWatch) {
  // A late IN_IGNORED for this wd finds no node and is dropped; the kernel
  // hands out watch descriptors cyclically, so it cannot hit a newer node.
  if (removeKernelWatch) ::inotify_rm_watch(fd_.get(), node->wd);
  if (probe_) probe_->forget(node->wd, removeKernelWatch ? node->path : std::string());
  if (node->parent != nullptr) {
    for (auto it = node->parent->children.begin(); it != node->parent->children.end(); ++it) {
      if (it->second == node) {
        node->parent->children.erase(it);
        break;
      }
    }
  }
  for (auto& [name, child] : node->children) child->parent = nullptr;
  if (auto p = byPath_.find(node->path); p != byPath_.end() && p->second == node) byPath_.erase(p);
  std::erase(synthesizedIn_, node);
  std::erase_if(movedAway_, [node](const auto& entry) { return entry.second == node; });
  nodes_.erase(node->wd);
}

void InotifyWatcher::repath(Node* node, const std::string& newPath) {
  if (auto p = byPath_.find(node->path); p != byPath_.end() && p->second == node) byPath_.erase(p);
  node->path = newPath;
  byPath_[newPath] = node;
  for (auto& [name, child] : node->children) repath(child, joinPath(newPath, name));
}

void InotifyWatcher::addNewDirectory(Node* parent, std::string_view name) {
  if (inheritedMask(parent) == 0 || parent->children.count(std::string(name)) != 0) return;
  // Reading the new subtree must not show up as OPEN/ACCESS/CLOSE_NOWRITE on
  // the parent or on the new directories: drop those bits while it is read.
  // (Such reads by others in the parent during the scan go unreported.)
  const bool outermost = !walking_;
  if (outermost) {
    walking_ = true;
    refreshMask(parent);
  }
  std::string path = joinPath(parent->path, name);
  auto added = addNode(path, parent, name, (kSelfMask | inheritedMask(parent)) & ~kReadSideMask,
                       IN_ONLYDIR | IN_DONT_FOLLOW, wantsPids(parent, false));
  if (added) {
    refreshMask(*added);
    scanNewDirectory(*added);
  } else if (added.error().code != ENOENT && added.error().code != ENOTDIR) {
    log::error("{}", added.error().message);
  }
  if (outermost) {
    walking_ = false;
    refreshMask(parent);
    if (added) refreshSubtree(*added);
  }
}

void InotifyWatcher::scanNewDirectory(Node* node) {
  auto entries = listDirectory(node->path);
  if (!entries) return;  // already gone again; its DELETE follows
  // What was made after the probe marked the directory has its record.
  const bool pids = probe_ && probe_->covers(node->wd);
  if (pids && !entries->empty()) probe_->drain();
  for (auto& [name, isDir] : *entries) {
    if (node->synthesized.empty()) synthesizedIn_.push_back(node);
    node->synthesized.insert(name);
    const int pid = pids ? probe_->take(node->wd, name, IN_CREATE, -1, false) : 0;
    deliver(node, IN_CREATE | (isDir ? IN_ISDIR : 0), 0, name, pid);
    if (isDir) addNewDirectory(node, name);
  }
}

void InotifyWatcher::deliver(Node* node, uint32_t mask, uint32_t cookie, std::string_view name, int pid) {
  for (Node* at = node; at != nullptr; at = at->parent) {
    for (const Subscription* s : at->rooted) {
      if (at != node && !s->recursive) continue;
      if ((mask & s->mask & IN_ALL_EVENTS) == 0 && (mask & (IN_Q_OVERFLOW | IN_UNMOUNT)) == 0) continue;
      sink_.onEvent(s->id, mask, cookie, relativeTo(node->path, at->path), name, pid);
    }
  }
}

void InotifyWatcher::endSubscriptionsAt(Node* node) {
  std::vector<Subscription*> ending;
  ending.swap(node->rooted);
  for (Subscription* s : ending) {
    SubscriptionId id = s->id;
    subscriptions_.erase(id);
    sink_.onEvent(id, IN_IGNORED, 0, {}, {}, 0);
  }
}

void InotifyWatcher::process(int wd, uint32_t mask, uint32_t cookie, std::string_view name) {
  if (mask & IN_Q_OVERFLOW) {
    log::warn("inotify: the kernel event queue overflowed; events were lost");
    std::vector<SubscriptionId> ids;
    for (auto& [id, s] : subscriptions_) ids.push_back(id);
    for (SubscriptionId id : ids) sink_.onEvent(id, IN_Q_OVERFLOW, 0, {}, {}, 0);
    return;
  }
  auto it = nodes_.find(wd);
  if (it == nodes_.end()) return;  // a watch we already removed
  Node* node = it->second.get();
  if (mask & IN_IGNORED) {
    endSubscriptionsAt(node);
    std::vector<Node*> orphans;
    for (auto& [n, child] : node->children) orphans.push_back(child);
    removeNode(node, false);
    for (Node* orphan : orphans) pruneSubtree(orphan);
    return;
  }
  // Taken before a repeat is dropped below, so that its record is spent.
  const int pid = pidOf(node, mask, name);
  if (!name.empty() && !node->synthesized.empty()) {
    if (mask & (IN_CREATE | IN_MOVED_TO)) {
      if (node->synthesized.erase(std::string(name)) != 0) return;  // already reported by the scan
    } else if (mask & (IN_DELETE | IN_MOVED_FROM)) {
      node->synthesized.erase(std::string(name));
    }
  }
  deliver(node, mask, cookie, name, pid);
  if (!(mask & IN_ISDIR) || name.empty()) return;
  if (mask & IN_CREATE) {
    addNewDirectory(node, name);
  } else if (mask & IN_MOVED_FROM) {
    if (auto c = node->children.find(name); c != node->children.end()) {
      Node* child = c->second;
      node->children.erase(c);
      child->parent = nullptr;
      movedAway_[cookie] = child;
    }
  } else if (mask & IN_MOVED_TO) {
    if (auto m = movedAway_.find(cookie); m != movedAway_.end()) {
      Node* child = m->second;
      movedAway_.erase(m);
      child->parent = node;
      node->children[std::string(name)] = child;
      repath(child, joinPath(node->path, name));
      pruneSubtree(child);
    } else {
      addNewDirectory(node, name);
    }
  }
}

int InotifyWatcher::pidOf(Node* node, uint32_t mask, std::string_view name) {
  const uint32_t bit = mask & IN_ALL_EVENTS & ~(IN_DELETE_SELF | IN_MOVE_SELF);
  if (!probe_ || bit == 0 || !probe_->covers(node->wd)) return 0;
  int childWd = -1;
  if ((mask & IN_ISDIR) && !name.empty()) {
    if (auto c = node->children.find(name); c != node->children.end()) childWd = c->second->wd;
  }
  return probe_->take(node->wd, name, bit, childWd);
}

bool InotifyWatcher::reportsPids(SubscriptionId id) const {
  auto it = subscriptions_.find(id);
  return it != subscriptions_.end() && it->second->pids && probe_->covers(it->second->root->wd);
}

void InotifyWatcher::finishDrain() {
  // A directory moved out of the watched tree has no MOVED_TO partner; the
  // kernel queues the pair adjacently, so an empty queue proves it left.
  std::vector<Node*> left;
  for (auto& [cookie, node] : movedAway_) left.push_back(node);
  movedAway_.clear();
  for (Node* node : left) pruneSubtree(node);
  for (Node* node : synthesizedIn_) node->synthesized.clear();
  synthesizedIn_.clear();
}

void InotifyWatcher::drain() {
  alignas(struct inotify_event) char buffer[64 * 1024];
  for (int reads = 0; reads < kMaxReadsPerDrain; ++reads) {
    if (probe_) probe_->beginRead();
    ssize_t n = ::read(fd_.get(), buffer, sizeof buffer);
    if (n < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN) {
        finishDrain();
        if (probe_) probe_->retire();
      } else {
        log::error("inotify: read failed: {}", std::strerror(errno));
      }
      return;
    }
    // The fanotify half of every event just read is queued by now.
    if (probe_) probe_->drain();
    for (char* p = buffer; p < buffer + n;) {
      const auto* ev = reinterpret_cast<const struct inotify_event*>(p);
      std::string_view name = ev->len ? std::string_view(ev->name, ::strnlen(ev->name, ev->len)) : std::string_view();
      process(ev->wd, ev->mask, ev->cookie, name);
      p += sizeof(struct inotify_event) + ev->len;
    }
    // A read with room left for the largest event emptied the queue.
    if (probe_ && static_cast<size_t>(n) + sizeof(struct inotify_event) + NAME_MAX + 1 <= sizeof buffer) {
      probe_->retire();
    }
  }
}

Result<std::unique_ptr<Watcher>> makeWatcher(WatcherKind kind, EventSink& sink) {
  switch (kind) {
    case WatcherKind::kInotify:
      return InotifyWatcher::create(sink);
    case WatcherKind::kFanotify: {
      auto watcher = FanotifyWatcher::create(sink);
      if (!watcher) return watcher.error();
      return std::unique_ptr<Watcher>(std::move(*watcher));
    }
    case WatcherKind::kAuto:
      return AutoWatcher::create(sink);
  }
  return Error{ENOSYS, "unknown watcher backend"};
}

}  // namespace rnotify
