// Paths as the watcher backends keep them: absolute, without a trailing slash.
#pragma once

#include <string>
#include <string_view>
#include <utility>

#include "common/result.h"

namespace rnotify {

inline std::string joinPath(std::string_view dir, std::string_view name) {
  std::string path;
  path.reserve(dir.size() + 1 + name.size());
  path.append(dir);
  if (path.empty() || path.back() != '/') path.push_back('/');
  path.append(name);
  return path;
}

// "/a/b" -> {"/a", "b"}; "/a" -> {"/", "a"}.
inline std::pair<std::string, std::string> splitParent(const std::string& path) {
  size_t slash = path.rfind('/');
  if (slash == 0) return {"/", path.substr(1)};
  return {path.substr(0, slash), path.substr(slash + 1)};
}

// The path a subscription asks for, checked (EINVAL unless absolute) and
// without trailing slashes.
inline Result<std::string> watchPath(const std::string& raw) {
  if (raw.empty() || raw[0] != '/') return Error{EINVAL, "cannot watch '" + raw + "': not an absolute path"};
  std::string path = raw;
  while (path.size() > 1 && path.back() == '/') path.pop_back();
  return path;
}

}  // namespace rnotify
