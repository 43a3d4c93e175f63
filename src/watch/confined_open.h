// Reaching a watched tree only through descriptors. rnotifyd runs as root and
// watches trees whose owners may rename any directory in them and put a
// symbolic link in its place while a backend lags behind the kernel's events;
// a lookup by absolute path would then follow the link out of the tree, as
// root. So a backend keeps an Anchor per subscription root and opens every
// other directory from the nearest anchor by the names it knows, with the
// kernel refusing to leave the anchor's subtree, to follow any symbolic link
// or to cross a mount. A failure means the directory is not where the backend
// believes: its move or delete event is on its way.
//
// An anchor is not an open descriptor: one held on a directory keeps its
// dentry alive, and the kernel then reports neither its DELETE_SELF nor the
// end of its watch (IN_IGNORED) until it is closed; it would also keep its
// filesystem from being unmounted. It is the object's identity (device,
// inode, file handle with its generation) and the path it had, with no
// symbolic link in it; opened for one operation at a time, with no link
// followed, and used only if it is still that very object.
#pragma once

#include <sys/types.h>

#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "common/result.h"
#include "common/unique_fd.h"

namespace rnotify {

struct Anchor {
  // The anchor of the object open on fd; ENOENT when it has no path (deleted).
  static Result<Anchor> of(int fd);
  // An O_PATH descriptor of exactly that object, if it is still at its path
  // (ESTALE: something else is there now; it moved or went).
  UniqueFd open() const;

  std::string path;    // as /proc/self/fd showed it: absolute, no symbolic link
  std::string handle;  // name_to_handle_at (type and bytes); "" where unsupported
  dev_t device = 0;
  ino_t inode = 0;
  // Whether the tree below may span mounts: only where the caller opened the
  // root itself from a path of its own (a local watch); never beneath a
  // descriptor a caller handed over (rnotifyd: an export ends at its mount).
  bool crossMounts = false;
};

// An O_PATH descriptor of the directory at `relative` ("a/b"; "" for the
// anchor itself, which may then be any type) below anchorFd, resolved with
// RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS, and
// RESOLVE_NO_XDEV unless crossMounts. Invalid with errno set on failure.
UniqueFd openBeneath(int anchorFd, const std::string& relative, bool crossMounts);

// An O_PATH descriptor of the subdirectory `name` (one component) of the
// directory open on dirFd; a symbolic link there is refused (ENOTDIR), and
// a mount on it (EXDEV) unless crossMounts.
UniqueFd openSubdirectory(int dirFd, std::string_view name, bool crossMounts);

// A duplicate (close-on-exec) of fd; invalid with errno set on failure.
UniqueFd duplicate(int fd);

// The entries of the directory open on dirFd (O_PATH is enough) without "."
// and "..", each with whether it is a directory (not through a link).
// `path` only names the directory in the error.
Result<std::vector<std::pair<std::string, bool>>> listDirectory(int dirFd, const std::string& path);

// "/proc/self/fd/N": the magic link that calls taking only a path (such as
// inotify_add_watch) follow to exactly the object open on fd, with no other
// lookup. Never with IN_DONT_FOLLOW (that would watch the link itself).
std::string magicLinkOf(int fd);

// Whether fd is open on the object (device, inode).
bool isObject(int fd, dev_t device, ino_t inode);

}  // namespace rnotify
