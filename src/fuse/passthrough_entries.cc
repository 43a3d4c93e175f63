// Handlers for names and attributes: lookup, forget, getattr, setattr,
// readlink, mknod, mkdir, symlink, link, unlink, rmdir, rename, create.
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <string>

#include "common/log.h"
#include "fuse/passthrough_internal.h"

namespace rnotify::fuse {

int statOf(View& view, fuse_ino_t ino, struct stat* st, bool own) {
  Inode& inode = view.table->get(ino);
  int fd = view.table->fdOf(ino);
  // An own request replays history: SOURCE may have lost the file since.
  if (fd < 0 || (::fstatat(fd, "", st, AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW) != 0 && own)) {
    *st = {};
    st->st_ino = inode.srcIno;
    st->st_mode = inode.type | (inode.type == S_IFDIR ? 0755 : 0644);
    st->st_nlink = 1;
    return 0;
  }
  return ::fstatat(fd, "", st, AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW) == 0 ? 0 : errno;
}

namespace {

// Looks `name` up on SOURCE and records the kernel's new reference.
int lookupSource(View& view, fuse_ino_t parent, const char* name, fuse_entry_param* e) {
  *e = {};
  int dirFd = view.table->fdOf(parent);
  if (dirFd < 0) return ENOENT;
  UniqueFd fd(::openat(dirFd, name, O_PATH | O_NOFOLLOW | O_CLOEXEC));
  if (!fd) return errno;
  if (::fstatat(fd.get(), "", &e->attr, AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW) != 0) return errno;
  e->ino = view.table->remember(parent, name, std::move(fd), e->attr, &e->generation);
  e->attr_timeout = view.timeout;
  e->entry_timeout = view.timeout;
  return 0;
}

void replyGhost(fuse_req_t req, View& view, fuse_ino_t parent, const char* name, mode_t type) {
  fuse_entry_param e{};
  e.ino = view.table->ghost(parent, name, type, &e.attr, &e.generation);
  // Never cached: the ghost stands only for the one reflected call.
  fuse_reply_entry(req, &e);
}

// An own create (mknod, mkdir, symlink, create): the entry is already on
// SOURCE; hand it to the kernel. If a later remote delete already took it
// away, a ghost keeps the reflected call working (that delete comes next).
int ownEntry(fuse_req_t req, fuse_ino_t parent, const char* name, mode_t type, fuse_entry_param* e) {
  View& view = viewOf(req);
  int err = lookupSource(view, parent, name, e);
  if (err == ENOENT) {
    *e = {};
    e->ino = view.table->ghost(parent, name, type, &e->attr, &e->generation);
    return 0;
  }
  return err;
}

void opLookup(fuse_req_t req, fuse_ino_t parent, const char* name) {
  View& view = viewOf(req);
  // What the reflector announced for this name (own requests act on it;
  // others must not leave a negative entry in its way).
  mode_t type = 0;
  ReflectionGate::Expect expect = ReflectionGate::Expect::kNone;
  if (view.gate->active()) expect = view.gate->expected(view.table->pathOf(parent), name, &type);
  const bool own = isOwn(req);
  if (!own && expect != ReflectionGate::Expect::kNone) expect = ReflectionGate::Expect::kUncached;
  if (expect == ReflectionGate::Expect::kAbsent) {
    fuse_entry_param e{};  // negative, not cached
    fuse_reply_entry(req, &e);
    return;
  }
  fuse_entry_param e;
  int err = lookupSource(view, parent, name, &e);
  if (err == ENOENT && own) {
    // Replaying history that SOURCE has already moved past: the inode the
    // kernel already had under this name (so that a rename or delete acts on
    // what watchers have marked), else a ghost where one was announced.
    e = {};
    if (auto known = view.table->lookupKnown(parent, name, &e.attr, &e.generation)) {
      e.ino = *known;
      fuse_reply_entry(req, &e);
      return;
    }
    if (expect == ReflectionGate::Expect::kGhost) return replyGhost(req, view, parent, name, type);
  }
  if (err == ENOENT) {
    e = {};
    // A negative entry; a remote create invalidates it. Not while the
    // reflector is about to walk to this name: it would find the negative.
    e.entry_timeout = expect == ReflectionGate::Expect::kUncached ? 0 : view.timeout;
    fuse_reply_entry(req, &e);
    return;
  }
  if (err != 0) {
    fuse_reply_err(req, err);
    return;
  }
  fuse_reply_entry(req, &e);
}

void opForget(fuse_req_t req, fuse_ino_t ino, uint64_t nlookup) {
  viewOf(req).table->forget(ino, nlookup);
  fuse_reply_none(req);
}

void opForgetMulti(fuse_req_t req, size_t count, fuse_forget_data* forgets) {
  for (size_t i = 0; i < count; ++i) viewOf(req).table->forget(forgets[i].ino, forgets[i].nlookup);
  fuse_reply_none(req);
}

void opGetattr(fuse_req_t req, fuse_ino_t ino, fuse_file_info* /*fi*/) {
  View& view = viewOf(req);
  struct stat st;
  if (int err = statOf(view, ino, &st, isOwn(req)); err != 0) {
    fuse_reply_err(req, err);
    return;
  }
  fuse_reply_attr(req, &st, view.timeout);
}

int applyAttributes(int fd, const struct stat* attr, int valid, fuse_file_info* fi) {
  const bool open = fi != nullptr && fi->fh != kNoFile;
  if (valid & FUSE_SET_ATTR_MODE) {
    int r = open ? ::fchmod(static_cast<int>(fi->fh), attr->st_mode) : ::chmod(procPath(fd).c_str(), attr->st_mode);
    if (r != 0) return errno;
  }
  if (valid & (FUSE_SET_ATTR_UID | FUSE_SET_ATTR_GID)) {
    uid_t uid = (valid & FUSE_SET_ATTR_UID) ? attr->st_uid : static_cast<uid_t>(-1);
    gid_t gid = (valid & FUSE_SET_ATTR_GID) ? attr->st_gid : static_cast<gid_t>(-1);
    if (::fchownat(fd, "", uid, gid, AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW) != 0) return errno;
  }
  if (valid & FUSE_SET_ATTR_SIZE) {
    int r =
        open ? ::ftruncate(static_cast<int>(fi->fh), attr->st_size) : ::truncate(procPath(fd).c_str(), attr->st_size);
    if (r != 0) return errno;
  }
  if (valid & (FUSE_SET_ATTR_ATIME | FUSE_SET_ATTR_MTIME)) {
    struct timespec times[2];
    times[0].tv_sec = times[1].tv_sec = 0;
    times[0].tv_nsec = times[1].tv_nsec = UTIME_OMIT;
    if (valid & FUSE_SET_ATTR_ATIME_NOW)
      times[0].tv_nsec = UTIME_NOW;
    else if (valid & FUSE_SET_ATTR_ATIME)
      times[0] = attr->st_atim;
    if (valid & FUSE_SET_ATTR_MTIME_NOW)
      times[1].tv_nsec = UTIME_NOW;
    else if (valid & FUSE_SET_ATTR_MTIME)
      times[1] = attr->st_mtim;
    int r = open ? ::futimens(static_cast<int>(fi->fh), times) : ::utimensat(AT_FDCWD, procPath(fd).c_str(), times, 0);
    if (r != 0) return errno;
  }
  return 0;
}

void opSetattr(fuse_req_t req, fuse_ino_t ino, struct stat* attr, int valid, fuse_file_info* fi) {
  View& view = viewOf(req);
  // An own setattr is a reflected chmod/utimes/truncate: SOURCE has it already.
  if (!isOwn(req)) {
    int fd = view.table->fdOf(ino);
    if (fd < 0) {
      fuse_reply_err(req, ESTALE);
      return;
    }
    if (int err = applyAttributes(fd, attr, valid, fi); err != 0) {
      fuse_reply_err(req, err);
      return;
    }
  }
  opGetattr(req, ino, fi);
}

void opReadlink(fuse_req_t req, fuse_ino_t ino) {
  int fd = viewOf(req).table->fdOf(ino);
  char target[PATH_MAX + 1];
  ssize_t n = fd < 0 ? -1 : ::readlinkat(fd, "", target, PATH_MAX);
  if (n < 0) {
    fuse_reply_err(req, fd < 0 ? ESTALE : errno);
    return;
  }
  target[n] = '\0';
  fuse_reply_readlink(req, target);
}

// mknod, mkdir, symlink: `make` performs the call on SOURCE for a request
// from anyone but the daemon itself.
template <typename Make>
void makeEntry(fuse_req_t req, fuse_ino_t parent, const char* name, mode_t type, Make make) {
  View& view = viewOf(req);
  fuse_entry_param e;
  int err;
  if (isOwn(req)) {
    err = ownEntry(req, parent, name, type, &e);
  } else {
    int dirFd = view.table->fdOf(parent);
    if (dirFd < 0) {
      fuse_reply_err(req, ENOENT);
      return;
    }
    err = make(dirFd) == 0 ? lookupSource(view, parent, name, &e) : errno;
  }
  if (err != 0) {
    fuse_reply_err(req, err);
    return;
  }
  fuse_reply_entry(req, &e);
}

void opMknod(fuse_req_t req, fuse_ino_t parent, const char* name, mode_t mode, dev_t rdev) {
  makeEntry(req, parent, name, mode & S_IFMT, [&](int dirFd) { return ::mknodat(dirFd, name, mode, rdev); });
}

void opMkdir(fuse_req_t req, fuse_ino_t parent, const char* name, mode_t mode) {
  makeEntry(req, parent, name, S_IFDIR, [&](int dirFd) { return ::mkdirat(dirFd, name, mode); });
}

void opSymlink(fuse_req_t req, const char* link, fuse_ino_t parent, const char* name) {
  makeEntry(req, parent, name, S_IFLNK, [&](int dirFd) { return ::symlinkat(link, dirFd, name); });
}

void opLink(fuse_req_t req, fuse_ino_t ino, fuse_ino_t parent, const char* name) {
  View& view = viewOf(req);
  int fd = view.table->fdOf(ino);
  int dirFd = view.table->fdOf(parent);
  // The reflector replays a remote hard link as a create, never as link().
  if (isOwn(req) || fd < 0 || dirFd < 0) {
    fuse_reply_err(req, isOwn(req) ? EPERM : ESTALE);
    return;
  }
  if (::linkat(AT_FDCWD, procPath(fd).c_str(), dirFd, name, AT_SYMLINK_FOLLOW) != 0) {
    fuse_reply_err(req, errno);
    return;
  }
  fuse_entry_param e;
  int err = lookupSource(view, parent, name, &e);
  if (err != 0) {
    fuse_reply_err(req, err);
    return;
  }
  fuse_reply_entry(req, &e);
}

void removeEntry(fuse_req_t req, fuse_ino_t parent, const char* name, int flags) {
  View& view = viewOf(req);
  if (!isOwn(req)) {
    int dirFd = view.table->fdOf(parent);
    if (dirFd < 0 || ::unlinkat(dirFd, name, flags) != 0) {
      fuse_reply_err(req, dirFd < 0 ? ENOENT : errno);
      return;
    }
  }
  view.table->dropName(parent, name);
  fuse_reply_err(req, 0);
}

void opUnlink(fuse_req_t req, fuse_ino_t parent, const char* name) { removeEntry(req, parent, name, 0); }
void opRmdir(fuse_req_t req, fuse_ino_t parent, const char* name) { removeEntry(req, parent, name, AT_REMOVEDIR); }

void opRename(fuse_req_t req, fuse_ino_t parent, const char* name, fuse_ino_t newParent, const char* newName,
              unsigned int flags) {
  View& view = viewOf(req);
  if (isOwn(req)) {
    view.table->rename(parent, name, newParent, newName);
    // On a path-based source (sshfs) the moved inode's fd still names the old
    // path, which the server no longer has.
    view.table->reopenAt(newParent, newName);
    fuse_reply_err(req, 0);
    return;
  }
  int from = view.table->fdOf(parent);
  int to = view.table->fdOf(newParent);
  if (from < 0 || to < 0) {
    fuse_reply_err(req, ENOENT);
    return;
  }
  if (::syscall(SYS_renameat2, from, name, to, newName, flags) != 0) {
    fuse_reply_err(req, errno);
    return;
  }
  view.table->rename(parent, name, newParent, newName);
  fuse_reply_err(req, 0);
}

void opCreate(fuse_req_t req, fuse_ino_t parent, const char* name, mode_t mode, fuse_file_info* fi) {
  View& view = viewOf(req);
  fuse_entry_param e;
  if (isOwn(req)) {
    if (int err = ownEntry(req, parent, name, S_IFREG, &e); err != 0) {
      fuse_reply_err(req, err);
      return;
    }
    fi->fh = kNoFile;
    fuse_reply_create(req, &e, fi);
    return;
  }
  int dirFd = view.table->fdOf(parent);
  if (dirFd < 0) {
    fuse_reply_err(req, ENOENT);
    return;
  }
  int fd = ::openat(dirFd, name, (fi->flags | O_CREAT | O_CLOEXEC) & ~O_NOFOLLOW, mode);
  if (fd < 0) {
    fuse_reply_err(req, errno);
    return;
  }
  if (int err = lookupSource(view, parent, name, &e); err != 0) {
    ::close(fd);
    fuse_reply_err(req, err);
    return;
  }
  fi->fh = static_cast<uint64_t>(fd);
  if (fuse_reply_create(req, &e, fi) != 0) ::close(fd);
}

}  // namespace

void addEntryOperations(fuse_lowlevel_ops* ops) {
  ops->lookup = opLookup;
  ops->forget = opForget;
  ops->forget_multi = opForgetMulti;
  ops->getattr = opGetattr;
  ops->setattr = opSetattr;
  ops->readlink = opReadlink;
  ops->mknod = opMknod;
  ops->mkdir = opMkdir;
  ops->symlink = opSymlink;
  ops->link = opLink;
  ops->unlink = opUnlink;
  ops->rmdir = opRmdir;
  ops->rename = opRename;
  ops->create = opCreate;
}

}  // namespace rnotify::fuse
