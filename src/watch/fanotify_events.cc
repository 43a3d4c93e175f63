// The event half of FanotifyWatcher: one buffer of fanotify records in,
// inotify-shaped events out, and the directory cache kept true on the way.
#include <sys/fanotify.h>
#include <sys/inotify.h>

#include <cstring>
#include <utility>

#include "common/log.h"
#include "watch/fanotify_watcher.h"
#include "watch/file_handle.h"
#include "watch/watch_path.h"

namespace rnotify {
namespace {

// The mask table: fanotify's bits for these events are inotify's (both are
// fsnotify's FS_* values), so translation is the identity, plus an order for
// the bits of a merged event and FAN_RENAME split into MOVED_FROM/MOVED_TO.
static_assert(FAN_ACCESS == IN_ACCESS && FAN_MODIFY == IN_MODIFY && FAN_ATTRIB == IN_ATTRIB &&
              FAN_CLOSE_WRITE == IN_CLOSE_WRITE && FAN_CLOSE_NOWRITE == IN_CLOSE_NOWRITE && FAN_OPEN == IN_OPEN &&
              FAN_MOVED_FROM == IN_MOVED_FROM && FAN_MOVED_TO == IN_MOVED_TO && FAN_CREATE == IN_CREATE &&
              FAN_DELETE == IN_DELETE && FAN_DELETE_SELF == IN_DELETE_SELF && FAN_MOVE_SELF == IN_MOVE_SELF &&
              FAN_Q_OVERFLOW == IN_Q_OVERFLOW && FAN_ONDIR == IN_ISDIR);

// fanotify merges events on one object that wait in the queue together; the
// bits are handed out in the order one program makes them (touch: CREATE,
// OPEN, ATTRIB, CLOSE_WRITE; the last unlink: ATTRIB, DELETE_SELF).
constexpr uint32_t kDeliveryOrder[] = {IN_CREATE,      IN_OPEN,          IN_ACCESS, IN_MODIFY,      IN_ATTRIB,
                                       IN_CLOSE_WRITE, IN_CLOSE_NOWRITE, IN_DELETE, IN_DELETE_SELF, IN_MOVE_SELF};
constexpr uint32_t kDirentMask = IN_CREATE | IN_DELETE | IN_MOVED_FROM | IN_MOVED_TO;
constexpr uint32_t kSelfMask = IN_DELETE_SELF | IN_MOVE_SELF;
constexpr int kMaxHintDepth = 64;

bool isBelow(const std::string& path, const std::string& root) {
  if (root == "/") return path.size() > 1;
  return path.size() > root.size() && path[root.size()] == '/' && path.compare(0, root.size(), root) == 0;
}

}  // namespace

FanotifyWatcher::Directory* FanotifyWatcher::directory(Filesystem* fs, std::string_view key) {
  Directory* known = cache_.find(key);
  if (known != nullptr && !known->stale) return known;
  std::string path;
  int code = pathOfHandle(fs->mountFd.get(), key, &path);
  if (code != 0 && code != ESTALE && code != ENOENT) {
    log::debug("fanotify: cannot resolve a directory handle: {}", std::strerror(code));
    return known;
  }
  if (path.empty()) path = pathFromHints(fs, key);
  if (known == nullptr) return cache_.insert(key, std::move(path));
  if (known->pins != 0 && known->path != path) ++generation_;  // a subscription's root moved
  cache_.setPath(known, std::move(path));
  return known;
}

const std::vector<DirectoryCache::Cover>& FanotifyWatcher::coversOf(Directory* d) {
  if (d->coversGeneration == generation_) return d->covers;
  d->covers.clear();
  d->coversGeneration = generation_;
  Filesystem* fs = d->path.empty() ? nullptr : filesystemFor(d->key);
  if (fs == nullptr) return d->covers;
  for (const Subscription* s : fs->subscriptions) {
    if (s->root == nullptr || s->root->path.empty()) continue;
    const std::string& root = s->root->path;
    if (s->root == d || d->path == root) {
      d->covers.push_back({s->id, s->mask, static_cast<uint32_t>(d->path.size()), true, s->recursive});
    } else if (s->recursive && isBelow(d->path, root)) {
      d->covers.push_back({s->id, s->mask, static_cast<uint32_t>(root == "/" ? 1 : root.size() + 1), false, true});
    }
  }
  return d->covers;
}

// Events are only 4-byte aligned in the buffer: every structure is copied out
// rather than read in place.
size_t FanotifyWatcher::parse(const char* event, size_t left, Parsed* out) {
  fanotify_event_metadata meta;
  if (left < sizeof meta) return 0;
  std::memcpy(&meta, event, sizeof meta);
  if (meta.event_len < sizeof meta || meta.event_len > left || meta.metadata_len > meta.event_len) return 0;
  if (meta.vers != FANOTIFY_METADATA_VERSION) {
    log::error("fanotify: unexpected event format version {}", meta.vers);
    return 0;
  }
  out->mask = meta.mask;
  out->pid = meta.pid;
  const char* p = event + meta.metadata_len;
  const char* end = event + meta.event_len;
  while (p + sizeof(fanotify_event_info_header) <= end) {
    fanotify_event_info_header header;
    std::memcpy(&header, p, sizeof header);
    if (header.len < sizeof header || p + header.len > end) return meta.event_len;
    const char* recordEnd = p + header.len;
    Record* record = nullptr;
    bool named = false;
    std::string_view* object = nullptr;
    switch (header.info_type) {
      case FAN_EVENT_INFO_TYPE_FID:
        object = &out->object;
        break;
      case FAN_EVENT_INFO_TYPE_DFID:
        record = &out->dir;
        break;
      case FAN_EVENT_INFO_TYPE_DFID_NAME:
        record = &out->dir;
        named = true;
        break;
      case FAN_EVENT_INFO_TYPE_OLD_DFID_NAME:
        record = &out->oldDir;
        named = true;
        break;
      case FAN_EVENT_INFO_TYPE_NEW_DFID_NAME:
        record = &out->newDir;
        named = true;
        break;
      default:
        break;  // pidfd, error records: not asked for
    }
    if (record != nullptr || object != nullptr) {
      const char* fsid = p + sizeof header;
      if (fsid + kFsidSize + kFileHandleHeaderSize > recordEnd) return meta.event_len;
      uint32_t handleBytes;
      std::memcpy(&handleBytes, fsid + kFsidSize, sizeof handleBytes);
      const char* handleEnd = fsid + kFsidSize + kFileHandleHeaderSize + handleBytes;
      if (handleEnd > recordEnd) return meta.event_len;
      std::string_view key(fsid, static_cast<size_t>(handleEnd - fsid));
      if (object != nullptr) {
        *object = key;
      } else {
        record->key = key;
        if (named) record->name = std::string_view(handleEnd, ::strnlen(handleEnd, recordEnd - handleEnd));
      }
    }
    p = recordEnd;
  }
  out->valid = true;
  return meta.event_len;
}

void FanotifyWatcher::processBuffer(size_t length) {
  bufferLength_ = length;
  draining_ = true;
  for (size_t offset = 0; offset < length;) {
    Parsed event;
    size_t size = parse(buffer_.get() + offset, length - offset, &event);
    if (size == 0) break;
    if (event.valid) process(event);
    offset += size;
  }
  draining_ = false;
  hints_.clear();
  hintsCollected_ = false;
  for (Filesystem* fs : std::exchange(releaseLater_, {})) {
    if (fs->subscriptions.empty()) releaseFilesystem(fs);
  }
  cache_.trim();
}

void FanotifyWatcher::process(const Parsed& parsed) {
  const uint64_t mask = parsed.mask;
  if (mask & FAN_Q_OVERFLOW) {
    overflow();
    return;
  }
  std::string_view anyKey = !parsed.dir.key.empty()      ? parsed.dir.key
                            : !parsed.oldDir.key.empty() ? parsed.oldDir.key
                                                         : parsed.object;
  Filesystem* fs = filesystemFor(anyKey);
  if (fs == nullptr) return;  // a filesystem we no longer watch
  const int pid = parsed.pid;
  const bool watchesDirectories = fs->directorySubscriptions != 0;
  if (mask & FAN_RENAME) {  // never merged with other events
    if (watchesDirectories) onRename(fs, parsed, mask, pid);
    return;
  }
  if (!parsed.dir.key.empty() && watchesDirectories) {
    if (Directory* d = directory(fs, parsed.dir.key); d != nullptr) {
      // An event on a directory itself names the directory with ".".
      if (parsed.dir.name.empty() || parsed.dir.name == ".") {
        onDirectoryItself(d, mask, pid);
      } else {
        onEntry(d, parsed.dir.name, mask, parsed.object, pid);
      }
    }
  }
  if (!parsed.object.empty() && !files_.empty() && !(mask & FAN_ONDIR)) {
    onObject(parsed.object, static_cast<uint32_t>(mask) & ~kDirentMask, pid);
  }
}

void FanotifyWatcher::onEntry(Directory* d, std::string_view name, uint64_t mask, std::string_view target, int pid) {
  const uint32_t dirFlag = (mask & FAN_ONDIR) ? IN_ISDIR : 0;
  if (dirFlag && (mask & FAN_DELETE)) {
    // The kernel sends the directory's DELETE_SELF before its parent's DELETE.
    // A subscription root reports its own, through its inode mark.
    const Directory* gone = target.empty() ? nullptr : cache_.find(target);
    if (gone == nullptr || (gone->pins == 0 && !gone->selfReported)) {
      deliverSubdirectorySelf(d, name, IN_DELETE_SELF, pid);
    }
  }
  const auto& covers = coversOf(d);
  for (uint32_t bit : kDeliveryOrder) {
    if (!(mask & bit)) continue;
    for (const auto& c : covers) {
      if (c.mask & bit) sink_.onEvent(c.id, bit | dirFlag, 0, d->relative(c), name, pid);
    }
  }
  if (!dirFlag || target.empty()) return;
  // The target's handle comes with the event: a new directory is known
  // before anything happens in it, even if it is gone by the time we read.
  if ((mask & FAN_CREATE) && !(mask & FAN_DELETE) && !covers.empty() && !d->path.empty()) {
    if (cache_.find(target) == nullptr) cache_.insert(target, joinPath(d->path, name));
  }
  if (mask & FAN_DELETE) {
    if (Directory* gone = cache_.find(target); gone != nullptr && gone->pins == 0) cache_.erase(gone);
  }
}

void FanotifyWatcher::onDirectoryItself(Directory* d, uint64_t mask, int pid) {
  const auto& covers = coversOf(d);
  for (uint32_t bit : kDeliveryOrder) {
    if (!(mask & bit)) continue;
    // Like inotify: DELETE_SELF and MOVE_SELF come without IN_ISDIR, and
    // only from the directory's own point of view.
    const bool self = (bit & kSelfMask) != 0;
    const uint32_t reported = self ? bit : bit | IN_ISDIR;
    for (const auto& c : covers) {
      if (c.mask & bit) sink_.onEvent(c.id, reported, 0, d->relative(c), {}, pid);
    }
    if (!self) deliverToParent(d, reported, pid);
  }
  if (!(mask & IN_DELETE_SELF)) return;
  if (d->pins == 0) {  // no subscription is rooted here
    cache_.erase(d);
    return;
  }
  // Kept until its parent's DELETE (which erases it), so that this
  // DELETE_SELF is not reported twice. Without a path, ending its last
  // subscription erases it: not to be touched after.
  d->selfReported = true;
  std::vector<Subscription*> ending;
  if (Filesystem* fs = filesystemFor(d->key)) {
    for (Subscription* s : fs->subscriptions) {
      if (s->root == d) ending.push_back(s);
    }
  }
  for (Subscription* s : ending) {
    SubscriptionId id = s->id;
    endSubscription(s);
    sink_.onEvent(id, IN_IGNORED, 0, {}, {}, 0);
  }
}

// inotify also reports an event on a directory to the watch on its parent,
// under the directory's name: subscriptions that see the parent get it so.
void FanotifyWatcher::deliverToParent(Directory* d, uint32_t mask, int pid) {
  if (d->path.size() < 2) return;
  const uint32_t bit = mask & ~IN_ISDIR;
  const size_t slash = d->path.rfind('/');
  const std::string_view name = std::string_view(d->path).substr(slash + 1);
  for (const auto& c : coversOf(d)) {
    if (c.isRoot || !(c.mask & bit)) continue;
    std::string_view relative = d->relative(c);
    size_t cut = relative.rfind('/');
    sink_.onEvent(c.id, mask, 0, cut == std::string_view::npos ? std::string_view() : relative.substr(0, cut), name,
                  pid);
  }
  // Non-recursive subscriptions on the parent do not cover the directory.
  Filesystem* fs = filesystemFor(d->key);
  if (fs == nullptr) return;
  const std::string_view parent = slash == 0 ? std::string_view("/") : std::string_view(d->path).substr(0, slash);
  for (const Subscription* s : fs->subscriptions) {
    if (!s->recursive && s->root != nullptr && (s->mask & bit) && s->root->path == parent) {
      sink_.onEvent(s->id, mask, 0, {}, name, pid);
    }
  }
}

void FanotifyWatcher::deliverSubdirectorySelf(Directory* parent, std::string_view name, uint32_t bit, int pid) {
  std::string relative;
  for (const auto& c : coversOf(parent)) {
    if (!c.recursive || !(c.mask & bit)) continue;
    std::string_view at = parent->relative(c);
    relative.assign(at);
    if (!relative.empty()) relative += '/';
    relative += name;
    sink_.onEvent(c.id, bit, 0, relative, {}, pid);
  }
}

void FanotifyWatcher::onRename(Filesystem* fs, const Parsed& parsed, uint64_t mask, int pid) {
  const uint32_t dirFlag = (mask & FAN_ONDIR) ? IN_ISDIR : 0;
  Directory* from = parsed.oldDir.key.empty() ? nullptr : directory(fs, parsed.oldDir.key);
  Directory* to = parsed.newDir.key.empty() ? nullptr : directory(fs, parsed.newDir.key);
  const uint32_t cookie = nextCookie_++;
  if (nextCookie_ == 0) nextCookie_ = 1;
  // A move out of every subscribed tree is a MOVED_FROM alone, a move into
  // one a MOVED_TO alone, as with inotify.
  bool intoCovered = false;
  bool watchedBefore = false;  // inotify would have had a watch on the moved directory
  if (from != nullptr) {
    for (const auto& c : coversOf(from)) {
      watchedBefore |= c.recursive;
      if (c.mask & IN_MOVED_FROM) {
        sink_.onEvent(c.id, IN_MOVED_FROM | dirFlag, cookie, from->relative(c), parsed.oldDir.name, pid);
      }
    }
  }
  if (to != nullptr) {
    const auto& covers = coversOf(to);
    intoCovered = !covers.empty();
    for (const auto& c : covers) {
      if (c.mask & IN_MOVED_TO) {
        sink_.onEvent(c.id, IN_MOVED_TO | dirFlag, cookie, to->relative(c), parsed.newDir.name, pid);
      }
    }
  }
  if (!dirFlag) return;
  std::string oldPath = from != nullptr && !from->path.empty() ? joinPath(from->path, parsed.oldDir.name) : "";
  std::string newPath = to != nullptr && !to->path.empty() ? joinPath(to->path, parsed.newDir.name) : "";
  followDirectoryMove(fs, oldPath, newPath, parsed.object, intoCovered);
  if (!parsed.object.empty() && renamed_.size() < kMaxRenamedToSettle) renamed_.insert(std::string(parsed.object));
  // Its MOVE_SELF follows the rename, seen at its new place; a subscription
  // root reports its own, through its inode mark. (`to` is still cached:
  // only a move to an unknown place forgets entries.)
  if (watchedBefore && to != nullptr && !newPath.empty()) {
    const Directory* moved = parsed.object.empty() ? nullptr : cache_.find(parsed.object);
    if (moved == nullptr || moved->pins == 0) deliverSubdirectorySelf(to, parsed.newDir.name, IN_MOVE_SELF, pid);
  }
}

// Keeps the cache true after a directory moved from `from` to `to` (either
// may be unknown: ""): every cached directory below it gets the new path.
void FanotifyWatcher::followDirectoryMove(Filesystem* fs, const std::string& from, const std::string& to,
                                          std::string_view target, bool intoCovered) {
  bool rootsMoved = false;
  if (!to.empty()) {
    if (!from.empty()) rootsMoved |= cache_.repath(from, to);
    if (Directory* moved = target.empty() ? nullptr : cache_.find(target)) {
      // Our idea of where it was may differ from the event's (it was
      // resolved after later renames); either way it is now at `to`.
      if (moved->path != to && !moved->path.empty()) rootsMoved |= cache_.repath(moved->path, to);
      if (moved->path != to) {
        rootsMoved |= moved->pins != 0;
        cache_.setPath(moved, to);
      }
    } else if (!target.empty() && intoCovered) {
      cache_.insert(target, to);
    }
  } else {
    // Moved where we cannot name it: forget what was below; subscription
    // roots in there are looked up again by handle.
    std::string movedPath;
    if (Directory* moved = target.empty() ? nullptr : cache_.find(target)) movedPath = moved->path;
    std::vector<Directory*> pinned = cache_.forgetBelow(from);
    if (!movedPath.empty() && movedPath != from) {
      auto more = cache_.forgetBelow(movedPath);
      pinned.insert(pinned.end(), more.begin(), more.end());
    }
    if (Directory* moved = target.empty() ? nullptr : cache_.find(target); moved != nullptr && moved->pins == 0) {
      cache_.erase(moved);
    }
    for (Directory* d : pinned) directory(fs, d->key);
    rootsMoved |= !pinned.empty();
  }
  if (rootsMoved) ++generation_;
}

// fanotify merges a rename into an identical one still queued (the same move
// made again before the first was read), so a directory's renames can be
// read out of order and the last one read need not say where it is. Once the
// queue has been read empty, each directory renamed meanwhile is asked its
// handle where it is: every rename merged into one read was made before,
// so the answer is at least as new as the events. Asked only then, not per
// rename: the renames still queued describe the past, and a cache moved
// ahead of them would carry the wrong subtree along (a swap through a
// temporary name).
void FanotifyWatcher::settleRenamedDirectories() {
  std::unordered_set<std::string> renamed;
  renamed.swap(renamed_);
  for (const std::string& key : renamed) {
    Directory* moved = cache_.find(key);
    Filesystem* fs = moved == nullptr || moved->path.empty() ? nullptr : filesystemFor(key);
    if (fs == nullptr || (moved->pins == 0 && coversOf(moved).empty())) continue;  // nobody sees it
    std::string now;
    if (pathOfHandle(fs->mountFd.get(), key, &now) != 0 || now == moved->path) continue;
    // A stale entry's path may be another's by now: only its own is set.
    bool rootsMoved = !moved->stale && cache_.repath(moved->path, now);
    if (moved->path != now) {
      rootsMoved |= moved->pins != 0;
      cache_.setPath(moved, now);
    }
    if (rootsMoved) ++generation_;
  }
}

void FanotifyWatcher::onObject(std::string_view key, uint32_t mask, int pid) {
  auto it = files_.find(key);
  if (it == files_.end() || mask == 0) return;
  FileWatch* watch = it->second.get();
  for (uint32_t bit : kDeliveryOrder) {
    if (!(mask & bit)) continue;
    for (const Subscription* s : watch->subscriptions) {
      if (s->mask & bit) sink_.onEvent(s->id, bit, 0, {}, {}, pid);
    }
  }
  if (mask & IN_DELETE_SELF) {
    std::vector<Subscription*> ending = watch->subscriptions;  // ending the last one frees the watch
    for (Subscription* s : ending) {
      SubscriptionId id = s->id;
      endSubscription(s);
      sink_.onEvent(id, IN_IGNORED, 0, {}, {}, 0);
    }
  }
}

void FanotifyWatcher::overflow() {
  log::warn("fanotify: the kernel event queue overflowed; events were lost (raise fs.fanotify.max_queued_events)");
  std::vector<SubscriptionId> ids;
  for (auto& [id, s] : subscriptions_) ids.push_back(id);
  for (SubscriptionId id : ids) sink_.onEvent(id, IN_Q_OVERFLOW, 0, {}, {}, 0);
  // Renames may be among the lost events: nothing cached can be trusted.
  for (Directory* root : cache_.forgetAll()) {
    if (Filesystem* fs = filesystemFor(root->key)) directory(fs, root->key);
  }
  ++generation_;
}

// A directory that is gone cannot be resolved by handle, but a later event in
// the same buffer may say where it was: `rm -rf tree` reports the files of
// a/b/c before the removal of c, b and a, each with its parent's handle.
std::string FanotifyWatcher::pathFromHints(Filesystem* fs, std::string_view key) {
  if (!hintsCollected_) collectHints();
  auto it = hints_.find(key);
  if (it == hints_.end() || hintDepth_ >= kMaxHintDepth) return {};
  ++hintDepth_;
  Directory* parent = directory(fs, it->second.parent);
  --hintDepth_;
  if (parent == nullptr || parent->path.empty()) return {};
  return joinPath(parent->path, it->second.name);
}

void FanotifyWatcher::collectHints() {
  hintsCollected_ = true;
  for (size_t offset = 0; offset < bufferLength_;) {
    Parsed event;
    size_t size = parse(buffer_.get() + offset, bufferLength_ - offset, &event);
    if (size == 0) break;
    offset += size;
    if (!event.valid || event.object.empty() || !(event.mask & FAN_ONDIR)) continue;
    if (!(event.mask & (FAN_CREATE | FAN_DELETE | FAN_RENAME))) continue;
    const Record& where = (event.mask & FAN_RENAME) ? event.newDir : event.dir;
    if (!where.key.empty() && !where.name.empty()) hints_.emplace(event.object, Hint{where.key, where.name});
  }
}

}  // namespace rnotify
