// DirectoryCache: which directory a fanotify file handle names. fanotify
// reports a directory by its handle (fsid + struct file_handle); the watcher
// resolves a handle once (open_by_handle_at) and keeps the answer here, also
// for directories outside every subscribed tree, so that the rest of a busy
// filesystem costs one hash lookup per event. The cache follows renames (every
// entry at and below a renamed directory gets the new path) and forgets deleted
// directories. It is bounded: the least recently used entries go first, except
// subscription roots (pinned).
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "watch/watcher.h"

namespace rnotify {

class DirectoryCache {
 public:
  // A subscription that sees events in a directory. Copied from the
  // subscription when the covers are computed; the owner recomputes them
  // whenever subscriptions or paths change (a new generation).
  struct Cover {
    SubscriptionId id = 0;
    uint32_t mask = 0;       // IN_* the subscription wants
    uint32_t offset = 0;     // the directory relative to the subscription's root is path.substr(offset)
    bool isRoot = false;     // the directory is the subscription's root
    bool recursive = false;  // the subscription sees the directory's subdirectories too
  };

  struct Directory {
    std::string key;   // fsid + struct file_handle, as fanotify reports it
    std::string path;  // absolute; empty when the directory is gone or out of reach
    // Another directory now has this path (a rename we could not follow):
    // resolve the handle again before trusting the path.
    bool stale = false;
    uint32_t pins = 0;  // subscriptions rooted here; never evicted while pinned
    // Its DELETE_SELF came through its inode mark (it was a subscription
    // root): its parent's DELETE must not report it again.
    bool selfReported = false;
    std::vector<Cover> covers;
    uint64_t coversGeneration = 0;  // 0: recompute

    std::string_view relative(const Cover& cover) const { return std::string_view(path).substr(cover.offset); }

   private:
    friend class DirectoryCache;
    bool indexed = false;
    Directory* newer = nullptr;
    Directory* older = nullptr;
  };

  explicit DirectoryCache(size_t capacity) : capacity_(capacity) {}
  DirectoryCache(const DirectoryCache&) = delete;
  DirectoryCache& operator=(const DirectoryCache&) = delete;

  // Marks the entry as recently used. Never allocates.
  Directory* find(std::string_view key);
  // Adds or updates an entry. An empty path records a directory that is gone.
  Directory* insert(std::string_view key, std::string path);
  // The entry that held this path before, if any, becomes stale.
  void setPath(Directory* directory, std::string path);
  // A directory moved from `from` to `to`: re-paths every entry at and below
  // `from`. True if a pinned entry moved (subscription roots changed).
  // By value: a caller may pass the path of a directory this renames.
  bool repath(std::string from, std::string to);
  // A directory left our sight (moved somewhere we cannot name): forgets every
  // entry at and below path; pinned ones are marked stale and returned so that
  // the owner can resolve them again.
  std::vector<Directory*> forgetBelow(const std::string& path);
  // After lost events: forgets everything; pinned entries are marked stale
  // and returned.
  std::vector<Directory*> forgetAll();
  void erase(Directory* directory);
  // Forgets every entry whose key starts with prefix (a filesystem's fsid).
  void eraseWithPrefix(std::string_view prefix);
  // Evicts least recently used entries beyond the capacity.
  void trim();
  size_t size() const { return byKey_.size(); }

 private:
  void index(Directory* directory);
  void unindex(Directory* directory);
  void linkNewest(Directory* directory);
  void unlink(Directory* directory);
  std::vector<Directory*> atAndBelow(const std::string& path) const;

  // Keys and path views point into the entries themselves.
  std::unordered_map<std::string_view, std::unique_ptr<Directory>> byKey_;
  std::map<std::string_view, Directory*> byPath_;
  Directory* newest_ = nullptr;
  Directory* oldest_ = nullptr;
  size_t capacity_;
};

}  // namespace rnotify
