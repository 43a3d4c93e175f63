// MountResolver: which mount a path lives on, and what kind of filesystem that
// is. The client core decides from this alone whether a watch is served by the
// local kernel (inotify), by an rnotifyd agent over the mount's own ssh
// connection (sshfs), or by a configured rnotifyd endpoint (nfs, smb).
// The answer comes from /proc/self/mountinfo rather than statfs() because only
// mountinfo names the mount's source (user@host:dir, server:/export), which is
// what tells us where the server is and which of its paths we are looking at.
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace rnotify {

struct MountInfo {
  std::string mountPoint;  // unescaped (mountinfo escapes space as \040 etc.)
  std::string root;        // field 4: root of the mount within its filesystem
  std::string fsType;      // "ext4", "fuse.sshfs", "nfs4", ...
  std::string source;      // "user@host:dir", "server:/export", "//server/share"
  std::string superOptions;
  int mountId = 0;   // field 1; lets resolve() follow the mount tree
  int parentId = 0;  // field 2
};

enum class MountKind { kLocal, kSshfs, kNfs, kSmb, kOtherNetwork };

struct ResolvedPath {
  MountInfo mount;
  MountKind kind = MountKind::kLocal;
  // Path inside the mount: "" for the mount point itself, else "a/b" (no
  // leading or trailing slash).
  std::string relative;
};

class MountResolver {
 public:
  // Parses the text of a mountinfo file. Malformed lines are skipped (the
  // kernel never writes them; skipping keeps a truncated read usable).
  static std::vector<MountInfo> parse(std::string_view mountinfoText);
  // Reads /proc/self/mountinfo; an unreadable file gives an empty table, in
  // which every path resolves as local.
  static MountResolver fromProc();

  explicit MountResolver(std::vector<MountInfo> mounts);

  // absolutePath must already be canonical (realpath). Picks the mount with
  // the longest matching mount point (the last one listed wins when stacked on
  // the same mount point). When the table is a complete mount tree, a mount
  // hidden by a later mount on one of its ancestors is skipped, as the kernel's
  // path walk would.
  ResolvedPath resolve(const std::string& absolutePath) const;

  const std::vector<MountInfo>& mounts() const { return mounts_; }

 private:
  const MountInfo* longestPrefix(const std::string& path) const;
  const MountInfo* walkTree(const std::string& path) const;
  bool isCompleteTree() const;

  std::vector<MountInfo> mounts_;
};

// fuse.sshfs -> kSshfs; nfs, nfs4 -> kNfs; cifs, smb3 -> kSmb; other network
// filesystems (fuse.*, ceph, 9p, virtiofs, glusterfs, afs, ...) ->
// kOtherNetwork; everything else -> kLocal.
MountKind classify(std::string_view fsType);

// "local", "sshfs", "nfs", "smb", "network", for messages.
const char* mountKindName(MountKind kind);

// Undoes mountinfo's octal escapes ("\040" -> ' ', "\134" -> '\\').
std::string unescapeMountField(std::string_view field);

}  // namespace rnotify
