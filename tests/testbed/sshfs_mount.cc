// SshfsMount; see sshfs_mount.h.
#include "sshfs_mount.h"

#include <unistd.h>

#include <stdexcept>

#include "mount_table.h"

namespace rnotify::testbed {

const std::vector<std::string> kFreshViewOptions{"dir_cache=no", "entry_timeout=0", "attr_timeout=0",
                                                 "negative_timeout=0"};

std::string SshfsMount::missing() {
  if (::access("/dev/fuse", R_OK | W_OK) != 0) return "/dev/fuse is not usable (needs a FUSE-capable kernel/container)";
  for (const char* bin : {"/usr/bin/sshfs", "/usr/bin/fusermount3"}) {
    if (::access(bin, X_OK) != 0) return std::string(bin) + " is missing (install sshfs and fuse3)";
  }
  return "";
}

SshfsMount::SshfsMount(SshfsOptions options) : options_(std::move(options)) {
  ProcessOptions p;
  p.argv = {"sshfs", "-f", "-F", options_.sshConfig, "-p", std::to_string(options_.port)};
  for (const auto& o : options_.options) {
    p.argv.push_back("-o");
    p.argv.push_back(o);
  }
  p.argv.push_back(options_.remote);
  p.argv.push_back(options_.mountPoint);
  p.netns = options_.netns;
  process_ = std::make_unique<Process>(std::move(p));

  auto deadline = Deadline::in(std::chrono::seconds(15));
  bool up = waitUntil(deadline, [&] {
    auto m = findMount(options_.mountPoint);
    return (m && m->fstype == "fuse.sshfs") || !process_->running();
  });
  mounted_ = up && process_->running();
  if (!mounted_) {
    auto m = findMount(options_.mountPoint);
    std::string seen = m ? "it is listed with fstype " + m->fstype : "it is not listed";
    throw std::runtime_error("sshfs did not mount " + options_.remote + " at " + options_.mountPoint +
                             " (expected a fuse.sshfs entry in /proc/self/mountinfo; " + seen + "):\n" +
                             process_->transcript());
  }
}

SshfsMount::~SshfsMount() {
  try {
    unmount();
  } catch (...) {
  }
}

void SshfsMount::unmount() {
  if (!process_) return;
  if (findMount(options_.mountPoint)) {
    runCommand({"fusermount3", "-u", "-z", options_.mountPoint}, Deadline::in(std::chrono::seconds(10)));
  }
  process_->terminate();
  mounted_ = false;
}

}  // namespace rnotify::testbed
