#include "poll/polled_tree.h"

#include <fmt/format.h>
#include <sys/stat.h>

#include <map>

namespace rnotify {
namespace {

std::string millis(std::chrono::milliseconds ms) {
  if (ms.count() % 1000 == 0) return fmt::format("{} s", ms.count() / 1000);
  return fmt::format("{} ms", ms.count());
}

class MountTree final : public PolledTree {
 public:
  MountTree(const std::string& root, PollScanner::Options options) : scanner_(root, options) {}
  Result<std::vector<Event>> scan() override {
    if (finishing_ && !scanner_.scanning()) lastBegun_ = true;
    auto events = scanner_.scan();
    if (lastBegun_ && !scanner_.scanning()) finished_ = true;
    if (!events) failedOnce_ = true;
    return events;
  }
  Clock::time_point deadline() const override {
    return finishing_ && !finished_ ? Clock::time_point::min() : scanner_.deadline();
  }
  // Until the first scan is complete, what this tree holds is not the
  // baseline a change is told against. A first scan that failed (the root
  // unreadable) is not "starting" any more: it is tried at each interval.
  bool starting() const override { return !scanner_.scanned() && !failedOnce_; }
  // The last scan is one that begins after this call: a scan under way has
  // passed directories before the server's watch was made.
  void finish() override {
    finishing_ = true;
    lastBegun_ = false;
    finished_ = false;
  }
  bool finished() const override { return finished_; }
  void hurry(Clock::time_point when) override { scanner_.hurry(when); }
  bool ended() const override { return scanner_.ended(); }
  bool readsMount() const override { return true; }
  std::string describe() const override {
    return "polling " + describeInterval(scanner_.interval().settings()) + ", scans of the mount";
  }

 private:
  PollScanner scanner_;
  bool finishing_ = false, lastBegun_ = false, finished_ = true, failedOnce_ = false;
};

// A file: its directory scanned for that one name, reported as inotify
// reports a watched file (name "", DELETE_SELF / MOVE_SELF then IGNORED).
class FileTree final : public PolledTree {
 public:
  FileTree(const std::string& dir, std::string name, PollScanner::Options options)
      : scanner_(dir, withoutRecursion(options)), name_(std::move(name)) {}
  Result<std::vector<Event>> scan() override {
    auto events = scanner_.scan();
    if (!events) return events;
    std::vector<Event> out;
    for (Event& e : *events) {
      if (ended_) break;
      const bool self = e.dir.empty() && e.name.empty();
      if (!self && !(e.dir.empty() && e.name == name_)) continue;
      uint32_t kind = e.mask & ~IN_POLLED;
      if (self && !(kind & (IN_DELETE_SELF | IN_IGNORED))) continue;  // the directory's own ATTRIB
      if (kind & (IN_DELETE | IN_MOVED_FROM | IN_DELETE_SELF | IN_IGNORED)) {
        Event gone;
        gone.mask = ((kind & IN_MOVED_FROM) ? IN_MOVE_SELF : IN_DELETE_SELF) | IN_POLLED;
        out.push_back(gone);
        gone.mask = IN_IGNORED | IN_POLLED;
        out.push_back(gone);
        ended_ = true;
        break;
      }
      if (kind & (IN_MODIFY | IN_ATTRIB)) {
        e.name.clear();
        out.push_back(std::move(e));
      }
    }
    return out;
  }
  Clock::time_point deadline() const override { return scanner_.deadline(); }
  void hurry(Clock::time_point when) override { scanner_.hurry(when); }
  bool ended() const override { return ended_ || scanner_.ended(); }
  bool readsMount() const override { return true; }
  std::string describe() const override {
    return "polling " + describeInterval(scanner_.interval().settings()) + ", scans of the mount";
  }

 private:
  static PollScanner::Options withoutRecursion(PollScanner::Options options) {
    options.recursive = false;
    options.slice = Clock::duration::max();  // one directory: one call
    options.sweepScans = 1;                  // one directory: check its files every time
    return options;
  }
  PollScanner scanner_;
  std::string name_;
  bool ended_ = false;
};

}  // namespace

std::string describeInterval(const PollIntervalSettings& s) {
  return fmt::format("every {} ({} after a change, up to {} when idle)", millis(s.initial), millis(s.min),
                     millis(s.max));
}

// What in a mount's options makes a scan of it see changes late.
std::string pollMountAdvice(const MountInfo& mount) {
  std::map<std::string, std::string> options;
  for (size_t at = 0; at <= mount.superOptions.size();) {
    size_t end = mount.superOptions.find(',', at);
    if (end == std::string::npos) end = mount.superOptions.size();
    std::string option = mount.superOptions.substr(at, end - at);
    size_t eq = option.find('=');
    options[option.substr(0, eq)] = eq == std::string::npos ? "" : option.substr(eq + 1);
    at = end + 1;
  }
  std::string advice;
  // Attribute caches (NFS's acregmax/acdirmax, cifs's actimeo) delay
  // nothing: the scans of NFS and cifs mounts statx with
  // AT_STATX_FORCE_SYNC, which asks the server (Client::pollOptions). A
  // cached negative lookup can still hide a new name.
  if (mount.fsType.rfind("nfs", 0) == 0 && options.count("lookupcache") && options["lookupcache"] != "none" &&
      options["lookupcache"] != "positive") {
    advice = "lookupcache=" + options["lookupcache"] + " can hide a new file; use lookupcache=positive";
  }
  return advice;
}

std::unique_ptr<PolledTree> scanMount(const std::string& root, PollScanner::Options options) {
  struct stat st;
  if (::stat(root.c_str(), &st) == 0 && !S_ISDIR(st.st_mode)) {
    size_t slash = root.rfind('/');
    std::string dir = slash == 0 ? "/" : root.substr(0, slash);
    return std::make_unique<FileTree>(dir, root.substr(slash + 1), options);
  }
  return std::make_unique<MountTree>(root, options);
}

}  // namespace rnotify
