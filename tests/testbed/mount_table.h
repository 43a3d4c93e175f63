// Reading /proc/self/mountinfo: is a mount point listed, with which fstype.
// The bed decides "sshfs is mounted" from the kernel's table, not from sshfs's
// output, because that is what the product itself will look at.
#pragma once

#include <optional>
#include <string>
#include <vector>

namespace rnotify::testbed {

struct MountEntry {
  std::string mountPoint;
  std::string fstype;  // "fuse.sshfs", "ext4", ...
  std::string source;  // "root@10.213.1.1:/tmp/x"
};

std::vector<MountEntry> readMountTable();
// The entry whose mount point is exactly `path`, if any (the last one wins, as
// in the kernel: it is the one on top).
std::optional<MountEntry> findMount(const std::string& path);
// Mount points at or below `dir`, in mountinfo order (parents before children).
std::vector<std::string> mountsBelow(const std::string& dir);

}  // namespace rnotify::testbed
