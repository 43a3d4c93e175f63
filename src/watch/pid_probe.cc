// The mark half of PidProbe: fanotify groups, and marks that follow
// InotifyWatcher's watches.
#include "watch/pid_probe.h"

#include <fcntl.h>
#include <sys/fanotify.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>

#include "common/log.h"
#include "watch/capability.h"
#include "watch/file_handle.h"

namespace rnotify {
namespace {

static_assert(FAN_ACCESS == IN_ACCESS && FAN_MODIFY == IN_MODIFY && FAN_ATTRIB == IN_ATTRIB &&
              FAN_CLOSE_WRITE == IN_CLOSE_WRITE && FAN_CLOSE_NOWRITE == IN_CLOSE_NOWRITE && FAN_OPEN == IN_OPEN &&
              FAN_MOVED_FROM == IN_MOVED_FROM && FAN_MOVED_TO == IN_MOVED_TO && FAN_CREATE == IN_CREATE &&
              FAN_DELETE == IN_DELETE);
// The events a record can give a pid to (fanotify's bits are inotify's);
// DELETE_SELF and MOVE_SELF keep pid 0.
constexpr uint32_t kEntryBits = IN_CREATE | IN_DELETE | IN_MOVED_FROM | IN_MOVED_TO;
constexpr uint32_t kInodeBits = IN_ACCESS | IN_MODIFY | IN_ATTRIB | IN_CLOSE_WRITE | IN_CLOSE_NOWRITE | IN_OPEN;
// DFID_NAME names an entry by its directory's handle and its name, as inotify
// names it by watch and name. Only watched files need FID, the object's own
// handle; encoding it for every event in a tree would cost time in fsnotify,
// and the longer fsnotify takes over one event, the likelier another
// process's event lands between its copies in two inotify instances.
constexpr unsigned kInitFlags = FAN_CLASS_NOTIF | FAN_CLOEXEC | FAN_NONBLOCK | FAN_REPORT_DFID_NAME;
constexpr unsigned kFileInitFlags = kInitFlags | FAN_REPORT_FID;
constexpr unsigned kAdd = FAN_MARK_ADD | FAN_MARK_EVICTABLE;
constexpr size_t kMaxGroups = 24;

// fanotify_mark refuses an O_PATH descriptor, but resolves the magic link to
// exactly the object it names: no second lookup of a path that may have moved.
int markObject(int group, unsigned flags, uint64_t mask, int objectFd) {
  std::string magic = "/proc/self/fd/" + std::to_string(objectFd);
  return ::fanotify_mark(group, flags, mask, AT_FDCWD, magic.c_str());
}

// The fanotify masks of an object's marks, in the order of Mark::parts.
std::array<uint64_t, 2> partMasks(uint32_t inotifyMask, bool directory) {
  if (!directory) return {inotifyMask & (kEntryBits | kInodeBits), 0};
  std::array<uint64_t, 2> masks = {inotifyMask & kEntryBits, inotifyMask & kInodeBits};
  // FAN_ONDIR: events on subdirectories and on the directory itself, which
  // inotify reports too.
  for (uint64_t& mask : masks) {
    if (mask != 0) mask |= FAN_ONDIR | FAN_EVENT_ON_CHILD;
  }
  return masks;
}

Result<std::string> keyOf(int fd) {
  struct statfs fsStat;
  if (::fstatfs(fd, &fsStat) != 0) return lastError("fstatfs");
  std::array<char, kFsidSize> fsid;
  std::memcpy(fsid.data(), &fsStat.f_fsid, fsid.size());
  int mountId = -1;
  return handleKeyOf(fd, fsid, &mountId);
}

bool hasFsid(std::string_view key) {
  return std::any_of(key.begin(), key.begin() + kFsidSize, [](char c) { return c != 0; });
}

}  // namespace

Result<std::unique_ptr<PidProbe>> PidProbe::create() {
  if (!hasCapability(CAP_SYS_ADMIN)) {
    return Error{EPERM, "the pid probe needs CAP_SYS_ADMIN (the kernel hides other users' pids otherwise)"};
  }
  UniqueFd fd(::fanotify_init(kInitFlags, O_RDONLY));
  if (!fd) return lastError("fanotify_init");
  // Evictable marks (Linux 5.19) are what keeps the probe from pinning
  // directories: an unknown flag is EINVAL, whatever "/" is.
  if (::fanotify_mark(fd.get(), kAdd, FAN_DELETE_SELF, AT_FDCWD, "/") != 0 && errno == EINVAL) {
    return Error{EINVAL, "fanotify: the kernel has no evictable marks (needs Linux 5.19)"};
  }
  return std::unique_ptr<PidProbe>(new PidProbe(hasCapability(CAP_DAC_READ_SEARCH)));
}

PidProbe::PidProbe(bool byHandle) : byHandle_(byHandle), buffer_(std::make_unique<char[]>(64 * 1024)) {}

// Closing the groups drops every mark at once.
PidProbe::~PidProbe() = default;

PidProbe::Kind PidProbe::kindOf(bool directory, size_t part) {
  if (!directory) return Kind::kFiles;
  return part == 0 ? Kind::kEntries : Kind::kInodes;
}

bool PidProbe::covers(int wd) const {
  auto it = marks_.find(wd);
  return it != marks_.end() &&
         std::any_of(it->second.parts.begin(), it->second.parts.end(), [](const Part& p) { return p.group; });
}

Result<PidProbe::Marking> PidProbe::prepare(int objectFd, uint32_t inotifyMask) {
  Marking m;
  m.inotifyMask = inotifyMask;
  m.object.reset(::fcntl(objectFd, F_DUPFD_CLOEXEC, 0));
  if (!m.object) return lastError("fcntl(F_DUPFD_CLOEXEC)");
  struct stat st;
  if (::fstat(m.object.get(), &st) != 0) return lastError("fstat");
  m.directory = S_ISDIR(st.st_mode);
  m.device = st.st_dev;
  auto key = keyOf(m.object.get());
  if (!key) return key.error();
  m.key = std::move(*key);
  const bool fsid = hasFsid(m.key);
  for (const auto& group : groups_) {
    if ((group->device == 0 ? fsid : group->device == st.st_dev) && group->wdOf.count(m.key) != 0) {
      m.existing = true;
      return m;
    }
  }
  rememberMountRoot(m);
  const auto masks = partMasks(inotifyMask, m.directory);
  for (size_t i = 0; i < masks.size(); ++i) {
    if (masks[i] == 0) continue;
    auto group = markIn(m.object.get(), masks[i], st.st_dev, fsid, kindOf(m.directory, i));
    if (!group) {
      abandon(std::move(m));
      return Error::fromErrno(group.error().code, "fanotify_mark");
    }
    m.parts[i] = Part{*group, masks[i]};
  }
  return m;
}

Result<PidProbe::Group*> PidProbe::markIn(int objectFd, uint64_t mask, dev_t device, bool uniqueFsid, Kind kind) {
  // A filesystem without fsid (FUSE), or with one that it shares: the kernel
  // lets a group that marks objects on it mark no other filesystem (EXDEV).
  if (uniqueFsid) {
    auto shared = groupFor(0, kind);
    if (!shared) return shared.error();
    if (markObject((*shared)->fd.get(), kAdd, mask, objectFd) == 0) return *shared;
    Error e = lastError("fanotify_mark");
    releaseGroupIfUnused(*shared);
    if (e.code != EXDEV) return e;
  }
  auto own = groupFor(device, kind);
  if (!own) return own.error();
  if (markObject((*own)->fd.get(), kAdd, mask, objectFd) == 0) return *own;
  Error e = lastError("fanotify_mark");
  releaseGroupIfUnused(*own);
  return e;
}

Result<PidProbe::Group*> PidProbe::groupFor(dev_t device, Kind kind) {
  for (const auto& group : groups_) {
    if (group->device == device && group->kind == kind) return group.get();
  }
  if (groups_.size() >= kMaxGroups) return Error{EMFILE, "too many fanotify groups (filesystems without fsid)"};
  UniqueFd fd(::fanotify_init(kind == Kind::kFiles ? kFileInitFlags : kInitFlags, O_RDONLY));
  if (!fd) return lastError("fanotify_init");
  auto group = std::make_unique<Group>();
  group->fd = std::move(fd);
  group->device = device;
  group->kind = kind;
  groups_.push_back(std::move(group));
  return groups_.back().get();
}

void PidProbe::releaseGroupIfUnused(Group* group) {
  if (group->marks != 0) return;
  std::erase_if(groups_, [group](const auto& owned) { return owned.get() == group; });
}

void PidProbe::bind(int wd, Marking m) {
  if (auto it = marks_.find(wd); it != marks_.end() && it->second.key != m.key) forgetGone(wd);
  if (m.existing) {
    // Already marked, under this watch descriptor or (should inotify have
    // let go of it meanwhile) under another.
    for (auto it = marks_.begin(); it != marks_.end(); ++it) {
      if (it->first == wd || it->second.key != m.key) continue;
      auto node = marks_.extract(it);
      node.key() = wd;
      for (Part& part : node.mapped().parts) {
        if (part.group != nullptr) part.group->wdOf[m.key] = wd;
      }
      marks_.insert(std::move(node));
      break;
    }
    if (auto it = marks_.find(wd); it != marks_.end()) applyMask(wd, it->second, m.object.get(), m.inotifyMask);
    return;
  }
  Mark& mark = marks_[wd];
  mark.key = m.key;
  mark.directory = m.directory;
  mark.device = m.device;
  for (size_t i = 0; i < m.parts.size(); ++i) {
    Part& part = m.parts[i];
    if (part.group == nullptr) continue;
    part.group->wdOf[m.key] = wd;
    part.group->marks++;
    mark.parts[i] = std::exchange(part, {});
  }
}

void PidProbe::abandon(Marking m) {
  if (m.existing) return;
  for (Part& part : m.parts) {
    if (part.group == nullptr) continue;
    markObject(part.group->fd.get(), FAN_MARK_REMOVE, part.mask, m.object.get());
    releaseGroupIfUnused(part.group);
  }
}

bool PidProbe::needsUpdate(int wd, uint32_t inotifyMask) const {
  auto it = marks_.find(wd);
  if (it == marks_.end()) return inotifyMask != 0;
  const auto masks = partMasks(inotifyMask, it->second.directory);
  return masks[0] != it->second.parts[0].mask || masks[1] != it->second.parts[1].mask;
}

void PidProbe::update(int wd, int objectFd, uint32_t inotifyMask) {
  auto it = marks_.find(wd);
  if (it == marks_.end()) {
    if (inotifyMask == 0 || objectFd < 0) return;
    auto marking = prepare(objectFd, inotifyMask);
    if (marking) {
      bind(wd, std::move(*marking));
    } else {
      log::debug("pid probe: {}", marking.error().message);
    }
    return;
  }
  Mark& mark = it->second;
  const auto masks = partMasks(inotifyMask, mark.directory);
  if (masks[0] == mark.parts[0].mask && masks[1] == mark.parts[1].mask) return;
  UniqueFd object = objectOf(mark, objectFd);
  if (!object) {
    log::debug("pid probe: the mark of watch {} cannot follow it: its object moved out of reach", wd);
    return;
  }
  applyMask(wd, mark, object.get(), inotifyMask);
}

void PidProbe::applyMask(int wd, Mark& mark, int objectFd, uint32_t inotifyMask) {
  const auto masks = partMasks(inotifyMask, mark.directory);
  for (size_t i = 0; i < masks.size(); ++i) {
    Part& part = mark.parts[i];
    const uint64_t mask = masks[i];
    if (mask == part.mask) continue;
    if (part.group == nullptr) {
      struct stat st;
      if (::fstat(objectFd, &st) != 0) continue;
      auto group = markIn(objectFd, mask, st.st_dev, hasFsid(mark.key), kindOf(mark.directory, i));
      if (!group) continue;
      part = Part{*group, mask};
      part.group->wdOf[mark.key] = wd;
      part.group->marks++;
    } else if (mask == 0) {
      markObject(part.group->fd.get(), FAN_MARK_REMOVE, part.mask, objectFd);
      unbindPart(mark.key, part);
    } else {
      const uint64_t added = mask & ~part.mask;
      const uint64_t removed = part.mask & ~mask;
      if (added != 0 && markObject(part.group->fd.get(), kAdd, added, objectFd) != 0) {
        log::debug("pid probe: cannot widen a mark: {}", std::strerror(errno));
        continue;
      }
      if (removed != 0) markObject(part.group->fd.get(), FAN_MARK_REMOVE, removed, objectFd);
      part.mask = mask;
    }
  }
}

void PidProbe::unbindPart(const std::string& key, Part& part) {
  Group* group = std::exchange(part, {}).group;
  group->wdOf.erase(key);
  group->marks--;
  releaseGroupIfUnused(group);
}

void PidProbe::forgetGone(int wd) {
  auto it = marks_.find(wd);
  if (it == marks_.end()) return;
  for (Part& part : it->second.parts) {
    if (part.group != nullptr) unbindPart(it->second.key, part);
  }
  marks_.erase(it);
}

void PidProbe::forget(int wd, int objectFd) {
  auto it = marks_.find(wd);
  if (it == marks_.end()) return;
  Mark& mark = it->second;
  UniqueFd object;
  if (covers(wd)) object = objectOf(mark, objectFd);
  for (Part& part : mark.parts) {
    if (part.group == nullptr) continue;
    if (object) markObject(part.group->fd.get(), FAN_MARK_REMOVE, part.mask, object.get());
    unbindPart(mark.key, part);
  }
  marks_.erase(it);
}

// The marked object, opened O_PATH: objectFd if that is it, else by its
// handle. Never held longer than a call: an open directory would delay its
// DELETE_SELF until let go.
UniqueFd PidProbe::objectOf(const Mark& mark, int objectFd) const {
  if (objectFd >= 0) {
    auto key = keyOf(objectFd);
    if (key && *key == mark.key) return UniqueFd(::fcntl(objectFd, F_DUPFD_CLOEXEC, 0));
  }
  // Moved (out of the watched tree, say). open_by_handle_at resolves through
  // a descriptor on the mount that is not O_PATH: opening the mount's root
  // shows as OPEN and CLOSE_NOWRITE there, once, on this rare path.
  auto root = mountRoots_.find(mark.device);
  if (!byHandle_ || root == mountRoots_.end()) return UniqueFd();
  UniqueFd mountFd(::open(root->second.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  UniqueFd object = mountFd ? openHandle(mountFd.get(), mark.key) : UniqueFd();
  // The mount's path may lead elsewhere by now; a handle decoded on another
  // filesystem may name another object there. The key holds the fsid.
  auto key = object ? keyOf(object.get()) : Result<std::string>(Error{ENOENT, ""});
  return key && *key == mark.key ? std::move(object) : UniqueFd();
}

// Walks up from a directory (a watched file has no way up without a path:
// its filesystem is remembered when a directory on it is marked). The mount
// root's path is the mount table's, not one a client chose.
void PidProbe::rememberMountRoot(const Marking& m) {
  if (!m.directory || mountRoots_.count(m.device) != 0) return;
  if (std::string root = mountRootOf(m.object.get()); !root.empty()) mountRoots_.emplace(m.device, std::move(root));
}

}  // namespace rnotify
