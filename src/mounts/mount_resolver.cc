// Mount table parsing and path-to-mount resolution; see mount_resolver.h.
#include "mounts/mount_resolver.h"

#include <array>
#include <fstream>
#include <sstream>
#include <unordered_set>

namespace rnotify {
namespace {

std::vector<std::string_view> splitFields(std::string_view line) {
  std::vector<std::string_view> fields;
  size_t pos = 0;
  while (pos < line.size()) {
    size_t start = line.find_first_not_of(' ', pos);
    if (start == std::string_view::npos) break;
    size_t end = line.find(' ', start);
    if (end == std::string_view::npos) end = line.size();
    fields.push_back(line.substr(start, end - start));
    pos = end;
  }
  return fields;
}

bool parseInt(std::string_view text, int* out) {
  if (text.empty()) return false;
  int value = 0;
  for (char c : text) {
    if (c < '0' || c > '9') return false;
    value = value * 10 + (c - '0');
  }
  *out = value;
  return true;
}

// True if path is mountPoint or lies below it.
bool isWithin(const std::string& path, const std::string& mountPoint) {
  if (mountPoint == "/") return !path.empty() && path[0] == '/';
  if (path.compare(0, mountPoint.size(), mountPoint) != 0) return false;
  return path.size() == mountPoint.size() || path[mountPoint.size()] == '/';
}

std::string relativeTo(const std::string& path, const std::string& mountPoint) {
  std::string rest = mountPoint == "/" ? path : path.substr(mountPoint.size());
  size_t first = rest.find_first_not_of('/');
  if (first == std::string::npos) return "";
  size_t last = rest.find_last_not_of('/');
  return rest.substr(first, last - first + 1);
}

bool hasPrefix(std::string_view text, std::string_view prefix) { return text.substr(0, prefix.size()) == prefix; }

}  // namespace

std::string unescapeMountField(std::string_view field) {
  std::string out;
  out.reserve(field.size());
  for (size_t i = 0; i < field.size(); ++i) {
    if (field[i] == '\\' && i + 3 < field.size()) {
      std::string_view digits = field.substr(i + 1, 3);
      bool valid = true;
      for (char c : digits) valid = valid && c >= '0' && c <= '7';
      if (valid) {
        out += static_cast<char>((digits[0] - '0') * 64 + (digits[1] - '0') * 8 + (digits[2] - '0'));
        i += 3;
        continue;
      }
    }
    out += field[i];
  }
  return out;
}

std::vector<MountInfo> MountResolver::parse(std::string_view mountinfoText) {
  std::vector<MountInfo> mounts;
  size_t pos = 0;
  while (pos < mountinfoText.size()) {
    size_t end = mountinfoText.find('\n', pos);
    if (end == std::string_view::npos) end = mountinfoText.size();
    std::vector<std::string_view> f = splitFields(mountinfoText.substr(pos, end - pos));
    pos = end + 1;
    // id parent major:minor root mountpoint options [optional...] - type source superoptions
    size_t dash = 6;
    while (dash < f.size() && f[dash] != "-") ++dash;
    if (dash + 2 >= f.size()) continue;  // no '-', or no type and source after it
    MountInfo m;
    if (!parseInt(f[0], &m.mountId) || !parseInt(f[1], &m.parentId)) continue;
    m.root = unescapeMountField(f[3]);
    m.mountPoint = unescapeMountField(f[4]);
    m.fsType = unescapeMountField(f[dash + 1]);
    m.source = unescapeMountField(f[dash + 2]);
    if (dash + 3 < f.size()) m.superOptions = unescapeMountField(f[dash + 3]);
    mounts.push_back(std::move(m));
  }
  return mounts;
}

MountResolver MountResolver::fromProc() {
  std::ifstream in("/proc/self/mountinfo");
  std::ostringstream text;
  text << in.rdbuf();
  return MountResolver(parse(text.str()));
}

MountResolver::MountResolver(std::vector<MountInfo> mounts) : mounts_(std::move(mounts)) {}

const MountInfo* MountResolver::longestPrefix(const std::string& path) const {
  const MountInfo* best = nullptr;
  for (const MountInfo& m : mounts_) {
    if (!isWithin(path, m.mountPoint)) continue;
    if (best == nullptr || m.mountPoint.size() >= best->mountPoint.size()) best = &m;
  }
  return best;
}

// The table is a tree when every mount's parent is listed, except the root
// ("/" whose parent lies outside our view, e.g. the namespace's or chroot's).
bool MountResolver::isCompleteTree() const {
  std::unordered_set<int> ids;
  for (const MountInfo& m : mounts_) {
    if (m.mountId == 0) return false;
    ids.insert(m.mountId);
  }
  for (const MountInfo& m : mounts_) {
    if (!ids.count(m.parentId) && m.mountPoint != "/") return false;
  }
  return !mounts_.empty();
}

// Follows the kernel's path walk: at each prefix of the path, step onto the
// topmost mount stacked there whose parent is the mount we are on. A mount
// whose parent's mount point was later covered by another mount is never
// reached, which is exactly what hides it from lookups.
const MountInfo* MountResolver::walkTree(const std::string& path) const {
  std::unordered_set<int> ids;
  for (const MountInfo& m : mounts_) ids.insert(m.mountId);
  const MountInfo* cur = nullptr;
  for (const MountInfo& m : mounts_) {
    if (m.mountPoint == "/" && (!ids.count(m.parentId) || m.parentId == m.mountId)) {
      cur = &m;
      break;
    }
  }
  if (cur == nullptr) return nullptr;
  auto stackOnto = [&](const std::string& prefix) {
    for (bool moved = true; moved;) {
      moved = false;
      const MountInfo* next = nullptr;
      for (const MountInfo& m : mounts_) {
        if (&m != cur && m.parentId == cur->mountId && m.mountPoint == prefix) next = &m;
      }
      if (next != nullptr) {
        cur = next;
        moved = true;
      }
    }
  };
  stackOnto("/");
  for (size_t slash = path.find('/', 1);; slash = path.find('/', slash + 1)) {
    std::string prefix = path.substr(0, slash);
    if (prefix.size() > 1) stackOnto(prefix);
    if (slash == std::string::npos) break;
  }
  return cur;
}

ResolvedPath MountResolver::resolve(const std::string& absolutePath) const {
  const MountInfo* mount = nullptr;
  if (isCompleteTree()) mount = walkTree(absolutePath);
  if (mount == nullptr) mount = longestPrefix(absolutePath);
  ResolvedPath out;
  if (mount == nullptr) {
    out.relative = relativeTo(absolutePath, "/");
    return out;
  }
  out.mount = *mount;
  out.kind = classify(mount->fsType);
  out.relative = relativeTo(absolutePath, mount->mountPoint);
  return out;
}

MountKind classify(std::string_view fsType) {
  if (fsType == "fuse.sshfs" || fsType == "sshfs") return MountKind::kSshfs;
  if (fsType == "nfs" || fsType == "nfs4") return MountKind::kNfs;
  if (fsType == "cifs" || fsType == "smb3" || fsType == "smbfs") return MountKind::kSmb;
  // FUSE filesystems that only present local data; every other FUSE
  // filesystem may be backed by a remote store whose changes we cannot see.
  // An rnotify-fuse view (subtype "rnotify") is one too: the kernel already
  // reports every change on it, remote ones included.
  static constexpr std::array<std::string_view, 7> kLocalFuse = {
      "fuse.lxcfs",  "fuse.fuse-overlayfs", "fuse.squashfuse",  "fuse.portal",
      "fuse.bindfs", "fuse.rnotify",        "fuse.rnotify-fuse"};
  for (std::string_view local : kLocalFuse) {
    if (fsType == local) return MountKind::kLocal;
  }
  if (hasPrefix(fsType, "fuse.") || fsType == "fuse") return MountKind::kOtherNetwork;
  static constexpr std::array<std::string_view, 20> kNetwork = {
      "ceph", "9p",     "virtiofs", "glusterfs", "afs",   "coda",  "lustre", "gpfs",  "beegfs", "ncpfs",
      "ncp",  "vboxsf", "prl_fs",   "orangefs",  "pvfs2", "ocfs2", "gfs2",   "davfs", "vmhgfs", "cvmfs"};
  for (std::string_view net : kNetwork) {
    if (fsType == net) return MountKind::kOtherNetwork;
  }
  return MountKind::kLocal;
}

const char* mountKindName(MountKind kind) {
  switch (kind) {
    case MountKind::kLocal:
      return "local";
    case MountKind::kSshfs:
      return "sshfs";
    case MountKind::kNfs:
      return "nfs";
    case MountKind::kSmb:
      return "smb";
    case MountKind::kOtherNetwork:
      return "network";
  }
  return "unknown";
}

}  // namespace rnotify
