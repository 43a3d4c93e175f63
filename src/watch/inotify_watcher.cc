#include "watch/inotify_watcher.h"

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
#include "watch/confined_open.h"
#include "watch/fanotify_watcher.h"
#include "watch/watch_path.h"

namespace rnotify {
namespace {

// Every kernel watch asks for these, so that a watch whose directory goes away
// or moves is noticed even when no subscriber asked for it.
constexpr uint32_t kSelfMask = IN_DELETE_SELF | IN_MOVE_SELF;
constexpr uint32_t kFlagBits = IN_DONT_FOLLOW | IN_ONLYDIR | IN_EXCL_UNLINK;
// Node::bits: subscriptions are rooted at the node (see rooted_). Not an
// inotify bit.
constexpr uint32_t kRootedBit = 0x00100000;
static_assert((kRootedBit & (IN_ALL_EVENTS | kFlagBits | IN_UNMOUNT | IN_Q_OVERFLOW | IN_IGNORED | IN_ISDIR |
                             IN_ONESHOT | IN_MASK_ADD | IN_MASK_CREATE)) == 0);
constexpr uint32_t kKernelMaskBits = ~(kFlagBits | kRootedBit);
// Reading a directory makes the kernel report OPEN, ACCESS and CLOSE_NOWRITE
// on it (and on its parent's watch); while rnotify itself reads a tree (the
// initial walk, or a new directory), the watches involved do not ask for
// these, so that a subscriber never sees rnotify's own reads.
constexpr uint32_t kReadSideMask = IN_OPEN | IN_ACCESS | IN_CLOSE_NOWRITE;
// A drain reads at most this many buffers before letting the owner's loop do
// other work; a sustained flood must not starve client writes.
constexpr int kMaxReadsPerDrain = 64;

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
InotifyWatcher::~InotifyWatcher() {
  nodes_.forEach([](Node* node) { delete node; });
}

const std::vector<InotifyWatcher::Subscription*>* InotifyWatcher::rootedAt(const Node* node) const {
  if (!(node->bits & kRootedBit)) return nullptr;
  auto it = rooted_.find(node);
  return it == rooted_.end() ? nullptr : &it->second;
}

Result<SubscriptionId> InotifyWatcher::subscribe(const std::string& rawPath, const SubscribeOptions& options) {
  auto checked = watchPath(rawPath);
  if (!checked) return checked.error();
  const std::string& path = *checked;
  AnchorsOpenForCall call{*this};

  uint32_t flags = options.mask & kFlagBits;
  if (options.recursive) flags |= IN_ONLYDIR;
  // The one lookup by path, of the caller's own path; a caller that may not
  // trust it (rnotifyd) opens it beneath an export and hands us the descriptor.
  const int follow = (flags & IN_DONT_FOLLOW) ? O_NOFOLLOW : 0;
  UniqueFd anchor =
      options.rootFd >= 0 ? duplicate(options.rootFd) : UniqueFd(::open(path.c_str(), O_PATH | O_CLOEXEC | follow));
  struct stat st;
  if (!anchor || ::fstat(anchor.get(), &st) != 0) return watchError(errno, path);
  auto anchored = Anchor::of(anchor.get());
  if (!anchored) return watchError(anchored.error().code, path);
  anchored->crossMounts = options.rootFd < 0;
  if ((flags & IN_ONLYDIR) && !S_ISDIR(st.st_mode)) {
    return Error{ENOTDIR, "cannot watch '" + path + "': not a directory (a recursive watch needs one)"};
  }

  const uint32_t wanted = options.mask & IN_ALL_EVENTS;
  Node* parent = nullptr;
  Node* node = existingNode(path, st, &parent);
  if (node == nullptr) {
    uint32_t mask = kSelfMask | wanted | (options.recursive ? kTreeMask : 0);
    if (options.recursive) mask &= ~kReadSideMask;
    bool pids = options.pids || (parent != nullptr && wantsPids(parent, false));
    auto added = addNode(anchor.get(), path, parent, splitParent(path).second, mask, flags, pids);
    if (!added) return added.error();
    node = *added;
  }
  // One per node, any of them exactly this object: the newest, whose path
  // is the likeliest to be current.
  anchors_.insert_or_assign(node, std::move(*anchored));
  openAnchors_.insert_or_assign(node, std::move(anchor));

  auto subscription = std::make_unique<Subscription>();
  subscription->id = nextId_++;
  subscription->root = node;
  subscription->mask = wanted;
  subscription->recursive = options.recursive;
  subscription->pids = options.pids && probe_ != nullptr;
  SubscriptionId id = subscription->id;
  rooted_[node].push_back(subscription.get());
  node->bits |= kRootedBit;
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
  if (auto r = rooted_.find(node); r != rooted_.end()) {
    std::erase(r->second, it->second.get());
    if (r->second.empty()) {
      rooted_.erase(r);
      node->bits &= ~kRootedBit;
    }
  }
  subscriptions_.erase(it);
  // The anchor stays while the subtree is pruned (the probe's marks are
  // removed through it); a node that stays, watched for a subscription
  // above, is reached from that one's anchor from then on.
  AnchorsOpenForCall call{*this};
  const bool stays = isNeeded(node);
  pruneSubtree(node);
  if (stays && !(node->bits & kRootedBit)) forgetAnchor(node);
}

Result<InotifyWatcher::Node*> InotifyWatcher::addNode(int objectFd, const std::string& path, Node* parent,
                                                      std::string_view name, uint32_t mask, uint32_t flags, bool pids) {
  // The probe's mark comes first: every event of the new watch then has its
  // fanotify record (and a few before it, which are never asked for).
  std::optional<PidProbe::Marking> marking;
  if (probe_ && pids) {
    auto prepared = probe_->prepare(objectFd, mask);
    if (prepared) {
      marking = std::move(*prepared);
    } else {
      log::debug("inotify: no pids for events in '{}': {}", path, prepared.error().message);
    }
  }
  // Through the descriptor's /proc link: exactly its object (a link in its
  // place was already refused by the open; IN_DONT_FOLLOW here would watch
  // the /proc link itself).
  int wd = ::inotify_add_watch(fd_.get(), magicLinkOf(objectFd).c_str(), (mask | flags) & ~IN_DONT_FOLLOW);
  if (wd < 0) {
    int code = errno;
    if (marking) probe_->abandon(std::move(*marking));
    return watchError(code, path);
  }
  if (marking) probe_->bind(wd, std::move(*marking));
  if (Node* node = nodes_.find(wd); node != nullptr) {
    // The same directory under a path we already knew (it was moved here, or a
    // watch on it existed for another subscription): the kernel shares the watch.
    if (parent != nullptr && node->parent == nullptr && node != parent) {
      bool below = false;  // would be its own ancestor
      for (const Node* n = parent; n != nullptr; n = n->parent) below |= n == node;
      if (!below) attach(node, parent, name);
    }
    node->bits = (node->bits & ~kKernelMaskBits) | (mask & kKernelMaskBits);
    return node;
  }
  auto* node = new Node;
  node->wd = wd;
  struct stat st;
  if (::fstat(objectFd, &st) == 0) node->ino = st.st_ino;
  node->bits = (mask & kKernelMaskBits) | (flags & kFlagBits);
  nodes_.insert(node);
  if (parent != nullptr) {
    attach(node, parent, name);
  } else {
    node->name = path;
  }
  return node;
}

uint32_t InotifyWatcher::inheritedMask(const Node* node) const {
  uint32_t mask = 0;
  for (const Node* n = node; n != nullptr; n = n->parent) {
    if (const auto* rooted = rootedAt(n)) {
      for (const Subscription* s : *rooted) {
        if (s->recursive) mask |= s->mask | kTreeMask;
      }
    }
  }
  return mask;
}

uint32_t InotifyWatcher::wantedMask(const Node* node) const {
  uint32_t mask = kSelfMask | inheritedMask(node);
  if (const auto* rooted = rootedAt(node)) {
    for (const Subscription* s : *rooted) mask |= s->mask;
  }
  return walking_ ? mask & ~kReadSideMask : mask;
}

void InotifyWatcher::refreshSubtree(Node* root) {
  std::vector<Node*> stack{root};
  while (!stack.empty()) {
    Node* node = stack.back();
    stack.pop_back();
    refreshMask(node);
    for (Node* c = node->firstChild; c != nullptr; c = c->next) stack.push_back(c);
  }
}

void InotifyWatcher::refreshMask(Node* node) {
  const uint32_t mask = wantedMask(node);
  const bool kernel = (mask & kKernelMaskBits) != (node->bits & kKernelMaskBits);
  const uint32_t probeMask = probe_ && wantsPids(node, true) ? mask : 0;
  const bool probe = probe_ && probe_->needsUpdate(node->wd, probeMask);
  if (!kernel && !probe) return;  // nothing to open
  UniqueFd object = openNode(node);
  if (kernel) {
    int wd = object ? ::inotify_add_watch(fd_.get(), magicLinkOf(object.get()).c_str(),
                                          (mask | (node->bits & kFlagBits)) & ~IN_DONT_FOLLOW)
                    : -1;
    if (wd != node->wd) {
      // Where the node should be is another directory, or none (renamed
      // behind our back): its move or delete event is on its way.
      if (wd >= 0 && nodes_.find(wd) == nullptr) ::inotify_rm_watch(fd_.get(), wd);
      log::warn("inotify: could not update the watch on '{}' (it moved or vanished)", pathOf(node));
      return;
    }
    node->bits = (node->bits & ~kKernelMaskBits) | (mask & kKernelMaskBits);
  }
  if (probe) probe_->update(node->wd, object.get(), probeMask);
}

bool InotifyWatcher::wantsPids(const Node* node, bool rooted) const {
  if (!probe_) return false;
  for (const Node* n = node; n != nullptr; n = n->parent) {
    if (const auto* subs = rootedAt(n)) {
      for (const Subscription* s : *subs) {
        if (s->pids && (s->recursive || (rooted && n == node))) return true;
      }
    }
  }
  return false;
}

Status InotifyWatcher::walkExisting(Node* root) {
  std::vector<Node*> stack{root};
  while (!stack.empty()) {
    Node* node = stack.back();
    stack.pop_back();
    const std::string path = pathOf(node);
    bool crossMounts = false;
    UniqueFd dir = openNode(node, &crossMounts);
    auto entries = dir ? listDirectory(dir.get(), path) : Result<Entries>(lastError("open '" + path + "'"));
    if (!entries) {
      if (node == root) return entries.error();
      continue;  // vanished, moved or unreadable below the root: nothing to watch there
    }
    for (auto& [name, isDir] : *entries) {
      if (!isDir) continue;
      if (Node* c = child(node, name); c != nullptr) {
        refreshMask(c);
        stack.push_back(c);
        continue;
      }
      UniqueFd subdirectory = openSubdirectory(dir.get(), name, crossMounts);
      if (!subdirectory) continue;  // gone, or a link by now
      auto added = addNode(subdirectory.get(), joinPath(path, name), node, name,
                           (kSelfMask | inheritedMask(node)) & ~kReadSideMask, IN_ONLYDIR | IN_DONT_FOLLOW,
                           wantsPids(node, false));
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
  return rootedAt(node) != nullptr || (node->parent != nullptr && inheritedMask(node->parent) != 0);
}

void InotifyWatcher::pruneSubtree(Node* node) {
  for (Node* c : childrenOf(node)) pruneSubtree(c);
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
  if (probe_ && !removeKernelWatch) {
    probe_->forgetGone(node->wd);
  } else if (probe_) {
    // Unreachable from here (moved away): the probe finds it by its handle.
    UniqueFd object = probe_->covers(node->wd) ? openNode(node) : UniqueFd();
    probe_->forget(node->wd, object.get());
  }
  forgetAnchor(node);
  // Children left behind become roots of their own, under their paths.
  while (node->firstChild != nullptr) detach(node->firstChild);
  unlink(node);
  if (node->bits & kRootedBit) rooted_.erase(node);
  synthesized_.erase(node);
  std::erase_if(movedAway_, [node](const auto& entry) { return entry.second == node; });
  nodes_.erase(node);
  delete node;
}

void InotifyWatcher::addNewDirectory(Node* parent, std::string_view name) {
  if (inheritedMask(parent) == 0 || child(parent, name) != nullptr) return;
  // Reading the new subtree must not show up as OPEN/ACCESS/CLOSE_NOWRITE on
  // the parent or on the new directories: drop those bits while it is read.
  // (Such reads by others in the parent during the scan go unreported.)
  const bool outermost = !walking_;
  if (outermost) {
    walking_ = true;
    refreshMask(parent);
  }
  std::string path = joinPath(pathOf(parent), name);
  // Opened from the parent's place in the tree: if that is not the parent
  // any more, or `name` is a link by now, there is nothing to watch (the
  // events of the renames are on their way). The descriptors are closed
  // before the subdirectories are read: their number stays bounded
  // however deep the tree.
  Result<Node*> added = Error{ENOENT, ""};
  Result<Entries> entries = Entries{};
  {
    bool crossMounts = false;
    UniqueFd parentFd = openNode(parent, &crossMounts);
    UniqueFd subdirectory = parentFd ? openSubdirectory(parentFd.get(), name, crossMounts) : UniqueFd();
    if (subdirectory) {
      added = addNode(subdirectory.get(), path, parent, name, (kSelfMask | inheritedMask(parent)) & ~kReadSideMask,
                      IN_ONLYDIR | IN_DONT_FOLLOW, wantsPids(parent, false));
    } else {
      log::debug("inotify: not watching '{}': {}", path, std::strerror(errno));
    }
    if (added) {
      refreshMask(*added);
      entries = listDirectory(subdirectory.get(), path);  // exactly the directory just watched
    }
  }
  if (added && entries) {
    scanNewDirectory(*added, *entries);
  } else if (!added && added.error().code != ENOENT && added.error().code != ENOTDIR) {
    log::error("{}", added.error().message);
  }
  if (outermost) {
    walking_ = false;
    refreshMask(parent);
    if (added) refreshSubtree(*added);
  }
}

void InotifyWatcher::scanNewDirectory(Node* node, const Entries& entries) {
  // What was made after the probe marked the directory has its record.
  const bool pids = probe_ && probe_->covers(node->wd);
  if (pids && !entries.empty()) probe_->drain();
  for (auto& [name, isDir] : entries) {
    synthesized_[node].insert(name);
    const int pid = pids ? probe_->take(node->wd, name, IN_CREATE, -1, false) : 0;
    deliver(node, IN_CREATE | (isDir ? IN_ISDIR : 0), 0, name, pid);
    if (isDir) addNewDirectory(node, name);
  }
}

void InotifyWatcher::deliver(Node* node, uint32_t mask, uint32_t cookie, std::string_view name, int pid) {
  sink_.onEventDirectory(node->ino);
  // The node's path below each ancestor: "c/d" below a, "d" below c. Built
  // once per event in a reused buffer (no allocation once it is large enough),
  // and only when an ancestor has subscriptions.
  chain_.clear();
  bool anyAbove = false;
  for (const Node* at = node->parent; at != nullptr; at = at->parent) anyAbove |= (at->bits & kRootedBit) != 0;
  if (anyAbove) {
    for (const Node* at = node; at->parent != nullptr; at = at->parent) chain_.push_back(at);
    // chain_: node, its parent, ... up to the child of the top node.
    pathScratch_.clear();
    offsets_.assign(chain_.size() + 1, 0);
    for (size_t i = chain_.size(); i-- > 0;) {
      if (!pathScratch_.empty()) pathScratch_ += '/';
      offsets_[i + 1] = pathScratch_.size();  // below chain_[i + 1] (or the top) starts here
      pathScratch_ += chain_[i]->name;
    }
  }
  size_t depth = 0;  // at == node, then its parent (1), ...
  for (const Node* at = node; at != nullptr; at = at->parent, ++depth) {
    const auto* rooted = rootedAt(at);
    if (rooted == nullptr) continue;
    const std::string_view relative =
        depth == 0 ? std::string_view() : std::string_view(pathScratch_).substr(offsets_[depth]);
    for (const Subscription* s : *rooted) {
      if (at != node && !s->recursive) continue;
      if ((mask & s->mask & IN_ALL_EVENTS) == 0 && (mask & (IN_Q_OVERFLOW | IN_UNMOUNT)) == 0) continue;
      sink_.onEvent(s->id, mask, cookie, relative, name, pid);
    }
  }
}

void InotifyWatcher::endSubscriptionsAt(Node* node) {
  std::vector<Subscription*> ending;
  if (auto r = rooted_.find(node); r != rooted_.end()) {
    ending.swap(r->second);
    rooted_.erase(r);
  }
  node->bits &= ~kRootedBit;
  for (Subscription* s : ending) {
    SubscriptionId id = s->id;
    subscriptions_.erase(id);
    sink_.onEvent(id, IN_IGNORED, 0, {}, {}, 0);
  }
}

void InotifyWatcher::process(int wd, uint32_t mask, uint32_t cookie, std::string_view name) {
  if (mask & IN_Q_OVERFLOW) {
    log::warn("inotify: the kernel event queue overflowed; events were lost");
    // The MOVE_SELF that would settle a directory moved away may be lost.
    settleMovedAway();
    std::vector<SubscriptionId> ids;
    for (auto& [id, s] : subscriptions_) ids.push_back(id);
    for (SubscriptionId id : ids) sink_.onEvent(id, IN_Q_OVERFLOW, 0, {}, {}, 0);
    return;
  }
  Node* node = nodes_.find(wd);
  if (node == nullptr) return;  // a watch we already removed
  if (mask & IN_IGNORED) {
    endSubscriptionsAt(node);
    std::vector<Node*> orphans = childrenOf(node);
    removeNode(node, false);
    for (Node* orphan : orphans) pruneSubtree(orphan);
    return;
  }
  // Taken before a repeat is dropped below, so that its record is spent.
  const int pid = pidOf(node, mask, name);
  if ((mask & IN_DELETE) && (mask & IN_ISDIR) && pid != 0) {
    if (Node* removed = child(node, name); removed != nullptr) removed->removedBy = pid;
  }
  if (!name.empty() && !synthesized_.empty()) {
    if (auto found = synthesized_.find(node); found != synthesized_.end()) {
      if (mask & (IN_CREATE | IN_MOVED_TO)) {
        if (found->second.erase(std::string(name)) != 0) return;  // already reported by the scan
      } else if (mask & (IN_DELETE | IN_MOVED_FROM)) {
        found->second.erase(std::string(name));
      }
    }
  }
  deliver(node, mask, cookie, name, pid);
  if ((mask & IN_MOVE_SELF) && !movedAway_.empty()) {
    // The kernel queues a rename's MOVE_SELF after its MOVED_TO: a directory
    // still waiting for its MOVED_TO has left the tree.
    if (std::erase_if(movedAway_, [node](const auto& entry) { return entry.second == node; }) != 0) {
      pruneSubtree(node);
    }
    return;
  }
  if (!(mask & IN_ISDIR) || name.empty()) return;
  if (mask & IN_CREATE) {
    addNewDirectory(node, name);
  } else if (mask & IN_MOVED_FROM) {
    if (Node* moved = child(node, name); moved != nullptr) {
      detach(moved);
      movedAway_[cookie] = moved;
    }
  } else if (mask & IN_MOVED_TO) {
    if (auto m = movedAway_.find(cookie); m != movedAway_.end()) {
      Node* moved = m->second;
      movedAway_.erase(m);
      bool below = false;  // cannot be: a directory cannot move into itself
      for (const Node* n = node; n != nullptr; n = n->parent) below |= n == moved;
      if (!below) attach(moved, node, name);
      pruneSubtree(moved);
    } else {
      addNewDirectory(node, name);
    }
  }
}

int InotifyWatcher::pidOf(Node* node, uint32_t mask, std::string_view name) {
  // A subdirectory removed: whoever removed it (the parent's IN_DELETE of it
  // follows). Its own IN_DELETE_SELF has no record.
  // (Or before it: a descriptor open on the directory defers its
  // IN_DELETE_SELF until it is closed, rnotifyd's own among them.)
  if ((mask & IN_DELETE_SELF) && name.empty() && probe_ && node->parent != nullptr &&
      probe_->covers(node->parent->wd)) {
    const int pid = probe_->peek(node->parent->wd, node->name, IN_DELETE);
    return pid != 0 ? pid : node->removedBy;
  }
  const uint32_t bit = mask & IN_ALL_EVENTS & ~(IN_DELETE_SELF | IN_MOVE_SELF);
  if (!probe_ || bit == 0 || !probe_->covers(node->wd)) return 0;
  int childWd = -1;
  if ((mask & IN_ISDIR) && !name.empty()) {
    if (const Node* c = child(node, name); c != nullptr) childWd = c->wd;
  }
  return probe_->take(node->wd, name, bit, childWd);
}

bool InotifyWatcher::reportsPids(SubscriptionId id) const {
  auto it = subscriptions_.find(id);
  return it != subscriptions_.end() && it->second->pids && probe_->covers(it->second->root->wd);
}

void InotifyWatcher::settleMovedAway() {
  // One at a time: pruning one may remove another below it (removeNode
  // erases its entry), so no list of them is kept across a prune.
  while (!movedAway_.empty()) {
    Node* node = movedAway_.begin()->second;
    movedAway_.erase(movedAway_.begin());
    pruneSubtree(node);
  }
}

void InotifyWatcher::finishDrain() {
  // A directory moved away stays in movedAway_ until its MOVED_TO or its own
  // MOVE_SELF is read (process()): an empty queue proves nothing, since a
  // read on another core can come between the MOVED_FROM and the MOVED_TO
  // the kernel queues for one rename.
  synthesized_.clear();
}

void InotifyWatcher::drain() {
  AnchorsOpenForCall call{*this};
  alignas(struct inotify_event) char buffer[64 * 1024];
  for (int reads = 0; reads < kMaxReadsPerDrain; ++reads) {
    if (probe_) probe_->beginRead();
    ssize_t n = ::read(fd_.get(), buffer, sizeof buffer);
    if (n > 0) sink_.onKernelRead();
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
    const bool emptied = static_cast<size_t>(n) + sizeof(struct inotify_event) + NAME_MAX + 1 <= sizeof buffer;
    if (probe_ && emptied) probe_->retire();
    // Then the read that would say EAGAIN is skipped (one system call less
    // per wake-up), unless this read left scanned names to match: those are
    // settled only once the queue is seen empty after what reading it made
    // the kernel queue (finishDrain).
    if (emptied && synthesized_.empty()) return;
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
