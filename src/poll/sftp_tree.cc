#include "poll/sftp_tree.h"

#include <poll.h>
#include <sys/stat.h>
#include <unistd.h>

#include <deque>
#include <map>

#include "common/log.h"
#include "poll/tree_view.h"

namespace rnotify {
namespace {

constexpr size_t kInFlight = 64;         // directory requests outstanding at once
constexpr size_t kMaxEntries = 2000000;  // a listing beyond this is refused (memory)
constexpr int kScanTimeoutMs = 60000;

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

}  // namespace

std::vector<std::string> SftpSession::argv(const SshTarget& target) {
  std::vector<std::string> argv{target.sshProgram};
  argv.insert(argv.end(), target.sshOptions.begin(), target.sshOptions.end());
  // BatchMode: this runs inside an application and must never prompt.
  for (const char* option : {"-oBatchMode=yes", "-oClearAllForwardings=yes", "-x", "-a", "-s", "--"}) {
    argv.emplace_back(option);
  }
  argv.push_back(target.destination);
  argv.emplace_back("sftp");
  return argv;
}

Result<std::unique_ptr<SftpSession>> SftpSession::open(const SshTarget& target, int timeoutMs) {
  auto process = AgentProcess::spawn(argv(target));
  if (!process) return process.error();
  std::unique_ptr<SftpSession> session(new SftpSession());
  session->process_ = std::move(*process);
  session->destination_ = target.destination;
  if (Status sent = session->send(sftp::encodeInit()); !sent) return sent.error();
  auto version = session->receive(Clock::now() + std::chrono::milliseconds(timeoutMs));
  if (!version) return version.error();
  if (version->type != sftp::kVersion || version->version < 3) {
    return Error{EPROTO, "the SFTP server of " + target.destination + " does not speak SFTP version 3"};
  }
  return session;
}

Error SftpSession::fail(Error error) {
  alive_ = false;
  process_.closeInput();
  int code = process_.reap(200);
  std::string said = process_.stderrText();
  while (!said.empty() && (said.back() == '\n' || said.back() == '\r')) said.pop_back();
  if (!said.empty()) error.message += " (ssh: " + said + ")";
  if (code >= 0 && said.empty()) error.message += " (ssh exited with status " + std::to_string(code) + ")";
  return error;
}

Status SftpSession::send(const std::string& packet) {
  if (!alive_) return Error{EPIPE, "the SFTP session to " + destination_ + " has ended"};
  size_t done = 0;
  while (done < packet.size()) {
    ssize_t n = ::write(process_.input(), packet.data() + done, packet.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return fail(Error::fromErrno(errno, "SFTP session to " + destination_));
    done += static_cast<size_t>(n);
  }
  ++requests_;
  return {};
}

Result<sftp::Reply> SftpSession::receive(Clock::time_point deadline) {
  for (;;) {
    if (buffer_.size() >= 4) {
      auto length = sftp::packetLength(buffer_);
      if (!length) return fail(Error{length.error().code, destination_ + ": " + length.error().message});
      if (buffer_.size() >= 4 + *length) {
        auto reply = sftp::decodeReply(std::string_view(buffer_).substr(4, *length));
        buffer_.erase(0, 4 + *length);
        if (!reply) return fail(Error{reply.error().code, destination_ + ": " + reply.error().message});
        return reply;
      }
    }
    if (!alive_) return Error{EPIPE, "the SFTP session to " + destination_ + " has ended"};
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
    if (left <= 0) return fail(Error{ETIMEDOUT, "no SFTP answer from " + destination_ + " in time"});
    pollfd p{process_.output(), POLLIN, 0};
    int ready = ::poll(&p, 1, static_cast<int>(left));
    if (ready < 0 && errno == EINTR) continue;
    if (ready <= 0) continue;
    char chunk[65536];
    ssize_t n = ::read(process_.output(), chunk, sizeof chunk);
    if (n < 0 && (errno == EAGAIN || errno == EINTR)) continue;
    if (n <= 0) return fail(Error{ECONNRESET, "the SFTP session to " + destination_ + " ended"});
    buffer_.append(chunk, static_cast<size_t>(n));
  }
}

Result<sftp::Attrs> SftpSession::lstat(const std::string& path, int timeoutMs) {
  const uint32_t id = nextId_++;
  if (Status sent = send(sftp::encodeRequest(sftp::kLstat, id, path)); !sent) return sent.error();
  auto reply = receive(Clock::now() + std::chrono::milliseconds(timeoutMs));
  if (!reply) return reply.error();
  if (reply->id != id) return fail(Error{EPROTO, destination_ + ": SFTP answer to an unknown request"});
  if (reply->type == sftp::kAttrs) return reply->attrs;
  if (reply->type == sftp::kStatus) {
    return Error{errnoOf(reply->status), "'" + path + "' on " + destination_ + ": " + sftp::statusName(reply->status)};
  }
  return fail(Error{EPROTO, destination_ + ": unexpected SFTP answer to LSTAT"});
}

Result<std::vector<proto::TreeEntry>> SftpSession::listTree(const std::string& root, bool recursive, int timeoutMs) {
  const auto deadline = Clock::now() + std::chrono::milliseconds(timeoutMs);
  struct Job {
    std::string dir;  // relative to root
    std::string handle;
    enum { kOpening, kReading, kClosing } state = kOpening;
  };
  std::vector<proto::TreeEntry> out;
  std::deque<std::string> waiting{""};
  std::map<uint32_t, Job> inFlight;
  auto serverPath = [&](const std::string& dir) { return dir.empty() ? root : root + "/" + dir; };
  auto issue = [&](Job job, sftp::Type type, const std::string& argument) -> Status {
    const uint32_t id = nextId_++;
    if (Status sent = send(sftp::encodeRequest(type, id, argument)); !sent) return sent;
    inFlight.emplace(id, std::move(job));
    return {};
  };
  while (!waiting.empty() || !inFlight.empty()) {
    while (!waiting.empty() && inFlight.size() < kInFlight) {
      Job job;
      job.dir = std::move(waiting.front());
      waiting.pop_front();
      std::string path = serverPath(job.dir);
      if (Status s = issue(std::move(job), sftp::kOpendir, path); !s) return s.error();
    }
    auto reply = receive(deadline);
    if (!reply) return reply.error();
    auto it = inFlight.find(reply->id);
    if (it == inFlight.end()) return fail(Error{EPROTO, destination_ + ": SFTP answer to an unknown request"});
    Job job = std::move(it->second);
    inFlight.erase(it);
    switch (job.state) {
      case Job::kOpening:
        if (reply->type == sftp::kHandle) {
          job.handle = reply->handle;
          job.state = Job::kReading;
          std::string handle = job.handle;
          if (Status s = issue(std::move(job), sftp::kReaddir, handle); !s) return s.error();
        } else if (reply->type == sftp::kStatus) {
          if (job.dir.empty()) {
            return Error{errnoOf(reply->status),
                         "'" + root + "' on " + destination_ + ": " + sftp::statusName(reply->status)};
          }
          // A directory removed, or made unreadable, since its parent was
          // listed: it is listed as empty; the next scan sees the rest.
        } else {
          return fail(Error{EPROTO, destination_ + ": unexpected SFTP answer to OPENDIR"});
        }
        break;
      case Job::kReading:
        if (reply->type == sftp::kName) {
          for (sftp::NameEntry& e : reply->names) {
            if (e.name == "." || e.name == "..") continue;
            if (recursive && S_ISDIR(e.attrs.mode)) waiting.push_back(join(job.dir, e.name));
            proto::TreeEntry entry;
            entry.dir = job.dir;
            entry.name = std::move(e.name);
            entry.stat = statOf(e.attrs);
            // No inode numbers in SFTP v3: one made of the path, so that an
            // entry is the same while its path and type are (and compared for
            // changes), and two paths never pair as a move.
            entry.stat.ino = std::hash<std::string>{}(join(entry.dir, entry.name)) | (uint64_t{1} << 63);
            out.push_back(std::move(entry));
          }
          if (out.size() > kMaxEntries) {
            return Error{EFBIG, "'" + root + "' on " + destination_ + " holds more than " +
                                    std::to_string(kMaxEntries) + " entries: too many to poll"};
          }
          std::string handle = job.handle;
          if (Status s = issue(std::move(job), sftp::kReaddir, handle); !s) return s.error();
        } else if (reply->type == sftp::kStatus) {
          // EOF, or an error part way: what was read stands.
          job.state = Job::kClosing;
          std::string handle = job.handle;
          if (Status s = issue(std::move(job), sftp::kClose, handle); !s) return s.error();
        } else {
          return fail(Error{EPROTO, destination_ + ": unexpected SFTP answer to READDIR"});
        }
        break;
      case Job::kClosing:
        break;
    }
  }
  return out;
}

namespace {

class SftpTree final : public PolledTree {
 public:
  SftpTree(SshTarget target, std::string root, bool isDirectory, const PollScanner::Options& options,
           std::unique_ptr<SftpSession> session)
      : target_(std::move(target)),
        root_(std::move(root)),
        isDirectory_(isDirectory),
        recursive_(options.recursive),
        interval_(options.interval),
        session_(std::move(session)) {}

  Result<std::vector<Event>> scan() override {
    const auto start = Clock::now();
    auto result = scanOnce();
    const auto end = Clock::now();
    interval_.onScan(end, end - start, result && !result->empty());
    return result;
  }
  Clock::time_point deadline() const override { return interval_.deadline(); }
  void hurry(Clock::time_point when) override { interval_.hurry(when); }
  bool ended() const override { return ended_; }
  std::string describe() const override {
    return "polling " + describeInterval(interval_.settings()) + ", SFTP scans of " + target_.destination + ":" + root_;
  }

 private:
  Result<std::vector<Event>> scanOnce() {
    if (ended_) return std::vector<Event>{};
    if (!session_ || !session_->alive()) {
      auto session = SftpSession::open(target_, 20000);
      if (!session) return Error{session.error().code, "cannot open an SFTP session: " + session.error().message};
      session_ = std::move(*session);
    }
    return isDirectory_ ? scanDirectory() : scanFile();
  }

  Result<std::vector<Event>> scanDirectory() {
    auto listing = session_->listTree(root_, recursive_, kScanTimeoutMs);
    std::vector<Event> out;
    if (!listing) {
      if (listing.error().code != ENOENT || !baseline_) return listing.error();
      listing = std::vector<proto::TreeEntry>{};  // gone: everything in it is too
      ended_ = true;
    }
    if (baseline_) {
      for (TreeView::Change& change : view_.diff(*listing, &nextCookie_)) {
        Event e;
        e.mask = change.mask | IN_POLLED;
        e.cookie = change.cookie;
        e.dir = std::move(change.dir);
        e.name = std::move(change.name);
        out.push_back(std::move(e));
      }
    }
    view_.reset(*listing);
    baseline_ = true;
    if (ended_) gone(out, IN_DELETE_SELF);
    return out;
  }

  Result<std::vector<Event>> scanFile() {
    auto attrs = session_->lstat(root_, kScanTimeoutMs);
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
  PollInterval interval_;
  std::unique_ptr<SftpSession> session_;
  TreeView view_;
  sftp::Attrs file_;
  bool baseline_ = false;
  bool ended_ = false;
  uint32_t nextCookie_ = 0x60000000;
};

}  // namespace

Result<std::unique_ptr<PolledTree>> scanOverSftp(const SshTarget& target, const std::string& serverPath,
                                                 bool isDirectory, const PollScanner::Options& options) {
  auto session = SftpSession::open(target, 20000);
  if (!session) return session.error();
  std::unique_ptr<PolledTree> tree =
      std::make_unique<SftpTree>(target, serverPath, isDirectory, options, std::move(*session));
  return tree;
}

}  // namespace rnotify
