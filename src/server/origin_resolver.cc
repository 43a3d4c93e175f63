#include "server/origin_resolver.h"

#include <unistd.h>

#include <charconv>

#include "common/proc_net.h"
#include "common/proc_stat.h"
#include "common/read_file.h"

namespace rnotify {
namespace {

// Revalidate a cached pid this often: a pid can be reused by a new process.
constexpr auto kRecheck = std::chrono::seconds(1);
// Ancestors looked at when a process has no SSH_CONNECTION of its own (a
// program run by the ssh session's shell that cleared its environment).
constexpr int kMaxAncestors = 4;
constexpr size_t kMaxCached = 4096;

uint64_t toNumber(std::string_view text) {
  uint64_t value = 0;
  std::from_chars(text.data(), text.data() + text.size(), value);
  return value;
}

std::string_view environValue(std::string_view environ, std::string_view name) {
  size_t pos = 0;
  while (pos < environ.size()) {
    size_t end = environ.find('\0', pos);
    if (end == std::string_view::npos) end = environ.size();
    std::string_view entry = environ.substr(pos, end - pos);
    if (entry.size() > name.size() && entry.substr(0, name.size()) == name && entry[name.size()] == '=') {
      return entry.substr(name.size() + 1);
    }
    pos = end + 1;
  }
  return {};
}

// Whether the process's real user is root, from /proc/PID/status ("Uid:
// real effective saved fs"). smbd's per-client processes switch only their
// effective user, so that they can switch back: a process that any user can
// start and name "smbd" (prctl) cannot have root as its real user.
bool realUserIsRoot(const std::string& base) {
  auto status = readFile(base + "/status", 64 * 1024);
  if (!status) return false;
  const size_t at = status->find("\nUid:");
  if (at == std::string::npos) return false;
  size_t i = at + 5;
  while (i < status->size() && ((*status)[i] == '\t' || (*status)[i] == ' ')) ++i;
  return i + 1 < status->size() && (*status)[i] == '0' && ((*status)[i + 1] == '\t' || (*status)[i + 1] == ' ');
}

}  // namespace

bool OriginResolver::privileged() { return ::geteuid() == 0; }

std::string OriginResolver::sshKey(std::string_view sshConnection) {
  // "<client ip> <client port> <server ip> <server port>"
  size_t space = sshConnection.find(' ');
  if (space == std::string_view::npos) return {};
  std::string address = canonicalAddress(sshConnection.substr(0, space));
  std::string_view rest = sshConnection.substr(space + 1);
  size_t portEnd = rest.find(' ');
  std::string_view port = rest.substr(0, portEnd);
  uint64_t portValue = toNumber(port);
  if (address.empty() || port.empty() || portValue == 0 || portValue > 0xffff) return {};
  return "ssh " + address + " " + std::to_string(portValue);
}

uint64_t OriginResolver::startTimeOf(int pid) const {
  auto stat = readProcStat(pid, proc_);
  return stat ? stat->startTime : 0;
}

std::string OriginResolver::tcpPeerKey(int pid) const {
  if (!realUserIsRoot(proc_ + "/" + std::to_string(pid))) return {};
  auto connections = tcpConnectionsOf(pid, proc_);
  if (!connections || connections->size() != 1) return {};  // one client per smbd
  const TcpConnection& c = connections->front();
  return "smb " + c.remoteAddress + " " + std::to_string(c.remotePort);
}

std::string OriginResolver::resolve(int pid) const {
  int current = pid;
  for (int depth = 0; depth <= kMaxAncestors && current > 1; ++depth) {
    std::string base = proc_ + "/" + std::to_string(current);
    if (auto environ = readFile(base + "/environ", 256 * 1024)) {
      std::string_view value = environValue(*environ, "SSH_CONNECTION");
      if (!value.empty()) return sshKey(value);
    }
    if (auto comm = readFile(base + "/comm", 64); comm && *comm == "smbd\n") return tcpPeerKey(current);
    auto stat = readProcStat(current, proc_);
    if (!stat) break;
    current = stat->ppid;
  }
  return {};
}

const std::string& OriginResolver::keyOf(int pid, Clock::time_point now) {
  static const std::string kNone;
  if (pid <= 0) return kNone;
  auto it = cache_.find(pid);
  if (it != cache_.end() && now - it->second.checked < kRecheck) return it->second.key;
  uint64_t start = startTimeOf(pid);
  if (it != cache_.end() && start != 0 && start == it->second.startTime) {
    it->second.checked = now;
    return it->second.key;
  }
  if (start == 0) {
    // Gone already: whoever it was, it was not a serving process (those live
    // as long as their connection).
    if (it != cache_.end()) cache_.erase(it);
    return kNone;
  }
  if (cache_.size() >= kMaxCached) cache_.clear();
  ++lookups_;
  Entry& entry = cache_[pid];
  entry.key = resolve(pid);
  entry.startTime = start;
  entry.checked = now;
  return entry.key;
}

}  // namespace rnotify
