#include "server/export_roots.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <climits>
#include <cstdlib>
#include <memory>
#include <set>

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

Result<ExportRoots> ExportRoots::create(const std::vector<std::string>& specs) {
  ExportRoots exports;
  std::set<std::string> shared;  // directories' own names that two exports have
  for (const std::string& spec : specs) {
    const size_t equals = spec.find('=');
    const bool named = equals != std::string::npos && spec.find('/') > equals;
    const std::string root = named ? spec.substr(equals + 1) : spec;
    if (named && equals == 0) return Error{EINVAL, "cannot export '" + spec + "': the name before '=' is empty"};
    auto real = canonical(root);
    if (!real) return Error{real.error().code, "cannot export " + real.error().message};
    UniqueFd fd(::open(real->c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC));
    if (!fd) return Error{ENOTDIR, "cannot export '" + root + "': not a directory"};
    std::string name = named ? spec.substr(0, equals) : real->substr(real->rfind('/') + 1);
    // A directory's own name that another export has too names neither
    // (an explicit name wins): there is no telling which one is meant.
    if (!named && shared.count(name) != 0) name.clear();
    for (size_t i = 0; i < exports.names_.size() && !name.empty(); ++i) {
      if (exports.names_[i] != name) continue;
      if (named && exports.named_[i]) {
        std::string why = "cannot export '";
        why.append(root).append("' as '").append(name).append("': '").append(exports.roots_[i]);
        why += "' has that name already";
        return Error{EINVAL, std::move(why)};
      }
      if (!exports.named_[i]) {
        exports.names_[i].clear();
        shared.insert(name);
      }
      if (!named) {
        shared.insert(name);
        name.clear();
      }
    }
    exports.roots_.push_back(*real);
    exports.names_.push_back(std::move(name));
    exports.named_.push_back(named);
    exports.fds_.push_back(std::move(fd));
    // Opened once, at start, before any client: reading the export's root
    // is nobody's event then.
    exports.mountFds_.emplace_back(::geteuid() == 0 ? ::open(real->c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC) : -1);
  }
  return exports;
}

std::string ExportRoots::mapExportPath(std::string_view requested) const {
  if (requested.empty() || requested[0] != '/' || requested.find('\0') != std::string_view::npos) {
    return std::string(requested);
  }
  const std::string absolute = lexicallyNormal(requested);
  for (const std::string& root : roots_) {
    if (isInside(absolute, root)) return std::string(requested);
  }
  const size_t slash = absolute.find('/', 1);
  const std::string_view first = std::string_view(absolute).substr(1, slash == std::string::npos ? slash : slash - 1);
  const std::string_view rest =
      slash == std::string::npos ? std::string_view() : std::string_view(absolute).substr(slash);
  auto sameIgnoringCase = [](std::string_view a, std::string_view b) {
    return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
             return std::tolower(static_cast<unsigned char>(x)) == std::tolower(static_cast<unsigned char>(y));
           });
  };
  size_t found = names_.size();
  for (size_t i = 0; i < names_.size() && found == names_.size(); ++i) {
    if (!first.empty() && names_[i] == first) found = i;
  }
  for (size_t i = 0; i < names_.size() && found == names_.size(); ++i) {
    if (!first.empty() && sameIgnoringCase(names_[i], first)) found = i;
  }
  if (found == names_.size()) return std::string(requested);
  return roots_[found] == "/" ? (rest.empty() ? "/" : std::string(rest)) : roots_[found] + std::string(rest);
}

Error ExportRoots::forbidden(std::string_view requested) {
  return Error{EACCES, "'" + std::string(requested) +
                           "' cannot be watched: it does not exist on the server, is outside the exported "
                           "directories, or you may not read it"};
}

Result<ExportRoots::Resolved> ExportRoots::resolveEntry(std::string_view requested, const std::string& base,
                                                        const Credentials* as, std::string_view shown) const {
  if (shown.empty()) shown = requested;
  if (requested.empty()) return Error{EINVAL, "an empty path cannot be watched"};
  if (requested.find('\0') != std::string_view::npos) {
    return Error{EINVAL, "a path containing a NUL byte cannot be watched"};
  }
  if (requested.size() > PATH_MAX) return Error{ENAMETOOLONG, "the path is longer than PATH_MAX"};
  const bool other = as != nullptr && mustActAs(*as);
  const std::string quoted = "'" + std::string(shown) + "'";
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
    if (other) return forbidden(shown);
    return Error{EACCES, quoted + " is outside the exported directories"};
  }
  bool readable = true;
  UniqueFd fd = openEntryAs(as, fds_[best].get(), below(absolute, roots_[best]), roots_[best] == "/", &readable);
  if (!fd) {
    const int code = errno;
    if (other && code != ENAMETOOLONG && code != ENOMEM) return forbidden(shown);
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
  if (!readable) return forbidden(shown);
  struct stat st;
  if (::fstat(fd.get(), &st) != 0) return lastError("fstat " + quoted);
  Resolved out;
  out.path = pathOf(fd.get());
  if (out.path.empty() || !isInside(out.path, roots_[best])) {
    if (other) return forbidden(shown);
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
