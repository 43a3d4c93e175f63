// TreeView: what the client knows of a watched tree, so that after a gap (a
// lost connection, an overflowed queue) it can tell the user exactly what
// changed meanwhile instead of only "something may have". It starts from a
// listing by the server (proto::Snapshot), follows the server's events (which
// carry the entry's state, proto::kWatchStat), and after a gap is compared
// with a fresh listing; the differences become ordinary events flagged
// IN_SYNTHESIZED: CREATE, DELETE, MODIFY, ATTRIB, and MOVED_FROM/MOVED_TO when
// an inode reappears under another name (the same pairing and ordering as the
// polling backend's, client/poll_diff.h).
#pragma once

#include <cstdint>
#include <string>
#include <unordered_map>
#include <vector>

#include "event/event.h"
#include "proto/messages.h"

namespace rnotify {

class TreeView {
 public:
  // Per entry: what the comparison needs, nothing more (48 bytes + the path).
  struct State {
    uint64_t ino = 0;
    uint64_t size = 0;
    int64_t mtimeSec = 0;
    uint32_t mtimeNsec = 0;
    uint32_t mode = 0;
    uint32_t uid = 0;
    uint32_t gid = 0;
  };

 private:
  using Map = std::unordered_map<std::string, State>;

 public:
  // A listing taken in entry by entry, as a server's answers come, so that
  // comparing it (advance) needs no second pass over it.
  class Listing {
   public:
    static Listing of(const std::vector<proto::TreeEntry>& entries);
    void add(const std::string& dir, const std::string& name, const EventStat& stat);
    size_t size() const { return map_.size(); }

   private:
    friend class TreeView;
    Map map_;
  };
  struct Change {
    uint32_t mask = 0;  // IN_* | IN_ISDIR
    uint32_t cookie = 0;
    std::string dir;
    std::string name;
  };

  void reset(const std::vector<proto::TreeEntry>& entries);
  void replace(Listing entries);  // reset(), from a listing taken in entry by entry
  // Follows one server event (IN_REMOTE not set; stat when the server had it).
  void apply(const Event& event);
  // What changed from this view to `now`, in an order a user can replay
  // (applied in order to this view, each step possible where it stands, they
  // give `now`): the structural changes as pollDiff finds and orders them
  // (client/poll_diff.h: renames by inode, size and mtime; a directory with
  // files below it only if one of them moved along; a name is freed before
  // it is taken), then modifications and attribute changes. Cookies for
  // synthesized moves are taken from *nextCookie.
  std::vector<Change> diff(const std::vector<proto::TreeEntry>& now, uint32_t* nextCookie) const;
  // diff(), then the view is `now`: one pass over the listing, not two.
  std::vector<Change> advance(Listing now, uint32_t* nextCookie);

  // Whether a structural event only repeats what the view already shows (a
  // change made while the server was listing, so both in the listing and in
  // a later event): a CREATE/MOVED_TO of an entry present with that inode, a
  // DELETE/MOVED_FROM of an entry absent.
  bool alreadyShows(const Event& event) const;

  size_t size() const { return entries_.size(); }
  bool contains(const std::string& path) const { return entries_.count(path) != 0; }

 private:
  static Map build(const std::vector<proto::TreeEntry>& entries);
  std::vector<Change> diffWith(const Map& now, uint32_t* nextCookie) const;
  void eraseTree(const std::string& path, std::vector<std::pair<std::string, State>>* keep);

  Map entries_;  // "dir/name" relative to the watch root
  // Directories moved away (MOVED_FROM) whose MOVED_TO may follow: their
  // entries, relative to the directory, by cookie.
  std::unordered_map<uint32_t, std::vector<std::pair<std::string, State>>> movedAway_;
};

}  // namespace rnotify
