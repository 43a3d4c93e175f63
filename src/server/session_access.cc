// Session: what the client may see. Each event is judged as the client (may it
// list the directory the event happened in?), stat attachments are read from
// directories opened as the client, and a watch whose root the client can no
// longer reach is re-checked and revoked (docs/SECURITY.md, "Confinement" and
// "Revocation").
#include <sys/inotify.h>
#include <sys/stat.h>

#include <algorithm>
#include <cerrno>
#include <string>
#include <vector>

#include "common/log.h"
#include "proto/wire.h"
#include "server/server.h"
#include "server/session.h"

namespace rnotify {
namespace {

// Directory descriptors a session keeps for stat attachments (an openat2 per
// event was most of the cost of an event with stat).
constexpr size_t kMaxStatDirs = 64;

}  // namespace

int Session::openListingRoot(const WatchState& state) { return state.tree->openListing(client()); }

uint8_t Session::accessTo(SubscriptionId watch, WatchState& state, std::string_view dir, uint64_t dirIno) {
  dirKey_.assign(reinterpret_cast<const char*>(&watch), sizeof watch);
  dirKey_.append(dir);
  auto it = access_.find(dirKey_);
  if (it == access_.end() || (dirIno != 0 && it->second.ino != dirIno)) {
    if (access_.size() >= 4096) access_.clear();
    Access checked;
    checked.bits = state.tree->access(dir, client(), &checked.ino);
    const bool forbidden = checked.bits == 0 && errno == EACCES;
    if (forbidden) checked.ino = dirIno;  // later events of that directory: refused from the cache
    it = access_.insert_or_assign(dirKey_, checked).first;
    // The path names another directory now, or none: a rename came between
    // the event and this check. Judged by the path, the event could be
    // credited to a directory the client may list while it happened in one
    // it may not. (A refusal is a refusal, whatever the directory.)
    if (dirIno != 0 && checked.ino != dirIno && !forbidden) return kMoved;
  }
  return it->second.bits;
}

void Session::dropListability() {
  access_.clear();
  dropStatDirs();
}

void Session::dropStatDirs() {
  if (statDirs_ == 0) return;
  for (auto& [id, state] : watches_) state.dirs.clear();
  statDirs_ = 0;
}

void Session::attachStat(WatchState& state, std::string_view dir, std::string_view name) {
  scratch_.hasStat = false;
  // The directory is opened as the client, once, and the entry looked up in
  // it through that descriptor: the state is of an entry of a directory the
  // client could search when it was opened, never of what the same path
  // names after a rename or an exchange.
  dirKey_.assign(dir);
  auto it = state.dirs.find(dirKey_);
  // Its mode or owner changed since the check: check again, as the client.
  if (it != state.dirs.end() && ConfinedTree::changedSince(it->second.fd.get(), it->second.checked)) {
    state.dirs.erase(it);
    it = state.dirs.end();
  }
  if (it == state.dirs.end()) {
    if (statDirs_ >= kMaxStatDirs) dropStatDirs();
    WatchState::StatDir opened;
    opened.fd = state.tree->openDirAs(dir, client(), &opened.searchable, &opened.checked);
    if (!opened.fd) return;
    it = state.dirs.emplace(dirKey_, std::move(opened)).first;
    ++statDirs_;
  }
  // The root is kept only briefly, searchable or not: a descriptor held on
  // it defers its IN_DELETE_SELF until it is closed (subdirectories kept are
  // let go when they are removed or moved: dropStatDirs).
  if (dir.empty()) {
    it->second.used = std::chrono::steady_clock::now();
    if (!rootReleaseArmed_) armRootRelease(kRootHold);
  }
  if (!it->second.searchable) return;
  struct stat st;
  scratch_.hasStat = ConfinedTree::statAt(it->second.fd.get(), name, &st);
  if (scratch_.hasStat) scratch_.stat = eventStatOf(st);
}

void Session::armRootRelease(std::chrono::steady_clock::duration after) {
  rootReleaseArmed_ = true;
  rootRelease_.expires_after(after);
  rootRelease_.async_wait([weak = weak_from_this()](std::error_code ec) {
    auto self = weak.lock();
    if (ec || !self) return;
    self->rootReleaseArmed_ = false;
    if (self->closed_) return;
    const auto next = self->releaseIdleRoots();
    if (next != std::chrono::steady_clock::time_point::max()) {
      self->armRootRelease(next - std::chrono::steady_clock::now());
    }
  });
}

std::chrono::steady_clock::time_point Session::releaseIdleRoots() {
  const auto now = std::chrono::steady_clock::now();
  auto next = std::chrono::steady_clock::time_point::max();
  for (auto& [id, state] : watches_) {
    auto root = state.dirs.find(std::string());
    if (root == state.dirs.end()) continue;
    if (now - root->second.used >= kRootHold) {
      dropRoot(state);
    } else {
      next = std::min(next, root->second.used + kRootHold);
    }
  }
  return next;
}

void Session::dropRoot(WatchState& state) {
  if (state.dirs.erase(std::string()) != 0 && statDirs_ > 0) --statDirs_;
}

void Session::suspendForRecheck(SubscriptionId watch, uint32_t mask) {
  auto it = watches_.find(watch);
  if (closed_ || !actAs_ || it == watches_.end()) return;
  dropListability();
  WatchState& state = it->second;
  state.recheckMask |= mask;
  if (state.suspended) return;  // its re-check is on the way
  state.suspended = true;
  asio::post(server_.io(), [weak = weak_from_this(), watch] {
    if (auto self = weak.lock()) {
      self->recheckAccess(watch);
      self->flush();
    }
  });
}

void Session::releaseDeletedRoots(std::string_view name) {
  for (auto& [id, state] : watches_) {
    if (!state.tree) continue;
    if (!name.empty()) {
      // Only roots that had this name when watched (a renamed one waits
      // for the watchdog).
      const std::string& path = state.tree->path();
      if (path.size() <= name.size() || path.compare(path.size() - name.size(), name.size(), name) != 0 ||
          path[path.size() - name.size() - 1] != '/') {
        continue;
      }
    }
    // A descriptor kept for stat attachments holds its directory as well.
    std::erase_if(state.dirs, [](const auto& entry) {
      struct stat st;
      return ::fstat(entry.second.fd.get(), &st) != 0 || st.st_nlink == 0;
    });
  }
}

void Session::recheckAccess(SubscriptionId watch, bool ending) {
  auto it = watches_.find(watch);
  if (closed_ || !actAs_ || it == watches_.end()) return;
  dropListability();
  WatchState& state = it->second;
  const uint32_t mask = state.recheckMask;
  const bool heldBack = state.heldBack;
  std::vector<WatchState::Held> held = std::move(state.held);
  state.held.clear();
  held_ -= std::min(held_, held.size());
  state.recheckMask = 0;
  state.suspended = state.heldBack = false;
  const ConfinedTree& tree = *state.tree;
  std::string lost = tree.whyUnreachable(*actAs_);
  // Deleted (whyUnreachable passes it): its IN_DELETE_SELF and IN_IGNORED
  // end the watch; nothing to guard any more.
  const bool deleted = lost.empty() && !tree.openRoot();
  if (lost.empty() && !deleted && !ending && (mask & (IN_MOVE_SELF | IN_IGNORED | IN_Q_OVERFLOW))) {
    // Still reachable, maybe through other directories now: guard those.
    if (Status guarded = server_.guard().guard(watch, tree); !guarded) {
      lost = "it moved while it was being checked; watch it again";
    }
  }
  if (!lost.empty()) {
    revoke(watch, lost);
  } else if (deleted) {
    // Nothing below a deleted root opens, so the events of its entries can
    // no longer be judged (judged by path, each would look moved and suspend
    // the watch again, dropping the rest): only the root's own pass, its
    // IN_DELETE_SELF above all, which says that everything below is gone.
    replaying_ = true;
    for (const WatchState::Held& event : held) {
      if (event.dir.empty() && event.name.empty()) queueEvent(watch, event.mask, event.cookie, {}, {}, event.pid);
    }
    replaying_ = false;
  } else if (heldBack) {
    queueEvent(watch, IN_Q_OVERFLOW, 0, {}, {}, 0);  // what was held back is re-read
  } else {
    // They happened before this check: judged now, as the client, like any
    // event (one whose directory was renamed since suspends the watch again).
    replaying_ = true;
    for (const WatchState::Held& event : held) {
      queueEvent(watch, event.mask, event.cookie, event.dir, event.name, event.pid, event.dirIno);
    }
    replaying_ = false;
  }
}

void Session::holdBack(WatchState& state) {
  held_ -= std::min(held_, state.held.size());
  state.held.clear();
  state.heldBack = true;
}

bool Session::canHold() {
  if (held_ < kMaxHeld) return true;
  // Counted again (watches that ended or moved here took theirs along).
  held_ = 0;
  for (const auto& [id, state] : watches_) held_ += state.held.size();
  return held_ < kMaxHeld;
}

void Session::revoke(SubscriptionId watch, const std::string& why) {
  const std::string root = watches_.at(watch).root;
  log::info("{}: watch {} on '{}' ended: {}", description_, watch, root, why);
  server_.unwatch(watch);
  queueEvent(watch, IN_IGNORED, 0, {}, {}, 0);  // the last event of the watch
  // Unsolicited (request 0): tells the client why its watch ended.
  proto::Reply notice;
  notice.watchId = watch;
  notice.status = EACCES;
  notice.message = "watch " + std::to_string(watch) + " on '" + root + "' ended: " + why;
  send(notice);
}

}  // namespace rnotify
