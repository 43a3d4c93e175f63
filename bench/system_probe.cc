// System readings and scratch resources of the scale benchmarks; see
// system_probe.h.
#include "system_probe.h"

#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>
#include <stdexcept>

#include "common/proc_stat.h"
#include "common/read_file.h"

namespace rnotify::bench {
namespace {

bool writeText(const std::string& path, const std::string& text) {
  FILE* f = std::fopen(path.c_str(), "w");
  if (f == nullptr) return false;
  bool ok = std::fputs(text.c_str(), f) >= 0;
  return std::fclose(f) == 0 && ok;
}

// "VmRSS:    1234 kB" -> 1234
uint64_t statusField(const std::string& text, const char* field) {
  size_t at = text.find(field);
  if (at == std::string::npos) return 0;
  return std::strtoull(text.c_str() + at + std::strlen(field), nullptr, 10);
}

}  // namespace

std::optional<double> cpuSeconds(pid_t pid) {
  auto stat = readProcStat(pid);
  if (!stat) return std::nullopt;
  return static_cast<double>(stat->utime + stat->stime) / static_cast<double>(::sysconf(_SC_CLK_TCK));
}

std::optional<ProcMemory> procMemory(pid_t pid) {
  auto text = readFile("/proc/" + std::to_string(pid) + "/status");
  if (!text) return std::nullopt;
  return ProcMemory{statusField(*text, "VmRSS:"), statusField(*text, "VmHWM:")};
}

uint64_t systemSlabKb() {
  auto text = readFile("/proc/meminfo");
  return text ? statusField(*text, "\nSlab:") : 0;
}

std::string loadAverage() {
  auto text = readFile("/proc/loadavg");
  if (!text) return "?";
  std::istringstream in(*text);
  std::string a, b, c;
  in >> a >> b >> c;
  return a + " " + b + " " + c;
}

MemoryCgroup::MemoryCgroup(const std::string& name) {
  // "4:memory:/process_api/abc" -> /sys/fs/cgroup/memory/process_api/abc
  auto cgroups = readFile("/proc/self/cgroup");
  std::string own;
  if (cgroups) {
    std::istringstream in(*cgroups);
    for (std::string line; std::getline(in, line);) {
      size_t first = line.find(':');
      size_t second = line.find(':', first + 1);
      if (first == std::string::npos || second == std::string::npos) continue;
      if (line.substr(first + 1, second - first - 1) == "memory") own = line.substr(second + 1);
    }
  }
  std::string base = "/sys/fs/cgroup/memory" + (own == "/" ? std::string() : own);
  if (own.empty() || ::access((base + "/memory.kmem.usage_in_bytes").c_str(), R_OK) != 0) {
    why_ = "no cgroup v1 memory controller with kmem accounting";
    return;
  }
  std::string path = base + "/" + name + "-" + std::to_string(::getpid());
  if (::mkdir(path.c_str(), 0755) != 0 && errno != EEXIST) {
    why_ = "cannot create " + path + ": " + std::strerror(errno);
    return;
  }
  path_ = path;
}

MemoryCgroup::~MemoryCgroup() {
  if (!path_.empty()) ::rmdir(path_.c_str());
}

bool MemoryCgroup::adopt(pid_t pid) {
  if (path_.empty()) return false;
  if (writeText(path_ + "/cgroup.procs", std::to_string(pid))) return true;
  why_ = "cannot move pid " + std::to_string(pid) + " into " + path_ + ": " + std::strerror(errno);
  return false;
}

uint64_t MemoryCgroup::readCounter(const char* file) const {
  if (path_.empty()) return 0;
  auto text = readFile(path_ + "/" + file);
  return text ? std::strtoull(text->c_str(), nullptr, 10) : 0;
}

uint64_t MemoryCgroup::usageBytes() const { return readCounter("memory.usage_in_bytes"); }
uint64_t MemoryCgroup::kmemBytes() const { return readCounter("memory.kmem.usage_in_bytes"); }
uint64_t MemoryCgroup::kmemPeakBytes() const { return readCounter("memory.kmem.max_usage_in_bytes"); }

std::string readSysctl(const std::string& key) {
  auto text = readFile("/proc/sys/" + key);
  if (!text) return "";
  std::string value = *text;
  while (!value.empty() && (value.back() == '\n' || value.back() == ' ')) value.pop_back();
  return value;
}

SysctlOverride::SysctlOverride(std::string key, const std::string& value) : path_("/proc/sys/" + key) {
  previous_ = readSysctl(key);
  if (previous_.empty() || !writeText(path_, value)) {
    throw std::runtime_error("cannot set " + path_ + " to " + value + ": " + std::strerror(errno) + " (run as root)");
  }
}

SysctlOverride::~SysctlOverride() { writeText(path_, previous_); }

ScratchTmpfs::ScratchTmpfs(std::string dir) : dir_(std::move(dir)) {
  if (::mount("rnotify-bench", dir_.c_str(), "tmpfs", MS_NOSUID | MS_NODEV, "mode=0755") != 0) {
    throw std::runtime_error("cannot mount a tmpfs on " + dir_ + ": " + std::strerror(errno) + " (run as root)");
  }
}

ScratchTmpfs::~ScratchTmpfs() { ::umount2(dir_.c_str(), MNT_DETACH); }

bool onTmpfs(const std::string& path) {
  std::ifstream in("/proc/self/mounts");
  std::string device, mountPoint, type, rest, best, bestType;
  while (in >> device >> mountPoint >> type && std::getline(in, rest)) {
    if (path.rfind(mountPoint, 0) == 0 && mountPoint.size() >= best.size()) {
      best = mountPoint;
      bestType = type;
    }
  }
  return bestType == "tmpfs";
}

}  // namespace rnotify::bench
