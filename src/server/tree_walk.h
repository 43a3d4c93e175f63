// TreeWalk: a directory tree listed a piece at a time, for a Snapshot. The
// server's loop serves every client, so a listing of a large tree must not
// hold it: step() does a bounded amount of work (entries read) and returns,
// and the walk resumes where it stopped on a later turn.
//
// It works from descriptors only: each directory is opened from its parent's
// descriptor with O_NOFOLLOW | O_DIRECTORY (a symbolic link is never
// followed) and each entry is lstat'ed with fstatat on the directory's
// descriptor. The caller decides as whom (ActingAs around each step).
// Memory and descriptors are bounded by the depth: a directory is read twice
// (first its entries are listed, then it is read again to descend into its
// subdirectories), so no list of names is kept, and only the directories
// from the root to the current one are open. Directories deeper than
// maxDepth are not entered (counted in skipped()).
#pragma once

#include <dirent.h>

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "common/unique_fd.h"
#include "proto/messages.h"

namespace rnotify {

class TreeWalk {
 public:
  // root: an open directory (owned from here on). recursive: descend.
  TreeWalk(UniqueFd root, bool recursive, size_t maxDepth);
  ~TreeWalk();
  TreeWalk(const TreeWalk&) = delete;
  TreeWalk& operator=(const TreeWalk&) = delete;

  // Reads up to `budget` directory entries, calling add() for each one
  // listed. Returns true while there is more to read.
  bool step(size_t budget, const std::function<void(const proto::TreeEntry&)>& add);
  bool done() const { return levels_.empty(); }
  // Subdirectories not entered: deeper than maxDepth, or a path too long.
  uint64_t skipped() const { return skipped_; }
  size_t openDirectories() const { return levels_.size(); }

 private:
  struct Level {
    DIR* dir;
    std::string path;     // relative to the root: "" or "a/b"
    bool listed = false;  // its entries are listed; now descending into its subdirectories
  };
  void list(Level& level, const dirent& e, const std::function<void(const proto::TreeEntry&)>& add);
  void descend(const Level& level, const dirent& e);
  void push(int fd, std::string path);

  bool recursive_;
  size_t maxDepth_;
  std::vector<Level> levels_;
  proto::TreeEntry entry_;  // reused
  uint64_t skipped_ = 0;
};

}  // namespace rnotify
