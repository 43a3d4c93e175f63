// The tree of InotifyWatcher's nodes: names only, paths built on demand, and
// the one way from a node to its directory (openNode: from the nearest anchor
// by the names between, never by an absolute path).
#include <fcntl.h>
#include <sys/stat.h>

#include <algorithm>
#include <cerrno>

#include "watch/confined_open.h"
#include "watch/inotify_watcher.h"
#include "watch/watch_path.h"

namespace rnotify {

std::string InotifyWatcher::pathOf(const Node* node) const {
  if (node->parent == nullptr) return node->name;
  size_t length = 0;
  const Node* top = node;
  for (; top->parent != nullptr; top = top->parent) length += top->name.size() + 1;
  std::string path;
  path.resize(top->name.size() + length);
  size_t end = path.size();
  for (const Node* n = node; n->parent != nullptr; n = n->parent) {
    end -= n->name.size();
    path.replace(end, n->name.size(), n->name);
    path[--end] = '/';
  }
  path.replace(0, top->name.size(), top->name);
  if (top->name == "/") path.erase(1, 1);  // "//a" -> "/a"
  return path;
}

UniqueFd InotifyWatcher::openNode(const Node* node, bool* crossMounts) const {
  // From the nearest anchor at or above the node that still opens (a root's
  // path is stale once it was renamed; an anchor further up reaches it by
  // the names in the tree), down by the names between.
  for (const Node* top = node; top != nullptr; top = top->parent) {
    auto anchor = anchors_.find(top);
    if (anchor == anchors_.end()) continue;
    auto open = openAnchors_.find(top);
    if (open == openAnchors_.end()) open = openAnchors_.emplace(top, anchor->second.open()).first;
    if (!open->second) continue;
    if (crossMounts != nullptr) *crossMounts = anchor->second.crossMounts;
    return openBeneath(open->second.get(), relativePath(node, top), anchor->second.crossMounts);
  }
  errno = ENOENT;  // moved out of every subscription's reach
  return UniqueFd();
}

std::string InotifyWatcher::relativePath(const Node* node, const Node* top) {
  size_t length = 0;
  for (const Node* n = node; n != top; n = n->parent) length += n->name.size() + 1;
  std::string relative(length > 0 ? length - 1 : 0, '/');  // "b/c" below a
  size_t end = relative.size();
  for (const Node* n = node; n != top; n = n->parent) {
    end -= n->name.size();
    relative.replace(end, n->name.size(), n->name);
    if (end > 0) --end;  // the '/' before it stays
  }
  return relative;
}

void InotifyWatcher::forgetAnchor(const Node* node) {
  anchors_.erase(node);
  openAnchors_.erase(node);
}

InotifyWatcher::Node* InotifyWatcher::findNode(const std::string& path) const {
  // From every root that is a prefix of the path, down by names.
  for (const auto& [id, s] : subscriptions_) {
    Node* top = s->root;
    while (top->parent != nullptr) top = top->parent;
    const std::string& base = top->name;
    if (path == base) return top;
    size_t start;
    if (base == "/") {
      start = 1;
    } else if (path.size() > base.size() && path[base.size()] == '/' && path.compare(0, base.size(), base) == 0) {
      start = base.size() + 1;
    } else {
      continue;
    }
    Node* node = top;
    while (node != nullptr && start <= path.size()) {
      size_t slash = path.find('/', start);
      if (slash == std::string::npos) slash = path.size();
      node = child(node, std::string_view(path).substr(start, slash - start));
      start = slash + 1;
    }
    if (node != nullptr) return node;
  }
  return nullptr;
}

std::vector<InotifyWatcher::Node*> InotifyWatcher::childrenOf(const Node* node) const {
  std::vector<Node*> list;
  for (Node* c = node->firstChild; c != nullptr; c = c->next) list.push_back(c);
  return list;
}

void InotifyWatcher::attach(Node* node, Node* parent, std::string_view name) {
  // In the tree again (a CREATE of it read after its MOVED_FROM): no longer
  // waiting for a MOVED_TO or MOVE_SELF.
  if (!movedAway_.empty()) std::erase_if(movedAway_, [node](const auto& entry) { return entry.second == node; });
  // A child we thought was there under that name was replaced behind our back.
  if (Node* stale = child(parent, name); stale != nullptr && stale != node) detach(stale);
  node->name.assign(name);
  node->parent = parent;
  node->prev = nullptr;
  node->next = parent->firstChild;
  if (parent->firstChild != nullptr) parent->firstChild->prev = node;
  parent->firstChild = node;
  children_.insert(node);
}

void InotifyWatcher::detach(Node* node) {
  if (node->parent == nullptr) return;
  std::string path = pathOf(node);
  unlink(node);
  node->name = std::move(path);
}

void InotifyWatcher::unlink(Node* node) {
  if (node->parent == nullptr) return;
  children_.erase(node);
  if (node->prev != nullptr) {
    node->prev->next = node->next;
  } else {
    node->parent->firstChild = node->next;
  }
  if (node->next != nullptr) node->next->prev = node->prev;
  node->parent = node->next = node->prev = nullptr;
}

InotifyWatcher::Node* InotifyWatcher::existingNode(const std::string& path, const struct stat& st,
                                                   Node** parent) const {
  // The tree's names may be stale (renames not read yet): a node counts only
  // if its object is the one the caller opened.
  *parent = nullptr;
  if (Node* node = findNode(path); node != nullptr && isObject(openNode(node).get(), st.st_dev, st.st_ino)) {
    return node;
  }
  if (path == "/") return nullptr;
  auto [parentPath, name] = splitParent(path);
  if (name.empty() || name == "." || name == "..") return nullptr;  // a caller's string: no name in a parent
  Node* candidate = findNode(parentPath);
  if (candidate == nullptr) return nullptr;
  UniqueFd dir = openNode(candidate);
  struct stat there;
  if (dir && ::fstatat(dir.get(), name.c_str(), &there, AT_SYMLINK_NOFOLLOW) == 0 && there.st_dev == st.st_dev &&
      there.st_ino == st.st_ino) {
    *parent = candidate;
  }
  return nullptr;
}

}  // namespace rnotify
