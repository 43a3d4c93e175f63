#include "poll/sftp_tree.h"

#include <sys/epoll.h>
#include <sys/stat.h>

#include <deque>
#include <map>
#include <optional>

#include "common/log.h"
#include "common/unique_fd.h"
#include "poll/sftp_session.h"
#include "poll/tree_view.h"

namespace rnotify {
namespace {

using Clock = std::chrono::steady_clock;

constexpr size_t kInFlight = 64;         // directory requests outstanding at once
constexpr size_t kMaxEntries = 2000000;  // a listing beyond this is refused (memory)
constexpr auto kScanTimeout = std::chrono::seconds(60);

EventStat statOf(const sftp::Attrs& a) {
  EventStat st;
  st.size = a.size;
  st.mtimeSec = a.mtime;
  st.mode = a.mode;
  st.uid = a.uid;
  st.gid = a.gid;
  st.ino = 0;  // SFTP v3 has none: such entries never pair as moves
  return st;
}

int errnoOf(uint32_t status) {
  switch (status) {
    case sftp::kNoSuchFile:
      return ENOENT;
    case sftp::kPermissionDenied:
      return EACCES;
    default:
      return EIO;
  }
}

std::string join(const std::string& dir, const std::string& name) { return dir.empty() ? name : dir + "/" + name; }

// One listing of a tree: OPENDIR, READDIR until the end, CLOSE for each
// directory, up to kInFlight requests at once, over as many exchanges as
// the answers take.
class Listing {
 public:
  Listing(std::string root, bool recursive) : root_(std::move(root)), recursive_(recursive) {}

  // Queues the directories that may be asked for now.
  void ask(SftpSession& session) {
    while (!waiting_.empty() && inFlight_.size() < kInFlight) {
      Job job;
      job.dir = std::move(waiting_.front());
      waiting_.pop_front();
      const std::string path = job.dir.empty() ? root_ : root_ + "/" + job.dir;
      inFlight_.emplace(session.request(sftp::kOpendir, path), std::move(job));
    }
  }

  // One answer. An error ends the listing; EPROTO, or requests still in
  // flight, end the session too.
  Status take(sftp::Reply& reply, SftpSession& session) {
    auto it = inFlight_.find(reply.id);
    if (it == inFlight_.end()) return Error{EPROTO, session.destination() + ": SFTP answer to an unknown request"};
    Job job = std::move(it->second);
    inFlight_.erase(it);
    switch (job.state) {
      case Job::kOpening:
        return opened(std::move(job), reply, session);
      case Job::kReading:
        return read(std::move(job), reply, session);
      case Job::kClosing:
        break;
    }
    return {};
  }

  bool done() const { return waiting_.empty() && inFlight_.empty(); }
  bool answersDue() const { return !inFlight_.empty(); }
  TreeView::Listing& entries() { return entries_; }

 private:
  struct Job {
    std::string dir;  // relative to root
    std::string handle;
    enum { kOpening, kReading, kClosing } state = kOpening;
  };

  void issue(Job job, sftp::Type type, SftpSession& session) {
    const std::string handle = job.handle;
    inFlight_.emplace(session.request(type, handle), std::move(job));
  }

  Status opened(Job job, const sftp::Reply& reply, SftpSession& session) {
    if (reply.type == sftp::kHandle) {
      job.handle = reply.handle;
      job.state = Job::kReading;
      issue(std::move(job), sftp::kReaddir, session);
    } else if (reply.type == sftp::kStatus) {
      if (job.dir.empty()) {
        return Error{errnoOf(reply.status),
                     "'" + root_ + "' on " + session.destination() + ": " + sftp::statusName(reply.status)};
      }
      // A directory removed, or made unreadable, since its parent was
      // listed: it is listed as empty; the next scan sees the rest.
    } else {
      return Error{EPROTO, session.destination() + ": unexpected SFTP answer to OPENDIR"};
    }
    return {};
  }

  Status read(Job job, sftp::Reply& reply, SftpSession& session) {
    if (reply.type == sftp::kStatus) {
      // EOF, or an error part way: what was read stands.
      job.state = Job::kClosing;
      issue(std::move(job), sftp::kClose, session);
      return {};
    }
    if (reply.type != sftp::kName) return Error{EPROTO, session.destination() + ": unexpected SFTP answer to READDIR"};
    for (sftp::NameEntry& e : reply.names) {
      if (e.name == "." || e.name == "..") continue;
      std::string path = join(job.dir, e.name);
      EventStat stat = statOf(e.attrs);
      // No inode numbers in SFTP v3: one made of the path, so that an
      // entry is the same while its path and type are (and compared for
      // changes), and two paths never pair as a move.
      stat.ino = std::hash<std::string>{}(path) | (uint64_t{1} << 63);
      entries_.add(job.dir, e.name, stat);
      if (recursive_ && S_ISDIR(e.attrs.mode)) waiting_.push_back(std::move(path));
    }
    if (entries_.size() > kMaxEntries) {
      return Error{EFBIG, "'" + root_ + "' on " + session.destination() + " holds more than " +
                              std::to_string(kMaxEntries) + " entries: too many to poll"};
    }
    issue(std::move(job), sftp::kReaddir, session);
    return {};
  }

  std::string root_;
  bool recursive_;
  std::deque<std::string> waiting_{""};
  std::map<uint32_t, Job> inFlight_;
  TreeView::Listing entries_;  // compared as it is, when the listing is done
};

// One scan under way: a listing (a directory) or one LSTAT (a file).
struct Round {
  Clock::time_point started;
  Clock::time_point lastAnswer;  // a round fails after 60 s without one while it waits
  std::optional<Listing> listing;
  uint32_t lstatId = 0;
  std::optional<Result<sftp::Attrs>> attrs;  // the LSTAT's answer, once there
  std::optional<Error> error;                // the listing failed: the round is over
};

class SftpTree final : public PolledTree {
 public:
  SftpTree(SshTarget target, std::string root, bool isDirectory, const PollScanner::Options& options,
           std::chrono::milliseconds startTimeout)
      : target_(std::move(target)),
        root_(std::move(root)),
        isDirectory_(isDirectory),
        recursive_(options.recursive),
        startTimeout_(startTimeout),
        interval_(options.interval),
        epoll_(::epoll_create1(EPOLL_CLOEXEC)) {}

  Status open() {
    if (!epoll_) return lastError("epoll_create1");
    auto session = SftpSession::start(target_, epoll_.get());
    if (!session) return Error{session.error().code, "cannot open an SFTP session: " + session.error().message};
    session_ = std::move(*session);
    sessionDeadline_ = Clock::now() + startTimeout_;
    return {};
  }

  Result<std::vector<Event>> scan() override {
    if (ended_ || failed_) return std::vector<Event>{};
    const auto now = Clock::now();
    if (!session_) {
      if (now < interval_.deadline()) return std::vector<Event>{};
      if (Status opened = open(); !opened) return roundFailed(opened.error(), now);
    }
    if (Status progressed = exchange(now); !progressed) return roundFailed(progressed.error(), now);
    if (round_ && roundDone()) return completeRound(Clock::now());
    return std::vector<Event>{};
  }

  Clock::time_point deadline() const override {
    if (ended_ || failed_) return Clock::time_point::max();
    if (!session_) return interval_.deadline();
    if (!session_->ready()) return sessionDeadline_;
    if (round_) return round_->lastAnswer + kScanTimeout;
    return dueAt();
  }
  int fd() const override { return epoll_.get(); }
  // Also while a session that replaced a broken one has not scanned yet;
  // failed() while starting() is a source that never served.
  bool starting() const override { return !settled_ && !ended_; }
  bool failed() const override { return failed_; }
  Error error() const override { return error_; }
  void hurry(Clock::time_point when) override {
    // A scan under way may have read the tree before the change: one more.
    if (round_) hurriedTo_ = std::min(hurriedTo_.value_or(when), when);
    interval_.hurry(when);
  }
  void finish() override {
    lastRound_ = true;
    lastRoundStarted_ = false;
    finished_ = false;
    hurry(Clock::now());
  }
  bool finished() const override { return finished_ || ended_ || failed_; }
  bool ended() const override { return ended_; }
  std::string describe() const override {
    return "polling " + describeInterval(interval_.settings()) + ", SFTP scans of " + target_.destination + ":" + root_;
  }

 private:
  // The first scan (the baseline) at once; then at the interval's deadline.
  Clock::time_point dueAt() const { return baseline_ ? interval_.deadline() : Clock::time_point::min(); }

  // Writes, reads and takes the answers; starts a scan when one is due.
  Status exchange(Clock::time_point now) {
    auto replies = session_->exchange();
    if (!replies) return replies.error();
    if (round_ && !replies->empty()) round_->lastAnswer = now;
    for (sftp::Reply& reply : *replies) {
      if (Status taken = takeReply(reply); !taken) return taken;
    }
    if (!session_->ready()) {
      if (now < sessionDeadline_) return {};
      return session_->fail(noAnswer());
    }
    if (round_ && roundDone()) return session_->flush();  // scan() completes it
    if (round_ && now >= round_->lastAnswer + kScanTimeout) return session_->fail(noAnswer());
    if (!round_ && dueAt() <= now) startRound(now);
    if (round_ && round_->listing) round_->listing->ask(*session_);
    // What the answers and the round asked for, written now (the rest when
    // the pipe is writable): nothing waits in the queue for a wakeup that
    // would not come.
    return session_->flush();
  }

  Error noAnswer() const { return Error{ETIMEDOUT, "no SFTP answer from " + target_.destination + " in time"}; }

  void startRound(Clock::time_point now) {
    round_.emplace();
    round_->started = now;
    round_->lastAnswer = now;
    if (lastRound_) lastRoundStarted_ = true;
    if (isDirectory_) {
      round_->listing.emplace(root_, recursive_);
    } else {
      round_->lstatId = session_->request(sftp::kLstat, root_);
    }
  }

  Status takeReply(sftp::Reply& reply) {
    if (!round_) return session_->fail(Error{EPROTO, target_.destination + ": SFTP answer to an unknown request"});
    if (round_->listing) {
      Status taken = round_->listing->take(reply, *session_);
      if (taken) return {};
      round_->error = taken.error();
      if (taken.error().code == EPROTO || round_->listing->answersDue()) return session_->fail(taken.error());
      return {};
    }
    if (reply.id != round_->lstatId) {
      return session_->fail(Error{EPROTO, target_.destination + ": SFTP answer to an unknown request"});
    }
    if (reply.type == sftp::kAttrs) {
      round_->attrs = reply.attrs;
    } else if (reply.type == sftp::kStatus) {
      round_->attrs = Result<sftp::Attrs>(Error{
          errnoOf(reply.status), "'" + root_ + "' on " + target_.destination + ": " + sftp::statusName(reply.status)});
    } else {
      return session_->fail(Error{EPROTO, target_.destination + ": unexpected SFTP answer to LSTAT"});
    }
    return {};
  }

  bool roundDone() const {
    if (round_->error) return true;
    return round_->listing ? round_->listing->done() : round_->attrs.has_value();
  }

  Result<std::vector<Event>> completeRound(Clock::time_point end) {
    Round round = std::move(*round_);
    round_.reset();
    Result<std::vector<Event>> events = std::vector<Event>{};
    if (round.error) {
      const Error& error = *round.error;
      events = error;
      if (error.code == ENOENT && baseline_) {  // gone: everything in it is too
        events = compareListing({});
        ended_ = true;
        gone(*events, IN_DELETE_SELF);
      }
    } else if (round.listing) {
      events = compareListing(std::move(round.listing->entries()));
    } else {
      events = compareFile(*round.attrs);
    }
    if (!events && !baseline_) {
      return roundFailed(events.error(), end);  // the baseline itself failed: the source cannot start
    }
    interval_.onScan(end, end - round.started, events && !events->empty());
    if (hurriedTo_) interval_.hurry(*std::exchange(hurriedTo_, std::nullopt));
    if (events) settled_ = true;
    if (lastRoundStarted_) finished_ = true;
    return events;
  }

  // The session is gone (or could not start): the next one at the next
  // interval. Before anything was served, the source has failed for good.
  Error roundFailed(Error error, Clock::time_point now) {
    session_.reset();
    round_.reset();
    settled_ = false;
    if (lastRound_) finished_ = true;  // no last scan to wait for: the server's events stand alone
    interval_.onScan(now, Clock::duration::zero(), false);
    if (!baseline_) {
      failed_ = true;
      error_ = error;
    }
    return error;
  }

  Result<std::vector<Event>> compareListing(TreeView::Listing listing) {
    std::vector<Event> out;
    if (!baseline_) {
      view_.replace(std::move(listing));
      baseline_ = true;
      return out;
    }
    for (TreeView::Change& change : view_.advance(std::move(listing), &nextCookie_)) {
      Event e;
      e.mask = change.mask | IN_POLLED;
      e.cookie = change.cookie;
      e.dir = std::move(change.dir);
      e.name = std::move(change.name);
      out.push_back(std::move(e));
    }
    return out;
  }

  Result<std::vector<Event>> compareFile(Result<sftp::Attrs>& attrs) {
    std::vector<Event> out;
    if (!attrs) {
      if (attrs.error().code != ENOENT || !baseline_) return attrs.error();
      ended_ = true;
      gone(out, IN_DELETE_SELF);
      return out;
    }
    if (baseline_) {
      Event e;
      if (attrs->size != file_.size || attrs->mtime != file_.mtime) {
        e.mask = IN_MODIFY | IN_POLLED;
      } else if (attrs->mode != file_.mode || attrs->uid != file_.uid || attrs->gid != file_.gid) {
        e.mask = IN_ATTRIB | IN_POLLED;
      }
      if (e.mask != 0) {
        e.hasStat = true;
        e.stat = statOf(*attrs);
        out.push_back(std::move(e));
      }
    }
    file_ = *attrs;
    baseline_ = true;
    return out;
  }

  static void gone(std::vector<Event>& out, uint32_t how) {
    Event e;
    e.mask = how | IN_POLLED;
    out.push_back(e);
    e.mask = IN_IGNORED | IN_POLLED;
    out.push_back(e);
  }

  SshTarget target_;
  std::string root_;
  bool isDirectory_;
  bool recursive_;
  std::chrono::milliseconds startTimeout_;
  PollInterval interval_;
  UniqueFd epoll_;  // fd(): the session's pipes, whichever session it is
  std::unique_ptr<SftpSession> session_;
  Clock::time_point sessionDeadline_;  // for its VERSION
  std::optional<Round> round_;
  std::optional<Clock::time_point> hurriedTo_;
  TreeView view_;
  sftp::Attrs file_;
  bool baseline_ = false;
  bool settled_ = false;  // a scan completed on this session
  bool failed_ = false;
  Error error_{0, ""};
  bool ended_ = false;
  bool lastRound_ = false, lastRoundStarted_ = false, finished_ = false;
  uint32_t nextCookie_ = 0x60000000;
};

}  // namespace

Result<std::unique_ptr<PolledTree>> scanOverSftp(const SshTarget& target, const std::string& serverPath,
                                                 bool isDirectory, const PollScanner::Options& options,
                                                 std::chrono::milliseconds startTimeout) {
  auto tree = std::make_unique<SftpTree>(target, serverPath, isDirectory, options, startTimeout);
  if (Status opened = tree->open(); !opened) return opened.error();
  return std::unique_ptr<PolledTree>(std::move(tree));
}

}  // namespace rnotify
