#include "server/confined_tree.h"

#include <fcntl.h>
#include <linux/openat2.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <climits>
#include <cstdio>
#include <optional>

namespace rnotify {
namespace {

// Acts as `as` for the lifetime of the returned object when the daemon is
// another user; false if it should and cannot (then nothing may be opened).
bool enter(std::optional<ActingAs>& acting, const Credentials* as) {
  if (as == nullptr || !mustActAs(*as)) return true;
  acting.emplace(*as);
  if (!acting->ok()) {
    errno = EACCES;
    return false;
  }
  return true;
}

bool isInside(const std::string& path, const std::string& root) {
  if (root == "/") return !path.empty() && path[0] == '/';
  return path == root ||
         (path.size() > root.size() && path.compare(0, root.size(), root) == 0 && path[root.size()] == '/');
}

// openat2 as whoever this thread is now.
int openat2Beneath(int dirFd, const std::string& relative, uint64_t flags, uint64_t extraResolve, bool inRoot) {
  open_how how{};
  how.flags = flags | O_CLOEXEC;
  how.resolve = (inRoot ? RESOLVE_IN_ROOT : RESOLVE_BENEATH) | RESOLVE_NO_MAGICLINKS | extraResolve;
  const char* name = relative.empty() ? "." : relative.c_str();
  long fd;
  do {
    fd = ::syscall(SYS_openat2, dirFd, name, &how, sizeof how);
  } while (fd < 0 && errno == EAGAIN);  // a rename raced the walk: walk again
  return static_cast<int>(fd);
}

}  // namespace

int openBeneathAs(const Credentials* as, int dirFd, const std::string& relative, uint64_t flags, uint64_t extraResolve,
                  bool inRoot) {
  std::optional<ActingAs> acting;
  if (!enter(acting, as)) return -1;
  return openat2Beneath(dirFd, relative, flags, extraResolve, inRoot);
}

UniqueFd openEntryAs(const Credentials* as, int exportFd, const std::string& relative, bool inRoot, bool* readable) {
  UniqueFd fd(openBeneathAs(as, exportFd, relative, O_PATH, 0, inRoot));
  *readable = true;
  if (fd && as != nullptr && mustActAs(*as)) {
    // O_PATH checks search permission on the way; reading the target is the
    // permission inotify needs.
    std::optional<ActingAs> acting;
    *readable = enter(acting, as) && ::faccessat(fd.get(), "", R_OK, AT_EMPTY_PATH | AT_EACCESS) == 0;
  }
  return fd;
}

std::string pathOf(int fd) {
  char link[64], target[PATH_MAX];
  std::snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
  ssize_t n = ::readlink(link, target, sizeof target - 1);
  return n > 0 ? std::string(target, static_cast<size_t>(n)) : std::string();
}

ConfinedTree::ConfinedTree(const UniqueFd& root, int exportFd, int mountFd, std::string exportPath, std::string path)
    : exportFd_(exportFd), mountFd_(mountFd), exportPath_(std::move(exportPath)), path_(std::move(path)) {
  struct stat st;
  if (::fstat(root.get(), &st) == 0) {
    device_ = st.st_dev;
    inode_ = st.st_ino;
  }
  alignas(file_handle) char buffer[sizeof(file_handle) + MAX_HANDLE_SZ];
  auto* handle = reinterpret_cast<file_handle*>(buffer);
  handle->handle_bytes = MAX_HANDLE_SZ;
  int mountId = 0;
  if (::name_to_handle_at(root.get(), "", handle, &mountId, AT_EMPTY_PATH) == 0) {
    handle_.assign(buffer, sizeof(file_handle) + handle->handle_bytes);
  }
  if (path_.size() > exportPath_.size()) lastSeen_ = path_.substr(exportPath_ == "/" ? 1 : exportPath_.size() + 1);
}

bool ConfinedTree::isRoot(int fd) const {
  struct stat st;
  return fd >= 0 && ::fstat(fd, &st) == 0 && st.st_dev == device_ && st.st_ino == inode_ && st.st_nlink > 0;
}

UniqueFd ConfinedTree::openRoot() const {
  // Where it was last seen, beneath the export, through no symbolic link:
  // as the daemon, since this only finds the object (what the client may do
  // there is checked from the descriptor, as the client).
  UniqueFd fd(openat2Beneath(exportFd_, lastSeen_, O_PATH, RESOLVE_NO_SYMLINKS, exportPath_ == "/"));
  if (isRoot(fd.get())) return fd;
  // Moved: by its handle (the generation in it tells a new object with a
  // reused inode number apart), then remember where it is now.
  if (mountFd_ >= 0 && !handle_.empty()) {
    std::string copy = handle_;
    fd.reset(::open_by_handle_at(mountFd_, reinterpret_cast<file_handle*>(copy.data()), O_PATH | O_CLOEXEC));
    if (isRoot(fd.get())) {
      std::string relative;
      const std::string now = pathOf(fd.get());
      if (isInside(now, exportPath_))
        lastSeen_ = now.size() <= exportPath_.size() ? std::string()
                                                     : now.substr(exportPath_ == "/" ? 1 : exportPath_.size() + 1);
      return fd;
    }
  }
  errno = ENOENT;
  return UniqueFd();
}

uint8_t ConfinedTree::access(std::string_view dir, const Credentials* as, uint64_t* ino) const {
  uint64_t ignored;
  if (ino == nullptr) ino = &ignored;
  *ino = 0;
  const UniqueFd root = openRoot();
  if (!root) return 0;
  std::optional<ActingAs> acting;
  if (!enter(acting, as)) {
    errno = EACCES;
    return 0;
  }
  // O_PATH, then the kernel's permission check on the descriptor: opening the
  // directory for reading would itself be an event (IN_OPEN, then
  // IN_CLOSE_NOWRITE) in a directory being watched, checked in its turn: a
  // client watching for those could make the daemon check without end.
  scratch_.assign(dir);
  UniqueFd fd(openat2Beneath(root.get(), scratch_, O_PATH | O_DIRECTORY, RESOLVE_NO_SYMLINKS, false));
  struct stat st;
  if (!fd) {
    // A watch on one file: its events and state are the client's if it may
    // read it.
    if (!dir.empty() || errno != ENOTDIR) return 0;
    if (::fstat(root.get(), &st) == 0) *ino = st.st_ino;
    if (::faccessat(root.get(), "", R_OK, AT_EMPTY_PATH | AT_EACCESS) == 0) return kList | kSearch;
    errno = EACCES;
    return 0;
  }
  if (::fstat(fd.get(), &st) == 0) *ino = st.st_ino;
  if (::faccessat(fd.get(), "", R_OK, AT_EMPTY_PATH | AT_EACCESS) != 0) {
    errno = EACCES;
    return 0;
  }
  return kList | (::faccessat(fd.get(), "", X_OK, AT_EMPTY_PATH | AT_EACCESS) == 0 ? kSearch : 0);
}

UniqueFd ConfinedTree::openDirAs(std::string_view dir, const Credentials* as, bool* searchable,
                                 struct stat* checked) const {
  *searchable = false;
  const UniqueFd root = openRoot();
  if (!root) return UniqueFd();
  std::optional<ActingAs> acting;
  if (!enter(acting, as)) return UniqueFd();
  // O_PATH: opening for reading would itself be an event (IN_OPEN) in the
  // watched directory. RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS: the directory
  // inside the tree, never what a link leads to.
  scratch_.assign(dir);
  UniqueFd fd(openat2Beneath(root.get(), scratch_, O_PATH | O_DIRECTORY, RESOLVE_NO_SYMLINKS, false));
  if (!fd && dir.empty() && errno == ENOTDIR) {
    // A watch on one file: its own state only.
    fd.reset(::fcntl(root.get(), F_DUPFD_CLOEXEC, 0));
    if (!fd || ::fstat(fd.get(), checked) != 0) return UniqueFd();
    *searchable = ::faccessat(fd.get(), "", R_OK, AT_EMPTY_PATH | AT_EACCESS) == 0;
    return fd;
  }
  // Mode and owner first, then the check: a change of them after the check
  // shows (see changedSince).
  if (!fd || ::fstat(fd.get(), checked) != 0) return UniqueFd();
  // Read and search: nothing about a directory the client may not list.
  *searchable = ::faccessat(fd.get(), "", R_OK | X_OK, AT_EMPTY_PATH | AT_EACCESS) == 0;
  return fd;
}

bool ConfinedTree::changedSince(int fd, const struct stat& checked) {
  struct stat st;
  return ::fstat(fd, &st) != 0 || st.st_mode != checked.st_mode || st.st_uid != checked.st_uid ||
         st.st_gid != checked.st_gid;
}

bool ConfinedTree::statAt(int dirFd, std::string_view name, struct stat* st) {
  if (name.empty()) return ::fstat(dirFd, st) == 0;
  if (name.find('/') != std::string_view::npos || name.size() > NAME_MAX) return false;  // one entry, never a path
  char entry[NAME_MAX + 1];
  name.copy(entry, name.size());
  entry[name.size()] = '\0';
  return ::fstatat(dirFd, entry, st, AT_SYMLINK_NOFOLLOW) == 0;
}

int ConfinedTree::openListing(const Credentials* as) const {
  const UniqueFd root = openRoot();
  if (!root) return -1;
  std::optional<ActingAs> acting;
  if (!enter(acting, as)) return -1;
  return ::openat(root.get(), ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
}

bool ConfinedTree::relativeNow(std::string* relative) const {
  const UniqueFd root = openRoot();
  if (!root) return false;
  const std::string now = pathOf(root.get());
  if (now.empty() || now[0] != '/' || !isInside(now, exportPath_)) return false;
  if (now.size() <= exportPath_.size()) {
    relative->clear();
  } else {
    relative->assign(now, exportPath_ == "/" ? 1 : exportPath_.size() + 1);
  }
  return true;
}

std::string ConfinedTree::whyUnreachable(const Credentials& as) const {
  if (!openRoot()) {
    // Not found by its handle either: deleted (its IN_DELETE_SELF and
    // IN_IGNORED are on the way). Without handles, moved out of sight.
    if (mountFd_ >= 0 && !handle_.empty()) return {};
    return "it moved where rnotifyd cannot follow it; watch it again";
  }
  std::string relative;
  if (!relativeNow(&relative)) return "it was moved out of the exported directories";
  bool readable = false;
  UniqueFd again(openEntryAs(&as, exportFd_, relative, exportPath_ == "/", &readable));
  struct stat now;
  if (!again || !readable || ::fstat(again.get(), &now) != 0 || now.st_dev != device_ || now.st_ino != inode_) {
    return "a directory on its path changed permissions or moved; you may no longer read it";
  }
  return {};
}

}  // namespace rnotify
