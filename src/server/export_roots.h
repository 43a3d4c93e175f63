// ExportRoots: the directories a daemon serves. Every requested path is
// resolved inside one of them by the kernel, with openat2(RESOLVE_BENEATH)
// from the export's own descriptor: "..", absolute symbolic links and links
// that lead out are refused during the walk itself, so a directory swapped
// for a symbolic link between a check and the watch cannot lead out either.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "common/result.h"
#include "common/unique_fd.h"
#include "server/credentials.h"

namespace rnotify {

class ExportRoots {
 public:
  // Canonicalises each root and opens it; fails if one does not exist or is
  // not a directory.
  static Result<ExportRoots> create(const std::vector<std::string>& roots);

  struct Resolved {
    std::string path;  // canonical, inside an export
    uint64_t dev = 0;  // what it was when resolved, to re-check after watching
    uint64_t ino = 0;
    bool isDirectory = false;
  };
  // Resolves a client's path (absolute, or relative to base) inside an
  // export. With `as`, the path is opened as that user, so that the kernel
  // checks search permission on every directory on the way and read
  // permission on the target (ACLs included). Errors: ENOENT missing;
  // EACCES outside every export, or not permitted; ELOOP a symbolic-link
  // loop; EINVAL empty or containing a NUL byte; ENAMETOOLONG.
  Result<Resolved> resolveEntry(std::string_view requested, const std::string& base,
                                const Credentials* as = nullptr) const;
  Result<std::string> resolve(std::string_view requested, const std::string& base) const {
    auto r = resolveEntry(requested, base);
    if (!r) return r.error();
    return r->path;
  }
  // Whether `who` may list the directory `path` (canonical, inside an
  // export), checked by the kernel as that user.
  bool mayList(const std::string& path, const Credentials& who) const;

  const std::vector<std::string>& roots() const { return roots_; }

 private:
  std::vector<std::string> roots_;
  std::vector<UniqueFd> fds_;  // O_PATH descriptors of roots_
};

}  // namespace rnotify
