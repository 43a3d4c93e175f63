// Session: resumption. A session whose connection broke waits (parked) for
// --resume-grace; a new connection that Attaches with its token takes its
// watches over and gets what happened meanwhile replayed from the journal
// (docs/PROTOCOL.md 4.5c).
#include <sys/inotify.h>

#include <algorithm>
#include <string>
#include <unordered_map>
#include <vector>

#include "common/log.h"
#include "proto/wire.h"
#include "server/server.h"
#include "server/session.h"

namespace rnotify {

void Session::park() {
  if (!server_.park(*this)) {
    close();
    return;
  }
  parked_ = true;
  dropSnapshots();                                           // nobody to send them to; the client asks again
  if (!countedAs_.empty()) server_.leaveClient(countedAs_);  // no connection: counted among the parked
  countedAs_.clear();
  handshakeTimer_.cancel();
  transport_->close();
  batchOpen_ = false;
  pending_.clear();
  const int grace = server_.limits().resumeGraceSeconds;
  log::info("{}: connection lost; keeping its {} watches and their events for {} s in case it comes back", description_,
            watches_.size(), grace);
  graceTimer_.expires_after(std::chrono::seconds(grace));
  graceTimer_.async_wait([self = shared_from_this()](std::error_code ec) {
    if (ec || !self->parked_ || self->closed_) return;
    log::info("{}: did not come back within {} s; its watches end", self->description_,
              self->server_.limits().resumeGraceSeconds);
    self->close();
  });
}

void Session::handOver() {
  stopServing();
  transport_->close();
  log::info("{}: taken over by a new connection", description_);
  server_.sessionClosed(*this);
}

void Session::onAttach(const proto::Attach& attach) {
  proto::Reply reply;
  reply.requestId = attach.requestId;
  const std::pair<uint64_t, uint64_t> token{attach.token[0], attach.token[1]};
  // A token names a session of this identity only: another user who learnt
  // or guessed it gets the answer of an unknown token (no oracle either).
  Session* old = server_.sessionByToken(owner_, token);
  if (old == nullptr && attach.instanceId != 0 && server_.tokenHeldByAnother(owner_, token)) {
    log::warn("{}: Attach with the token of another user's session; answered as an unknown token", description_);
  }
  std::unordered_map<SubscriptionId, uint64_t> replayFrom;
  std::vector<SubscriptionId> gaps;
  if (!(capabilities_ & proto::kCapResume)) {
    reply.status = EOPNOTSUPP;
    reply.message = "resuming was not negotiated";
    send(reply);
    return;
  }
  if (attached_ || !watches_.empty()) {
    reply.status = EINVAL;
    reply.message = "Attach must be the first request, and come once";
    send(reply);
    return;
  }
  if (attach.instanceId == 0) {
    if (old != nullptr) {
      reply.status = EEXIST;
      reply.message = "a session with this token exists";
      send(reply);
      return;
    }
    reply.message = "new session";
  } else if (attach.instanceId != server_.instanceId()) {
    reply.status = ESTALE;
    reply.message = "rnotifyd started again since (its watches and events are gone); this is a new session";
  } else if (old == nullptr || old == this) {
    reply.status = ENOENT;
    reply.message = "the session is gone (it ended, or did not come back within " +
                    std::to_string(server_.limits().resumeGraceSeconds) + " s); this is a new session";
  } else {
    takeOver(*old, attach.positions, &replayFrom, &gaps);
    reply.message = "resumed " + std::to_string(watches_.size()) + " watches";
    if (!gaps.empty()) reply.message += ", " + std::to_string(gaps.size()) + " of them with a gap";
  }
  attached_ = true;
  token_[0] = attach.token[0];
  token_[1] = attach.token[1];
  if (!journal_) {
    journal_ = std::make_unique<Journal>(server_.limits().journalRecords, server_.limits().journalBytes,
                                         &server_.journalBudget());
  }
  server_.registerToken(*this);
  send(reply);
  if (attach.instanceId != 0 && reply.status == 0) {
    replay(replayFrom);
    for (SubscriptionId watch : gaps) queueEvent(watch, IN_Q_OVERFLOW, 0, {}, {}, 0);
    closeBatch();
    startWrite();
  }
}

void Session::takeOver(Session& old, const std::vector<proto::WatchPosition>& positions,
                       std::unordered_map<SubscriptionId, uint64_t>* replayFrom, std::vector<SubscriptionId>* gaps) {
  watches_ = std::move(old.watches_);
  old.watches_.clear();
  declared_ = std::move(old.declared_);
  journal_ = std::move(old.journal_);
  std::unordered_set<SubscriptionId> shed = std::move(old.overflowed_);
  old.handOver();
  for (auto& [id, state] : watches_) {
    server_.retarget(id, *this);
    // Descriptors kept for stat attachments are opened again on demand: the
    // old session's count and release timer do not come along.
    state.dirs.clear();
  }
  std::unordered_map<SubscriptionId, uint64_t> wanted;
  for (const proto::WatchPosition& p : positions) wanted[p.watchId] = p.seq;
  uint64_t replayed = 0;
  for (auto it = watches_.begin(); it != watches_.end();) {
    auto want = wanted.find(it->first);
    if (want == wanted.end()) {  // the client no longer wants it
      server_.unwatch(it->first);
      journal_->forget(it->first);
      it = watches_.erase(it);
      continue;
    }
    if (want->second > it->second.seq || !journal_->canReplay(it->first, want->second) || shed.count(it->first)) {
      gaps->push_back(it->first);
    } else {
      (*replayFrom)[it->first] = want->second;
      replayed += it->second.seq - want->second;
    }
    ++it;
  }
  // Watches that ended (IN_IGNORED) while the client was away: their last
  // events are still to be replayed.
  for (const auto& [id, seq] : wanted) {
    if (!watches_.count(id) && journal_->canReplay(id, seq)) (*replayFrom)[id] = seq;
  }
  log::info("{}: resumed a session of {} watches: {} events to replay, {} watches with a gap", description_,
            watches_.size(), replayed, gaps->size());
}

void Session::replay(const std::unordered_map<SubscriptionId, uint64_t>& replayFrom) {
  closeBatch();
  size_t start = proto::beginEvents(pending_);
  uint32_t count = 0;
  journal_->forEach([&](uint32_t watch, uint64_t seq, std::string_view record) {
    auto it = replayFrom.find(watch);
    if (it == replayFrom.end() || seq <= it->second) return;
    if (pending_.size() - start + record.size() > server_.limits().maxFrame) {
      proto::finishEvents(pending_, start, count);
      start = proto::beginEvents(pending_);
      count = 0;
    }
    pending_.append(record);
    ++count;
  });
  if (count == 0) {
    pending_.resize(start);
  } else {
    proto::finishEvents(pending_, start, count);
  }
}

}  // namespace rnotify
