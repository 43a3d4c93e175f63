#include "server/export_roots.h"

#include <sys/stat.h>

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

}  // namespace

Result<ExportRoots> ExportRoots::create(const std::vector<std::string>& roots) {
  ExportRoots exports;
  for (const std::string& root : roots) {
    auto real = canonical(root);
    if (!real) return Error{real.error().code, "cannot export " + real.error().message};
    struct stat st;
    if (::stat(real->c_str(), &st) != 0 || !S_ISDIR(st.st_mode)) {
      return Error{ENOTDIR, "cannot export '" + root + "': not a directory"};
    }
    exports.roots_.push_back(*real);
  }
  return exports;
}

// The check runs on the canonical path, so ".." and symlinks cannot lead out.
// (A directory swapped for a symlink between this check and the kernel watch
// is closed by resolving with openat2(RESOLVE_BENEATH); see docs/ARCHITECTURE.md.)
Result<std::string> ExportRoots::resolve(std::string_view requested, const std::string& base) const {
  if (requested.empty()) return Error{EINVAL, "an empty path cannot be watched"};
  if (requested.find('\0') != std::string_view::npos) {
    return Error{EINVAL, "a path containing a NUL byte cannot be watched"};
  }
  if (requested.size() > PATH_MAX) return Error{ENAMETOOLONG, "the path is longer than PATH_MAX"};
  std::string absolute;
  if (requested[0] != '/') absolute.append(base).append("/");
  absolute.append(requested);
  auto real = canonical(absolute);
  if (!real) {
    int code = real.error().code;
    if (code == ENOENT) return Error{ENOENT, "'" + std::string(requested) + "' does not exist on the server"};
    return Error{code, "cannot resolve " + real.error().message};
  }
  for (const std::string& root : roots_) {
    if (isInside(*real, root)) return *real;
  }
  return Error{EACCES, "'" + std::string(requested) + "' is outside the exported directories"};
}

}  // namespace rnotify
