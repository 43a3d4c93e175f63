// SmbNotify: the library's side; libsmbclient runs in rnotify-smb-helper
// (smb_helper.cc). See smb_notify.h.
#include "smb/smb_notify.h"

#include <dlfcn.h>
#include <fcntl.h>
#include <fmt/core.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <string_view>

#include "common/log.h"
#include "common/spawn.h"
#include "smb/smb_actions.h"
#include "smb/smb_helper_wire.h"

namespace rnotify {

using smbwire::readU32;

std::string SmbNotify::helperPath() {
  if (const char* env = std::getenv("RNOTIFY_SMB_HELPER"); env != nullptr && *env != '\0') return env;
  // The helper that came with this very code: the build tree's when this
  // code runs from the build tree (a developer's program, the tests), even if
  // an older rnotify is installed; else the installed one.
  Dl_info self{};
  if (::dladdr(reinterpret_cast<void*>(&SmbNotify::helperPath), &self) != 0 && self.dli_fname != nullptr &&
      std::string_view(self.dli_fname).rfind(RNOTIFY_BUILD_TREE, 0) == 0) {
    return RNOTIFY_SMB_HELPER_BUILT;
  }
  struct stat st;
  if (::stat(RNOTIFY_SMB_HELPER_INSTALLED, &st) == 0) return RNOTIFY_SMB_HELPER_INSTALLED;
  return RNOTIFY_SMB_HELPER_BUILT;
}

SmbNotify::SmbNotify(pid_t child, UniqueFd socket) : child_(child), socket_(std::move(socket)) {}

Result<std::unique_ptr<SmbNotify>> SmbNotify::start(const SmbLocation& location, const SmbCredentials& credentials,
                                                    uint32_t mask, bool recursive) {
  const std::string url = smbUrl(location);
  if (completionFilterFor(mask) == 0) {
    return Error{EINVAL, fmt::format("SMB notify on {}: none of the requested events exists in SMB2", url)};
  }
  int pair[2];
  if (::socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, pair) != 0) return lastError("socketpair");
  UniqueFd mine(pair[0]), theirs(pair[1]);
  UniqueFd null(::open("/dev/null", O_RDWR | O_CLOEXEC));
  if (!null) return lastError("open /dev/null");
  // The helper gets this socket as descriptor 3, /dev/null as its standard
  // input and output, this process's standard error (for its log), and
  // nothing else; it leaves when the socket's other end closes.
  const std::string program = helperPath();
  auto spawned = spawnHelper({program}, {{null.get(), STDIN_FILENO}, {null.get(), STDOUT_FILENO}, {theirs.get(), 3}});
  if (!spawned) {
    return Error{spawned.error().code, fmt::format("SMB notify on {}: {} (the helper program is part of rnotify; "
                                                   "RNOTIFY_SMB_HELPER names another)",
                                                   url, spawned.error().message)};
  }
  const pid_t child = *spawned;
  theirs.reset();
  auto fail = [&](Error e) -> Result<std::unique_ptr<SmbNotify>> {
    ::kill(child, SIGKILL);
    while (::waitpid(child, nullptr, 0) < 0 && errno == EINTR) {
    }
    return e;
  };
  smbwire::HelperConfig config;
  config.location = location;
  config.credentials = credentials;
  config.mask = mask;
  config.recursive = recursive;
  config.logLevel = static_cast<uint32_t>(log::level());
  const std::string packet = smbwire::encodeConfig(config);
  if (::send(mine.get(), packet.data(), packet.size(), MSG_NOSIGNAL) != static_cast<ssize_t>(packet.size())) {
    return fail(lastError("SMB notify: send to the helper process"));
  }
  // The first message: "ready" or the error that ended the helper.
  pollfd p{mine.get(), POLLIN, 0};
  int n = 0;
  do {
    n = ::poll(&p, 1, kConnectTimeoutMs + 2000);
  } while (n < 0 && errno == EINTR);
  if (n == 0)
    return fail(Error{ETIMEDOUT, fmt::format("SMB: no answer from {} within {} ms; {}", url, kConnectTimeoutMs + 2000,
                                             smbFixHint(ETIMEDOUT))});
  char buf[smbwire::kMaxMessage];
  ssize_t len = ::recv(mine.get(), buf, sizeof buf, 0);
  if (len > 0 && buf[0] == smbwire::kReady) {
    ::fcntl(mine.get(), F_SETFL, O_NONBLOCK);
    return std::unique_ptr<SmbNotify>(new SmbNotify(child, std::move(mine)));
  }
  if (len >= 5 && buf[0] == smbwire::kError) {
    return fail(Error{static_cast<int>(readU32(buf + 1)), std::string(buf + 5, static_cast<size_t>(len - 5))});
  }
  return fail(Error{EIO, fmt::format("SMB notify on {}: the helper process ended without an answer", url)});
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
  char buf[smbwire::kMaxMessage];
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
    if (buf[0] == smbwire::kEvent && len >= 13) {
      Event e;
      e.mask = readU32(buf + 1);
      e.cookie = readU32(buf + 5);
      uint32_t dirLen = readU32(buf + 9);
      size_t rest = static_cast<size_t>(len) - 13;
      if (dirLen > rest) continue;
      e.dir.assign(buf + 13, dirLen);
      e.name.assign(buf + 13 + dirLen, rest - dirLen);
      events_.push_back(std::move(e));
    } else if (buf[0] == smbwire::kError && len >= 5) {
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

// Neither reads the socket: messages read here would wait in events_ with
// fd() no longer readable, until the helper's next message (a change the
// server reported came late, or in a test not at all).
bool SmbNotify::failed() const { return failed_; }

Error SmbNotify::error() const { return error_; }

}  // namespace rnotify
