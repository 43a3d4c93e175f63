// PollScanner: the polling backend, for trees that neither the local kernel
// nor a server can watch. Each scan re-reads the tree (one directory, or
// recursively) and reports the differences from the previous scan as
// rnotify::Event with inotify's masks plus IN_POLLED: CREATE, DELETE, MODIFY
// (size or mtime), ATTRIB (mode, owner, or only ctime: xattrs, ACLs, link
// count), and MOVED_FROM/MOVED_TO with one cookie when an inode reappears
// under another name with the same size and mtime (a moved directory carries
// its contents); IN_ISDIR on directories. The order replays: applied in order
// to the previous listing, the events give the new one (pollDiff orders the
// structural part).
//
// Cost per scan: one statx per directory and one open of each directory that
// has subdirectories, relative to its parent's descriptor, asking only for
// the fields compared; getdents64 only for directories whose mtime changed. A
// directory whose mtime is unchanged is not re-listed, because creating,
// deleting or renaming an entry in it would have changed its mtime; its files
// are still statx'd one by one, which is what detects in-place modifications
// (writes, truncation, chmod, chown, touch): recently changed files at every
// scan, the others at every `sweepScans`-th scan (Options).
// Timestamps are coarse on some filesystems (sshfs: 1 s; FAT: 2 s; ext4 on an
// old kernel: one tick), so a change made in the same tick as a listing leaves
// the mtime as it was: a directory is therefore re-listed until one listing
// was taken `mtimeGranularity` after its current mtime was first seen.
//
// What a scan does not see: changes that cancel out between two scans (a
// file created and deleted, chmod and back); a rewrite that keeps size and
// mtime (same-size write within one timestamp tick, or mtime set back by the
// writer); the intermediate steps of several changes to one entry (a file
// written twice is one MODIFY); a rename that also changed the file's size or
// mtime (reported as DELETE + CREATE), as is a file replaced by another inode
// (an editor's save through a temporary file). touch is reported as MODIFY,
// where inotify says ATTRIB: a poll cannot tell a write from utimensat.
//
// No thread: the owner calls scan() when deadline() has passed (an epoll
// timeout from timeoutMs()); PollInterval decides the next deadline. A scan
// may be cut into slices (Options::slice): each call works about that long
// (it stops before a statx or a directory's opening, never inside one), and
// deadline() stays due until the scan is complete, so that a caller's event
// loop is never held for a whole tree. Between slices the scan holds one
// descriptor per level down to where it is (O_PATH). A scan in slices takes
// longer from start to end, and the tree may change meanwhile: a change in a
// directory it has passed comes with the next scan, so a rename from a
// directory not reached yet into one passed is a DELETE in this scan and a
// CREATE in the next.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "common/result.h"
#include "event/event.h"
#include "poll/poll_fs.h"
#include "poll/poll_interval.h"

namespace rnotify {

class PollScanner {
 public:
  using Clock = std::chrono::steady_clock;

  struct Options {
    bool recursive = true;
    // AT_STATX_FORCE_SYNC on directories by default: on NFS and FUSE their
    // attributes (mtime) then come from the server at every scan, which is
    // what lets an unchanged directory be skipped safely. kAll does the same
    // for every file (one round trip per entry on a network filesystem).
    PollFs::Sync sync = PollFs::Sync::kDirectories;
    std::chrono::milliseconds mtimeGranularity{2000};
    // False where inode numbers are not stable (FUSE filesystems without
    // use_ino, such as sshfs, whose numbers can change when the kernel
    // forgets an inode): an entry is then the same while its name and type
    // are, and the root's inode is not checked.
    bool stableInodes = true;
    // In-place changes (writes, chmod) show only in a file's own statx, one
    // syscall per file. A directory's files are statx'd at every
    // `sweepScans`-th scan, the directories taking turns; a file that changed
    // or appeared within the last `hotScans` scans, at every scan. 1 checks
    // every file at every scan; 2 halves the cost of a scan and reports an
    // in-place change of a file that was quiet up to one interval later.
    // Directories themselves (so creations, deletions and renames anywhere)
    // are checked at every scan; a re-listed directory's names are statx'd
    // when new, or when the listing shows another inode number for them.
    int sweepScans = 2;
    int hotScans = 30;
    PollInterval::Settings interval;
    // How long one call of scan() works before it returns and goes on at
    // the next call: checked before each statx and each directory opened
    // (with its listing, when it needs one), after at least one. The
    // default is the whole scan in one call.
    Clock::duration slice = Clock::duration::max();
  };

  struct Counters {
    PollFsCounters fs;
    uint64_t scans = 0;
    uint64_t dirsListed = 0;
    uint64_t dirsSkipped = 0;  // mtime unchanged: not re-listed
    uint64_t dirsSwept = 0;    // of those, the ones whose files were statx'd
  };

  // root: a directory; a relative path is taken from the current directory
  // at each scan, so pass an absolute one.
  PollScanner(std::string root, Options options);
  ~PollScanner();
  PollScanner(const PollScanner&) = delete;
  PollScanner& operator=(const PollScanner&) = delete;

  // Scans now (or goes on with the scan under way for one slice) and, when
  // the scan is complete, returns the differences, each with IN_POLLED; the
  // entry's state (hasStat) on CREATE, MOVED_TO, MODIFY and ATTRIB. watch and
  // seq are left 0 for the caller. Nothing while scanning() after the call.
  // The first scan takes the baseline and returns no event. When the root is
  // gone (or replaced by another directory): DELETE for everything known,
  // DELETE_SELF and IGNORED, then ended(). An error (root unreadable at the
  // first scan, or for another reason than being gone; only a scan's first
  // slice can have one) leaves the known state as it was; the next deadline
  // is set either way.
  Result<std::vector<Event>> scan();
  // A scan is under way: call scan() again (deadline() is due).
  bool scanning() const { return cycle_ != nullptr; }
  // A scan has completed: the baseline is taken.
  bool scanned() const { return baseline_; }
  // Scan no later than `when`. A scan under way may have passed the change
  // already: then the next one starts by `when` after it.
  void hurry(Clock::time_point when);

  Clock::time_point deadline() const { return scanning() ? Clock::time_point::min() : interval_.deadline(); }
  int timeoutMs(Clock::time_point now) const { return scanning() ? 0 : interval_.timeoutMs(now); }
  PollInterval& interval() { return interval_; }
  const PollInterval& interval() const { return interval_; }
  bool ended() const { return ended_; }

  const std::string& root() const { return root_; }
  // Of the last complete scan's state: only meaningful while !scanning().
  size_t entries() const;      // known entries, root excluded
  size_t memoryBytes() const;  // of the known state, approximately
  Counters counters() const {
    Counters c = counters_;
    c.fs = fs_.counters();
    return c;
  }

 private:
  struct Dir;
  struct Entry;
  struct Cycle;
  struct Frame;
  struct Relisting;
  struct Slice;

  Result<std::vector<Event>> begin(Clock::time_point now);
  // Opens one directory, and lists it when its mtime says so; its entries
  // are then compared (or re-stat'd) and its subdirectories visited from the
  // cycle's stack, as far as each slice goes.
  void visit(int parentFd, const char* name, const PollStat& self, Dir& dir, std::string path, Cycle& c);
  std::vector<Event> complete(Clock::time_point now);
  // Go on with a visited directory's own entries; false when the slice
  // ran out first (the frame holds how far they got).
  bool relist(Frame& f, Cycle& c, Slice& slice);
  bool restat(Frame& f, Cycle& c, Slice& slice);
  bool hot(const Entry& e) const;
  bool needsListing(const Dir& dir, const PollStat& self) const;
  // Compares an entry found under its old name; false if it is another object.
  bool same(const Entry& known, const PollStat& now) const;
  void update(Entry& known, const PollStat& now, const std::string& path, const char* name, Cycle& c);
  void removed(const Entry& gone, const std::string& path, const char* name, Cycle& c);
  void added(const PollStat& st, const std::string& path, const char* name, Cycle& c);
  std::vector<Event> events(Cycle& c);
  const Entry* find(const std::string& path) const;  // in the state after the scan
  std::vector<const Dir*> allDirs() const;

  std::string root_;
  Options options_;
  PollFs fs_;
  PollInterval interval_;
  std::unique_ptr<Entry> rootEntry_;                      // the root's own state and its directory
  std::unique_ptr<Cycle> cycle_;                          // the scan under way
  Clock::time_point hurried_ = Clock::time_point::max();  // asked for during it
  bool baseline_ = false;
  bool ended_ = false;
  bool toldNoDescriptors_ = false;
  uint32_t nextCookie_ = 1;
  uint32_t nextPhase_ = 0;
  Counters counters_;
};

}  // namespace rnotify
