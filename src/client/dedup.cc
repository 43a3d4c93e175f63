#include "client/dedup.h"

#include <sys/inotify.h>

#include <algorithm>
#include <iterator>

namespace rnotify {
namespace {

// Bits that make two reports "the same event". The cookie is left out: the
// local kernel and the server's kernel number renames independently.
constexpr uint32_t kKindBits = IN_ALL_EVENTS | IN_ISDIR;
constexpr uint32_t kUnpaired = IN_IGNORED | IN_Q_OVERFLOW | IN_UNMOUNT;
constexpr uint32_t kReadSide = IN_OPEN | IN_ACCESS | IN_CLOSE_NOWRITE;
// Kinds whose server copy can carry the entry's state.
constexpr uint32_t kStateKinds = IN_MODIFY | IN_ATTRIB | IN_CLOSE_WRITE;

bool sameState(const EventStat& mine, const EventStat& theirs) {
  // Seconds only: SFTP v3 carries whole seconds, so sshfs shows nothing finer.
  return mine.size == theirs.size && mine.mode == theirs.mode && mine.uid == theirs.uid && mine.gid == theirs.gid &&
         mine.mtimeSec == theirs.mtimeSec;
}

}  // namespace

Dedup::Entry Dedup::makeEntry(Role role, Clock::time_point due, std::string key, int wd) {
  Entry entry;
  entry.role = role;
  entry.due = due;
  entry.key = std::move(key);
  entry.wd = wd;
  return entry;
}

const char* Dedup::name(Strategy strategy) {
  switch (strategy) {
    case Strategy::kOrigin:
      return "origin attribution";
    case Strategy::kState:
      return "state comparison";
    case Strategy::kEcho:
      return "echo matching";
    case Strategy::kPolled:
      return "matching scans with this host's changes";
    case Strategy::kNone:
      break;
  }
  return "no de-duplication";
}

bool Dedup::pairable(uint32_t mask) { return (mask & kUnpaired) == 0 && (mask & IN_ALL_EVENTS) != 0; }
bool Dedup::readSide(uint32_t mask) { return (mask & kReadSide) != 0; }

uint32_t Dedup::polledKind(uint32_t mask) {
  // IN_ISDIR left out: SMB2 change notify does not say whether an entry is a directory.
  uint32_t kind = 0;
  if (mask & (IN_DELETE | IN_MOVED_FROM)) return kind | IN_DELETE;
  if (mask & (IN_CREATE | IN_MOVED_TO)) return kind | IN_CREATE;
  if (mask & (IN_MODIFY | IN_ATTRIB | IN_CLOSE_WRITE)) return kind | IN_MODIFY;
  return mask & kKindBits;
}

void Dedup::localPolled(int wd, uint32_t mask, uint32_t cookie, std::string_view dir, std::string_view name,
                        Clock::time_point now) {
  lastHeld_ = nullptr;
  emit_(wd, mask, cookie, 0, dir, name);
  // A scan never sees reads, nor the DELETE_SELF/MOVE_SELF of its root as such.
  if (readSide(mask) || (mask & (IN_DELETE_SELF | IN_MOVE_SELF))) return;
  trim(polled_, now, false);
  std::string key = keyOf(wd, polledKind(mask), dir, name);
  if (Entry* early = find(key, Role::kDeliveredRemote)) {
    retire(*early);  // the scan reported it first
    ++absorbed_;
    return;
  }
  remember(polled_, makeEntry(Role::kDeliveredLocal, now + options_.polledWindow, std::move(key), wd));
  trim(polled_, now, false);
}

void Dedup::remotePolled(int wd, const Event& event, Clock::time_point now) {
  uint32_t mask = event.mask & ~kInRemote;
  trim(polled_, now, false);  // what is past its window matches nothing
  std::string key = keyOf(wd, polledKind(mask), event.dir, event.name);
  if (Entry* mine = find(key, Role::kDeliveredLocal)) {
    retire(*mine);  // this host's own change, seen again by the scan
    ++absorbed_;
    return;
  }
  emit_(wd, mask | kInRemote, event.cookie, event.seq, event.dir, event.name);
  remember(polled_, makeEntry(Role::kDeliveredRemote, now + options_.polledWindow, std::move(key), wd));
  trim(polled_, now, false);
}

std::string Dedup::keyOf(int wd, uint32_t mask, std::string_view dir, std::string_view name) {
  std::string key;
  key.reserve(24 + dir.size() + name.size());
  key.append(std::to_string(wd)).push_back(':');
  key.append(std::to_string(mask & kKindBits)).push_back(':');
  key.append(dir).push_back('/');
  key.append(name);
  return key;
}

void Dedup::setStrategy(int wd, Strategy strategy) {
  if (this->strategy(wd) == strategy) return;
  forget(wd);
  strategies_[wd] = strategy;
}

Dedup::Strategy Dedup::strategy(int wd) const {
  auto it = strategies_.find(wd);
  return it == strategies_.end() ? Strategy::kNone : it->second;
}

Dedup::Entry* Dedup::find(const std::string& key, Role role) {
  Entry* best = nullptr;
  auto [lo, hi] = byKey_.equal_range(key);
  for (auto it = lo; it != hi; ++it) {
    Entry* e = it->second;
    // Entries of one role are queued in arrival order, so the oldest has the earliest due time.
    if (e->role == role && (best == nullptr || e->order < best->order)) best = e;
  }
  return best;
}

void Dedup::remember(Queue& queue, Entry entry) {
  entry.order = nextOrder_++;
  queue.push_back(std::move(entry));
  Entry* stored = &queue.back();
  byKey_.emplace(stored->key, stored);
  if (stored->role == Role::kHeldRemote) {
    ++heldRemoteCount_;
  } else if (stored->role == Role::kHeldLocal) {
    ++heldCount_;
  } else {
    ++rememberedCount_;
  }
}

void Dedup::retire(Entry& entry) {
  if (!entry.live) return;
  entry.live = false;
  auto [lo, hi] = byKey_.equal_range(entry.key);
  for (auto it = lo; it != hi; ++it) {
    if (it->second == &entry) {
      byKey_.erase(it);
      break;
    }
  }
  if (entry.role == Role::kHeldRemote) {
    --heldRemoteCount_;
  } else if (entry.role == Role::kHeldLocal) {
    --heldCount_;
  } else {
    --rememberedCount_;
  }
  if (lastHeld_ == &entry) lastHeld_ = nullptr;
}

void Dedup::deliverHeld(Entry& entry, Clock::time_point now) {
  // Its echo did not come in time: deliver it as this host's, and let it
  // still absorb the echo if that arrives within the window.
  Entry delivered = makeEntry(Role::kDeliveredLocal, now + options_.window, entry.key, entry.wd);
  retire(entry);
  emit_(entry.wd, entry.mask, entry.cookie, 0, entry.dir, entry.name);
  remember(delivered_, std::move(delivered));
}

void Dedup::trim(Queue& queue, Clock::time_point now, bool isHeld) {
  while (!queue.empty()) {
    Entry& front = queue.front();
    if (front.live) {
      bool over = (isHeld ? heldCount_ : rememberedCount_) > options_.maxPending;
      if (front.due > now && !over) break;
      if (isHeld) {
        deliverHeld(front, now);
      } else {
        retire(front);
      }
    }
    queue.pop_front();
  }
}

void Dedup::release(Clock::time_point now) {
  // Held local reports and held server copies whose hold has ended, in the
  // order their holds end (a caller that comes late gets them in that order).
  for (;;) {
    int wd = 0;
    Clock::time_point remoteDue = Clock::time_point::max();
    for (const auto& [w, queue] : heldRemote_) {
      if (queue.empty()) continue;
      const Clock::time_point due = queue.front().ready ? Clock::time_point::min() : queue.front().due;
      if (due < remoteDue) {
        remoteDue = due;
        wd = w;
      }
    }
    Clock::time_point localDue = Clock::time_point::max();
    for (const Entry& e : held_) {
      if (e.live) {
        localDue = e.due;
        break;
      }
    }
    if (remoteDue <= localDue) {
      if (remoteDue > now) break;
      releaseRemote(wd, remoteDue, now);
    } else {
      if (localDue > now) break;
      trim(held_, localDue, true);
    }
  }
  trim(held_, now, true);  // the bound
  trim(delivered_, now, false);
  trim(polled_, now, false);
  for (auto it = heldRemote_.begin(); it != heldRemote_.end();) {
    it = it->second.empty() ? heldRemote_.erase(it) : std::next(it);
  }
}

Dedup::Clock::time_point Dedup::nextRelease() const {
  Clock::time_point due = Clock::time_point::max();
  for (const Entry& e : held_) {
    if (e.live) {
      due = e.due;
      break;
    }
  }
  // The head of each watch's queue decides when the queue moves.
  for (const auto& [wd, queue] : heldRemote_) {
    if (!queue.empty()) due = std::min(due, queue.front().ready ? Clock::time_point::min() : queue.front().due);
  }
  return due;
}

void Dedup::queueRemote(int wd, const Event& event, uint32_t mask, Clock::time_point due, bool ready, bool asRemote,
                        std::string key, Clock::time_point now) {
  Queue& queue = heldRemote_[wd];
  // Behind a held report, one waits as long: its twin may come as late.
  if (!queue.empty()) due = std::max(due, queue.back().due);
  Entry entry = makeEntry(Role::kHeldRemote, due, std::move(key), wd);
  entry.mask = mask;
  entry.cookie = event.cookie;
  entry.seq = event.seq;
  entry.dir = event.dir;
  entry.name = event.name;
  entry.hasStat = event.hasStat;
  entry.stat = event.stat;
  entry.ready = ready;
  entry.asRemote = asRemote;
  if (ready) {
    entry.live = false;  // nothing left to pair: it only keeps its place
    entry.order = nextOrder_++;
    queue.push_back(std::move(entry));
  } else {
    remember(queue, std::move(entry));
  }
  // The bound: past it, this watch's copies wait no longer.
  releaseRemote(wd, now, now, heldRemoteCount_ > options_.maxPending);
}

void Dedup::deliverRemote(Entry& entry, Clock::time_point now) {
  if (entry.live) {
    // Its hold ended without a local twin: another host's change (or one of
    // this host's whose report is later still, which it then absorbs).
    retire(entry);
    emit_(entry.wd, entry.mask | kInRemote, entry.cookie, entry.seq, entry.dir, entry.name);
    remember(delivered_, makeEntry(Role::kDeliveredRemote, now + options_.window, entry.key, entry.wd));
    return;
  }
  emit_(entry.wd, entry.asRemote ? entry.mask | kInRemote : entry.mask, entry.cookie, entry.seq, entry.dir, entry.name);
}

void Dedup::releaseRemote(int wd, Clock::time_point until, Clock::time_point now, bool all) {
  auto it = heldRemote_.find(wd);
  if (it == heldRemote_.end()) return;
  Queue& queue = it->second;
  while (!queue.empty()) {
    Entry& head = queue.front();
    if (!all && !head.ready && head.due > until) break;
    deliverRemote(head, now);
    queue.pop_front();
  }
}

void Dedup::forget(int wd) {
  // Held reports are delivered (in order), never dropped.
  if (auto it = heldRemote_.find(wd); it != heldRemote_.end()) {
    const Clock::time_point now = Clock::now();
    releaseRemote(wd, now, now, /*all=*/true);
    heldRemote_.erase(it);
  }
  for (Entry& e : held_) {
    if (e.live && e.wd == wd) {
      retire(e);
      emit_(e.wd, e.mask, e.cookie, 0, e.dir, e.name);
    }
  }
  for (Entry& e : polled_) {
    if (e.live && e.wd == wd) retire(e);
  }
  for (Entry& e : delivered_) {
    if (e.live && e.wd == wd) retire(e);
  }
  strategies_.erase(wd);
}

void Dedup::local(int wd, uint32_t mask, uint32_t cookie, std::string_view dir, std::string_view name,
                  const EventStat* stat, Clock::time_point now) {
  Strategy s = strategy(wd);
  if (s == Strategy::kNone || !pairable(mask)) {
    lastHeld_ = nullptr;
    emit_(wd, mask, cookie, 0, dir, name);
    return;
  }
  if (s == Strategy::kPolled) {
    localPolled(wd, mask, cookie, dir, name, now);
    return;
  }
  if (s == Strategy::kOrigin) {
    // The server's attributed copy is delivered instead; reads may never reach it.
    if (readSide(mask)) emit_(wd, mask, cookie, 0, dir, name);
    return;
  }
  release(now);
  std::string key = keyOf(wd, mask, dir, name);
  if (Entry* early = find(key, Role::kHeldRemote)) {
    // The server's copy came first and waits for this: this host's change,
    // delivered at the copy's place in the server's order.
    early->asRemote = s == Strategy::kState && stat != nullptr && early->hasStat && (mask & kStateKinds) &&
                      !sameState(*stat, early->stat);
    retire(*early);
    early->ready = true;
    ++paired_;
    lastHeld_ = nullptr;
    releaseRemote(wd, now, now);
    return;
  }
  if (Entry* early = find(key, Role::kDeliveredRemote)) {
    retire(*early);  // the server's copy came first and was delivered
    ++absorbed_;
    lastHeld_ = nullptr;
    return;
  }
  if (readSide(mask)) {
    // Not held: the server may never see a read this host's cache served.
    lastHeld_ = nullptr;
    emit_(wd, mask, cookie, 0, dir, name);
    remember(delivered_, makeEntry(Role::kDeliveredLocal, now + options_.window, std::move(key), wd));
    return;
  }
  if (lastHeld_ != nullptr && lastHeld_->live && lastHeld_->key == key) {
    ++absorbed_;  // the kernel would have merged it into the previous one, had that been unread
    return;
  }
  Entry entry = makeEntry(Role::kHeldLocal, now + options_.hold, std::move(key), wd);
  entry.mask = mask;
  entry.cookie = cookie;
  entry.dir.assign(dir);
  entry.name.assign(name);
  if (stat != nullptr && s == Strategy::kState) {
    entry.hasStat = true;
    entry.stat = *stat;
  }
  remember(held_, std::move(entry));
  lastHeld_ = &held_.back();
  trim(held_, now, true);  // keeps the bound
}

void Dedup::followRename(int wd, const Event& event) {
  const uint32_t mask = event.mask & ~kInRemote;
  if ((mask & IN_MOVED_FROM) && event.cookie != 0) {
    if (renames_.size() >= 64) renames_.clear();  // their MOVED_TO never came: moved out of the watch
    renames_[event.cookie] = {event.dir, event.name};
    return;
  }
  if (!(mask & IN_MOVED_TO) || event.cookie == 0) return;
  auto from = renames_.find(event.cookie);
  if (from == renames_.end()) return;
  const auto [oldDir, oldName] = std::move(from->second);
  renames_.erase(from);
  if (heldCount_ == 0) return;
  // A local report still held when the server renames its entry belongs to
  // an operation the server applied after the rename (had it come before, its
  // copy would have arrived first), so the server reports it under the new
  // name: sshfs sends a file's close after someone else renamed it, for one.
  const std::string oldPath = oldDir.empty() ? oldName : oldDir + "/" + oldName;
  const std::string newPath = event.dir.empty() ? event.name : event.dir + "/" + event.name;
  for (Entry& e : held_) {
    if (!e.live || e.wd != wd) continue;
    std::string path = e.dir.empty() ? e.name : e.dir + "/" + e.name;
    if (path == oldPath && !(e.mask & (IN_MOVED_FROM | IN_MOVED_TO | IN_CREATE | IN_DELETE))) {
      e.dir = event.dir;
      e.name = event.name;
    } else if ((mask & IN_ISDIR) && path.size() > oldPath.size() && path.compare(0, oldPath.size(), oldPath) == 0 &&
               path[oldPath.size()] == '/') {
      std::string moved = newPath + path.substr(oldPath.size());
      size_t slash = moved.rfind('/');
      e.dir = moved.substr(0, slash);
      e.name = moved.substr(slash + 1);
    } else {
      continue;
    }
    // Re-file it under its new key.
    auto [lo, hi] = byKey_.equal_range(e.key);
    for (auto it = lo; it != hi; ++it) {
      if (it->second == &e) {
        byKey_.erase(it);
        break;
      }
    }
    e.key = keyOf(e.wd, e.mask, e.dir, e.name);
    byKey_.emplace(e.key, &e);
  }
}

void Dedup::remote(int wd, const Event& event, Clock::time_point now, bool mayBeOwn) {
  Strategy s = strategy(wd);
  uint32_t mask = event.mask & ~kInRemote;
  // Whether server reports of this watch are held: this one queues behind them.
  auto behind = [this, wd] {
    auto queued = heldRemote_.find(wd);
    return queued != heldRemote_.end() && !queued->second.empty();
  };
  if (mask & IN_Q_OVERFLOW) {
    // The watch is re-read next, and what the listing finds is delivered
    // as it comes: what waits here goes first, as it is.
    releaseRemote(wd, now, now, /*all=*/true);
  }
  if (s == Strategy::kNone || !pairable(mask)) {
    if (behind()) {
      queueRemote(wd, event, mask, now, /*ready=*/true, /*asRemote=*/true, {}, now);
      return;
    }
    emit_(wd, mask | kInRemote, event.cookie, event.seq, event.dir, event.name);
    return;
  }
  if (s == Strategy::kPolled) {
    remotePolled(wd, event, now);
    return;
  }
  if (s == Strategy::kOrigin) {
    if (event.origin == Origin::kSelf) {
      if (!readSide(mask)) emit_(wd, mask, event.cookie, event.seq, event.dir, event.name);
      return;
    }
    emit_(wd, mask | kInRemote, event.cookie, event.seq, event.dir, event.name);
    return;
  }
  release(now);
  followRename(wd, event);
  std::string key = keyOf(wd, mask, event.dir, event.name);
  if (Entry* mine = find(key, Role::kHeldLocal)) {
    // This host's change: delivered once, at its place in the server's order.
    bool someoneElse = s == Strategy::kState && mine->hasStat && event.hasStat && (mask & kStateKinds) &&
                       !sameState(mine->stat, event.stat);
    retire(*mine);
    ++paired_;
    if (behind()) {
      queueRemote(wd, event, mask, now, /*ready=*/true, someoneElse, {}, now);
      return;
    }
    emit_(wd, someoneElse ? mask | kInRemote : mask, event.cookie, event.seq, event.dir, event.name);
    return;
  }
  if (Entry* mine = find(key, Role::kDeliveredLocal)) {
    retire(*mine);  // the echo of a change delivered when its hold ended
    ++absorbed_;
    return;
  }
  if (mayBeOwn || behind()) {
    // Waits for a local twin (mayBeOwn), or behind one that does.
    queueRemote(wd, event, mask, mayBeOwn ? now + options_.hold : now, /*ready=*/false,
                /*asRemote=*/true, std::move(key), now);
    return;
  }
  emit_(wd, mask | kInRemote, event.cookie, event.seq, event.dir, event.name);
  remember(delivered_, makeEntry(Role::kDeliveredRemote, now + options_.window, std::move(key), wd));
  trim(delivered_, now, false);
}

}  // namespace rnotify
