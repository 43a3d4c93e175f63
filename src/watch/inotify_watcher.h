// InotifyWatcher: the inotify backend. One inotify instance; one kernel watch
// per directory, shared by every subscription that covers that directory
// (the kernel mask is the union of what they want). Recursive subscriptions
// follow the tree: a new directory gets its watch and is then read, and what
// was already inside is reported as CREATE events, so that `mkdir -p a/b/c &&
// touch a/b/c/f` loses nothing. Events are handed to the sink in the kernel's
// order, once per interested subscription, with the directory relative to that
// subscription's root.
//
// With a PidProbe, events carry the acting pid too ("inotify+pids"); the
// stream itself is the same, event for event.
//
// The tree is reached only through descriptors (confined_open.h): each
// subscription root has an anchor; every other directory is opened from the
// nearest anchor above it by the names the watcher knows, and the kernel
// watch is placed through that descriptor, so that a directory renamed and
// replaced by a symbolic link while the watcher lags leads nowhere. An
// anchor's descriptor is kept open only during one call (subscribe,
// unsubscribe, drain), so that the deletion of a root is reported at once.
#pragma once

#include <sys/stat.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <unordered_set>
#include <utility>
#include <vector>

#include "common/unique_fd.h"
#include "watch/confined_open.h"
#include "watch/flat_index.h"
#include "watch/pid_probe.h"
#include "watch/watcher.h"

namespace rnotify {

class InotifyWatcher final : public Watcher {
 public:
  // probe: where pids come from (null: every pid is 0).
  static Result<std::unique_ptr<Watcher>> create(EventSink& sink, std::unique_ptr<PidProbe> probe = nullptr);
  ~InotifyWatcher() override;

  int fd() const override { return fd_.get(); }
  Result<SubscriptionId> subscribe(const std::string& path, const SubscribeOptions& options) override;
  void unsubscribe(SubscriptionId id) override;
  void drain() override;
  size_t kernelWatchCount() const override { return nodes_.size(); }
  std::string_view name() const override { return probe_ ? "inotify+pids" : "inotify"; }
  // When the probe could mark the subscription's root (directories made
  // later are marked as they are watched).
  bool reportsPids(SubscriptionId id) const override;

 private:
  struct Subscription;
  // One kernel watch. A million of them are kept (~110 bytes each with the
  // indexes below), so a node holds only its name: paths are built when
  // needed by walking up. Children are an intrusive list (for walks) and
  // entries of children_ (for lookups by name); subscriptions rooted here and
  // synthesized names live in maps of their own, for the few nodes that have them.
  struct Node {
    int wd = -1;
    uint32_t bits = 0;
    uint64_t ino = 0;  // the directory's inode (its events are checked against it downstream)  // the kernel mask, the
                       // IN_ONLYDIR/IN_DONT_FOLLOW/IN_EXCL_UNLINK flags, kRootedBit
    Node* parent = nullptr;
    Node* firstChild = nullptr;
    Node* next = nullptr;  // siblings
    Node* prev = nullptr;
    std::string name;   // in its parent; a node without a parent (a root): its absolute path
    int removedBy = 0;  // the pid of its parent's IN_DELETE of it (its own IN_DELETE_SELF may come later)
  };
  struct Subscription {
    SubscriptionId id = 0;
    Node* root = nullptr;
    uint32_t mask = 0;
    bool recursive = false;
    bool pids = false;
  };
  struct ByWd {
    static size_t hash(const Node* n) { return hashKey(n->wd); }
    static size_t hashKey(int wd) { return mixHash(static_cast<uint32_t>(wd)); }
    static bool matches(const Node* n, int wd) { return n->wd == wd; }
  };
  struct ChildKey {
    const Node* parent;
    std::string_view name;
  };
  struct ByParentAndName {
    static size_t hash(const Node* n) { return hashKey(ChildKey{n->parent, n->name}); }
    static size_t hashKey(const ChildKey& k) {
      return mixHash(reinterpret_cast<uintptr_t>(k.parent) ^ std::hash<std::string_view>{}(k.name));
    }
    static bool matches(const Node* n, const ChildKey& k) { return n->parent == k.parent && n->name == k.name; }
  };

  InotifyWatcher(UniqueFd fd, EventSink& sink, std::unique_ptr<PidProbe> probe)
      : fd_(std::move(fd)), sink_(sink), probe_(std::move(probe)) {}

  using Entries = std::vector<std::pair<std::string, bool>>;  // name, is a directory

  // The watch on the object open on objectFd; path names it in messages.
  // pids: mark the new watch's directory for the probe.
  Result<Node*> addNode(int objectFd, const std::string& path, Node* parent, std::string_view name, uint32_t mask,
                        uint32_t flags, bool pids);
  // The node that already watches the object st describes at path, if the
  // tree has one there; else null, with *parent set to the node of the
  // directory that holds it, if the tree has that.
  Node* existingNode(const std::string& path, const struct stat& st, Node** parent) const;
  Status walkExisting(Node* root);
  void addNewDirectory(Node* parent, std::string_view name);
  void scanNewDirectory(Node* node, const Entries& entries);
  // Union of the masks of recursive subscriptions at node and above; 0 when
  // no recursive subscription covers node.
  uint32_t inheritedMask(const Node* node) const;
  uint32_t wantedMask(const Node* node) const;
  // Whether a recursive subscription at node or above wants pids; with
  // `rooted`, any subscription at node too.
  bool wantsPids(const Node* node, bool rooted) const;
  bool isNeeded(const Node* node) const;
  void refreshMask(Node* node);
  void refreshSubtree(Node* root);
  void pruneSubtree(Node* node);
  void removeNode(Node* node, bool removeKernelWatch);
  void process(int wd, uint32_t mask, uint32_t cookie, std::string_view name);
  int pidOf(Node* node, uint32_t mask, std::string_view name);
  void deliver(Node* node, uint32_t mask, uint32_t cookie, std::string_view name, int pid);
  void endSubscriptionsAt(Node* node);
  void finishDrain();
  void settleMovedAway();  // prunes every directory in movedAway_
  void forgetAnchor(const Node* node);
  // Closes the anchors opened during a call, when the call returns.
  struct AnchorsOpenForCall {
    const InotifyWatcher& watcher;
    ~AnchorsOpenForCall() { watcher.openAnchors_.clear(); }
  };

  // The tree of nodes.
  // An O_PATH descriptor of the node's object, opened from the nearest
  // anchor at or above it; invalid (errno set) where it is not reachable.
  // crossMounts: whether directories below may be on other mounts (from the
  // anchor used).
  UniqueFd openNode(const Node* node, bool* crossMounts = nullptr) const;
  // The names from top (an ancestor of node) down to node: "b/c" below a.
  static std::string relativePath(const Node* node, const Node* top);
  std::string pathOf(const Node* node) const;
  Node* findNode(const std::string& path) const;  // by absolute path
  Node* child(const Node* parent, std::string_view name) const { return children_.find(ChildKey{parent, name}); }
  std::vector<Node*> childrenOf(const Node* node) const;
  void attach(Node* node, Node* parent, std::string_view name);  // node has no parent
  // From its parent; the node keeps its absolute path as its name.
  void detach(Node* node);
  // From its parent, name unchanged (the node is going).
  void unlink(Node* node);
  const std::vector<Subscription*>* rootedAt(const Node* node) const;

  UniqueFd fd_;
  EventSink& sink_;
  std::unique_ptr<PidProbe> probe_;
  FlatIndex<Node, ByWd> nodes_;  // owns the nodes
  FlatIndex<Node, ByParentAndName> children_;
  std::unordered_map<const Node*, std::vector<Subscription*>> rooted_;  // nodes with kRootedBit
  // The anchors: one per node with subscriptions rooted there, never per
  // node (a million nodes must stay small, and the descriptors few).
  std::unordered_map<const Node*, Anchor> anchors_;
  // Anchors opened during the current call (invalid: did not open); closed
  // when it returns.
  mutable std::unordered_map<const Node*, UniqueFd> openAnchors_;
  std::unordered_map<SubscriptionId, std::unique_ptr<Subscription>> subscriptions_;
  // A directory's MOVED_FROM, by cookie, until its MOVED_TO (moved inside the
  // tree) or its MOVE_SELF (moved out of it) is read.
  std::unordered_map<uint32_t, Node*> movedAway_;
  // Names reported by reading a new directory: the kernel may report the
  // same creations again (they happened after the watch was added but before
  // the read). Cleared once the kernel queue has been drained empty.
  std::unordered_map<const Node*, std::unordered_set<std::string>> synthesized_;
  std::vector<const Node*> chain_;  // deliver()'s scratch: node and its ancestors
  std::vector<size_t> offsets_;
  std::string pathScratch_;
  SubscriptionId nextId_ = 1;
  bool walking_ = false;  // rnotify is reading a tree: kernel masks leave out read-side events
};

}  // namespace rnotify
