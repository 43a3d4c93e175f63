// ExportRoots: the directories a daemon serves. Every requested path is
// resolved (symlinks, "..") and must land inside one of them; nothing outside
// can ever be watched.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "common/result.h"

namespace rnotify {

class ExportRoots {
 public:
  // Canonicalises each root; fails if one does not exist or is not a directory.
  static Result<ExportRoots> create(const std::vector<std::string>& roots);

  // Resolves a client's path (absolute, or relative to base) to a canonical
  // path inside an export. ENOENT: missing; EACCES: outside every export;
  // EINVAL: empty or containing a NUL byte.
  Result<std::string> resolve(std::string_view requested, const std::string& base) const;

  const std::vector<std::string>& roots() const { return roots_; }

 private:
  std::vector<std::string> roots_;
};

}  // namespace rnotify
