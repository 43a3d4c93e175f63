// SmbNotify through libsmbclient; see smb_notify.h.
#include "smb/smb_notify.h"

#include <fmt/core.h>
#include <libsmbclient.h>

#include <atomic>
#include <chrono>
#include <cstring>
#include <future>
#include <thread>

#include "common/log.h"
#include "smb/notify_queue.h"
#include "smb/smb_actions.h"

namespace rnotify {
namespace {

constexpr int kMaxOverflowsPerSecond = 20;

// libsmbclient keeps its talloc stack frames (every call pushes one) in one
// process-wide pointer unless Samba was given thread functions, which
// Debian's build cannot do (smbc_thread_posix() is not exported). Two
// smbc_notify() loops in two threads interleave their frames and corrupt
// the heap ("Bad talloc magic value", seen with two watches). So a process
// runs at most one SmbNotify at a time; a second start() is refused.
std::atomic<bool> oneLive{false};

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
  NotifyQueue queue;
  std::atomic<bool> stopping{false};
  std::thread thread;
  SMBCCTX* ctx = nullptr;
  SMBCFILE* dir = nullptr;
  NotifyTranslator translator{0};

  // In the thread that made the context: libsmbclient contexts belong to one
  // thread.
  void close() {
    if (ctx == nullptr) return;
    if (dir != nullptr) smbc_getFunctionClosedir(ctx)(ctx, dir);
    smbc_free_context(ctx, 1);
    ctx = nullptr;
    dir = nullptr;
  }

  // Runs in the thread: connect, open and watch. `ready` is answered once the
  // first notify request is out (its first tick), so that no change made
  // after start() returns can fall before the request.
  void run(std::promise<Status>* ready) {
    ready_ = ready;
    Status opened = open();
    if (opened.ok()) watch();
    close();
    if (!opened.ok()) answer(std::move(opened));
  }

  void answer(Status status) {
    if (ready_ == nullptr) return;
    std::promise<Status>* ready = ready_;
    ready_ = nullptr;  // start() may return, and its promise go, right after set_value
    ready->set_value(std::move(status));
  }

  std::promise<Status>* ready_ = nullptr;

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
    self->answer({});
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
    return self->stopping.load() ? 1 : 0;
  }

  void deliver(std::vector<Event> events) {
    std::erase_if(events, [this](const Event& e) { return (e.mask & mask) == 0; });
    queue.push(std::move(events));
  }

  int pendingTicks = 0;

  void watch() {
    translator = NotifyTranslator(filter);
    auto notify = smbc_getFunctionNotify(ctx);
    // errno 0 is also what any other status without error severity gives:
    // a server that answers nothing else must not make this loop spin.
    auto windowStart = std::chrono::steady_clock::now();
    int overflowsInWindow = 0;
    while (!stopping.load()) {
      errno = 0;
      int rc = notify(ctx, dir, recursive ? 1 : 0, filter, kTickMs, &Worker::onChanges, this);
      if (rc == 0 || stopping.load()) return;  // the callback asked to stop
      int e = errno;
      if (e == 0) {
        // STATUS_NOTIFY_ENUM_DIR: the server dropped changes.
        log::debug("SMB notify {}: the server's change buffer overflowed", url);
        std::vector<Event> events;
        translator.flush(&events);
        deliver(std::move(events));
        queue.push({overflowEvent()});
        auto now = std::chrono::steady_clock::now();
        if (now - windowStart > std::chrono::seconds(1)) {
          windowStart = now;
          overflowsInWindow = 0;
        }
        if (++overflowsInWindow <= kMaxOverflowsPerSecond) continue;
        e = EIO;
      }
      Error error{e, fmt::format("SMB notify on {} ended: {}; {}", url, std::strerror(e), hintFor(e))};
      if (ready_ != nullptr) {
        answer(std::move(error));  // failed before it ever watched: start() reports it
      } else {
        queue.fail(std::move(error));
      }
      return;
    }
  }
};

SmbNotify::SmbNotify(std::unique_ptr<Worker> worker) : worker_(std::move(worker)) {}

Result<std::unique_ptr<SmbNotify>> SmbNotify::start(const SmbLocation& location, const SmbCredentials& credentials,
                                                    uint32_t mask, bool recursive) {
  auto worker = std::make_unique<Worker>();
  worker->location = location;
  worker->credentials = credentials;
  worker->url = smbUrl(location);
  worker->mask = mask;
  worker->filter = completionFilterFor(mask);
  worker->recursive = recursive;
  if (worker->filter == 0) {
    return Error{EINVAL, fmt::format("SMB notify on {}: none of the requested events exists in SMB2", worker->url)};
  }
  if (oneLive.exchange(true)) {
    return Error{EBUSY, fmt::format("SMB notify on {}: another SMB watch runs in this process, and libsmbclient "
                                    "cannot serve two at once (its talloc stack is not per thread)",
                                    worker->url)};
  }
  std::promise<Status> ready;
  auto opened = ready.get_future();
  worker->thread = std::thread([w = worker.get(), &ready] { w->run(&ready); });
  Status status = opened.get();
  if (!status.ok()) {
    worker->thread.join();
    oneLive.store(false);
    return status.error();
  }
  return std::unique_ptr<SmbNotify>(new SmbNotify(std::move(worker)));
}

SmbNotify::~SmbNotify() {
  worker_->stopping.store(true);
  if (worker_->thread.joinable()) worker_->thread.join();
  oneLive.store(false);
}

int SmbNotify::fd() const { return worker_->queue.fd(); }
std::vector<Event> SmbNotify::take() { return worker_->queue.take(); }
bool SmbNotify::failed() const { return worker_->queue.failed(); }
Error SmbNotify::error() const { return worker_->queue.error(); }

}  // namespace rnotify
