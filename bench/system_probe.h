// What the server-scale benchmarks read from the system around the process
// under test: a process's CPU time and memory from /proc, kernel memory from a
// memory cgroup (v1: memory.kmem.usage_in_bytes counts the slab objects the
// kernel charges to the cgroup, inotify and fanotify marks among them),
// sysctls that a run raises and restores, and scratch tmpfs mounts.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <optional>
#include <string>

namespace rnotify::bench {

// utime + stime of `pid` from /proc/PID/stat, in seconds; nullopt if gone.
std::optional<double> cpuSeconds(pid_t pid);

struct ProcMemory {
  uint64_t rssKb = 0;  // VmRSS
  uint64_t hwmKb = 0;  // VmHWM: the peak RSS
};
// From /proc/PID/status; nullopt if gone.
std::optional<ProcMemory> procMemory(pid_t pid);

// Slab memory in use system-wide (/proc/meminfo Slab), in kB.
uint64_t systemSlabKb();
// The first three fields of /proc/loadavg.
std::string loadAverage();

// A fresh child of this process's memory cgroup (cgroup v1). Processes moved
// into it are charged for what they allocate from then on. Removed on
// destruction (its processes must have exited by then). available() is false
// when there is no writable v1 memory controller; then every reading is 0.
class MemoryCgroup {
 public:
  explicit MemoryCgroup(const std::string& name);
  ~MemoryCgroup();
  MemoryCgroup(const MemoryCgroup&) = delete;
  MemoryCgroup& operator=(const MemoryCgroup&) = delete;

  bool available() const { return !path_.empty(); }
  // Its cgroup.procs file ("" when not available).
  std::string procsPath() const { return path_.empty() ? "" : path_ + "/cgroup.procs"; }
  const std::string& why() const { return why_; }
  // Moves `pid` into the cgroup; false (and why()) if that fails.
  bool adopt(pid_t pid);
  uint64_t usageBytes() const;     // memory.usage_in_bytes: user + kernel
  uint64_t kmemBytes() const;      // memory.kmem.usage_in_bytes: kernel only
  uint64_t kmemPeakBytes() const;  // memory.kmem.max_usage_in_bytes

 private:
  uint64_t readCounter(const char* file) const;
  std::string path_;
  std::string why_;
};

// Sets /proc/sys/<key> (e.g. "fs/inotify/max_user_watches") for the lifetime
// of the object and restores the old value after. Throws naming the key if it
// cannot be written (not root).
class SysctlOverride {
 public:
  SysctlOverride(std::string key, const std::string& value);
  ~SysctlOverride();
  SysctlOverride(const SysctlOverride&) = delete;
  SysctlOverride& operator=(const SysctlOverride&) = delete;
  const std::string& previous() const { return previous_; }

 private:
  std::string path_;
  std::string previous_;
};

std::string readSysctl(const std::string& key);

// Whether path lies on a tmpfs (the longest matching mount in /proc/self/mounts).
bool onTmpfs(const std::string& path);

// A tmpfs mounted on an existing empty directory for the lifetime of the
// object; unmounting frees everything on it at once, which matters for a tree
// of a million directories. Root only; throws naming the directory otherwise.
class ScratchTmpfs {
 public:
  explicit ScratchTmpfs(std::string dir);
  ~ScratchTmpfs();
  ScratchTmpfs(const ScratchTmpfs&) = delete;
  ScratchTmpfs& operator=(const ScratchTmpfs&) = delete;
  const std::string& path() const { return dir_; }

 private:
  std::string dir_;
};

}  // namespace rnotify::bench
