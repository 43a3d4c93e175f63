#include "transport/agent_process.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>

#include "common/spawn.h"

namespace rnotify {
namespace {

constexpr size_t kMaxStderr = 16 * 1024;

Result<std::pair<UniqueFd, UniqueFd>> makePipe() {
  int fds[2];
  if (::pipe2(fds, O_CLOEXEC) != 0) return lastError("pipe2");
  return std::make_pair(UniqueFd(fds[0]), UniqueFd(fds[1]));
}

}  // namespace

Result<AgentProcess> AgentProcess::spawn(const std::vector<std::string>& argv) {
  if (argv.empty()) return Error{EINVAL, "empty agent command"};
  auto in = makePipe(), out = makePipe(), err = makePipe();
  if (!in) return in.error();
  if (!out) return out.error();
  if (!err) return err.error();

  // The agent (ssh) must not load the LD_PRELOAD inotify shim that may be
  // running this very library (spawnHelper takes it out).
  auto pid = spawnHelper(
      argv, {{in->first.get(), STDIN_FILENO}, {out->second.get(), STDOUT_FILENO}, {err->second.get(), STDERR_FILENO}});
  if (!pid) return pid.error();

  AgentProcess p;
  p.pid_ = *pid;
  p.stdin_ = std::move(in->second);
  p.stdout_ = std::move(out->first);
  p.stderr_ = std::move(err->first);
  ::fcntl(p.stdout_.get(), F_SETFL, O_NONBLOCK);
  ::fcntl(p.stderr_.get(), F_SETFL, O_NONBLOCK);
  return p;
}

AgentProcess::AgentProcess(AgentProcess&& other) noexcept { *this = std::move(other); }

AgentProcess& AgentProcess::operator=(AgentProcess&& other) noexcept {
  if (this != &other) {
    terminate();
    pid_ = std::exchange(other.pid_, -1);
    status_ = other.status_;
    stdin_ = std::move(other.stdin_);
    stdout_ = std::move(other.stdout_);
    stderr_ = std::move(other.stderr_);
    stderrText_ = std::move(other.stderrText_);
  }
  return *this;
}

AgentProcess::~AgentProcess() { terminate(); }

void AgentProcess::terminate() {
  if (pid_ <= 0) return;
  stdin_.reset();  // the agent exits on end of input; ssh passes that on
  if (reap(200) < 0) {
    ::kill(pid_, SIGTERM);
    if (reap(1000) < 0) {
      ::kill(pid_, SIGKILL);
      reap(-1);
    }
  }
  pid_ = -1;
}

void AgentProcess::kill() {
  if (pid_ <= 0) return;
  if (reap(0) < 0) {
    ::kill(pid_, SIGKILL);
    reap(-1);
  }
  pid_ = -1;
}

int AgentProcess::reap(int timeoutMs) {
  if (status_ >= 0 || pid_ <= 0) return status_;
  if (timeoutMs >= 0) {
    // A pidfd becomes readable when the process exits: wait on it, not in a sleep loop.
    UniqueFd pidfd(static_cast<int>(::syscall(SYS_pidfd_open, pid_, 0)));
    if (pidfd.valid()) {
      struct pollfd p = {pidfd.get(), POLLIN, 0};
      while (::poll(&p, 1, timeoutMs) < 0 && errno == EINTR) {
      }
    }
  }
  int status;
  pid_t r;
  do {
    r = ::waitpid(pid_, &status, timeoutMs < 0 ? 0 : WNOHANG);
  } while (r < 0 && errno == EINTR);
  if (r != pid_) return -1;
  status_ = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  return status_;
}

const std::string& AgentProcess::stderrText() {
  char buffer[4096];
  while (stderr_.valid()) {
    ssize_t n = ::read(stderr_.get(), buffer, sizeof buffer);
    if (n <= 0) break;
    stderrText_.append(buffer, static_cast<size_t>(n));
    if (stderrText_.size() > kMaxStderr) stderrText_.erase(0, stderrText_.size() - kMaxStderr);
  }
  return stderrText_;
}

}  // namespace rnotify
