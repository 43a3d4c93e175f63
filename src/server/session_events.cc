// Session: events out. Queued into EVENTS frames as they are judged, sent
// after each drain of the watcher, with the queued-output bound (shedding to
// IN_Q_OVERFLOW) and the journal for resumption.
#include <sys/inotify.h>

#include <algorithm>
#include <string>

#include "common/log.h"
#include "proto/wire.h"
#include "server/server.h"
#include "server/session.h"

namespace rnotify {
namespace {

// Events that change nothing: no stat attachment.
constexpr uint32_t kReadSide = IN_OPEN | IN_ACCESS | IN_CLOSE_NOWRITE;
// Room left in an EVENTS frame for one more record of the largest size.
constexpr size_t kRecordReserve = 2 + 4 + 8 + 4 + 4 + 2 + proto::kMaxPath + 2 + proto::kMaxName + 2 + 40;

}  // namespace

void Session::queueEvent(SubscriptionId watch, uint32_t mask, uint32_t cookie, std::string_view dir,
                         std::string_view name, int pid, uint64_t dirIno) {
  if (closed_) return;
  auto it = watches_.find(watch);
  if (it == watches_.end()) return;
  // The watch ends while a re-check of its root is pending (the root was
  // removed: the guard's own watch of it saw IN_DELETE_SELF and suspended
  // the watch): settle it now, so that what it holds, the root's
  // IN_DELETE_SELF above all, comes before the end instead of being dropped
  // with the watch.
  if (actAs_ && (mask & IN_IGNORED) && dir.empty() && it->second.suspended && !replaying_) {
    recheckAccess(watch, true);
    it = watches_.find(watch);
    if (it == watches_.end()) return;  // revoked, with its own IN_IGNORED
  }
  WatchState& state = it->second;
  // A directory's permissions may have changed, or its name may now be
  // another's: ask the kernel again, open again.
  if ((mask & IN_ISDIR) && (mask & (IN_ATTRIB | IN_MOVE | IN_MOVE_SELF))) dropListability();
  // The root itself moved or changed: its kept descriptor (see kRootHold)
  // is opened again, by its path, as the client. (Its IN_DELETE_SELF comes
  // only once that descriptor is closed.)
  if (dir.empty() && name.empty() && (mask & (IN_ATTRIB | IN_MOVE_SELF))) dropRoot(state);
  if ((mask & IN_ISDIR) && (mask & IN_DELETE)) {
    dropStatDirs();
    // A directory removed: if it is also the root of one of this client's
    // watches, let go of it now, so that its IN_DELETE_SELF comes at once.
    if (!name.empty()) releaseDeletedRoots(name);
  }
  if (actAs_ && !(mask & (IN_IGNORED | IN_Q_OVERFLOW))) {
    if (state.suspended) {
      // The root's own end is kept even past the limit: once the root is
      // found deleted, it is what the re-check passes (see recheckAccess).
      const bool rootsEnd = (mask & IN_DELETE_SELF) && dir.empty() && name.empty();
      if (state.heldBack && !rootsEnd) return;
      if (!canHold() && !rootsEnd) {
        holdBack(state);
        return;
      }
      state.held.push_back({mask, cookie, pid, dirIno, std::string(dir), std::string(name)});
      ++held_;
      return;
    }
    // A subdirectory's own deletion: it no longer opens (judged by it, it
    // would look moved away, and the watch be re-read); whoever could list
    // the directory that held it sees it go.
    const bool subdirectoryEnd = (mask & IN_DELETE_SELF) && !dir.empty() && name.empty();
    // The root's own deletion needs no check (it no longer opens); anything
    // else of a root that does not open is held back (see accessTo).
    if (subdirectoryEnd) {
      const size_t slash = dir.rfind('/');
      const std::string_view parent = slash == std::string_view::npos ? std::string_view{} : dir.substr(0, slash);
      if (!(accessTo(watch, state, parent, 0) & ConfinedTree::kList)) return;
    } else if (!(mask & IN_DELETE_SELF) || !dir.empty() || !name.empty()) {
      // The root's own permissions or place changed: may the client still
      // reach it? Nothing more until the re-check after this drain.
      // (Not for one the re-check that lets it through already saw.)
      if (dir.empty() && name.empty() && (mask & (IN_ATTRIB | IN_MOVE_SELF)) && !replaying_) {
        suspendForRecheck(watch, mask);
      }
      const uint8_t access = accessTo(watch, state, dir, dirIno);
      if (access & kMoved) {
        // Held back with what follows until the tree has settled (after this
        // drain); the client then re-reads the watch (IN_Q_OVERFLOW).
        suspendForRecheck(watch, 0);
        holdBack(state);
        return;
      }
      if (!(access & ConfinedTree::kList)) return;
    }
    // Only there to see permission changes.
    if ((mask & IN_ALL_EVENTS) != 0 && (mask & IN_ALL_EVENTS & state.mask) == 0) return;
  }
  if (shedding_ && !(mask & IN_IGNORED)) {
    overflowed_.insert(watch);
    ++shed_;
    return;
  }
  scratch_.origin = Origin::kUnknown;
  if ((state.flags & kOriginFlags) && pid > 0) {
    const std::string& key = server_.origins().keyOf(pid);
    scratch_.origin = isOwn(key) ? Origin::kSelf : Origin::kOther;
    if (scratch_.origin == Origin::kSelf && (state.flags & proto::kWatchOthersOnly)) return;
  }
  if ((state.flags & kOriginFlags) && scratch_.origin != Origin::kSelf && log::level() <= log::Level::kDebug) {
    log::debug("{}: event 0x{:x} on '{}' '{}' by pid {}: {}", description_, mask, dir, name, pid,
               pid > 0 ? "'" + server_.origins().keyOf(pid) + "'" : std::string("no pid"));
  }
  scratch_.hasStat = false;
  // Not on read-side events: they change no state, and the daemon's own
  // look at a directory is one on kernels without the 2024 fsnotify fix
  // (6.10, stable 6.1), which report even O_PATH opens and closes: a stat
  // attachment there would open again, an event again, without end.
  // Nor on a directory's own end: it is gone (a new one of that name is
  // another, and a descriptor kept on it would defer its own end).
  if ((state.flags & proto::kWatchStat) && !(mask & (IN_IGNORED | IN_Q_OVERFLOW | IN_DELETE_SELF | kReadSide))) {
    attachStat(state, dir, name);
  }
  if (!batchOpen_) {
    batchStart_ = proto::beginEvents(pending_);
    batchCount_ = 0;
    batchOpen_ = true;
    server_.markDirty(*this);
  }
  scratch_.watch = watch;
  scratch_.seq = ++state.seq;
  scratch_.mask = mask;
  scratch_.cookie = cookie;
  scratch_.dir.assign(dir);
  scratch_.name.assign(name);
  const size_t recordStart = pending_.size();
  proto::appendEvent(pending_, scratch_);
  ++batchCount_;
  if (journal_) journal_->append(watch, scratch_.seq, std::string_view(pending_).substr(recordStart));
  if ((mask & IN_IGNORED) && dir.empty()) {
    watches_.erase(it);
    if (journal_) journal_->ended(watch);
  }
  if (pending_.size() - batchStart_ + kRecordReserve > server_.limits().maxFrame) {
    closeBatch();
    batchStart_ = proto::beginEvents(pending_);
    batchCount_ = 0;
    batchOpen_ = true;
  }
}

void Session::endShedding() {
  shedding_ = false;
  log::warn("{}: caught up; {} events were dropped on {} watches, which are told to re-read", description_, shed_,
            overflowed_.size());
  for (SubscriptionId watch : overflowed_) queueEvent(watch, IN_Q_OVERFLOW, 0, {}, {}, 0);
  overflowed_.clear();
  shed_ = 0;
  closeBatch();
}

void Session::closeBatch() {
  if (!batchOpen_) return;
  batchOpen_ = false;
  if (batchCount_ == 0) {
    pending_.resize(batchStart_);
  } else {
    proto::finishEvents(pending_, batchStart_, batchCount_);
  }
}

void Session::flush() {
  if (closed_) return;
  closeBatch();
  if (parked_) {
    pending_.clear();  // nobody to send to; the journal has the events
    return;
  }
  if (!shedding_ && pending_.size() > server_.limits().maxQueuedBytesPerClient) {
    // Never block the loop and never grow without bound: drop this client's
    // events from here on and tell it which watches lost some once it has
    // caught up, so that it re-reads them.
    log::warn("{}: client is not reading ({} bytes queued); dropping its events until it catches up", description_,
              pending_.size());
    shedding_ = true;
  }
  startWrite();
}

void Session::send(const proto::Message& message) {
  if (closed_) return;
  closeBatch();
  proto::encode(message, pending_);
  startWrite();
}

void Session::startWrite() {
  if (writeInFlight_ || batchOpen_ || pending_.empty() || parked_) return;
  writing_.swap(pending_);
  pending_.clear();
  writeInFlight_ = true;
  transport_->asyncWrite(asio::buffer(writing_), [self = shared_from_this()](std::error_code ec, size_t) {
    self->writeInFlight_ = false;
    self->writing_.clear();
    if (self->parked_) return;
    if (ec) {
      if (!self->closed_) log::info("{}: write failed: {}", self->description_, ec.message());
      self->closeAfterWrite_ = false;
      if (!self->closed_) self->lost();
      self->transport_->close();
      return;
    }
    if (self->closeAfterWrite_ && self->pending_.empty()) {
      self->transport_->close();
      return;
    }
    if (self->shedding_ && self->pending_.empty()) self->endShedding();
    self->startWrite();
    if (self->closed_ || self->unwritten() > self->server_.limits().maxUnreadReplies / 2) return;
    if (self->walkWaitsForWrite_) {
      self->walkWaitsForWrite_ = false;
      self->postWalk();
    }
    if (self->readPaused_) {
      self->readPaused_ = false;
      self->takeFrames();  // those already received first
      self->readMore();
    }
  });
}

}  // namespace rnotify
