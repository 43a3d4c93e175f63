// Fault-injection tools; see fault_tools.h.
#include "fault_tools.h"

#include <dirent.h>
#include <signal.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <stdexcept>

#include "netns.h"
#include "process.h"
#include "product.h"

namespace rnotify::testbed {
namespace {

bool has(const WatchedEvent& e, const char* flag) { return e.flags.count(flag) != 0; }

bool below(const std::string& path, const std::string& dir) {
  return path.size() > dir.size() && path[dir.size()] == '/' && path.compare(0, dir.size(), dir) == 0;
}

std::string firstLine(const std::string& path) {
  std::ifstream in(path);
  std::string line;
  std::getline(in, line);
  return line;
}

bool writeText(const std::string& path, const std::string& text) {
  std::ofstream out(path);
  out << text << "\n";
  out.flush();
  return static_cast<bool>(out);
}

constexpr const char* kSysctlRecords = "/run/rnotify-test-sysctl";
constexpr const char* kLossNotice = "rnotifywait: events were lost";

}  // namespace

std::set<std::string> listTree(const std::string& root) {
  namespace fs = std::filesystem;
  std::set<std::string> out;
  const std::string prefix = root + "/";
  for (auto it = fs::recursive_directory_iterator(root); it != fs::recursive_directory_iterator(); ++it) {
    std::string p = it->path().string();
    if (p.compare(0, prefix.size(), prefix) != 0) throw std::runtime_error("listTree: '" + p + "' outside " + root);
    out.insert(p.substr(prefix.size()));
  }
  return out;
}

std::string compareListings(const std::set<std::string>& server, const std::set<std::string>& client, size_t limit) {
  std::vector<std::string> missing, extra;
  for (const auto& p : server) {
    if (!client.count(p)) missing.push_back(p);
  }
  for (const auto& p : client) {
    if (!server.count(p)) extra.push_back(p);
  }
  if (missing.empty() && extra.empty()) return "";
  auto list = [limit](const std::vector<std::string>& v) {
    std::string s;
    for (size_t i = 0; i < v.size() && i < limit; ++i) s += " '" + v[i] + "'";
    if (v.size() > limit) s += " ... (" + std::to_string(v.size()) + " in all)";
    return s;
  };
  std::string out;
  if (!missing.empty()) out += "on the server but not in the client's view:" + list(missing) + "\n";
  if (!extra.empty()) out += "in the client's view but not on the server:" + list(extra) + "\n";
  return out;
}

void TreeReplay::eraseTree(const std::string& path, std::vector<std::string>* keep) {
  paths_.erase(path);
  for (auto it = paths_.lower_bound(path + "/"); it != paths_.end() && below(*it, path);) {
    if (keep != nullptr) keep->push_back(it->substr(path.size()));  // "/rest"
    it = paths_.erase(it);
  }
}

void TreeReplay::apply(const WatchedEvent& e) {
  if (e.line.find(kLossNotice) != std::string::npos) {
    inGap_ = true;
    resynced_ = false;
    return;
  }
  if (e.flags.empty()) return;  // not an event: another notice, a log line
  const bool synthesized = has(e, "SYNTHESIZED");
  if (synthesized) {
    resynced_ = true;
  } else if (inGap_ && resynced_) {
    inGap_ = false;  // the first live event after the re-read's report
  }
  if (e.path.empty() || e.name.empty()) return;  // the root itself, or a directory's own event
  const std::string& p = e.path;
  const bool strict = !inGap_ || synthesized;
  auto contradiction = [&](const std::string& why) {
    if (strict) contradictions_.push_back(why + ": " + e.line);
  };
  if (has(e, "CREATE")) {
    if (!paths_.insert(p).second) contradiction("CREATE of a name the client already knew");
  } else if (has(e, "DELETE")) {
    if (!paths_.count(p)) contradiction("DELETE of a name the client did not know");
    eraseTree(p, nullptr);
  } else if (has(e, "MOVED_FROM")) {
    if (!paths_.count(p)) contradiction("MOVED_FROM of a name the client did not know");
    std::vector<std::string> contents;
    eraseTree(p, &contents);
    if (e.cookie != 0) movedAway_[e.cookie] = std::move(contents);
  } else if (has(e, "MOVED_TO")) {
    // A rename onto an existing name replaces it (inotify reports no DELETE).
    eraseTree(p, nullptr);
    paths_.insert(p);
    auto from = movedAway_.find(e.cookie);
    if (e.cookie != 0 && from != movedAway_.end()) {
      for (const std::string& rest : from->second) paths_.insert(p + rest);
      movedAway_.erase(from);
    } else {
      // Nothing in these tests comes from outside the watched tree.
      contradiction("MOVED_TO without its MOVED_FROM");
    }
  }
}

WatcherOptions mergingOutput(WatcherOptions options, const TempDir& dir) {
  std::string program = options.program.empty() ? rnotifywaitPath() : options.program;
  std::string script = dir / "rnotifywait-2to1.sh";
  writeFile(script, "#!/bin/sh\nexec 2>&1\nexec '" + program + "' \"$@\"\n");
  if (::chmod(script.c_str(), 0755) != 0) throw std::runtime_error("chmod " + script + " failed");
  options.program = script;
  return options;
}

::testing::AssertionResult outputSays(Watcher& watcher, const std::string& text, Clock::duration timeout, size_t from) {
  if (watcher.process().waitForLine(
          Stream::kStdout, [&](const std::string& l) { return l.find(text) != std::string::npos; },
          Deadline::in(timeout), from))
    return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure() << "rnotifywait did not say \"" << text << "\""
                                       << (watcher.process().running() ? "" : " (it has exited)") << "\n"
                                       << tailTranscript(watcher);
}

size_t countOutput(const Watcher& watcher, const std::string& text) {
  return countLines(const_cast<Watcher&>(watcher).process().lines(Stream::kStdout), text);
}

std::string TreeReplay::describeContradictions(size_t limit) const {
  std::string out;
  for (size_t i = 0; i < contradictions_.size() && i < limit; ++i) out += "  " + contradictions_[i] + "\n";
  if (contradictions_.size() > limit) out += "  ... (" + std::to_string(contradictions_.size()) + " in all)\n";
  return out;
}

::testing::AssertionResult clientViewIsServerTree(const std::set<std::string>& initial,
                                                  const std::vector<WatchedEvent>& events,
                                                  const std::string& serverRoot) {
  TreeReplay replay(initial);
  replay.applyAll(events);
  std::string differences = compareListings(listTree(serverRoot), replay.paths());
  if (differences.empty() && replay.contradictions().empty()) return ::testing::AssertionSuccess();
  auto failure = ::testing::AssertionFailure();
  failure << "the client's view (the first listing + " << events.size()
          << " printed events) is not the server's tree:\n";
  if (!differences.empty()) failure << differences;
  if (!replay.contradictions().empty()) {
    failure << "events that contradict the ones before them (a change told twice, or never told):\n"
            << replay.describeContradictions();
  }
  return failure;
}

::testing::AssertionResult settle(Watcher& watcher, const std::string& serverDir, Clock::duration timeout) {
  auto deadline = Deadline::in(timeout);
  size_t from = watcher.process().lines(Stream::kStdout).size();
  bool live = false;
  for (int n = 0; !deadline.expired(); ++n) {
    std::string name = "settle-" + std::to_string(n);
    writeFile(serverDir + "/" + name, "barrier\n");
    std::string wanted = "|" + name + "|CLOSE_WRITE";
    auto attempt = Deadline::in(std::min<Clock::duration>(std::chrono::seconds(3), deadline.remaining()));
    auto found = watcher.process().waitForLine(
        Stream::kStdout, [&](const std::string& l) { return l.find(wanted) != std::string::npos; }, attempt, from);
    if (found && live) return ::testing::AssertionSuccess();
    if (found) live = true;  // one more, after whatever this one came with
  }
  return ::testing::AssertionFailure() << "no barrier arrived in time\n" << tailTranscript(watcher);
}

size_t countEvents(const std::vector<WatchedEvent>& events, const std::string& flags, const std::string& path) {
  ExpectedEvent expected{flags, path};
  size_t n = 0;
  for (const WatchedEvent& e : events) n += expected.matches(e) ? 1 : 0;
  return n;
}

size_t countLines(const std::vector<std::string>& lines, const std::string& text) {
  size_t n = 0;
  for (const auto& l : lines) n += l.find(text) != std::string::npos ? 1 : 0;
  return n;
}

std::string tailTranscript(const Watcher& watcher, size_t n) {
  std::ostringstream out;
  auto lines = const_cast<Watcher&>(watcher).process().lines(Stream::kStdout);
  if (std::getenv("RNOTIFY_TEST_VERBOSE") != nullptr) n = lines.size();  // all of it
  out << "--- rnotifywait stdout: " << lines.size() << " lines";
  if (lines.size() > n) out << ", the last " << n;
  out << ":\n";
  for (size_t i = lines.size() > n ? lines.size() - n : 0; i < lines.size(); ++i) out << "  " << lines[i] << "\n";
  out << "--- rnotifywait stderr:\n";
  for (const auto& l : watcher.stderrLines()) out << "  " << l << "\n";
  return out.str();
}

std::string commOf(pid_t pid) { return firstLine("/proc/" + std::to_string(pid) + "/comm"); }

pid_t parentOf(pid_t pid) {
  auto stat = readProcStat(pid);
  return stat ? stat->ppid : -1;
}

std::vector<pid_t> agentsBelow(pid_t sshd) {
  std::vector<pid_t> out;
  for (pid_t pid : descendantsOf(sshd)) {
    if (commOf(pid).rfind("rnotifyd", 0) == 0) out.push_back(pid);
  }
  return out;
}

AgentGate::AgentGate(const TempDir& dir, const std::string& extraArgs)
    : script_(dir / "agent-gate.sh"), gate_(dir / "agent-gate.closed") {
  writeFile(script_,
            "#!/bin/sh\n"
            "# The agent, unless the test holds it back.\n"
            "if [ -e '" +
                gate_ +
                "' ]; then echo 'agent-gate: rnotifyd is held back by the test' >&2; exit 75; fi\n"
                "exec " +
                agentCommand() + (extraArgs.empty() ? "" : " " + extraArgs) + "\n");
  if (::chmod(script_.c_str(), 0755) != 0) throw std::runtime_error("chmod " + script_ + " failed");
}

void AgentGate::close() { writeFile(gate_, "closed\n"); }

void AgentGate::open() {
  if (::unlink(gate_.c_str()) != 0 && errno != ENOENT) throw std::runtime_error("cannot remove " + gate_);
}

LinkCut::LinkCut(const Netns& netns) : netns_(netns) {
  auto deadline = Deadline::in(std::chrono::seconds(10));
  std::string links = runChecked({"ip", "-o", "link", "show", "type", "veth"}, deadline, &netns_);
  std::istringstream in(links);
  std::string line;
  while (std::getline(in, line)) {
    // "7: rnt1234abcda@if6: <BROADCAST,...> ..."
    auto colon = line.find(": ");
    if (colon == std::string::npos) continue;
    std::string name = line.substr(colon + 2);
    name = name.substr(0, name.find_first_of("@:"));
    if (!name.empty()) interfaces_.push_back(name);
  }
  if (interfaces_.empty()) throw std::runtime_error("LinkCut: no veth interface in " + netns_.name());
  cut_ = true;
  for (const auto& name : interfaces_) runChecked({"ip", "link", "set", name, "down"}, deadline, &netns_);
}

LinkCut::~LinkCut() {
  try {
    restore();
  } catch (...) {
  }
}

void LinkCut::restore() {
  if (!cut_) return;
  cut_ = false;
  auto deadline = Deadline::in(std::chrono::seconds(10));
  for (const auto& name : interfaces_) runChecked({"ip", "link", "set", name, "up"}, deadline, &netns_);
}

SysctlOverride::SysctlOverride(std::string path, const std::string& value) : path_(std::move(path)) {
  std::string name = path_.rfind("/proc/sys/", 0) == 0 ? path_.substr(10) : path_;
  for (char& c : name) c = c == '/' ? '.' : c;
  ::mkdir(kSysctlRecords, 0700);
  // Values left lowered by a run that was killed before it could restore them.
  if (DIR* d = ::opendir(kSysctlRecords)) {
    std::vector<std::string> stale;
    while (dirent* e = ::readdir(d)) {
      std::string n = e->d_name;
      if (n.rfind(name + ".", 0) != 0) continue;
      int pid = std::atoi(n.c_str() + name.size() + 1);
      if (pid > 0 && pid != ::getpid() && ::kill(pid, 0) != 0 && errno == ESRCH) stale.push_back(n);
    }
    ::closedir(d);
    for (const auto& n : stale) {
      std::string record = std::string(kSysctlRecords) + "/" + n;
      std::string old = firstLine(record);
      if (!old.empty() && writeText(path_, old)) ::unlink(record.c_str());
    }
  }
  original_ = firstLine(path_);
  if (original_.empty()) throw std::runtime_error("cannot read " + path_);
  record_ = std::string(kSysctlRecords) + "/" + name + "." + std::to_string(::getpid());
  if (!writeText(record_, original_)) throw std::runtime_error("cannot write " + record_);
  active_ = true;
  if (!writeText(path_, value) || firstLine(path_) != value) {
    restore();
    throw std::runtime_error("cannot set " + path_ + " to " + value);
  }
}

SysctlOverride::~SysctlOverride() { restore(); }

void SysctlOverride::restore() {
  if (!active_) return;
  active_ = false;
  if (writeText(path_, original_)) ::unlink(record_.c_str());
}

ScopedStop::ScopedStop(pid_t pid) : pid_(pid) {
  if (::kill(pid_, SIGSTOP) != 0) throw std::runtime_error("cannot stop " + std::to_string(pid_));
  stopped_ = true;
}

void ScopedStop::resume() {
  if (!stopped_) return;
  stopped_ = false;
  ::kill(pid_, SIGCONT);
}

TmpfsMount::TmpfsMount(std::string dir) : dir_(std::move(dir)) {
  if (::mount("rnotify-test", dir_.c_str(), "tmpfs", MS_NOSUID | MS_NODEV, "size=256m,mode=0755") != 0)
    throw std::runtime_error("cannot mount a tmpfs on " + dir_ + ": " + std::strerror(errno));
}

TmpfsMount::~TmpfsMount() { ::umount2(dir_.c_str(), MNT_DETACH); }

}  // namespace rnotify::testbed
