// rnotify-smb-helper: one SMB2 CHANGE_NOTIFY watch through libsmbclient, in
// a process of its own (see smb_notify.h for why). Started by SmbNotify with
// posix_spawn; descriptor 3 is its socket (smb_helper_wire.h). Not meant to
// be run by hand: it says so and exits 2.
#include <fmt/core.h>
#include <libsmbclient.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>

#include "common/log.h"
#include "smb/smb_actions.h"
#include "smb/smb_helper_wire.h"
#include "smb/smb_notify.h"

namespace rnotify {
namespace {

constexpr int kMaxOverflowsPerSecond = 20;

}  // namespace

struct Worker {
  SmbLocation location;
  SmbCredentials credentials;
  std::string url;
  uint32_t mask = 0;
  uint32_t filter = 0;
  bool recursive = false;
  int out = -1;  // the helper's end of the socket pair (descriptor 3)
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
    send(std::string(1, smbwire::kReady));
  }
  bool answered_ = false;

  void send(const std::string& message) {
    while (::send(out, message.data(), message.size(), MSG_NOSIGNAL) < 0) {
      if (errno != EINTR) ::_exit(0);  // the parent's end is gone
    }
  }

  // After its config the parent never writes: end of file means the
  // SmbNotify (or its whole process) is gone. Checked on every tick, so an
  // idle helper leaves within kTickMs. (Not PR_SET_PDEATHSIG: that follows
  // the thread that spawned it, and start() may be called from a thread
  // that ends before the watch does.)
  void leaveIfOrphaned() {
    char c;
    if (::recv(out, &c, 1, MSG_DONTWAIT | MSG_PEEK) == 0) ::_exit(0);
  }
  void sendError(const Error& e) {
    std::string m(1, smbwire::kError);
    smbwire::appendU32(&m, static_cast<uint32_t>(e.code));
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
    smbc_setTimeout(ctx, SmbNotify::kConnectTimeoutMs);
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
      return Error{e, fmt::format("SMB: cannot open {} as '{}': {}; {}", url, credentials.user, std::strerror(e),
                                  smbFixHint(e))};
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
    self->deliver(events);
    return 0;  // the parent ends this process
  }

  void deliver(const std::vector<Event>& events) {
    for (const Event& e : events) {
      if (e.mask != IN_Q_OVERFLOW && (e.mask & mask) == 0) continue;
      std::string m(1, smbwire::kEvent);
      smbwire::appendU32(&m, e.mask);
      smbwire::appendU32(&m, e.cookie);
      smbwire::appendU32(&m, static_cast<uint32_t>(e.dir.size()));
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
      int rc = notify(ctx, dir, recursive ? 1 : 0, filter, SmbNotify::kTickMs, &Worker::onChanges, this);
      if (rc == 0) return;  // not asked for: the callback never stops it
      int e = errno;
      if (e == 0) {
        // STATUS_NOTIFY_ENUM_DIR: the server dropped changes.
        log::debug("SMB notify {}: the server's change buffer overflowed", url);
        std::vector<Event> events;
        translator.flush(&events);
        events.push_back(overflowEvent());
        deliver(events);
        auto now = std::chrono::steady_clock::now();
        if (now - windowStart > std::chrono::seconds(1)) {
          windowStart = now;
          overflowsInWindow = 0;
        }
        if (++overflowsInWindow <= kMaxOverflowsPerSecond) continue;
        e = EIO;
      }
      Error error{e, fmt::format("SMB notify on {} ended: {}; {}", url, std::strerror(e), smbFixHint(e))};
      sendError(error);  // before "ready", start() reports it; after, failed()
      return;
    }
  }
};

}  // namespace rnotify

int main(int argc, char** argv) {
  using namespace rnotify;
  char buf[smbwire::kMaxMessage];
  ssize_t n = -1;
  if (argc == 1) {
    do {
      n = ::recv(3, buf, sizeof buf, 0);
    } while (n < 0 && errno == EINTR);
  }
  auto config = n > 0 ? smbwire::decodeConfig(std::string_view(buf, static_cast<size_t>(n))) : std::nullopt;
  if (!config) {
    std::fprintf(stderr,
                 "%s: the SMB change-notify helper of librnotify; it is started by the library, "
                 "with its socket on descriptor 3, not by hand\n",
                 argc > 0 ? argv[0] : "rnotify-smb-helper");
    return 2;
  }
  log::setProgram("rnotify-smb-helper");
  log::setLevel(static_cast<log::Level>(std::min<uint32_t>(config->logLevel, static_cast<uint32_t>(log::Level::kOff))));
  Worker worker;
  worker.location = config->location;
  worker.credentials = config->credentials;
  worker.url = smbUrl(config->location);
  worker.mask = config->mask;
  worker.filter = completionFilterFor(config->mask);
  worker.recursive = config->recursive;
  worker.out = 3;
  worker.run();
  return 0;
}
