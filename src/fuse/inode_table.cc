#include "fuse/inode_table.h"

#include <fcntl.h>

#include <cstring>

#include "common/log.h"

namespace rnotify::fuse {

InodeTable::InodeTable(UniqueFd rootFd, const struct stat& rootStat) {
  root_.fd = std::move(rootFd);
  root_.srcIno = rootStat.st_ino;
  root_.srcDev = rootStat.st_dev;
  root_.type = S_IFDIR;
  root_.nlookup = 1;  // the kernel never forgets the root
}

Inode& InodeTable::getLocked(fuse_ino_t ino) {
  if (ino == FUSE_ROOT_ID) return root_;
  return *reinterpret_cast<Inode*>(ino);
}

Inode& InodeTable::get(fuse_ino_t ino) {
  std::lock_guard lock(mutex_);
  return getLocked(ino);
}

fuse_ino_t InodeTable::idOf(const Inode& inode) const {
  if (&inode == &root_) return FUSE_ROOT_ID;
  return reinterpret_cast<fuse_ino_t>(&inode);
}

int InodeTable::fdOf(fuse_ino_t ino) {
  std::lock_guard lock(mutex_);
  return getLocked(ino).fd.get();
}

void InodeTable::unname(Inode& inode) {
  if (inode.parent == nullptr) return;
  auto it = names_.find({inode.parent, inode.name});
  if (it != names_.end() && it->second == &inode) names_.erase(it);
  inode.parent = nullptr;
  inode.name.clear();
}

void InodeTable::setName(Inode& inode, Inode* parent, const std::string& name) {
  unname(inode);
  inode.parent = parent;
  inode.name = name;
  names_[{parent, name}] = &inode;
}

fuse_ino_t InodeTable::remember(fuse_ino_t parent, const std::string& name, UniqueFd fd, const struct stat& st,
                                uint64_t* generation) {
  std::lock_guard lock(mutex_);
  Inode& dir = getLocked(parent);
  SrcId id{st.st_ino, st.st_dev};
  auto it = bySource_.find(id);
  Inode* inode;
  if (it != bySource_.end()) {
    inode = it->second.get();  // fd is dropped: the known one stays
  } else {
    auto fresh = std::make_unique<Inode>();
    fresh->fd = std::move(fd);
    fresh->srcIno = st.st_ino;
    fresh->srcDev = st.st_dev;
    fresh->generation = nextGeneration_++;
    inode = fresh.get();
    bySource_.emplace(id, std::move(fresh));
  }
  inode->type = st.st_mode & S_IFMT;
  inode->nlookup++;
  setName(*inode, &dir, name);
  *generation = inode->generation;
  return idOf(*inode);
}

void InodeTable::addLookup(fuse_ino_t ino) {
  std::lock_guard lock(mutex_);
  getLocked(ino).nlookup++;
}

std::optional<fuse_ino_t> InodeTable::lookupKnown(fuse_ino_t parent, const std::string& name, struct stat* st,
                                                  uint64_t* generation) {
  std::lock_guard lock(mutex_);
  auto it = names_.find({&getLocked(parent), name});
  if (it == names_.end()) return std::nullopt;
  Inode& inode = *it->second;
  if (!inode.fd.valid() || ::fstatat(inode.fd.get(), "", st, AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW) != 0) {
    *st = {};
    st->st_ino = inode.srcIno;
    st->st_mode = inode.type | (inode.type == S_IFDIR ? 0755 : 0644);
    st->st_nlink = 1;
  }
  inode.nlookup++;
  *generation = inode.generation;
  return idOf(inode);
}

fuse_ino_t InodeTable::ghost(fuse_ino_t parent, const std::string& name, mode_t type, struct stat* st,
                             uint64_t* generation) {
  std::lock_guard lock(mutex_);
  auto fresh = std::make_unique<Inode>();
  Inode* inode = fresh.get();
  inode->ghost = true;
  inode->type = type;
  inode->srcIno = nextGhostIno_++;
  inode->nlookup = 1;
  inode->generation = nextGeneration_++;
  setName(*inode, &getLocked(parent), name);
  ghosts_.emplace(inode, std::move(fresh));
  *st = {};
  st->st_ino = inode->srcIno;
  st->st_mode = type | (type == S_IFDIR ? 0755 : 0644);
  st->st_nlink = 1;
  *generation = inode->generation;
  return idOf(*inode);
}

void InodeTable::forget(fuse_ino_t ino, uint64_t n) {
  std::lock_guard lock(mutex_);
  Inode& inode = getLocked(ino);
  if (&inode == &root_) return;
  if (inode.nlookup > n) {
    inode.nlookup -= n;
    return;
  }
  inode.nlookup = 0;
  // Children keep a pointer to their parent only for their names; the kernel
  // forgets children before their directory, so none is left here.
  unname(inode);
  if (inode.ghost) {
    ghosts_.erase(&inode);
    return;
  }
  auto it = bySource_.find({inode.srcIno, inode.srcDev});
  if (it != bySource_.end() && it->second.get() == &inode) bySource_.erase(it);
}

void InodeTable::dropName(fuse_ino_t parent, const std::string& name) {
  std::lock_guard lock(mutex_);
  auto it = names_.find({&getLocked(parent), name});
  if (it == names_.end()) return;
  Inode* inode = it->second;
  names_.erase(it);
  inode->parent = nullptr;
  inode->name.clear();
}

void InodeTable::rename(fuse_ino_t parent, const std::string& name, fuse_ino_t newParent, const std::string& newName) {
  std::lock_guard lock(mutex_);
  Inode* from = &getLocked(parent);
  Inode* to = &getLocked(newParent);
  if (auto replaced = names_.find({to, newName}); replaced != names_.end()) {
    replaced->second->parent = nullptr;
    replaced->second->name.clear();
    names_.erase(replaced);
  }
  auto it = names_.find({from, name});
  if (it == names_.end()) return;
  Inode* inode = it->second;
  names_.erase(it);
  inode->parent = to;
  inode->name = newName;
  names_[{to, newName}] = inode;
}

void InodeTable::reopenLocked(Inode& inode) {
  if (inode.ghost || inode.parent == nullptr || !inode.parent->fd.valid()) return;
  int fd = ::openat(inode.parent->fd.get(), inode.name.c_str(), O_PATH | O_NOFOLLOW | O_CLOEXEC);
  if (fd < 0) {
    log::debug("reopen '{}' after a rename: {}", inode.name, std::strerror(errno));
    return;
  }
  struct stat st;
  if (::fstatat(fd, "", &st, AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW) != 0) {
    ::close(fd);
    return;
  }
  retired_.push_back(std::move(inode.fd));
  inode.fd = UniqueFd(fd);
  SrcId oldId{inode.srcIno, inode.srcDev};
  SrcId newId{st.st_ino, st.st_dev};
  if (oldId != newId && bySource_.find(newId) == bySource_.end()) {
    auto node = bySource_.extract(oldId);
    if (!node.empty() && node.mapped().get() == &inode) {
      node.key() = newId;
      bySource_.insert(std::move(node));
      inode.srcIno = st.st_ino;
      inode.srcDev = st.st_dev;
    } else if (!node.empty()) {
      bySource_.insert(std::move(node));
    }
  }
  if (inode.type != S_IFDIR) return;
  for (auto it = names_.lower_bound({&inode, std::string()}); it != names_.end() && it->first.first == &inode; ++it) {
    reopenLocked(*it->second);
  }
}

void InodeTable::reopenAt(fuse_ino_t parent, const std::string& name) {
  std::lock_guard lock(mutex_);
  auto it = names_.find({&getLocked(parent), name});
  if (it != names_.end()) reopenLocked(*it->second);
}

std::string InodeTable::pathOf(fuse_ino_t ino) {
  std::lock_guard lock(mutex_);
  std::string path;
  for (Inode* i = &getLocked(ino); i != &root_; i = i->parent) {
    if (i == nullptr) return "\n";  // unreachable: no name any more
    if (path.empty()) {
      path = i->name;
    } else {
      path.insert(0, "/").insert(0, i->name);
    }
  }
  return path;
}

std::optional<fuse_ino_t> InodeTable::resolve(const std::string& rel) {
  std::lock_guard lock(mutex_);
  Inode* at = &root_;
  size_t start = 0;
  while (start < rel.size()) {
    size_t end = rel.find('/', start);
    if (end == std::string::npos) end = rel.size();
    if (end > start) {
      auto it = names_.find({at, rel.substr(start, end - start)});
      if (it == names_.end()) return std::nullopt;
      at = it->second;
    }
    start = end + 1;
  }
  return idOf(*at);
}

std::optional<fuse_ino_t> InodeTable::child(fuse_ino_t parent, const std::string& name) {
  std::lock_guard lock(mutex_);
  auto it = names_.find({&getLocked(parent), name});
  if (it == names_.end()) return std::nullopt;
  return idOf(*it->second);
}

size_t InodeTable::size() {
  std::lock_guard lock(mutex_);
  return bySource_.size() + ghosts_.size() + 1;
}

}  // namespace rnotify::fuse
