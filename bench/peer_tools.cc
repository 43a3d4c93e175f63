// The peer tools as event sources and counters; see peer_tools.h.
#include "peer_tools.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <nlohmann/json.hpp>
#include <stdexcept>

#include "deadline.h"
#include "temp_dir.h"

namespace rnotify::bench {
namespace {

bool onPath(const char* tool) {
  std::string path = ::getenv("PATH") ? ::getenv("PATH") : "/usr/bin:/bin";
  size_t start = 0;
  while (start <= path.size()) {
    size_t end = path.find(':', start);
    if (end == std::string::npos) end = path.size();
    std::string candidate = path.substr(start, end - start) + "/" + tool;
    if (::access(candidate.c_str(), X_OK) == 0) return true;
    start = end + 1;
  }
  return false;
}

std::string_view baseName(std::string_view path) {
  size_t slash = path.rfind('/');
  return slash == std::string_view::npos ? path : path.substr(slash + 1);
}

void writeAll(int fd, const std::string& text) {
  size_t done = 0;
  while (done < text.size()) {
    ssize_t n = ::write(fd, text.data() + done, text.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) throw std::runtime_error(std::string("write to watchman: ") + std::strerror(errno));
    done += static_cast<size_t>(n);
  }
}

}  // namespace

const char* peerName(PeerKind kind) {
  switch (kind) {
    case PeerKind::kInotifywait:
      return "inotifywait";
    case PeerKind::kFswatchInotify:
      return "fswatch-inotify";
    case PeerKind::kFswatchPoll:
      return "fswatch-poll";
    case PeerKind::kWatchman:
      return "watchman";
  }
  return "?";
}

std::string peerMissing(PeerKind kind) {
  const char* tool = kind == PeerKind::kInotifywait ? "inotifywait"
                     : kind == PeerKind::kWatchman  ? "watchman"
                                                    : "fswatch";
  if (onPath(tool)) return "";
  const char* package = kind == PeerKind::kInotifywait ? "inotify-tools" : tool;
  return std::string(tool) + " is not installed (apt-get install " + package + ")";
}

ChildProcess::ChildProcess(const std::vector<std::string>& argv, const std::string& stderrPath) {
  int pipeFds[2];
  if (::pipe2(pipeFds, O_CLOEXEC) != 0) throw std::runtime_error(std::string("pipe2: ") + std::strerror(errno));
  UniqueFd readEnd(pipeFds[0]), writeEnd(pipeFds[1]);
  std::vector<char*> args;
  for (const std::string& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  pid_t parent = ::getpid();
  pid_ = ::fork();
  if (pid_ < 0) throw std::runtime_error(std::string("fork: ") + std::strerror(errno));
  if (pid_ == 0) {
    ::setpgid(0, 0);
    ::prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (::getppid() != parent) ::_exit(127);
    ::dup2(writeEnd.get(), STDOUT_FILENO);
    int err = ::open(stderrPath.empty() ? "/dev/null" : stderrPath.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
    if (err >= 0) ::dup2(err, STDERR_FILENO);
    int in = ::open("/dev/null", O_RDONLY);
    if (in >= 0) ::dup2(in, STDIN_FILENO);
    ::execvp(args[0], args.data());
    ::_exit(127);
  }
  ::setpgid(pid_, pid_);
  stdout_ = std::move(readEnd);
  ::fcntl(stdout_.get(), F_SETFL, O_NONBLOCK);
}

ChildProcess::~ChildProcess() {
  if (pid_ <= 0) return;
  ::kill(-pid_, SIGKILL);
  ::kill(pid_, SIGKILL);
  int status;
  while (::waitpid(pid_, &status, 0) < 0 && errno == EINTR) {
  }
}

bool ChildProcess::running() {
  int status;
  return ::waitpid(pid_, &status, WNOHANG) == 0;
}

PeerTool::PeerTool(PeerKind kind, const std::string& dir, const std::string& work, bool countDeletes)
    : kind_(kind), name_(peerName(kind)), dir_(dir), countDeletes_(countDeletes), keepNames_(!countDeletes) {
  std::string why = peerMissing(kind);
  if (!why.empty()) throw std::runtime_error(why);
  std::string log = work + "/" + name_ + ".stderr";
  stderrPath_ = kind == PeerKind::kWatchman ? work + "/watchman.stderr" : log;
  std::vector<std::string> argv;
  switch (kind) {
    case PeerKind::kInotifywait:
      argv = {"inotifywait", "-m", "-q", "-e", countDeletes ? "create,delete" : "create", "--format", "%e %f", dir};
      break;
    case PeerKind::kFswatchInotify:
    case PeerKind::kFswatchPoll:
      argv = {"fswatch", "-m", kind == PeerKind::kFswatchPoll ? "poll_monitor" : "inotify_monitor"};
      if (kind == PeerKind::kFswatchPoll) argv.push_back("-r");
      argv.insert(argv.end(), {"-l", kind == PeerKind::kFswatchPoll ? "1" : "0.1", "-x", "--event", "Created"});
      if (countDeletes) argv.insert(argv.end(), {"--event", "Removed"});
      argv.push_back(dir);
      break;
    case PeerKind::kWatchman:
      startWatchman(work);
      break;
  }
  if (!argv.empty()) {
    tool_ = std::make_unique<ChildProcess>(argv, log);
    readFd_ = tool_->readFd();
    for (const std::string& a : argv) description_ += (description_.empty() ? "" : " ") + a;
  }
  waitReady();
}

PeerTool::~PeerTool() {
  socket_.reset();
  tool_.reset();
}

void PeerTool::startWatchman(const std::string& work) {
  // A private server: its own socket and state, nothing saved, and the
  // root's settle time set to 1 ms (its default, 20 ms, delays every report).
  std::string sock = work + "/watchman.sock";
  testbed::writeFile(dir_ + "/.watchmanconfig", "{\"settle\": 1}\n");
  std::vector<std::string> argv{"watchman",
                                "--foreground",
                                "--no-save-state",
                                "--sockname=" + sock,
                                "--statefile=" + work + "/watchman.state",
                                "--logfile=" + work + "/watchman.log",
                                "--pidfile=" + work + "/watchman.pid"};
  tool_ = std::make_unique<ChildProcess>(argv, work + "/watchman.stderr");
  bool up = testbed::waitUntil(testbed::Deadline::in(std::chrono::seconds(10)), [&] {
    UniqueFd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    std::snprintf(addr.sun_path, sizeof addr.sun_path, "%s", sock.c_str());
    if (::connect(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) return false;
    socket_ = std::move(fd);
    return true;
  });
  if (!up) throw std::runtime_error("watchman did not start (see " + work + "/watchman.log)");
  // JSON requests, one per line; answers and subscription reports likewise.
  // One request at a time: watchman 4.9 drops a second request that arrives
  // in the same read as the first.
  writeAll(socket_.get(), "[\"watch\", \"" + dir_ + "\"]\n");
  std::string answer;
  for (char c = 0; c != '\n';) {
    if (::read(socket_.get(), &c, 1) != 1) throw std::runtime_error("watchman: no answer to watch");
    answer += c;
  }
  if (answer.find("\"error\"") != std::string::npos) throw std::runtime_error("watchman: " + answer);
  writeAll(socket_.get(), "[\"subscribe\", \"" + dir_ +
                              "\", \"bench\", {\"fields\": [\"name\", \"exists\"], "
                              "\"empty_on_fresh_instance\": true}]\n");
  ::fcntl(socket_.get(), F_SETFL, O_NONBLOCK);
  readFd_ = socket_.get();
  description_ = "watchman " + std::string(
                                   "--foreground (private server), watch + subscribe over its unix socket "
                                   "(JSON), settle 1 ms");
}

void PeerTool::waitReady() {
  // The tool is ready when it reports a file created after its start.
  probe_ = ".ready-" + name_;
  std::string path = dir_ + "/" + probe_;
  auto deadline = testbed::Deadline::in(std::chrono::seconds(20));
  for (int attempt = 0; !probeSeen_ && !deadline.expired(); ++attempt) {
    std::string name = path + std::to_string(attempt);
    ::mknod(name.c_str(), S_IFREG | 0644, 0);
    auto until = testbed::Deadline::in(std::chrono::milliseconds(kind_ == PeerKind::kFswatchPoll ? 2500 : 300));
    while (!probeSeen_ && !until.expired()) {
      struct pollfd p = {readFd_, POLLIN, 0};
      if (::poll(&p, 1, until.remainingMs()) > 0) pump();
      if ((tool_ && !tool_->running()) || !ended_.empty()) throw std::runtime_error(name_ + " exited at start");
    }
  }
  if (!probeSeen_) throw std::runtime_error(name_ + " reported nothing within 20 s of its start");
  // Probe files leave the counts alone; their deletes (if reported) too.
  for (int attempt = 0;; ++attempt) {
    std::string name = path + std::to_string(attempt);
    if (::unlink(name.c_str()) != 0) break;
  }
  creates_.clear();
  counts_ = {};
}

bool PeerTool::readSome() {
  char chunk[64 * 1024];
  ssize_t n = ::read(readFd_, chunk, sizeof chunk);
  if (n < 0 && (errno == EAGAIN || errno == EINTR)) return false;
  if (n < 0) throw std::runtime_error(name_ + ": read: " + std::strerror(errno));
  if (n == 0) {
    // A tool that gives up (fswatch exits when the kernel queue overflows)
    // is a result, not a failure of the benchmark.
    std::string last;
    try {
      std::string text = testbed::readFile(stderrPath_);
      while (!text.empty() && text.back() == '\n') text.pop_back();
      last = text.substr(text.rfind('\n') == std::string::npos ? 0 : text.rfind('\n') + 1);
    } catch (const std::exception&) {
    }
    ended_ = name_ + " exited" + (last.empty() ? "" : ": " + last);
    return false;
  }
  buffer_.append(chunk, static_cast<size_t>(n));
  size_t start = 0;
  for (size_t nl; (nl = buffer_.find('\n', start)) != std::string::npos; start = nl + 1) {
    parseLine(std::string_view(buffer_).substr(start, nl - start));
  }
  buffer_.erase(0, start);
  return true;
}

void PeerTool::pump() {
  while (ended_.empty() && readSome()) {
  }
}

void PeerTool::note(std::string_view name, bool created, bool deleted) {
  if (name.substr(0, probe_.size()) == probe_ && !probe_.empty()) {
    if (created) probeSeen_ = true;
    return;
  }
  if (created) {
    ++counts_.creates;
    if (keepNames_) creates_.emplace_back(name);
  }
  if (deleted) ++counts_.deletes;
}

void PeerTool::parseLine(std::string_view line) {
  if (line.empty()) return;
  switch (kind_) {
    case PeerKind::kInotifywait: {  // "CREATE name", "DELETE name"
      size_t space = line.find(' ');
      if (space == std::string_view::npos) return;
      std::string_view events = line.substr(0, space);
      note(line.substr(space + 1), events.find("CREATE") != std::string_view::npos,
           events.find("DELETE") != std::string_view::npos);
      if (events.find("Q_OVERFLOW") != std::string_view::npos) ++counts_.overflows;
      return;
    }
    case PeerKind::kFswatchInotify:
    case PeerKind::kFswatchPoll: {  // "/dir/name Created", "/dir/name Removed IsFile"
      size_t space = line.find(' ');
      if (space == std::string_view::npos) return;
      std::string_view flags = line.substr(space);
      if (flags.find("Overflow") != std::string_view::npos) ++counts_.overflows;
      note(baseName(line.substr(0, space)), flags.find("Created") != std::string_view::npos,
           flags.find("Removed") != std::string_view::npos);
      return;
    }
    case PeerKind::kWatchman: {
      auto pdu = nlohmann::json::parse(line, nullptr, false);
      if (pdu.is_discarded() || !pdu.is_object()) return;
      if (pdu.contains("error")) throw std::runtime_error("watchman: " + pdu["error"].dump());
      // A recrawl (after the kernel queue overflowed) is announced as a warning.
      if (pdu.contains("warning") || pdu.value("is_fresh_instance", false)) ++counts_.overflows;
      if (!pdu.contains("files")) return;
      for (const auto& file : pdu["files"]) {
        std::string name = file.value("name", "");
        bool exists = file.value("exists", false);
        note(name, exists, !exists);
      }
      return;
    }
  }
}

bool PeerTool::complete(uint64_t files) const {
  // watchman reports a file's state when it settles, not every event: a
  // create and delete within one report are one entry that no longer exists.
  if (kind_ == PeerKind::kWatchman) return counts_.deletes >= files;
  return EventCounter::complete(files);
}

std::optional<std::string> PeerTool::nextCreate(int timeoutMs) {
  auto deadline = testbed::Deadline::in(std::chrono::milliseconds(timeoutMs));
  while (creates_.empty()) {
    struct pollfd p = {readFd_, POLLIN, 0};
    int n = ::poll(&p, 1, timeoutMs == 0 ? 0 : deadline.remainingMs());
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return std::nullopt;
    pump();
  }
  std::string name = std::move(creates_.front());
  creates_.pop_front();
  return name;
}

}  // namespace rnotify::bench
