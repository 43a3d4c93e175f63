#include "server/export_roots.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <climits>
#include <cstdlib>
#include <memory>

#include "server/confined_tree.h"

namespace rnotify {
namespace {

// The daemon's own configuration (--export): canonicalised by path, once,
// before any client exists.
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

// The part of `path` below `root` ("" for the root itself); path must be inside.
std::string below(const std::string& path, const std::string& root) {
  if (path.size() <= root.size()) return {};
  return path.substr(root == "/" ? 1 : root.size() + 1);
}

// `absolute` with "", "." and ".." components applied by spelling alone, as
// a shell's `cd -L` does: no lookup, so nothing about the filesystem shows
// in whether a path is inside an export.
std::string lexicallyNormal(std::string_view absolute) {
  std::vector<std::string_view> parts;
  size_t at = 0;
  while (at <= absolute.size()) {
    size_t slash = absolute.find('/', at);
    if (slash == std::string_view::npos) slash = absolute.size();
    std::string_view part = absolute.substr(at, slash - at);
    if (part == "..") {
      if (!parts.empty()) parts.pop_back();
    } else if (!part.empty() && part != ".") {
      parts.push_back(part);
    }
    at = slash + 1;
  }
  std::string out;
  for (std::string_view part : parts) out.append("/").append(part);
  return out.empty() ? "/" : out;
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
    // Opened once, at start, before any client: reading the export's root
    // is nobody's event then.
    exports.mountFds_.emplace_back(::geteuid() == 0 ? ::open(real->c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC) : -1);
  }
  return exports;
}

Error ExportRoots::forbidden(std::string_view requested) {
  return Error{EACCES, "'" + std::string(requested) +
                           "' cannot be watched: it does not exist on the server, is outside the exported "
                           "directories, or you may not read it"};
}

Result<ExportRoots::Resolved> ExportRoots::resolveEntry(std::string_view requested, const std::string& base,
                                                        const Credentials* as) const {
  if (requested.empty()) return Error{EINVAL, "an empty path cannot be watched"};
  if (requested.find('\0') != std::string_view::npos) {
    return Error{EINVAL, "a path containing a NUL byte cannot be watched"};
  }
  if (requested.size() > PATH_MAX) return Error{ENAMETOOLONG, "the path is longer than PATH_MAX"};
  const bool other = as != nullptr && mustActAs(*as);
  const std::string quoted = "'" + std::string(requested) + "'";
  std::string absolute;
  if (requested[0] != '/') absolute.append(base).append("/");
  absolute.append(requested);
  absolute = lexicallyNormal(absolute);
  // The export the path names by its spelling, the longest root first. A
  // path that reaches an export only through a symbolic link outside it is
  // refused: following that link would be a lookup outside every export.
  size_t best = roots_.size();
  for (size_t i = 0; i < roots_.size(); ++i) {
    if (isInside(absolute, roots_[i]) && (best == roots_.size() || roots_[i].size() > roots_[best].size())) best = i;
  }
  if (best == roots_.size()) {
    if (other) return forbidden(requested);
    return Error{EACCES, quoted + " is outside the exported directories"};
  }
  bool readable = true;
  UniqueFd fd = openEntryAs(as, fds_[best].get(), below(absolute, roots_[best]), roots_[best] == "/", &readable);
  if (!fd) {
    const int code = errno;
    if (other && code != ENAMETOOLONG && code != ENOMEM) return forbidden(requested);
    switch (code) {
      case ENOENT:
        return Error{ENOENT, quoted + " does not exist on the server"};
      case EXDEV:
        return Error{EACCES, quoted + " is outside the exported directories (it leads out through a symbolic link)"};
      case ELOOP:
        return Error{ELOOP, quoted + ": too many levels of symbolic links"};
      case EACCES:
        return Error{EACCES, quoted + ": permission denied"};
      default:
        return Error::fromErrno(code, "cannot resolve " + quoted);
    }
  }
  if (!readable) return forbidden(requested);
  struct stat st;
  if (::fstat(fd.get(), &st) != 0) return lastError("fstat " + quoted);
  Resolved out;
  out.path = pathOf(fd.get());
  if (out.path.empty() || !isInside(out.path, roots_[best])) {
    if (other) return forbidden(requested);
    return Error{EACCES, quoted + " is outside the exported directories"};
  }
  out.fd = std::move(fd);
  out.exportIndex = best;
  out.dev = st.st_dev;
  out.ino = st.st_ino;
  out.isDirectory = S_ISDIR(st.st_mode);
  return out;
}

}  // namespace rnotify
