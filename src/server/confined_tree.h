// ConfinedTree: every filesystem access rnotifyd makes for a client, made
// through descriptors. A watched tree is known by its root's identity (device,
// inode, file handle) and reached, for each access, by a descriptor opened
// beneath the export where it was last seen (or by its handle once it moved);
// it is never held open between accesses: a descriptor held on a directory
// defers its IN_DELETE_SELF and IN_IGNORED until it is closed. From that
// descriptor each access (may the client
// list this directory? what is this entry's state? open the root for a
// listing) is an openat2 beneath that descriptor, with RESOLVE_BENEATH and
// RESOLVE_NO_SYMLINKS, under the client's fsuid, fsgid and groups. So no
// lookup of a client-derived path ever starts at "/" or at the current
// directory, follows a symbolic link, or is made with root's permissions:
// renaming an ancestor or swapping one for a link changes nothing the daemon
// reads, and the kernel, not rnotifyd, decides what the client may read.
#pragma once

#include <sys/stat.h>

#include <cstdint>
#include <string>
#include <string_view>

#include "common/result.h"
#include "common/unique_fd.h"
#include "server/credentials.h"

namespace rnotify {

// openat2(dirFd, relative) with RESOLVE_BENEATH (RESOLVE_IN_ROOT when the
// export is "/") | RESOLVE_NO_MAGICLINKS | extraResolve, as `as` (nullptr:
// as the daemon itself). -1 with errno on failure.
int openBeneathAs(const Credentials* as, int dirFd, const std::string& relative, uint64_t flags,
                  uint64_t extraResolve = 0, bool inRoot = false);

// Opens `relative` beneath an export's descriptor as `as` (O_PATH: the walk
// checks search permission on every directory); *readable: whether `as`
// may also read it (what a watch needs). -1 with errno on failure.
UniqueFd openEntryAs(const Credentials* as, int exportFd, const std::string& relative, bool inRoot, bool* readable);

// What a descriptor names now (readlink of /proc/self/fd/N); "" if unknown.
std::string pathOf(int fd);

class ConfinedTree {
 public:
  // root: the watched entry (O_PATH is enough), used here only to learn its
  // identity; exportFd and exportPath: the export it was reached from (the
  // daemon's, outliving every tree); mountFd: ExportRoots::mountFd (-1: the
  // root is found only where it was last seen).
  ConfinedTree(const UniqueFd& root, int exportFd, int mountFd, std::string exportPath, std::string path);

  // The root, opened O_PATH for one access (invalid, errno ENOENT or ESTALE,
  // if it cannot be found: deleted, or moved where the daemon cannot look it
  // up by handle).
  UniqueFd openRoot() const;
  int exportFd() const { return exportFd_; }
  const std::string& exportPath() const { return exportPath_; }
  // The canonical path the tree was watched at (for messages and logs).
  const std::string& path() const { return path_; }

  // What `as` may do in the directory `dir` ("" the root), reached from the
  // root without following a symbolic link: kList (read it: the events there
  // are its to see) and kSearch (look its entries up: their state is its to
  // see). Asked of the kernel on an O_PATH descriptor, which is no event in
  // the directory. One switch of identity; callers cache the answer.
  static constexpr uint8_t kList = 1, kSearch = 2;
  // *ino: the inode of the directory `dir` named (0 if it did not open).
  // 0 returned: errno says why (EACCES is a refusal).
  uint8_t access(std::string_view dir, const Credentials* as, uint64_t* ino = nullptr) const;
  // The directory `dir` ("" the root) below the root, opened as `as` (O_PATH,
  // never through a symbolic link: the walk checks `as`'s search permission
  // on the way), for statAt; *searchable: whether `as` may also look entries
  // up in it and list it. Both answers are about the one object the descriptor holds,
  // whatever is at that path later.
  // *checked: its state before the check.
  UniqueFd openDirAs(std::string_view dir, const Credentials* as, bool* searchable, struct stat* checked) const;
  // Whether fd's mode or owner changed since `checked` (one fstat, no switch
  // of identity). Not its ACL: an ACL change is an IN_ATTRIB, which drops the
  // session's answers when it is read.
  static bool changedSince(int fd, const struct stat& checked);
  // The state of `name` in the directory dirFd ("" the directory itself),
  // without following a final symbolic link, read through the descriptor
  // with the daemon's identity: the caller has checked, with openDirAs, that
  // the client may search that very directory (switching identity for every
  // event of a watch with stat attachments cost three times the CPU of the
  // whole event path).
  static bool statAt(int dirFd, std::string_view name, struct stat* st);
  // The root opened for reading (a listing), as `as`. -1 with errno.
  int openListing(const Credentials* as) const;

  // Revocation: whether `as` may still reach the root from its export. The
  // root must still be lexically inside the export, and resolving that path
  // beneath the export as `as` must give the root itself, readable. Empty if
  // so; else why not, for the client ("moved out of the export", ...).
  // Deleted roots are reported by the watcher, not here: they pass.
  std::string whyUnreachable(const Credentials& as) const;
  // The root's path below the export ("" the export itself), from where the
  // descriptor is now; false if it is no longer inside the export.
  bool relativeNow(std::string* relative) const;

 private:
  bool isRoot(int fd) const;
  uint64_t device_ = 0;
  uint64_t inode_ = 0;
  std::string handle_;            // struct file_handle bytes ("" if the filesystem has none)
  mutable std::string lastSeen_;  // below the export, where the root was last found
  int exportFd_;
  int mountFd_;
  std::string exportPath_;
  std::string path_;
  mutable std::string scratch_;
};

}  // namespace rnotify
