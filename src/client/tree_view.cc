#include "client/tree_view.h"

#include <sys/inotify.h>
#include <sys/stat.h>

#include <algorithm>

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

bool isDir(const TreeView::State& s) { return S_ISDIR(s.mode); }
bool sameKind(const TreeView::State& a, const TreeView::State& b) { return (a.mode & S_IFMT) == (b.mode & S_IFMT); }
size_t depth(const std::string& path) { return static_cast<size_t>(std::count(path.begin(), path.end(), '/')); }

}  // namespace

TreeView::Map TreeView::build(const std::vector<proto::TreeEntry>& entries) {
  Map map;
  map.reserve(entries.size());
  for (const proto::TreeEntry& e : entries) map[join(e.dir, e.name)] = toState(e.stat);
  return map;
}

void TreeView::reset(const std::vector<proto::TreeEntry>& entries) {
  entries_ = build(entries);
  movedAway_.clear();
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
      for (auto& [relative, state] : moved->second) entries_[path + "/" + relative] = state;
      movedAway_.erase(moved);
    }
  }
  if ((mask & (IN_CREATE | IN_MOVED_TO | IN_MODIFY | IN_ATTRIB | IN_CLOSE_WRITE)) && event.hasStat) {
    entries_[path] = toState(event.stat);
  }
}

std::vector<TreeView::Change> TreeView::diff(const std::vector<proto::TreeEntry>& nowEntries,
                                             uint32_t* nextCookie) const {
  Map now = build(nowEntries);
  std::vector<std::string> removed, added;
  std::vector<Change> moves, deletes, creates, modifies, attribs;
  auto changeOf = [](uint32_t mask, const std::string& path, const State& s) {
    auto [dir, name] = split(path);
    return Change{mask | (isDir(s) ? uint32_t{IN_ISDIR} : 0u), 0, dir, name};
  };
  auto compare = [&](const std::string& oldPath, const State& before, const std::string& newPath, const State& after) {
    if (!isDir(after) && (before.size != after.size || before.mtimeSec != after.mtimeSec ||
                          before.mtimeNsec != after.mtimeNsec)) {
      modifies.push_back(changeOf(IN_MODIFY, newPath, after));
    }
    if ((before.mode & 07777) != (after.mode & 07777) || before.uid != after.uid || before.gid != after.gid) {
      attribs.push_back(changeOf(IN_ATTRIB, newPath, after));
    }
    (void)oldPath;
  };
  for (const auto& [path, before] : entries_) {
    auto it = now.find(path);
    if (it == now.end() || it->second.ino != before.ino || !sameKind(it->second, before)) {
      removed.push_back(path);
    } else {
      compare(path, before, path, it->second);
    }
  }
  for (const auto& [path, after] : now) {
    auto it = entries_.find(path);
    if (it == entries_.end() || it->second.ino != after.ino || !sameKind(it->second, after)) added.push_back(path);
  }
  // Renames: an inode that left one name and appeared under another. A moved
  // directory carries its contents along: they are not reported again.
  std::unordered_map<uint64_t, std::string> addedByIno;
  for (const std::string& path : added) addedByIno.emplace(now.at(path).ino, path);
  std::sort(removed.begin(), removed.end(), [](const std::string& a, const std::string& b) {
    return depth(a) != depth(b) ? depth(a) < depth(b) : a < b;
  });
  std::unordered_map<std::string, std::string> movedDirs;  // old path -> new path
  std::vector<std::string> stillRemoved;
  std::unordered_map<std::string, bool> consumed;
  for (const std::string& path : removed) {
    const State& before = entries_.at(path);
    // Inside a moved directory, at the same relative place?
    auto [dir, name] = split(path);
    bool carried = false;
    for (std::string up = dir; !up.empty(); up = split(up).first) {
      auto moved = movedDirs.find(up);
      if (moved != movedDirs.end()) {
        std::string there = moved->second + path.substr(up.size());
        auto it = now.find(there);
        if (it != now.end() && it->second.ino == before.ino && !consumed[there]) {
          consumed[there] = true;
          compare(path, before, there, it->second);
          carried = true;
        }
        break;
      }
    }
    if (carried) continue;
    auto byIno = addedByIno.find(before.ino);
    if (before.ino != 0 && byIno != addedByIno.end() && !consumed[byIno->second] &&
        sameKind(before, now.at(byIno->second))) {
      const std::string& target = byIno->second;
      consumed[target] = true;
      uint32_t cookie = (*nextCookie)++;
      if (cookie == 0) cookie = (*nextCookie)++;
      Change from = changeOf(IN_MOVED_FROM, path, before);
      Change to = changeOf(IN_MOVED_TO, target, now.at(target));
      from.cookie = to.cookie = cookie;
      moves.push_back(std::move(from));
      moves.push_back(std::move(to));
      if (isDir(before)) movedDirs[path] = target;
      compare(path, before, target, now.at(target));
      continue;
    }
    stillRemoved.push_back(path);
  }
  // Deepest first, so that a directory's contents go before the directory.
  std::sort(stillRemoved.begin(), stillRemoved.end(), [](const std::string& a, const std::string& b) {
    return depth(a) != depth(b) ? depth(a) > depth(b) : a < b;
  });
  // A removed directory's contents are reported too, as inotify would have.
  for (const std::string& path : stillRemoved) deletes.push_back(changeOf(IN_DELETE, path, entries_.at(path)));
  std::sort(added.begin(), added.end(), [](const std::string& a, const std::string& b) {
    return depth(a) != depth(b) ? depth(a) < depth(b) : a < b;
  });
  for (const std::string& path : added) {
    if (!consumed[path]) creates.push_back(changeOf(IN_CREATE, path, now.at(path)));
  }
  std::vector<Change> out;
  out.reserve(moves.size() + deletes.size() + creates.size() + modifies.size() + attribs.size());
  for (auto* group : {&moves, &deletes, &creates, &modifies, &attribs}) {
    for (Change& c : *group) out.push_back(std::move(c));
  }
  return out;
}

}  // namespace rnotify
