// FanotifyWatcher: the fanotify backend (needs root). One filesystem mark per
// filesystem that holds a subscription, shared by all of them, so a tree costs
// nothing per directory (besides, an inode mark on each subscription root and
// watched file asks for its DELETE_SELF and MOVE_SELF, which a filesystem mark
// would ask for on every file): a million directories are one mark, and a tree made
// at once (`mkdir -p a/b/c && touch a/b/c/f`) loses nothing, because there is
// no watch to add before its events count. Every event carries the acting
// process (metadata->pid).
//
// The kernel names directories by file handle; DirectoryCache maps handles to
// paths (open_by_handle_at on a miss) and remembers which subscriptions see
// each directory, so events elsewhere on the filesystem are dropped after one
// hash lookup. fanotify merges events on one object (CREATE|OPEN|CLOSE_WRITE
// of one file arrives as one record); they are handed to the sink one bit at a
// time in the order a program makes them, like inotify. A rename arrives as
// one FAN_RENAME with both names and becomes MOVED_FROM/MOVED_TO with one
// cookie. The sink sees the same paths, masks and end-of-watch as with
// InotifyWatcher.
#pragma once

#include <sys/types.h>

#include <array>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "common/unique_fd.h"
#include "watch/directory_cache.h"
#include "watch/watcher.h"

namespace rnotify {

class FanotifyWatcher final : public Watcher {
 public:
  // EPERM without CAP_SYS_ADMIN and CAP_DAC_READ_SEARCH; EINVAL on kernels
  // older than 5.17 (no FAN_RENAME / FAN_REPORT_TARGET_FID).
  static Result<std::unique_ptr<FanotifyWatcher>> create(EventSink& sink);
  ~FanotifyWatcher() override;

  int fd() const override { return fd_.get(); }
  // Besides the path errors: ENODEV, EXDEV, EOPNOTSUPP (or EPERM) when the
  // path's filesystem cannot take a filesystem mark (FUSE has no fsid), or
  // when it is reached through another mount than the one already marked.
  Result<SubscriptionId> subscribe(const std::string& path, const SubscribeOptions& options) override;
  void unsubscribe(SubscriptionId id) override;
  void drain() override;
  size_t kernelWatchCount() const override { return filesystems_.size(); }  // filesystem marks
  std::string_view name() const override { return "fanotify"; }
  bool reportsPids(SubscriptionId /*id*/) const override { return true; }

  size_t cachedDirectoryCount() const { return cache_.size(); }

 private:
  using Directory = DirectoryCache::Directory;
  struct Subscription;
  struct Filesystem {
    std::array<char, 8> fsid{};
    UniqueFd mountFd;  // open_by_handle_at resolves through this mount
    int mountId = -1;
    std::string path;  // the first path watched on it, for messages
    uint64_t markMask = 0;
    std::vector<Subscription*> subscriptions;
    size_t directorySubscriptions = 0;  // none: directory handles need not be resolved at all
  };
  struct FileWatch {  // subscriptions on one non-directory, matched by its handle
    std::string key;
    std::vector<Subscription*> subscriptions;
  };
  struct Subscription {
    SubscriptionId id = 0;
    Filesystem* fs = nullptr;
    Directory* root = nullptr;  // a directory subscription's root (pinned in the cache)
    FileWatch* file = nullptr;  // or the watched non-directory
    uint32_t mask = 0;
    bool recursive = false;
  };
  struct Record {  // one file handle record of an event
    std::string_view key;
    std::string_view name;
  };
  struct Parsed {  // one event, its records pointing into the read buffer
    uint64_t mask = 0;
    int pid = 0;
    bool valid = false;
    Record dir, oldDir, newDir;
    std::string_view object;  // FAN_EVENT_INFO_TYPE_FID: the object itself, or a dirent event's target
  };
  struct Hint {  // from a later event in the same buffer: this directory is `name` in `parent`
    std::string_view parent;
    std::string_view name;
  };

  FanotifyWatcher(UniqueFd fd, EventSink& sink);

  Result<Filesystem*> markFilesystem(int dirFd, const std::string& path, std::array<char, 8> fsid, int mountId);
  Status updateMark(Filesystem* fs);
  void releaseFilesystem(Filesystem* fs);
  void unmarkInode(Filesystem* fs, std::string_view key, uint64_t mask);
  void endSubscription(Subscription* s);
  Filesystem* filesystemFor(std::string_view key) const;
  Directory* directory(Filesystem* fs, std::string_view key);
  std::string pathFromHints(Filesystem* fs, std::string_view key);
  void collectHints();
  const std::vector<DirectoryCache::Cover>& coversOf(Directory* d);

  // The length of the event at `event` (0: no complete event there).
  static size_t parse(const char* event, size_t left, Parsed* out);
  void processBuffer(size_t length);
  void process(const Parsed& parsed);
  void onEntry(Directory* d, std::string_view name, uint64_t mask, std::string_view target, int pid);
  void onDirectoryItself(Directory* d, uint64_t mask, int pid);
  void onRename(Filesystem* fs, const Parsed& parsed, uint64_t mask, int pid);
  void onObject(std::string_view key, uint32_t mask, int pid);
  void settleRenamedDirectories();  // renamed_'s paths, from their handles
  void followDirectoryMove(Filesystem* fs, const std::string& from, const std::string& to, std::string_view target,
                           bool intoCovered);
  void deliverToParent(Directory* d, uint32_t mask, int pid);
  // DELETE_SELF or MOVE_SELF of the subdirectory `name` of `parent`, to the
  // recursive subscriptions that see it (as inotify's watch on it would).
  void deliverSubdirectorySelf(Directory* parent, std::string_view name, uint32_t bit, int pid);
  void overflow();

  UniqueFd fd_;
  EventSink& sink_;
  std::unique_ptr<char[]> buffer_;
  size_t bufferLength_ = 0;
  std::vector<std::unique_ptr<Filesystem>> filesystems_;
  std::unordered_map<SubscriptionId, std::unique_ptr<Subscription>> subscriptions_;
  std::unordered_map<std::string_view, std::unique_ptr<FileWatch>> files_;
  DirectoryCache cache_;
  std::unordered_map<std::string_view, Hint> hints_;  // valid while one buffer is processed
  bool hintsCollected_ = false;
  int hintDepth_ = 0;
  uint64_t generation_ = 1;  // bumped when subscriptions or their roots change
  // Directories renamed since the queue was last read empty (their handles).
  static constexpr size_t kMaxRenamedToSettle = 4096;
  std::unordered_set<std::string> renamed_;
  SubscriptionId nextId_ = 1;
  uint32_t nextCookie_ = 1;
  bool draining_ = false;  // filesystems are released after the buffer, not under our feet
  std::vector<Filesystem*> releaseLater_;
};

}  // namespace rnotify
