#include "poll/poll_diff.h"

#include <sys/inotify.h>
#include <sys/stat.h>

#include <algorithm>
#include <map>
#include <unordered_map>

namespace rnotify {
namespace {

constexpr int64_t kNs = 1000000000;

std::string parentOf(const std::string& path) {
  size_t slash = path.rfind('/');
  return slash == std::string::npos ? std::string() : path.substr(0, slash);
}
std::string nameOf(const std::string& path) {
  size_t slash = path.rfind('/');
  return slash == std::string::npos ? path : path.substr(slash + 1);
}
size_t depth(const std::string& path) { return static_cast<size_t>(std::count(path.begin(), path.end(), '/')); }
bool isDir(const PollStat& st) { return S_ISDIR(st.mode); }
bool under(const std::string& path, const std::string& dir) {
  return path.size() > dir.size() && path[dir.size()] == '/' && path.compare(0, dir.size(), dir) == 0;
}
bool sameInode(const PollStat& a, const PollStat& b) {
  return a.ino != 0 && (a.mode & S_IFMT) == (b.mode & S_IFMT) && a.ino == b.ino && a.btime == b.btime;
}
bool sameContent(const PollStat& a, const PollStat& b) { return a.size == b.size && a.mtimeNs == b.mtimeNs; }

Event polled(uint32_t mask, const std::string& path, const PollStat& st, bool withStat, uint32_t flag) {
  Event ev;
  ev.mask = mask | flag | (isDir(st) ? uint32_t{IN_ISDIR} : 0u);
  ev.dir = parentOf(path);
  ev.name = nameOf(path);
  ev.hasStat = withStat;
  if (withStat) ev.stat = eventStatOf(st);
  return ev;
}

// One run of the simulation: where every entry of the previous listing is
// now, and which steps are left.
class Replay {
 public:
  Replay(const std::vector<PollItem>& gone, const std::vector<PollItem>& found,
         const std::function<bool(const std::string&)>& unchangedDir, uint32_t* nextCookie, uint32_t flag)
      : gone_(gone), found_(found), unchangedDir_(unchangedDir), nextCookie_(nextCookie), flag_(flag) {}

  std::vector<Event> run() {
    match();
    for (size_t g = 0; g < gone_.size(); ++g) at_[gone_[g].path] = Slot{static_cast<int>(g), -1};
    for (;;) {
      std::vector<Step> steps = pending();
      if (steps.empty()) break;
      bool progress = false;
      for (const Step& s : steps) progress |= tryStep(s);
      if (!progress && !unpairFirstMove(steps)) {
        // Cannot happen with consistent listings (without moves, deletions
        // and creations always progress); were a parent missing from one,
        // what is left is still told rather than lost.
        for (const Step& s : steps) {
          if (s.kind == kDelete) out_.push_back(polled(IN_DELETE, whereIs(s.index), gone_[s.index].st, false, flag_));
          if (s.kind == kCreate)
            out_.push_back(polled(IN_CREATE, found_[s.index].path, found_[s.index].st, true, flag_));
        }
        break;
      }
    }
    for (size_t g = 0; g < gone_.size(); ++g) {  // moved entries that changed on the way
      if (target_[g] < 0) continue;
      const PollStat& was = gone_[g].st;
      const PollItem& now = found_[target_[g]];
      if (!isDir(now.st) && !sameContent(was, now.st)) {
        out_.push_back(polled(IN_MODIFY, now.path, now.st, true, flag_));
      }
      if ((was.mode & 07777) != (now.st.mode & 07777) || was.uid != now.st.uid || was.gid != now.st.gid) {
        out_.push_back(polled(IN_ATTRIB, now.path, now.st, true, flag_));
      }
    }
    return std::move(out_);
  }

 private:
  enum Kind { kMove = 0, kDelete = 1, kCreate = 2 };
  struct Step {
    Kind kind;
    int index;  // gone_ for moves and deletions, found_ for creations
  };
  struct Slot {
    int gone = -1;   // an entry of the previous listing, where it is now
    int found = -1;  // an entry created by a step
  };

  // Pairs entries by inode: a child of a moved directory found at the same
  // place under the directory's new name moves with it (carried); any other
  // inode that reappears is a move of its own.
  void match() {
    target_.assign(gone_.size(), -1);
    carried_.assign(gone_.size(), false);
    done_.assign(gone_.size(), false);
    claimed_.assign(found_.size(), false);
    std::unordered_map<std::string, int> foundAt, goneAt;
    std::unordered_multimap<uint64_t, int> foundByIno;
    for (size_t f = 0; f < found_.size(); ++f) {
      foundAt.emplace(found_[f].path, static_cast<int>(f));
      foundByIno.emplace(found_[f].st.ino, static_cast<int>(f));
    }
    std::vector<int> order(gone_.size());
    for (size_t g = 0; g < gone_.size(); ++g) {
      order[g] = static_cast<int>(g);
      goneAt.emplace(gone_[g].path, static_cast<int>(g));
    }
    std::sort(order.begin(), order.end(), [&](int a, int b) {
      size_t da = depth(gone_[a].path), db = depth(gone_[b].path);
      return da != db ? da < db : gone_[a].path < gone_[b].path;
    });
    for (int g : order) {
      const PollItem& item = gone_[g];
      if (auto p = goneAt.find(parentOf(item.path)); p != goneAt.end() && target_[p->second] >= 0) {
        auto f = foundAt.find(found_[target_[p->second]].path + "/" + nameOf(item.path));
        if (f != foundAt.end() && !claimed_[f->second] && sameInode(item.st, found_[f->second].st)) {
          claim(g, f->second, true);
          continue;
        }
      }
      auto [first, last] = foundByIno.equal_range(item.st.ino);
      for (auto it = first; it != last; ++it) {
        const PollStat& st = found_[it->second].st;
        if (claimed_[it->second] || !sameInode(item.st, st)) continue;
        if (!isDir(st) && !sameContent(st, item.st)) continue;
        claim(g, it->second, false);
        break;
      }
    }
    confirmDirectories(order, goneAt);
  }

  // A directory's inode number alone says little where there is no birth
  // time to go with it (btime 0: sshfs, TreeView's listings): ext4 gives a
  // freed number to the next mkdir, so `rm -r d; mkdir e` would look like
  // `mv d e` plus deletions. Such a directory with files below it counts as
  // moved only if it carried one of them along, directly or through a
  // subdirectory: the same name, inode, size and mtime below the new name.
  // Without files below it there is nothing to tell it by: its inode
  // decides. A directory not confirmed is a deletion and a creation; a
  // subdirectory it carried that stands as a move on its own (confirmed the
  // same way) stays a move, the rest is deleted and created too. Deepest
  // first, so that a subdirectory is judged before its parent.
  void confirmDirectories(const std::vector<int>& shallowestFirst, const std::unordered_map<std::string, int>& goneAt) {
    std::vector<std::vector<int>> children(gone_.size());
    for (size_t g = 0; g < gone_.size(); ++g) {
      if (auto p = goneAt.find(parentOf(gone_[g].path)); p != goneAt.end())
        children[p->second].push_back(static_cast<int>(g));
    }
    std::vector<bool> evidence(gone_.size(), false);  // moved, and known to be the same inode
    std::vector<bool> files(gone_.size(), false);     // a file (not a directory) at or below it
    for (auto it = shallowestFirst.rbegin(); it != shallowestFirst.rend(); ++it) {
      int g = *it;
      const PollStat& was = gone_[g].st;
      files[g] = !isDir(was);
      for (int c : children[g]) files[g] = files[g] || files[c];
      if (target_[g] < 0) continue;
      if (!isDir(was)) {
        evidence[g] = sameContent(was, found_[target_[g]].st);
        continue;
      }
      if (was.btime != 0) {
        evidence[g] = true;  // sameInode compared the birth times
        continue;
      }
      for (int c : children[g]) evidence[g] = evidence[g] || (carried_[c] && target_[c] >= 0 && evidence[c]);
      if (evidence[g] || !files[g]) continue;
      unclaim(g);
      for (int c : children[g]) {
        if (!carried_[c] || target_[c] < 0) continue;
        carried_[c] = false;                  // a move of its own, if it is one
        if (!isDir(gone_[c].st)) unclaim(c);  // evidence[c] is false: another size or mtime
      }
    }
  }
  void claim(int g, int f, bool carried) {
    target_[g] = f;
    carried_[g] = carried;
    claimed_[f] = true;
  }
  void unclaim(int g) {
    claimed_[target_[g]] = false;
    target_[g] = -1;
    carried_[g] = false;
  }

  // What is left, in the order preferred within one pass: moves (shallowest
  // target first), deletions (deepest first), creations (shallowest first).
  std::vector<Step> pending() const {
    std::vector<Step> steps;
    for (size_t g = 0; g < gone_.size(); ++g) {
      if (done_[g] || carried_[g]) continue;
      steps.push_back(Step{target_[g] >= 0 ? kMove : kDelete, static_cast<int>(g)});
    }
    for (size_t f = 0; f < found_.size(); ++f) {
      if (!claimed_[f]) steps.push_back(Step{kCreate, static_cast<int>(f)});
    }
    auto key = [&](const Step& s) {
      const std::string& path = s.kind == kCreate ? found_[s.index].path
                                : s.kind == kMove ? found_[target_[s.index]].path
                                                  : gone_[s.index].path;
      size_t d = depth(path);
      return std::make_pair(static_cast<int>(s.kind), s.kind == kDelete ? -static_cast<long>(d) : static_cast<long>(d));
    };
    std::stable_sort(steps.begin(), steps.end(), [&](const Step& a, const Step& b) { return key(a) < key(b); });
    return steps;
  }

  // Whether a directory that is already final stands at `path`: the root,
  // one unchanged, one created, or one moved to where it belongs.
  bool finalDir(const std::string& path) const {
    if (path.empty()) return true;
    auto it = at_.find(path);
    if (it == at_.end()) return unchangedDir_(path);
    if (it->second.found >= 0) return isDir(found_[it->second.found].st);
    // Where it belongs, and there for good: moved there, or carried by a
    // directory that is. (A pending move whose target is where it stands
    // still has to leave: its parent is replaced.)
    int g = it->second.gone;
    if (target_[g] < 0 || found_[target_[g]].path != path || !isDir(gone_[g].st)) return false;
    return done_[g] || (carried_[g] && finalDir(parentOf(path)));
  }
  bool hasChildren(const std::string& path) const {
    auto it = at_.lower_bound(path + "/");
    return it != at_.end() && under(it->first, path);
  }
  std::string whereIs(int g) const { return current_.count(g) ? current_.at(g) : gone_[g].path; }

  bool tryStep(const Step& s) {
    if (s.kind == kCreate) {
      const PollItem& f = found_[s.index];
      if (claimed_[s.index] || at_.count(f.path) || !finalDir(parentOf(f.path))) return false;
      at_[f.path] = Slot{-1, s.index};
      claimed_[s.index] = true;
      out_.push_back(polled(IN_CREATE, f.path, f.st, true, flag_));
      return true;
    }
    if (done_[s.index] || carried_[s.index]) return false;
    std::string from = whereIs(s.index);
    if (s.kind == kDelete) {
      if (hasChildren(from)) return false;
      at_.erase(from);
      done_[s.index] = true;
      out_.push_back(polled(IN_DELETE, from, gone_[s.index].st, false, flag_));
      return true;
    }
    const PollItem& to = found_[target_[s.index]];
    if (at_.count(to.path) || under(to.path, from) || !finalDir(parentOf(to.path))) return false;
    relocate(from, to.path);
    done_[s.index] = true;
    uint32_t cookie = (*nextCookie_)++;
    if (cookie == 0) cookie = (*nextCookie_)++;
    Event a = polled(IN_MOVED_FROM, from, gone_[s.index].st, false, flag_);
    Event b = polled(IN_MOVED_TO, to.path, to.st, true, flag_);
    a.cookie = b.cookie = cookie;
    out_.push_back(std::move(a));
    out_.push_back(std::move(b));
    return true;
  }

  // Moves `from` and everything below it to `to` in the simulation.
  void relocate(const std::string& from, const std::string& to) {
    std::vector<std::pair<std::string, Slot>> moving;
    if (auto it = at_.find(from); it != at_.end()) {
      moving.emplace_back(to, it->second);
      at_.erase(it);
    }
    for (auto it = at_.lower_bound(from + "/"); it != at_.end() && under(it->first, from);) {
      moving.emplace_back(to + it->first.substr(from.size()), it->second);
      it = at_.erase(it);
    }
    for (auto& [path, slot] : moving) {
      if (slot.gone >= 0) current_[slot.gone] = path;
      at_[path] = slot;
    }
  }

  // No step was possible: a cycle of moves. The first pending move, and
  // everything now below it, is deleted and created instead.
  bool unpairFirstMove(const std::vector<Step>& steps) {
    for (const Step& s : steps) {
      if (s.kind != kMove) continue;
      std::string from = whereIs(s.index);
      std::vector<int> affected{s.index};
      for (auto it = at_.lower_bound(from + "/"); it != at_.end() && under(it->first, from); ++it) {
        if (it->second.gone >= 0) affected.push_back(it->second.gone);
      }
      for (int g : affected) {
        if (target_[g] >= 0) claimed_[target_[g]] = false;
        target_[g] = -1;
        carried_[g] = false;
      }
      return true;
    }
    return false;
  }

  const std::vector<PollItem>& gone_;
  const std::vector<PollItem>& found_;
  const std::function<bool(const std::string&)>& unchangedDir_;
  uint32_t* nextCookie_;
  uint32_t flag_;
  std::vector<int> target_;  // per gone entry: the found entry it became, or -1
  std::vector<bool> carried_, done_, claimed_;
  std::map<std::string, Slot> at_;                // ordered, for subtrees
  std::unordered_map<int, std::string> current_;  // gone entries that moved
  std::vector<Event> out_;
};

}  // namespace

EventStat eventStatOf(const PollStat& st) {
  EventStat out;
  out.ino = st.ino;
  out.size = st.size;
  out.mtimeSec = st.mtimeNs >= 0 ? st.mtimeNs / kNs : -((-st.mtimeNs + kNs - 1) / kNs);
  out.mtimeNsec = static_cast<uint32_t>(st.mtimeNs - out.mtimeSec * kNs);
  out.mode = st.mode;
  out.uid = st.uid;
  out.gid = st.gid;
  return out;
}

std::vector<Event> pollDiff(const std::vector<PollItem>& gone, const std::vector<PollItem>& found,
                            const std::function<bool(const std::string&)>& unchangedDir, uint32_t* nextCookie,
                            uint32_t flag) {
  return Replay(gone, found, unchangedDir, nextCookie, flag).run();
}

}  // namespace rnotify
