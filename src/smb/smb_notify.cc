// SmbNotify through libsmbclient; see smb_notify.h.
#include "smb/smb_notify.h"

#include <fcntl.h>
#include <fmt/core.h>
#include <libsmbclient.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstring>

#include "common/log.h"
#include "smb/smb_actions.h"

namespace rnotify {
namespace {

constexpr int kMaxOverflowsPerSecond = 20;

// Helper -> parent messages, one per SOCK_SEQPACKET packet: a type byte,
// then for an event u32 mask, u32 cookie, u32 length of dir, dir, name; for an
// error u32 errno, message.
constexpr char kMsgReady = 'R';
constexpr char kMsgEvent = 'E';
constexpr char kMsgError = 'X';

void appendU32(std::string* m, uint32_t v) { m->append(reinterpret_cast<const char*>(&v), sizeof v); }
uint32_t readU32(const char* p) {
  uint32_t v;
  std::memcpy(&v, p, sizeof v);
  return v;
}

// What the user should do about a failed connect or open.
std::string hintFor(int code) {
  switch (code) {
    case EACCES:
    case EPERM:
      return "check the user name and password (credentials file) and the share's permissions";
    case ENOENT:
    case ENODEV:
    case ENOTDIR:
      return "check the share name and the path inside it";
    case ECONNREFUSED:
    case ETIMEDOUT:
    case EHOSTUNREACH:
    case ENETUNREACH:
      return "check that the server runs SMB on that address and port";
    case ECONNABORTED:
    case ECONNRESET:
    case EPIPE:
      return "the connection to the server was lost; the watch must be set up again";
    default:
      return "see the server's log";
  }
}

}  // namespace

struct SmbNotify::Worker {
  SmbLocation location;
  SmbCredentials credentials;
  std::string url;
  uint32_t mask = 0;
  uint32_t filter = 0;
  bool recursive = false;
  int out = -1;  // the child's end of the socketpair
  SMBCCTX* ctx = nullptr;
  SMBCFILE* dir = nullptr;
  NotifyTranslator translator{0};

  // Runs in the helper process: connect, open and watch. The parent hears
  // "ready" once the first notify request is out (its first tick), so that no
  // change made after start() returns can fall before the request. The
  // context is never freed: the process ends with it.
  void run() {
    Status opened = open();
    if (opened.ok()) watch();
    if (!opened.ok()) sendError(opened.error());
  }

  void answer() {
    if (answered_) return;
    answered_ = true;
    send(std::string(1, kMsgReady));
  }
  bool answered_ = false;

  void send(const std::string& message) {
    while (::send(out, message.data(), message.size(), MSG_NOSIGNAL) < 0) {
      if (errno != EINTR) ::_exit(0);  // the parent's end is gone
    }
  }

  // The parent never writes: end of file means the SmbNotify (or its whole
  // process) is gone. Checked on every tick, so an idle helper leaves within
  // kTickMs. (Not PR_SET_PDEATHSIG: that follows the thread that forked, and
  // start() may be called from a thread that ends before the watch does.)
  void leaveIfOrphaned() {
    char c;
    if (::recv(out, &c, 1, MSG_DONTWAIT | MSG_PEEK) == 0) ::_exit(0);
  }
  void sendError(const Error& e) {
    std::string m(1, kMsgError);
    appendU32(&m, static_cast<uint32_t>(e.code));
    m += e.message;
    send(m);
  }

  static void authenticate(SMBCCTX* c, const char*, const char*, char* wg, int wglen, char* un, int unlen, char* pw,
                           int pwlen) {
    auto* self = static_cast<Worker*>(smbc_getOptionUserData(c));
    auto copy = [](const std::string& from, char* to, int len) {
      if (len <= 0) return;
      size_t n = std::min(from.size(), static_cast<size_t>(len - 1));
      std::memcpy(to, from.data(), n);
      to[n] = '\0';
    };
    copy(self->credentials.user, un, unlen);
    copy(self->credentials.password, pw, pwlen);
    if (!self->credentials.domain.empty()) copy(self->credentials.domain, wg, wglen);
  }

  Status open() {
    ctx = smbc_new_context();
    if (ctx == nullptr) return lastError("smbc_new_context");
    smbc_setDebug(ctx, 0);
    smbc_setTimeout(ctx, kConnectTimeoutMs);
    smbc_setOptionUserData(ctx, this);
    smbc_setFunctionAuthDataWithContext(ctx, &Worker::authenticate);
    // A wrong password must fail, not quietly become a guest session.
    smbc_setOptionNoAutoAnonymousLogin(ctx, 1);
    if (!credentials.user.empty()) smbc_setUser(ctx, credentials.user.c_str());
    if (!credentials.domain.empty()) smbc_setWorkgroup(ctx, credentials.domain.c_str());
    if (location.port != 0) smbc_setPort(ctx, static_cast<uint16_t>(location.port));
    if (smbc_init_context(ctx) == nullptr) return lastError("smbc_init_context");
    errno = 0;
    dir = smbc_getFunctionOpendir(ctx)(ctx, url.c_str());
    if (dir == nullptr) {
      int e = errno != 0 ? errno : EIO;
      return Error{
          e, fmt::format("SMB: cannot open {} as '{}': {}; {}", url, credentials.user, std::strerror(e), hintFor(e))};
    }
    return {};
  }

  static int onChanges(const smbc_notify_callback_action* actions, size_t count, void* data) {
    auto* self = static_cast<Worker*>(data);
    self->leaveIfOrphaned();
    self->answer();
    std::vector<Event> events;
    if (count > 0) {
      std::vector<NotifyRecord> records;
      records.reserve(count);
      for (size_t i = 0; i < count; ++i) {
        records.push_back(NotifyRecord{actions[i].action, actions[i].filename ? actions[i].filename : ""});
      }
      size_t dropped = self->translator.translate(records, &events);
      if (dropped > 0) log::debug("SMB notify {}: {} record(s) dropped", self->url, dropped);
      self->pendingTicks = 0;
    } else if (self->translator.pending() && ++self->pendingTicks >= 2) {
      // A rename's old name ended the last response and no new name followed
      // for a whole tick: it left the watch.
      self->translator.flush(&events);
    }
    self->deliver(std::move(events));
    return 0;  // the parent ends this process
  }

  void deliver(std::vector<Event> events) {
    for (const Event& e : events) {
      if (e.mask != IN_Q_OVERFLOW && (e.mask & mask) == 0) continue;
      std::string m(1, kMsgEvent);
      appendU32(&m, e.mask);
      appendU32(&m, e.cookie);
      appendU32(&m, static_cast<uint32_t>(e.dir.size()));
      m += e.dir;
      m += e.name;
      send(m);
    }
  }

  int pendingTicks = 0;

  void watch() {
    translator = NotifyTranslator(filter);
    auto notify = smbc_getFunctionNotify(ctx);
    // errno 0 is also what any other status without error severity gives:
    // a server that answers nothing else must not make this loop spin.
    auto windowStart = std::chrono::steady_clock::now();
    int overflowsInWindow = 0;
    for (;;) {
      errno = 0;
      int rc = notify(ctx, dir, recursive ? 1 : 0, filter, kTickMs, &Worker::onChanges, this);
      if (rc == 0) return;  // not asked for: the callback never stops it
      int e = errno;
      if (e == 0) {
        // STATUS_NOTIFY_ENUM_DIR: the server dropped changes.
        log::debug("SMB notify {}: the server's change buffer overflowed", url);
        std::vector<Event> events;
        translator.flush(&events);
        events.push_back(overflowEvent());
        deliver(std::move(events));
        auto now = std::chrono::steady_clock::now();
        if (now - windowStart > std::chrono::seconds(1)) {
          windowStart = now;
          overflowsInWindow = 0;
        }
        if (++overflowsInWindow <= kMaxOverflowsPerSecond) continue;
        e = EIO;
      }
      Error error{e, fmt::format("SMB notify on {} ended: {}; {}", url, std::strerror(e), hintFor(e))};
      sendError(error);  // before "ready", start() reports it; after, failed()
      return;
    }
  }
};

SmbNotify::SmbNotify(pid_t child, UniqueFd socket) : child_(child), socket_(std::move(socket)) {}

Result<std::unique_ptr<SmbNotify>> SmbNotify::start(const SmbLocation& location, const SmbCredentials& credentials,
                                                    uint32_t mask, bool recursive) {
  Worker worker;
  worker.location = location;
  worker.credentials = credentials;
  worker.url = smbUrl(location);
  worker.mask = mask;
  worker.filter = completionFilterFor(mask);
  worker.recursive = recursive;
  if (worker.filter == 0) {
    return Error{EINVAL, fmt::format("SMB notify on {}: none of the requested events exists in SMB2", worker.url)};
  }
  int pair[2];
  if (::socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, pair) != 0) return lastError("socketpair");
  UniqueFd mine(pair[0]), theirs(pair[1]);
  pid_t child = ::fork();
  if (child < 0) return lastError("fork (SMB notify helper)");
  if (child == 0) {
    // The helper: nothing of the parent but this socket (a descriptor kept
    // open here would keep the parent's connections and pipes alive); it
    // leaves when the socket's other end closes (leaveIfOrphaned).
    ::dup2(theirs.get(), 3);
    ::close_range(4, ~0U, 0);
    worker.out = 3;
    worker.run();
    ::_exit(0);  // no atexit handlers or static destructors of the parent's program
  }
  theirs.reset();
  auto fail = [&](Error e) -> Result<std::unique_ptr<SmbNotify>> {
    ::kill(child, SIGKILL);
    ::waitpid(child, nullptr, 0);
    return e;
  };
  // The first message: "ready" or the error that ended the helper.
  pollfd p{mine.get(), POLLIN, 0};
  int n = 0;
  do {
    n = ::poll(&p, 1, kConnectTimeoutMs + 2000);
  } while (n < 0 && errno == EINTR);
  if (n == 0)
    return fail(Error{ETIMEDOUT, fmt::format("SMB: no answer from {} within {} ms; {}", worker.url,
                                             kConnectTimeoutMs + 2000, hintFor(ETIMEDOUT))});
  char buf[kMaxMessage];
  ssize_t len = ::recv(mine.get(), buf, sizeof buf, 0);
  if (len > 0 && buf[0] == kMsgReady) {
    ::fcntl(mine.get(), F_SETFL, O_NONBLOCK);
    return std::unique_ptr<SmbNotify>(new SmbNotify(child, std::move(mine)));
  }
  if (len >= 5 && buf[0] == kMsgError) {
    return fail(Error{static_cast<int>(readU32(buf + 1)), std::string(buf + 5, static_cast<size_t>(len - 5))});
  }
  return fail(Error{EIO, fmt::format("SMB notify on {}: the helper process ended without an answer", worker.url)});
}

SmbNotify::~SmbNotify() { endHelper(); }

// The helper holds no state worth a goodbye: the server drops the session
// when the connection closes. Once it is reaped its end of the socket is
// closed, so fd() stays readable (EOF) for a caller that polls again.
void SmbNotify::endHelper() const {
  if (child_ < 0) return;
  ::kill(child_, SIGKILL);
  while (::waitpid(child_, nullptr, 0) < 0 && errno == EINTR) {
  }
  child_ = -1;
}

int SmbNotify::fd() const { return socket_.get(); }

void SmbNotify::drain() const {
  char buf[kMaxMessage];
  while (!failed_) {
    ssize_t len = ::recv(socket_.get(), buf, sizeof buf, 0);
    if (len < 0 && errno == EINTR) continue;
    if (len < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return;
    if (len <= 0) {  // the helper died without a word (killed, crashed)
      failed_ = true;
      error_ = len == 0 ? Error{ECONNABORTED, "SMB notify: the helper process ended unexpectedly"}
                        : lastError("SMB notify: read from the helper process");
      endHelper();
      return;
    }
    if (buf[0] == kMsgEvent && len >= 13) {
      Event e;
      e.mask = readU32(buf + 1);
      e.cookie = readU32(buf + 5);
      uint32_t dirLen = readU32(buf + 9);
      size_t rest = static_cast<size_t>(len) - 13;
      if (dirLen > rest) continue;
      e.dir.assign(buf + 13, dirLen);
      e.name.assign(buf + 13 + dirLen, rest - dirLen);
      events_.push_back(std::move(e));
    } else if (buf[0] == kMsgError && len >= 5) {
      failed_ = true;
      error_ = Error{static_cast<int>(readU32(buf + 1)), std::string(buf + 5, static_cast<size_t>(len - 5))};
      endHelper();
    }
  }
}

std::vector<Event> SmbNotify::take() {
  drain();
  std::vector<Event> out;
  out.swap(events_);
  return out;
}

bool SmbNotify::failed() const {
  drain();
  return failed_;
}

Error SmbNotify::error() const {
  drain();
  return error_;
}

}  // namespace rnotify
