#include "watch/directory_cache.h"

namespace rnotify {

DirectoryCache::Directory* DirectoryCache::find(std::string_view key) {
  auto it = byKey_.find(key);
  if (it == byKey_.end()) return nullptr;
  Directory* directory = it->second.get();
  if (directory != newest_) {
    unlink(directory);
    linkNewest(directory);
  }
  return directory;
}

DirectoryCache::Directory* DirectoryCache::insert(std::string_view key, std::string path) {
  if (Directory* known = find(key)) {
    setPath(known, std::move(path));
    return known;
  }
  auto owned = std::make_unique<Directory>();
  Directory* directory = owned.get();
  directory->key = key;
  directory->path = std::move(path);
  byKey_.emplace(directory->key, std::move(owned));
  linkNewest(directory);
  index(directory);
  return directory;
}

void DirectoryCache::setPath(Directory* directory, std::string path) {
  unindex(directory);
  directory->path = std::move(path);
  directory->stale = false;
  directory->coversGeneration = 0;
  index(directory);
}

std::vector<DirectoryCache::Directory*> DirectoryCache::atAndBelow(const std::string& path) const {
  std::vector<Directory*> found;
  if (auto it = byPath_.find(path); it != byPath_.end()) found.push_back(it->second);
  // "a/b/..." sorts between "a/b/" and "a/b0" ('0' follows '/'); "a/b c" and
  // "a/b.d" sort before "a/b/" and are not below it.
  std::string low = path == "/" ? "/" : path + "/";
  std::string high = path == "/" ? "0" : path + "0";
  for (auto it = byPath_.lower_bound(low); it != byPath_.end() && it->first < high; ++it) {
    if (it->first != path) found.push_back(it->second);
  }
  return found;
}

// By value: callers pass paths that live in the cache being changed.
bool DirectoryCache::repath(std::string from, std::string to) {  // NOLINT(performance-unnecessary-value-param)
  if (from == to || from.empty() || to.empty()) return false;
  std::vector<Directory*> moved = atAndBelow(from);
  bool pinnedMoved = false;
  for (Directory* d : moved) unindex(d);
  for (Directory* d : moved) {
    d->path = to + d->path.substr(from.size());
    d->coversGeneration = 0;
    pinnedMoved |= d->pins != 0;
  }
  for (Directory* d : moved) index(d);
  return pinnedMoved;
}

std::vector<DirectoryCache::Directory*> DirectoryCache::forgetBelow(const std::string& path) {
  std::vector<Directory*> pinned;
  if (path.empty()) return pinned;
  for (Directory* d : atAndBelow(path)) {
    if (d->pins != 0) {
      unindex(d);
      d->stale = true;
      pinned.push_back(d);
    } else {
      erase(d);
    }
  }
  return pinned;
}

std::vector<DirectoryCache::Directory*> DirectoryCache::forgetAll() {
  std::vector<Directory*> pinned;
  std::vector<Directory*> doomed;
  for (auto& [key, directory] : byKey_) {
    if (directory->pins != 0) {
      pinned.push_back(directory.get());
    } else {
      doomed.push_back(directory.get());
    }
  }
  for (Directory* d : doomed) erase(d);
  for (Directory* d : pinned) {
    unindex(d);
    d->stale = true;
  }
  return pinned;
}

void DirectoryCache::erase(Directory* directory) {
  unindex(directory);
  unlink(directory);
  byKey_.erase(directory->key);
}

void DirectoryCache::eraseWithPrefix(std::string_view prefix) {
  std::vector<Directory*> doomed;
  for (auto& [key, directory] : byKey_) {
    if (key.starts_with(prefix)) doomed.push_back(directory.get());
  }
  for (Directory* d : doomed) erase(d);
}

void DirectoryCache::trim() {
  // Pinned entries met on the way are moved to the new end, so each call
  // looks at every entry at most once.
  size_t budget = byKey_.size();
  while (byKey_.size() > capacity_ && oldest_ != nullptr && budget-- > 0) {
    Directory* victim = oldest_;
    if (victim->pins != 0) {
      unlink(victim);
      linkNewest(victim);
      continue;
    }
    erase(victim);
  }
}

void DirectoryCache::index(Directory* directory) {
  if (directory->path.empty()) return;
  auto [it, inserted] = byPath_.try_emplace(directory->path, directory);
  if (!inserted && it->second != directory) {
    // Two handles claim one path: the one we knew earlier was replaced or
    // moved without our seeing it. Trust the newer one.
    it->second->indexed = false;
    it->second->stale = true;
    byPath_.erase(it);
    byPath_.emplace(directory->path, directory);
  }
  directory->indexed = true;
}

void DirectoryCache::unindex(Directory* directory) {
  if (!directory->indexed) return;
  if (auto it = byPath_.find(directory->path); it != byPath_.end() && it->second == directory) byPath_.erase(it);
  directory->indexed = false;
}

void DirectoryCache::linkNewest(Directory* directory) {
  directory->older = newest_;
  directory->newer = nullptr;
  if (newest_ != nullptr) newest_->newer = directory;
  newest_ = directory;
  if (oldest_ == nullptr) oldest_ = directory;
}

void DirectoryCache::unlink(Directory* directory) {
  if (directory->newer != nullptr) directory->newer->older = directory->older;
  if (directory->older != nullptr) directory->older->newer = directory->newer;
  if (newest_ == directory) newest_ = directory->older;
  if (oldest_ == directory) oldest_ = directory->newer;
  directory->newer = directory->older = nullptr;
}

}  // namespace rnotify
