#include "poll/tree_view.h"

#include <sys/inotify.h>
#include <sys/stat.h>

#include <algorithm>
#include <functional>
#include <string_view>

#include "poll/poll_diff.h"

namespace rnotify {
namespace {

constexpr size_t kMaxMovedAway = 64;

std::string join(std::string_view dir, std::string_view name) {
  std::string path;
  path.reserve(dir.size() + 1 + name.size());
  path.append(dir);
  if (!path.empty()) path.push_back('/');
  path.append(name);
  return path;
}

std::pair<std::string, std::string> split(const std::string& path) {
  size_t slash = path.rfind('/');
  if (slash == std::string::npos) return {"", path};
  return {path.substr(0, slash), path.substr(slash + 1)};
}

TreeView::State toState(const EventStat& st) {
  TreeView::State s;
  s.ino = st.ino;
  s.size = st.size;
  s.mtimeSec = st.mtimeSec;
  s.mtimeNsec = st.mtimeNsec;
  s.mode = st.mode;
  s.uid = st.uid;
  s.gid = st.gid;
  return s;
}

// For pollDiff. The mtime in nanoseconds wraps (modulo 2^64) rather than
// overflow for dates beyond 2262: only compared for equality.
PollStat pollStatOf(const TreeView::State& s) {
  PollStat st;
  st.ino = s.ino;
  st.size = s.size;
  st.mtimeNs = static_cast<int64_t>(static_cast<uint64_t>(s.mtimeSec) * 1000000000u + s.mtimeNsec);
  st.mode = s.mode;
  st.uid = s.uid;
  st.gid = s.gid;
  return st;  // no birth time (btime 0): listings do not carry it
}

bool isDir(const TreeView::State& s) { return S_ISDIR(s.mode); }
std::string_view parentOf(std::string_view path) {
  size_t slash = path.rfind('/');
  return slash == std::string_view::npos ? std::string_view() : path.substr(0, slash);
}
bool sameKind(const TreeView::State& a, const TreeView::State& b) { return (a.mode & S_IFMT) == (b.mode & S_IFMT); }

}  // namespace

TreeView::Map TreeView::build(const std::vector<proto::TreeEntry>& entries) {
  Map map;
  map.reserve(entries.size());
  for (const proto::TreeEntry& e : entries) map[join(e.dir, e.name)] = toState(e.stat);
  return map;
}

void TreeView::Listing::add(const std::string& dir, const std::string& name, const EventStat& stat) {
  map_[join(dir, name)] = toState(stat);
}

TreeView::Listing TreeView::Listing::of(const std::vector<proto::TreeEntry>& entries) {
  Listing listing;
  listing.map_ = build(entries);
  return listing;
}

std::vector<TreeView::Change> TreeView::advance(Listing now, uint32_t* nextCookie) {
  std::vector<Change> changes = diffWith(now.map_, nextCookie);
  entries_ = std::move(now.map_);
  movedAway_.clear();
  return changes;
}

void TreeView::replace(Listing entries) {
  entries_ = std::move(entries.map_);
  movedAway_.clear();
}

void TreeView::reset(const std::vector<proto::TreeEntry>& entries) {
  entries_ = build(entries);
  movedAway_.clear();
}

bool TreeView::alreadyShows(const Event& event) const {
  if (event.name.empty()) return false;
  auto it = entries_.find(join(event.dir, event.name));
  if (event.mask & (IN_CREATE | IN_MOVED_TO)) {
    return it != entries_.end() && (!event.hasStat || it->second.ino == event.stat.ino);
  }
  if (event.mask & (IN_DELETE | IN_MOVED_FROM)) return it == entries_.end();
  return false;
}

void TreeView::eraseTree(const std::string& path, std::vector<std::pair<std::string, State>>* keep) {
  entries_.erase(path);
  std::string prefix = path + "/";
  for (auto it = entries_.begin(); it != entries_.end();) {
    if (it->first.compare(0, prefix.size(), prefix) == 0) {
      if (keep != nullptr) keep->emplace_back(it->first.substr(prefix.size()), it->second);
      it = entries_.erase(it);
    } else {
      ++it;
    }
  }
}

void TreeView::apply(const Event& event) {
  const uint32_t mask = event.mask;
  if (mask & (IN_Q_OVERFLOW | IN_IGNORED)) return;
  if (event.name.empty()) {
    if (mask & IN_DELETE_SELF) {
      if (event.dir.empty()) {
        entries_.clear();
      } else {
        eraseTree(event.dir, nullptr);
      }
    }
    return;
  }
  std::string path = join(event.dir, event.name);
  if (mask & IN_DELETE) {
    eraseTree(path, nullptr);
    return;
  }
  if (mask & IN_MOVED_FROM) {
    std::vector<std::pair<std::string, State>> below;
    eraseTree(path, (mask & IN_ISDIR) ? &below : nullptr);
    if ((mask & IN_ISDIR) && event.cookie != 0) {
      if (movedAway_.size() >= kMaxMovedAway) movedAway_.clear();  // their MOVED_TO never came: moved out
      movedAway_[event.cookie] = std::move(below);
    }
    return;
  }
  if ((mask & IN_MOVED_TO) && (mask & IN_ISDIR) && event.cookie != 0) {
    auto moved = movedAway_.find(event.cookie);
    if (moved != movedAway_.end()) {
      eraseTree(path, nullptr);
      for (auto& [relative, state] : moved->second) entries_[std::string(path).append("/").append(relative)] = state;
      movedAway_.erase(moved);
    }
  }
  if ((mask & (IN_CREATE | IN_MOVED_TO | IN_MODIFY | IN_ATTRIB | IN_CLOSE_WRITE)) && event.hasStat) {
    entries_[path] = toState(event.stat);
  } else if (mask & (IN_CREATE | IN_MOVED_TO)) {
    // Gone before the server looked: known to exist, state unknown (ino 0),
    // so that a gap that swallows its DELETE still reports one.
    State unknown;
    unknown.mode = (mask & IN_ISDIR) ? S_IFDIR : 0;
    entries_[path] = unknown;
  }
}

std::vector<TreeView::Change> TreeView::diff(const std::vector<proto::TreeEntry>& nowEntries,
                                             uint32_t* nextCookie) const {
  return diffWith(build(nowEntries), nextCookie);
}

std::vector<TreeView::Change> TreeView::diffWith(const Map& now, uint32_t* nextCookie) const {
  // Same entry at the same path: the inode (unknown counts as the same) and the type.
  auto same = [](const State& before, const State& after) {
    if (before.ino == 0) return isDir(before) == isDir(after);  // only whether it was a directory is known
    return sameKind(before, after) && before.ino == after.ino;
  };
  // Kept: the same entry at `path` and at every directory above it. What is
  // not kept is gone (from the view) or found (in the listing) with its whole
  // subtree, as pollDiff wants it; a directory replaced by another takes its
  // contents along even where their inodes stayed (they were moved out and
  // back, or deleted and made again: either way they left the directory).
  // A path in neither (a directory above entries that neither lists, in a
  // view that missed it) counts as kept: nothing tells of a change.
  struct Hash {  // lookups by string_view, without a copy
    using is_transparent = void;
    size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
  };
  std::unordered_map<std::string, bool, Hash, std::equal_to<>> keptDirs;
  std::function<bool(std::string_view)> keptDir = [&](std::string_view dir) -> bool {
    if (dir.empty()) return true;
    if (auto it = keptDirs.find(dir); it != keptDirs.end()) return it->second;
    std::string path(dir);
    auto b = entries_.find(path);
    auto a = now.find(path);
    bool kept =
        (b == entries_.end() || a == now.end()) ? b == entries_.end() && a == now.end() : same(b->second, a->second);
    kept = kept && keptDir(parentOf(dir));
    keptDirs.emplace(std::move(path), kept);
    return kept;
  };

  std::vector<PollItem> gone, found;
  std::vector<std::string> modified, attributed;
  size_t keptCount = 0;
  for (const auto& [path, before] : entries_) {
    auto it = now.find(path);
    if (it == now.end() || !same(before, it->second) || !keptDir(parentOf(path))) {
      gone.push_back(PollItem{path, pollStatOf(before)});
      continue;
    }
    ++keptCount;
    if (before.ino == 0) continue;  // state never known: nothing to compare
    const State& after = it->second;
    if (!isDir(after) &&
        (before.size != after.size || before.mtimeSec != after.mtimeSec || before.mtimeNsec != after.mtimeNsec)) {
      modified.push_back(path);
    }
    if ((before.mode & 07777) != (after.mode & 07777) || before.uid != after.uid || before.gid != after.gid) {
      attributed.push_back(path);
    }
  }
  if (keptCount != now.size()) {  // else every entry of the listing is one kept
    for (const auto& [path, after] : now) {
      auto it = entries_.find(path);
      if (it == entries_.end() || !same(it->second, after) || !keptDir(parentOf(path))) {
        found.push_back(PollItem{path, pollStatOf(after)});
      }
    }
  }
  auto byPath = [](const PollItem& a, const PollItem& b) { return a.path < b.path; };
  std::sort(gone.begin(), gone.end(), byPath);  // the same input, the same report
  std::sort(found.begin(), found.end(), byPath);
  std::sort(modified.begin(), modified.end());
  std::sort(attributed.begin(), attributed.end());

  std::vector<Change> out;
  if (!gone.empty() || !found.empty()) {
    auto unchangedDir = [&](const std::string& path) {
      auto it = now.find(path);
      return (it == now.end() || isDir(it->second)) && keptDir(path);
    };
    for (Event& e : pollDiff(gone, found, unchangedDir, nextCookie, 0)) {
      out.push_back(Change{e.mask, e.cookie, std::move(e.dir), std::move(e.name)});
    }
  }
  auto changeOf = [&](uint32_t mask, const std::string& path) {
    auto [dir, name] = split(path);
    return Change{mask | (isDir(now.at(path)) ? uint32_t{IN_ISDIR} : 0u), 0, dir, name};
  };
  for (const std::string& path : modified) out.push_back(changeOf(IN_MODIFY, path));
  for (const std::string& path : attributed) out.push_back(changeOf(IN_ATTRIB, path));
  return out;
}

}  // namespace rnotify
