// Session: Snapshot requests (docs/PROTOCOL.md 4.5b). A listing may cover a
// large tree, and the loop serves every client: a session lists one snapshot
// at a time, a chunk of entries per turn of the loop (asio::post, so other
// clients' work runs in between), and stops producing while its output not
// yet written is over the cap (maxUnreadReplies), resuming when the writes
// drain. Further Snapshot requests wait in a short queue; past it they are
// refused (EBUSY). The walk runs as the client around each chunk only: the
// thread's filesystem identity is never left switched across turns.
#include <fcntl.h>

#include <cstring>
#include <optional>

#include "common/log.h"
#include "proto/wire.h"
#include "server/server.h"
#include "server/session.h"

namespace rnotify {
namespace {

// Directory entries read per turn of the loop: about 50 µs of work each
// (readdir, fstatat), so a chunk keeps other clients waiting a few ms at most.
constexpr size_t kWalkChunk = 512;

}  // namespace

void Session::onSnapshot(const proto::Snapshot& snapshot) {
  proto::Reply reply;
  reply.requestId = snapshot.requestId;
  reply.watchId = snapshot.watchId;
  if (!(capabilities_ & proto::kCapResync)) {
    reply.status = EOPNOTSUPP;
    reply.message = "resync was not negotiated";
  } else if (!watches_.count(snapshot.watchId)) {
    reply.status = EINVAL;
    reply.message = "no such watch";
  } else if (walk_ && snapshots_.size() >= server_.limits().maxQueuedSnapshots) {
    reply.status = EBUSY;
    reply.message = "too many snapshots requested at once (" + std::to_string(snapshots_.size()) +
                    " wait already); ask again when one has been answered";
  } else {
    snapshots_.push_back(SnapshotRequest{snapshot.requestId, snapshot.watchId});
    if (!walk_) startSnapshot();
    return;
  }
  send(reply);
}

// Starts the next waiting snapshot, if any.
void Session::startSnapshot() {
  while (!walk_ && !snapshots_.empty() && !closed_ && !parked_) {
    walking_ = snapshots_.front();
    snapshots_.pop_front();
    walkEntries_ = 0;
    auto it = watches_.find(walking_.watchId);
    if (it == watches_.end()) {
      endSnapshot(ECANCELED, "the watch ended before it could be listed");
      continue;
    }
    UniqueFd root(openListingRoot(it->second));
    if (!root.valid() && errno != ENOTDIR) {
      endSnapshot(errno, "cannot list '" + it->second.root + "': " + std::strerror(errno));
      continue;
    }
    // Events queued so far go before the first Entries frame.
    closeBatch();
    if (!root.valid()) {  // a watched file: no entries
      finishSnapshot();
      continue;
    }
    walk_ = std::make_unique<TreeWalk>(std::move(root), it->second.flags & proto::kWatchRecursive,
                                       server_.limits().maxSnapshotDepth);
    postWalk();
  }
}

void Session::postWalk() {
  if (walkPosted_ || !walk_) return;
  walkPosted_ = true;
  asio::post(server_.io(), [self = shared_from_this()] {
    self->walkPosted_ = false;
    self->walkChunk();
  });
}

void Session::walkChunk() {
  if (closed_ || parked_ || !walk_) return;
  auto it = watches_.find(walking_.watchId);
  if (it == watches_.end()) {
    endSnapshot(ECANCELED, "the watch ended during the listing");
    startSnapshot();
    return;
  }
  if (unwritten() > server_.limits().maxUnreadReplies) {
    walkWaitsForWrite_ = true;  // the write's completion posts the next chunk
    return;
  }
  // Whole frames per chunk: events may be queued between two chunks.
  closeBatch();
  size_t start = 0;
  uint32_t count = 0;
  auto begin = [&] {
    start = pending_.size();
    proto::encode(proto::Entries{walking_.requestId, {}}, pending_);
    count = 0;
  };
  auto finish = [&] {
    if (count == 0) {
      pending_.resize(start);
      return;
    }
    proto::wire::storeLe<uint32_t>(pending_.data() + start, static_cast<uint32_t>(pending_.size() - start - 4));
    proto::wire::storeLe<uint32_t>(pending_.data() + start + 9, count);
  };
  bool more;
  {
    std::optional<ActingAs> acting;
    if (actAs_) acting.emplace(*actAs_);
    if (acting && !acting->ok()) {
      endSnapshot(EACCES, "cannot list '" + it->second.root + "' as " + actAs_->user);
      startSnapshot();
      return;
    }
    begin();
    // Frames are filled up to the limit every client accepts.
    more = walk_->step(kWalkChunk, [&](const proto::TreeEntry& entry) {
      if (pending_.size() - start + proto::entryRecordSize(entry) > proto::kDefaultMaxFrame) {
        finish();
        begin();
      }
      proto::appendEntry(pending_, entry);
      ++count;
      ++walkEntries_;
    });
    finish();
  }
  startWrite();
  if (more) {
    postWalk();
  } else {
    finishSnapshot();
    startSnapshot();
  }
}

void Session::finishSnapshot() {
  const uint64_t skipped = walk_ ? walk_->skipped() : 0;
  walk_.reset();
  // Changes made before or while the tree was read are in the kernel's
  // queue: they go out before the Reply, where the client knows the listing
  // may already show them. What comes after the Reply is newer than the listing.
  server_.drainKernel();
  std::string message = std::to_string(walkEntries_) + " entries";
  if (skipped > 0) {
    message += "; " + std::to_string(skipped) + " directories deeper than " +
               std::to_string(server_.limits().maxSnapshotDepth) + " levels (or paths too long) were not listed";
  }
  log::info("{}: snapshot of watch {}: {}", description_, walking_.watchId, message);
  endSnapshot(0, message);
}

void Session::endSnapshot(int status, const std::string& message) {
  walk_.reset();
  proto::Reply reply;
  reply.requestId = walking_.requestId;
  reply.watchId = walking_.watchId;
  reply.status = status;
  reply.message = message;
  send(reply);
}

void Session::dropSnapshots() {
  walk_.reset();
  snapshots_.clear();
  walkWaitsForWrite_ = false;
}

}  // namespace rnotify
