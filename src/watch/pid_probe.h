// PidProbe: the acting pid of InotifyWatcher's events. inotify never says who
// made a change; fanotify does (metadata->pid), but it merges a process's
// unread events on one name into one record, so that their order is lost
// (MODIFY, DELETE, CLOSE_WRITE arrive as MODIFY|CLOSE_WRITE|DELETE). The
// probe is fanotify used only to learn pids, next to inotify, which keeps the
// order: it puts inode marks on exactly what InotifyWatcher watches, with the
// same events, and files each record under the watch descriptor of the marked
// directory and the entry's name.
//
// fsnotify hands an event to every group in one kernel call, so once an
// inotify event has been read, its fanotify record is queued too: the owner
// reads a batch of inotify events, drains the probe, and asks take() for each
// event in order. A record serves the oldest inotify event of its name that
// has one of its bits; a bit asked for again after fanotify merged several
// identical events gets the pid of the last record that had it.
//
// The table holds only records whose inotify event may still come: when a
// read finds the inotify queue empty, every record read before it is spent.
// Records that fanotify keeps apart but inotify merges (two processes'
// MODIFYs, back to back) are recognised by their adjacency.
//
// Groups: a directory's entry events (CREATE, DELETE, MOVED_*) and its other
// events go to two groups, so that fanotify never merges a process's DELETE
// of a name into the MODIFY it made before another process's ATTRIB; a
// watched file's events go to a third, which also reports the object's own
// handle. FUSE filesystems have no fsid, and a group that marks one may mark
// nothing else: they get groups of their own. A mark follows its watch; the
// object of a watch that left the watched tree is found by its handle. Marks
// are evictable and never pin an inode (inotify's watch does): a mark the
// probe cannot find any more goes when its inode leaves the cache. Objects
// are reached through the watcher's descriptors or by handle, never by path.
#pragma once

#include <sys/types.h>

#include <array>
#include <chrono>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include "common/result.h"
#include "common/unique_fd.h"

namespace rnotify {

class PidProbe {
 public:
  struct Group;  // one fanotify group
  struct Part {  // one group's mark on an object
    Group* group = nullptr;
    uint64_t mask = 0;
  };
  // A mark made before the inotify watch it mirrors exists, so that no event
  // of the new watch goes unrecorded; bind() or abandon() it.
  struct Marking {
    UniqueFd object;  // O_PATH, until bound
    std::string key;
    uint32_t inotifyMask = 0;
    bool directory = false;
    bool existing = false;  // the object was already marked
    dev_t device = 0;
    std::array<Part, 2> parts;
  };

  // EPERM without CAP_SYS_ADMIN (the kernel hides other users' pids from an
  // unprivileged group); EINVAL before Linux 5.19 (no evictable marks).
  static Result<std::unique_ptr<PidProbe>> create();
  ~PidProbe();

  // The probe never looks an object up by path: the watcher hands it a
  // descriptor (O_PATH is enough) of exactly the object it watches, and a
  // mark is placed through that descriptor's /proc link.
  //
  // Marks the object open on objectFd with the events of an inotify mask.
  // Fails where the object cannot be marked (EOPNOTSUPP: no file handles on
  // that filesystem).
  Result<Marking> prepare(int objectFd, uint32_t inotifyMask);
  void bind(int wd, Marking marking);
  void abandon(Marking marking);
  // Whether update(wd, ..., inotifyMask) has anything to do (so that the
  // caller opens the object only then).
  bool needsUpdate(int wd, uint32_t inotifyMask) const;
  // The events wd's object (open on objectFd; -1: not reachable, found by
  // its handle) is marked with (0: none); marks it first if it was not (the
  // events of the watch until then carry no pid).
  void update(int wd, int objectFd, uint32_t inotifyMask);
  // The watch is gone; objectFd is its object (-1: not reachable, found by
  // its handle).
  void forget(int wd, int objectFd);
  // The watch is gone with its object (deleted or unmounted): the kernel has
  // dropped its marks already.
  void forgetGone(int wd);
  bool covers(int wd) const;

  // Before each read of the inotify queue.
  void beginRead() { ++epoch_; }
  // After a read that returned events: everything queued now is recorded.
  void drain();
  // After the events of a read that left the inotify queue empty: every
  // record read before that read has had its inotify event.
  void retire();
  // The pid of the inotify event `bit` on (wd, name); childWd is the watch
  // of the named subdirectory (-1 if none), whose own record fanotify reports
  // instead. 0 when unknown. Call once per inotify event, in their order.
  // mayDrain: read the probe again before giving up (the caller has not
  // drained it just before).
  int take(int wd, std::string_view name, uint32_t bit, int childWd, bool mayDrain = true);
  // The pid of a record of `bit` on (wd, name) that is still to be taken,
  // without taking it; 0 when there is none. For an event fanotify is not
  // asked for (IN_DELETE_SELF of a subdirectory: its pid is that of the
  // parent's IN_DELETE, which the kernel queues right after it).
  int peek(int wd, std::string_view name, uint32_t bit);

  size_t recordCount() const { return records_.size(); }
  size_t groupCount() const { return groups_.size(); }

 private:
  enum class Kind { kEntries, kInodes, kFiles };
  using Clock = std::chrono::steady_clock;
  using Key = std::pair<int, std::string>;  // (wd, name); name "" for the object itself
  struct KeyHash {
    size_t operator()(const Key& key) const;
  };
  struct Mark {
    std::string key;
    bool directory = false;
    dev_t device = 0;
    std::array<Part, 2> parts;  // a directory: entries, inodes; a file: files
  };
  struct Record {
    Key key;
    uint32_t mask = 0;  // bits not taken yet
    int pid = 0;
    uint64_t epoch = 0;
    Clock::time_point drained;
  };
  struct Last {  // per key: the pid of the last record taken for each bit
    std::vector<std::pair<uint32_t, int>> pids;
    uint64_t epoch = 0;
  };
  struct Shadow {  // a subdirectory's event just taken on its parent's watch
    int wd = -1;
    uint32_t bit = 0;
    int pid = 0;
  };

  explicit PidProbe(bool byHandle);

  static Kind kindOf(bool directory, size_t part);
  Result<Group*> markIn(int objectFd, uint64_t mask, dev_t device, bool uniqueFsid, Kind kind);
  Result<Group*> groupFor(dev_t device, Kind kind);
  void applyMask(int wd, Mark& mark, int objectFd, uint32_t inotifyMask);
  void unbindPart(const std::string& key, Part& part);
  UniqueFd objectOf(const Mark& mark, int objectFd) const;
  void rememberMountRoot(const Marking& marking);
  void releaseGroupIfUnused(Group* group);

  void drainAll();
  void drainGroup(Group* group);
  void addRecords(Group* group, std::string_view dirKey, std::string_view name, std::string_view objectKey,
                  uint32_t mask, int pid, Clock::time_point now);
  void addRecord(Key key, uint32_t bits, int pid, Clock::time_point now);
  Record* at(uint64_t seq);
  int takeFrom(const Key& key, uint32_t bit);
  void clearBit(uint64_t seq, uint32_t bit);
  void rememberLast(const Key& key, uint32_t bit, int pid, uint64_t epoch);
  int lastPid(const Key& key, uint32_t bit) const;
  void popOldest();
  void clearTable();

  std::vector<std::unique_ptr<Group>> groups_;
  std::unordered_map<int, Mark> marks_;  // by inotify watch descriptor
  const bool byHandle_;                  // may open objects by handle (CAP_DAC_READ_SEARCH)
  std::unordered_map<dev_t, std::string> mountRoots_;
  std::unique_ptr<char[]> buffer_;
  std::deque<Record> records_;  // in arrival order; records_[i] has sequence number firstSeq_ + i
  uint64_t firstSeq_ = 1;
  std::unordered_map<Key, std::deque<uint64_t>, KeyHash> index_;  // records with bits left, oldest first
  std::unordered_map<Key, Last, KeyHash> last_;
  uint64_t pendingSeq_ = 0;  // a record inotify may have merged into the event before (0: none)
  uint32_t pendingBit_ = 0;
  Shadow shadow_;
  uint64_t epoch_ = 1;
};

struct PidProbe::Group {
  struct KeyHash {
    using is_transparent = void;
    size_t operator()(std::string_view key) const { return std::hash<std::string_view>()(key); }
  };
  UniqueFd fd;
  dev_t device = 0;  // the one filesystem without fsid it marks; 0: filesystems with one
  Kind kind = Kind::kEntries;
  size_t marks = 0;
  std::unordered_map<std::string, int, KeyHash, std::equal_to<>> wdOf;  // by the object's handle key
};

}  // namespace rnotify
