// Process; see process.h. fork+exec rather than posix_spawn because the child
// needs PR_SET_PDEATHSIG. Everything the child touches between fork and exec
// is prepared before fork, so only async-signal-safe calls happen there.
#include "process.h"

#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <sstream>
#include <stdexcept>
#include <thread>

#include "common/read_file.h"
#include "netns.h"

extern char** environ;

namespace rnotify::testbed {
namespace {

struct Pipe {
  UniqueFd read, write;
};

Pipe makePipe() {
  int fds[2];
  if (::pipe2(fds, O_CLOEXEC) != 0) throw std::runtime_error(std::string("pipe2: ") + std::strerror(errno));
  return {UniqueFd(fds[0]), UniqueFd(fds[1])};
}

std::vector<std::string> buildEnv(const std::map<std::string, std::optional<std::string>>& changes) {
  std::map<std::string, std::string> env;
  for (char** e = environ; *e != nullptr; ++e) {
    std::string kv = *e;
    auto eq = kv.find('=');
    if (eq != std::string::npos) env[kv.substr(0, eq)] = kv.substr(eq + 1);
  }
  for (const auto& [k, v] : changes) {
    if (v) {
      env[k] = *v;
    } else {
      env.erase(k);
    }
  }
  std::vector<std::string> out;
  for (const auto& [k, v] : env) out.push_back(k + "=" + v);
  return out;
}

std::vector<char*> cStrings(std::vector<std::string>& strings) {
  std::vector<char*> out;
  for (auto& s : strings) out.push_back(s.data());
  out.push_back(nullptr);
  return out;
}

pid_t parentOf(pid_t pid) {
  auto stat = readProcStat(pid);
  return stat ? stat->ppid : -1;
}

std::string quoteArgv(const std::vector<std::string>& argv) {
  std::string out;
  for (const auto& a : argv) {
    if (!out.empty()) out += ' ';
    bool plain = !a.empty() && a.find_first_of(" \t'\"\\|$&;<>()*?") == std::string::npos;
    out += plain ? a : "'" + a + "'";
  }
  return out;
}

}  // namespace

std::vector<pid_t> descendantsOf(pid_t root) {
  std::multimap<pid_t, pid_t> children;
  if (DIR* d = ::opendir("/proc")) {
    while (dirent* e = ::readdir(d)) {
      char* end = nullptr;
      long pid = std::strtol(e->d_name, &end, 10);
      if (*end != '\0' || pid <= 0) continue;
      children.emplace(parentOf(static_cast<pid_t>(pid)), static_cast<pid_t>(pid));
    }
    ::closedir(d);
  }
  std::vector<pid_t> out;
  std::vector<pid_t> frontier{root};
  while (!frontier.empty()) {
    pid_t p = frontier.back();
    frontier.pop_back();
    auto [lo, hi] = children.equal_range(p);
    for (auto it = lo; it != hi; ++it) {
      out.push_back(it->second);
      frontier.push_back(it->second);
    }
  }
  return out;
}

Process::Process(ProcessOptions options) : options_(std::move(options)) {
  if (options_.argv.empty()) throw std::invalid_argument("Process: empty argv");
  std::vector<std::string> argv = options_.argv;
  if (options_.netns != nullptr) argv = options_.netns->wrap(argv);
  std::vector<std::string> envStrings = buildEnv(options_.env);
  std::vector<char*> cArgv = cStrings(argv);
  std::vector<char*> cEnv = cStrings(envStrings);

  Pipe in, out, err, execError = makePipe();
  if (options_.pipeStdin) in = makePipe();
  if (options_.captureStdout) out = makePipe();
  if (options_.captureStderr) err = makePipe();
  UniqueFd devNull(::open("/dev/null", O_RDWR | O_CLOEXEC));
  const char* cwd = options_.cwd.empty() ? nullptr : options_.cwd.c_str();
  pid_t parent = ::getpid();

  pid_t pid = ::fork();
  if (pid < 0) throw std::runtime_error(std::string("fork: ") + std::strerror(errno));
  if (pid == 0) {
    ::setpgid(0, 0);
    ::prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (::getppid() != parent) ::_exit(127);  // the test died before prctl
    ::dup2(in.read ? in.read.get() : devNull.get(), 0);
    ::dup2(out.write ? out.write.get() : devNull.get(), 1);
    ::dup2(err.write ? err.write.get() : devNull.get(), 2);
    // Everything else is O_CLOEXEC (ours) or inherited from gtest's parent;
    // close the latter so that no stray pipe end keeps a reader waiting.
    ::close_range(3, ~0U, CLOSE_RANGE_CLOEXEC);
    ::fcntl(execError.write.get(), F_SETFD, FD_CLOEXEC);
    if (cwd != nullptr && ::chdir(cwd) != 0) {
      int e = errno;
      [[maybe_unused]] auto n = ::write(execError.write.get(), &e, sizeof e);
      ::_exit(127);
    }
    ::execvpe(cArgv[0], cArgv.data(), cEnv.data());
    int e = errno;
    [[maybe_unused]] auto n = ::write(execError.write.get(), &e, sizeof e);
    ::_exit(127);
  }
  pid_ = pid;
  execError.write.reset();
  int childErrno = 0;
  ssize_t n;
  do {
    n = ::read(execError.read.get(), &childErrno, sizeof childErrno);
  } while (n < 0 && errno == EINTR);
  if (n == sizeof childErrno) {
    ::waitpid(pid_, nullptr, 0);
    pid_ = -1;
    throw std::runtime_error("cannot run '" + argv[0] + "': " + std::strerror(childErrno) +
                             " (is it installed and in PATH?)");
  }
  stdin_ = std::move(in.write);
  output_ = std::make_unique<OutputCapture>(std::move(out.read), std::move(err.read));
}

Process::~Process() {
  // A destructor that throws ends the whole test binary; cleanup is best effort.
  try {
    terminate();
  } catch (...) {
  }
  output_.reset();
}

std::string Process::commandLine() const { return quoteArgv(options_.argv); }

bool Process::running() {
  if (status_ || pid_ < 0) return false;
  int st = 0;
  pid_t r = ::waitpid(pid_, &st, WNOHANG);
  if (r == pid_) {
    status_ = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
    return false;
  }
  return true;
}

std::optional<int> Process::waitExit(const Deadline& deadline) {
  waitUntil(
      deadline, [this] { return !running(); }, milliseconds(10));
  return status_;
}

void Process::signal(int sig) {
  if (pid_ < 0 || status_) return;
  // Descendants first: sshd's session children run in their own sessions.
  for (pid_t p : descendantsOf(pid_)) ::kill(p, sig);
  ::kill(-pid_, sig);
  ::kill(pid_, sig);
}

void Process::terminate(Clock::duration grace) {
  if (pid_ < 0) return;
  std::vector<pid_t> family = descendantsOf(pid_);
  if (running()) {
    signal(SIGTERM);
    if (!waitExit(Deadline::in(grace))) {
      signal(SIGKILL);
      waitExit(Deadline::in(std::chrono::seconds(5)));
    }
  }
  // Children that outlived the leader (already reparented): finish them too.
  for (pid_t p : family) ::kill(p, SIGKILL);
  ::kill(-pid_, SIGKILL);
  if (output_) output_->waitForEof(Deadline::in(milliseconds(500)));
}

void Process::writeStdin(const std::string& data) {
  if (!stdin_) throw std::logic_error("writeStdin: stdin is not a pipe (set pipeStdin)");
  size_t done = 0;
  while (done < data.size()) {
    ssize_t n = ::write(stdin_.get(), data.data() + done, data.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) throw std::runtime_error(std::string("write to stdin: ") + std::strerror(errno));
    done += static_cast<size_t>(n);
  }
}

std::optional<size_t> Process::waitForLine(Stream stream, const std::function<bool(const std::string&)>& match,
                                           const Deadline& deadline, size_t from) {
  return output_->waitForLine(stream, match, deadline, from);
}

std::string Process::transcript() const {
  std::string out = "$ " + commandLine() + "\n" + output_->transcript();
  if (status_) out += "[exit status " + std::to_string(*status_) + "]\n";
  return out;
}

std::string CommandResult::describe(const std::vector<std::string>& argv) const {
  std::string out = "$ " + quoteArgv(argv) + "\n";
  out += exitCode < 0 ? "[did not finish in time]\n" : "[exit status " + std::to_string(exitCode) + "]\n";
  if (!stdoutText.empty()) out += "stdout:\n" + stdoutText;
  if (!stderrText.empty()) out += "stderr:\n" + stderrText;
  return out;
}

CommandResult runCommand(const std::vector<std::string>& argv, const Deadline& deadline, const Netns* netns) {
  ProcessOptions opts;
  opts.argv = argv;
  opts.netns = netns;
  Process p(std::move(opts));
  CommandResult result;
  if (auto code = p.waitExit(deadline)) result.exitCode = *code;
  p.terminate();
  for (const auto& l : p.lines(Stream::kStdout)) result.stdoutText += l + "\n";
  for (const auto& l : p.lines(Stream::kStderr)) result.stderrText += l + "\n";
  return result;
}

std::string runChecked(const std::vector<std::string>& argv, const Deadline& deadline, const Netns* netns) {
  CommandResult r = runCommand(argv, deadline, netns);
  if (r.exitCode != 0) throw std::runtime_error("command failed:\n" + r.describe(argv));
  return r.stdoutText;
}

}  // namespace rnotify::testbed
