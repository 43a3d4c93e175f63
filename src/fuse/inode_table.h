// InodeTable: what the view's kernel knows, mapped onto SOURCE. Each inode the
// kernel holds (lookup count above zero) is one Inode with an O_PATH fd on the
// network mount, as in libfuse's passthrough_hp: the fuse_ino_t handed to the
// kernel is the Inode's address. Beside the identity map (source st_ino/st_dev
// -> Inode, so that hard links and repeated lookups give one inode) the table
// keeps the name each inode was last looked up by, which is how a remote event
// ("a/b", "f") finds the kernel's cached entries to invalidate, and how an own
// request learns which directory it is in.
//
// A ghost is an inode with no file behind it: a reflected delete or rename
// must name an entry that the server already removed, and the kernel walks to
// it first. One mutex guards everything; no system call runs under it except
// the reopen after a reflected rename.
#pragma once

#include <fuse_lowlevel.h>
#include <sys/stat.h>

#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "common/unique_fd.h"

namespace rnotify::fuse {

struct Inode {
  UniqueFd fd;  // O_PATH|O_NOFOLLOW on SOURCE; invalid for a ghost
  ino_t srcIno = 0;
  dev_t srcDev = 0;
  mode_t type = 0;  // S_IFMT bits
  uint64_t nlookup = 0;
  uint64_t generation = 0;
  Inode* parent = nullptr;  // the name it was last looked up by
  std::string name;
  bool ghost = false;
};

class InodeTable {
 public:
  // rootFd: O_PATH on SOURCE.
  InodeTable(UniqueFd rootFd, const struct stat& rootStat);

  Inode& get(fuse_ino_t ino);
  fuse_ino_t idOf(const Inode& inode) const;
  // The fd of `ino` on SOURCE, or -1 for a ghost.
  int fdOf(fuse_ino_t ino);

  // Records one kernel lookup of `name` in `parent`; `fd` is the fresh O_PATH
  // fd, `st` its stat. Returns the entry's ino and generation.
  fuse_ino_t remember(fuse_ino_t parent, const std::string& name, UniqueFd fd, const struct stat& st,
                      uint64_t* generation);
  // A lookup of an inode the kernel already has (link()).
  void addLookup(fuse_ino_t ino);
  // One more kernel lookup of the inode last looked up as `name` in `parent`,
  // whether or not SOURCE still has it: a reflected rename or delete must act
  // on the inode that watchers have marked. *st receives its attributes (made
  // up from its type when SOURCE no longer has it). nullopt if none is known.
  std::optional<fuse_ino_t> lookupKnown(fuse_ino_t parent, const std::string& name, struct stat* st,
                                        uint64_t* generation);
  // A ghost of type `type`; *st receives attributes to hand to the kernel.
  fuse_ino_t ghost(fuse_ino_t parent, const std::string& name, mode_t type, struct stat* st, uint64_t* generation);
  void forget(fuse_ino_t ino, uint64_t n);

  // The kernel removed or moved a name.
  void dropName(fuse_ino_t parent, const std::string& name);
  void rename(fuse_ino_t parent, const std::string& name, fuse_ino_t newParent, const std::string& newName);
  // After a reflected rename on a path-based source (sshfs), the moved inode
  // and everything cached below it still point at the old path: reopen them at
  // the new one.
  void reopenAt(fuse_ino_t parent, const std::string& name);

  // The directory path of `ino` relative to SOURCE ("" for the root), as the
  // names last looked up say.
  std::string pathOf(fuse_ino_t ino);
  // The cached inode at relative path `rel` ("" is the root), if the kernel
  // holds every component.
  std::optional<fuse_ino_t> resolve(const std::string& rel);
  std::optional<fuse_ino_t> child(fuse_ino_t parent, const std::string& name);

  size_t size();

 private:
  using SrcId = std::pair<ino_t, dev_t>;
  struct SrcIdHash {
    size_t operator()(const SrcId& id) const { return std::hash<uint64_t>{}(id.first * 31 + id.second); }
  };
  Inode& getLocked(fuse_ino_t ino);
  void unname(Inode& inode);
  void setName(Inode& inode, Inode* parent, const std::string& name);
  void reopenLocked(Inode& inode);

  std::mutex mutex_;
  Inode root_;
  std::unordered_map<SrcId, std::unique_ptr<Inode>, SrcIdHash> bySource_;
  std::unordered_map<Inode*, std::unique_ptr<Inode>> ghosts_;
  std::map<std::pair<Inode*, std::string>, Inode*> names_;
  // Fds replaced by a reopen: a handler may still be using the number, so it
  // stays open (and unreused) until the view is unmounted.
  std::vector<UniqueFd> retired_;
  uint64_t nextGeneration_ = 1;
  uint64_t nextGhostIno_ = uint64_t{1} << 62;
};

}  // namespace rnotify::fuse
