#include "server/tree_walk.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstring>

#include "event/event.h"

namespace rnotify {
namespace {

bool isDotOrDotDot(const char* name) { return std::strcmp(name, ".") == 0 || std::strcmp(name, "..") == 0; }

}  // namespace

TreeWalk::TreeWalk(UniqueFd root, bool recursive, size_t maxDepth) : recursive_(recursive), maxDepth_(maxDepth) {
  push(root.release(), "");
}

TreeWalk::~TreeWalk() {
  for (Level& level : levels_) ::closedir(level.dir);
}

void TreeWalk::push(int fd, std::string path) {
  DIR* dir = ::fdopendir(fd);
  if (dir == nullptr) {
    ::close(fd);
    return;
  }
  levels_.push_back(Level{dir, std::move(path)});
}

bool TreeWalk::step(size_t budget, const std::function<void(const proto::TreeEntry&)>& add) {
  while (budget > 0 && !levels_.empty()) {
    Level& level = levels_.back();
    const dirent* e = ::readdir(level.dir);
    if (e == nullptr) {
      if (!level.listed && recursive_) {
        // Listed: read it again to enter its subdirectories.
        level.listed = true;
        ::rewinddir(level.dir);
      } else {
        ::closedir(level.dir);
        levels_.pop_back();
      }
      continue;
    }
    --budget;
    if (isDotOrDotDot(e->d_name)) continue;
    if (!level.listed) {
      list(level, *e, add);
    } else {
      descend(level, *e);  // may push: `level` is not used after this
    }
  }
  return !levels_.empty();
}

void TreeWalk::list(Level& level, const dirent& e, const std::function<void(const proto::TreeEntry&)>& add) {
  struct stat st;
  // Gone meanwhile: skipped (its DELETE is on the way).
  if (::fstatat(::dirfd(level.dir), e.d_name, &st, AT_SYMLINK_NOFOLLOW) != 0) return;
  entry_.dir = level.path;
  entry_.name = e.d_name;
  entry_.stat = eventStatOf(st);
  add(entry_);
}

void TreeWalk::descend(const Level& level, const dirent& e) {
  if (e.d_type != DT_DIR && e.d_type != DT_UNKNOWN) return;
  std::string child = level.path.empty() ? std::string(e.d_name) : level.path + "/" + e.d_name;
  if (child.size() > proto::kMaxPath || levels_.size() >= maxDepth_) {
    ++skipped_;
    return;
  }
  // O_NOFOLLOW | O_DIRECTORY: a symbolic link (swapped in since the
  // listing, say) is refused, never followed; so is anything not a directory.
  int fd = ::openat(::dirfd(level.dir), e.d_name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  if (fd >= 0) push(fd, std::move(child));
}

}  // namespace rnotify
