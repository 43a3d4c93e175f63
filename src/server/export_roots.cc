#include "server/export_roots.h"

#include <fcntl.h>
#include <linux/openat2.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <climits>
#include <cstdlib>
#include <memory>

namespace rnotify {
namespace {

Result<std::string> canonical(const std::string& path) {
  std::unique_ptr<char, decltype(&std::free)> real(::realpath(path.c_str(), nullptr), &std::free);
  if (!real) return lastError("'" + path + "'");
  return std::string(real.get());
}

bool isInside(const std::string& path, const std::string& root) {
  if (root == "/") return true;
  return path == root ||
         (path.size() > root.size() && path.compare(0, root.size(), root) == 0 && path[root.size()] == '/');
}

// The part of `path` below `root` ("." for the root itself); path must be inside.
std::string below(const std::string& path, const std::string& root) {
  if (path.size() <= root.size()) return ".";
  return path.substr(root == "/" ? 1 : root.size() + 1);
}

// rootIsSlash: the export is the whole filesystem (rnotifyd --stdio), where
// absolute symbolic links resolve as usual.
int openBeneath(int rootFd, const std::string& relative, uint64_t flags, bool rootIsSlash) {
  open_how how{};
  how.flags = flags | O_CLOEXEC;
  how.resolve = (rootIsSlash ? RESOLVE_IN_ROOT : RESOLVE_BENEATH) | RESOLVE_NO_MAGICLINKS;
  long fd;
  do {
    fd = ::syscall(SYS_openat2, rootFd, relative.c_str(), &how, sizeof how);
  } while (fd < 0 && errno == EAGAIN);  // a rename raced the walk: walk again
  return static_cast<int>(fd);
}

std::string fdPath(int fd) {
  char link[64], target[PATH_MAX];
  std::snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
  ssize_t n = ::readlink(link, target, sizeof target - 1);
  return n > 0 ? std::string(target, static_cast<size_t>(n)) : std::string();
}

}  // namespace

Result<ExportRoots> ExportRoots::create(const std::vector<std::string>& roots) {
  ExportRoots exports;
  for (const std::string& root : roots) {
    auto real = canonical(root);
    if (!real) return Error{real.error().code, "cannot export " + real.error().message};
    UniqueFd fd(::open(real->c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC));
    if (!fd) return Error{ENOTDIR, "cannot export '" + root + "': not a directory"};
    exports.roots_.push_back(*real);
    exports.fds_.push_back(std::move(fd));
  }
  return exports;
}

Result<ExportRoots::Resolved> ExportRoots::resolveEntry(std::string_view requested, const std::string& base,
                                                        const Credentials* as) const {
  if (requested.empty()) return Error{EINVAL, "an empty path cannot be watched"};
  if (requested.find('\0') != std::string_view::npos) {
    return Error{EINVAL, "a path containing a NUL byte cannot be watched"};
  }
  if (requested.size() > PATH_MAX) return Error{ENAMETOOLONG, "the path is longer than PATH_MAX"};
  const std::string quoted = "'" + std::string(requested) + "'";
  std::string absolute;
  if (requested[0] != '/') absolute.append(base).append("/");
  absolute.append(requested);
  // The export the path names: by its spelling (longest root first), else,
  // for a path that reaches an export through a symbolic link outside it,
  // by its canonical form. Either way the kernel walks it from the export.
  size_t best = roots_.size();
  for (size_t i = 0; i < roots_.size(); ++i) {
    if (isInside(absolute, roots_[i]) && (best == roots_.size() || roots_[i].size() > roots_[best].size())) best = i;
  }
  std::string relative;
  if (best != roots_.size()) {
    relative = below(absolute, roots_[best]);
  } else {
    auto real = canonical(absolute);
    if (!real) {
      if (real.error().code == ENOENT) return Error{ENOENT, quoted + " does not exist on the server"};
      return Error{real.error().code, "cannot resolve " + real.error().message};
    }
    for (size_t i = 0; i < roots_.size(); ++i) {
      if (isInside(*real, roots_[i]) && (best == roots_.size() || roots_[i].size() > roots_[best].size())) best = i;
    }
    if (best == roots_.size()) return Error{EACCES, quoted + " is outside the exported directories"};
    relative = below(*real, roots_[best]);
  }

  UniqueFd fd;
  bool permitted = true;
  {
    std::optional<ActingAs> acting;
    if (as != nullptr && mustActAs(*as)) {
      acting.emplace(*as);
      if (!acting->ok()) return Error{EACCES, "cannot check permissions as " + as->user + " (rnotifyd is not root)"};
    }
    fd.reset(openBeneath(fds_[best].get(), relative, O_PATH, roots_[best] == "/"));
    // O_PATH checks search permission on the way; reading the target is the
    // permission inotify needs.
    if (fd && acting) permitted = ::faccessat(fd.get(), "", R_OK, AT_EMPTY_PATH | AT_EACCESS) == 0;
  }
  if (!fd) {
    switch (errno) {
      case ENOENT:
        return Error{ENOENT, quoted + " does not exist on the server"};
      case EXDEV:
        return Error{EACCES, quoted + " is outside the exported directories (it leads out through '..' or a "
                                      "symbolic link)"};
      case ELOOP:
        return Error{ELOOP, quoted + ": too many levels of symbolic links"};
      case EACCES:
        return Error{EACCES, quoted + ": permission denied" + (as ? " for " + as->user : std::string())};
      default:
        return Error::fromErrno(errno, "cannot resolve " + quoted);
    }
  }
  if (!permitted) return Error{EACCES, quoted + ": permission denied for " + as->user + " (it cannot be read)"};
  struct stat st;
  if (::fstat(fd.get(), &st) != 0) return lastError("fstat " + quoted);
  Resolved out;
  out.path = fdPath(fd.get());
  out.dev = st.st_dev;
  out.ino = st.st_ino;
  out.isDirectory = S_ISDIR(st.st_mode);
  if (out.path.empty() || !isInside(out.path, roots_[best])) {
    return Error{EACCES, quoted + " is outside the exported directories"};
  }
  return out;
}

bool ExportRoots::mayList(const std::string& path, const Credentials& who) const {
  if (!mustActAs(who)) return true;
  size_t best = roots_.size();
  for (size_t i = 0; i < roots_.size(); ++i) {
    if (isInside(path, roots_[i]) && (best == roots_.size() || roots_[i].size() > roots_[best].size())) best = i;
  }
  if (best == roots_.size()) return false;
  ActingAs acting(who);
  if (!acting.ok()) return false;
  UniqueFd fd(openBeneath(fds_[best].get(), below(path, roots_[best]), O_RDONLY | O_DIRECTORY, roots_[best] == "/"));
  return fd.valid();
}

}  // namespace rnotify
