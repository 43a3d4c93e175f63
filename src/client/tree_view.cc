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
      for (auto& [relative, state] : moved->second) entries_[path + "/" + relative] = state;
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
  Map now = build(nowEntries);
  auto changeOf = [](uint32_t mask, const std::string& path, const State& s) {
    auto [dir, name] = split(path);
    return Change{mask | (isDir(s) ? uint32_t{IN_ISDIR} : 0u), 0, dir, name};
  };
  std::vector<Change> modifies, attribs;
  auto compare = [&](const State& before, const std::string& newPath, const State& after) {
    if (before.ino == 0) return;  // state never known: nothing to compare
    if (!isDir(after) && (before.size != after.size || before.mtimeSec != after.mtimeSec ||
                          before.mtimeNsec != after.mtimeNsec)) {
      modifies.push_back(changeOf(IN_MODIFY, newPath, after));
    }
    if ((before.mode & 07777) != (after.mode & 07777) || before.uid != after.uid || before.gid != after.gid) {
      attribs.push_back(changeOf(IN_ATTRIB, newPath, after));
    }
  };
  // Same entry at the same path: the inode (unknown counts as the same) and the type.
  auto same = [](const State& before, const State& after) {
    if (before.ino == 0) return isDir(before) == isDir(after);  // only whether it was a directory is known
    return sameKind(before, after) && before.ino == after.ino;
  };
  std::vector<std::string> removed, added;
  for (const auto& [path, before] : entries_) {
    auto it = now.find(path);
    if (it == now.end() || !same(before, it->second)) {
      removed.push_back(path);
    } else {
      compare(before, path, it->second);
    }
  }
  for (const auto& [path, after] : now) {
    auto it = entries_.find(path);
    if (it == entries_.end() || !same(it->second, after)) added.push_back(path);
  }
  auto byDepth = [](const std::string& a, const std::string& b) {
    return depth(a) != depth(b) ? depth(a) < depth(b) : a < b;
  };
  std::sort(removed.begin(), removed.end(), byDepth);
  std::sort(added.begin(), added.end(), byDepth);

  // Renames: an inode that left one name and appeared under another. A file
  // keeps its size and mtime when renamed; an inode number alone is not
  // enough (ext4 reuses a freed one at once). A moved directory carries its
  // contents along: they are not reported again.
  std::unordered_map<uint64_t, std::string> addedByIno;
  for (const std::string& path : added) addedByIno.emplace(now.at(path).ino, path);
  struct Move {
    std::string from, to;
  };
  std::vector<Move> moves;
  std::unordered_map<std::string, std::string> movedDirs;  // old path -> new path
  std::unordered_map<std::string, bool> consumed;          // added paths explained by a move
  std::unordered_map<std::string, bool> vacated;           // removed paths explained by a move
  for (const std::string& path : removed) {
    const State& before = entries_.at(path);
    bool carried = false;
    for (std::string up = split(path).first; !up.empty(); up = split(up).first) {
      auto moved = movedDirs.find(up);
      if (moved == movedDirs.end()) continue;
      std::string there = moved->second + path.substr(up.size());
      auto it = now.find(there);
      if (it != now.end() && before.ino != 0 && it->second.ino == before.ino && !consumed[there]) {
        consumed[there] = true;
        vacated[path] = true;
        compare(before, there, it->second);
        carried = true;
        if (isDir(before)) movedDirs[path] = there;
      }
      break;
    }
    if (carried) continue;
    auto byIno = addedByIno.find(before.ino);
    if (before.ino == 0 || byIno == addedByIno.end() || consumed[byIno->second]) continue;
    const State& after = now.at(byIno->second);
    bool renamed = sameKind(before, after) &&
                   (isDir(before) || (before.size == after.size && before.mtimeSec == after.mtimeSec &&
                                      before.mtimeNsec == after.mtimeNsec));
    if (!renamed) continue;
    consumed[byIno->second] = true;
    vacated[path] = true;
    moves.push_back(Move{path, byIno->second});
    if (isDir(before)) movedDirs[path] = byIno->second;
    compare(before, byIno->second, after);
  }

  // The order in which the changes replay: a directory is created before
  // anything moves into it, a name is vacated (moved on, or deleted) before
  // something moves or is created there, a directory's contents go before
  // the directory is deleted. Kahn's algorithm over those constraints; among
  // the ready steps moves go first, then deletions deepest first, then
  // creations shallowest first. A name that a move replaces is not deleted
  // separately (rename(2) replaced it, as inotify would have shown).
  enum Kind { kMove = 0, kDelete = 1, kCreate = 2 };
  struct Step {
    Kind kind;
    std::string path;  // target for moves
    size_t move = 0;   // index into moves
    std::vector<size_t> next;
    size_t waiting = 0;
  };
  std::vector<Step> steps;
  std::unordered_map<std::string, size_t> createAt, deleteAt, moveFrom;
  std::unordered_map<std::string, bool> moveTarget;
  for (size_t i = 0; i < moves.size(); ++i) moveTarget[moves[i].to] = true;
  for (size_t i = 0; i < moves.size(); ++i) {
    moveFrom[moves[i].from] = steps.size();
    steps.push_back(Step{kMove, moves[i].to, i, {}, 0});
  }
  for (const std::string& path : removed) {
    if (vacated[path] || moveTarget[path]) continue;
    deleteAt[path] = steps.size();
    steps.push_back(Step{kDelete, path, 0, {}, 0});
  }
  for (const std::string& path : added) {
    if (consumed[path]) continue;
    createAt[path] = steps.size();
    steps.push_back(Step{kCreate, path, 0, {}, 0});
  }
  auto edge = [&](size_t before, size_t after) {
    steps[before].next.push_back(after);
    ++steps[after].waiting;
  };
  auto vacate = [&](const std::string& path, size_t step) {  // whatever frees `path` goes before `step`
    if (auto m = moveFrom.find(path); m != moveFrom.end() && m->second != step) edge(m->second, step);
    if (auto d = deleteAt.find(path); d != deleteAt.end()) edge(d->second, step);
  };
  for (size_t i = 0; i < steps.size(); ++i) {
    const std::string parent = split(steps[i].path).first;
    if (steps[i].kind == kMove || steps[i].kind == kCreate) {
      if (auto c = createAt.find(parent); c != createAt.end()) edge(c->second, i);
      vacate(steps[i].path, i);
    }
    if (steps[i].kind == kMove || steps[i].kind == kDelete) {
      const std::string& gone = steps[i].kind == kMove ? moves[steps[i].move].from : steps[i].path;
      // The old parent loses this entry before it is itself deleted.
      if (auto d = deleteAt.find(split(gone).first); d != deleteAt.end()) edge(i, d->second);
    }
  }
  auto later = [&](size_t a, size_t b) {  // priority: true if a goes after b
    if (steps[a].kind != steps[b].kind) return steps[a].kind > steps[b].kind;
    size_t da = depth(steps[a].path), db = depth(steps[b].path);
    if (da != db) return steps[a].kind == kDelete ? da < db : da > db;
    return steps[a].path > steps[b].path;
  };
  std::vector<size_t> ready;
  for (size_t i = 0; i < steps.size(); ++i) {
    if (steps[i].waiting == 0) ready.push_back(i);
  }
  std::make_heap(ready.begin(), ready.end(), later);
  std::vector<bool> done(steps.size(), false);
  std::vector<Change> out;
  auto emit = [&](size_t i) {
    done[i] = true;
    const Step& step = steps[i];
    if (step.kind == kMove) {
      const Move& m = moves[step.move];
      uint32_t cookie = (*nextCookie)++;
      if (cookie == 0) cookie = (*nextCookie)++;
      Change from = changeOf(IN_MOVED_FROM, m.from, entries_.at(m.from));
      Change to = changeOf(IN_MOVED_TO, m.to, now.at(m.to));
      from.cookie = to.cookie = cookie;
      out.push_back(std::move(from));
      out.push_back(std::move(to));
    } else if (step.kind == kDelete) {
      out.push_back(changeOf(IN_DELETE, step.path, entries_.at(step.path)));
    } else {
      out.push_back(changeOf(IN_CREATE, step.path, now.at(step.path)));
    }
  };
  for (size_t emitted = 0; emitted < steps.size();) {
    if (ready.empty()) {
      // A cycle (two names swapped): break it at the first step left.
      for (size_t i = 0; i < steps.size(); ++i) {
        if (!done[i]) {
          steps[i].waiting = 0;
          ready.push_back(i);
          break;
        }
      }
    }
    std::pop_heap(ready.begin(), ready.end(), later);
    size_t i = ready.back();
    ready.pop_back();
    if (done[i]) continue;
    emit(i);
    ++emitted;
    for (size_t n : steps[i].next) {
      if (!done[n] && --steps[n].waiting == 0) {
        ready.push_back(n);
        std::push_heap(ready.begin(), ready.end(), later);
      }
    }
  }
  for (auto* group : {&modifies, &attribs}) {
    for (Change& c : *group) out.push_back(std::move(c));
  }
  return out;
}

}  // namespace rnotify
