// Shape rules for protocol strings; see field_checks.h. The dir/name rules
// exist so that a client can join its mount point, dir and name without a
// malicious or buggy server steering it outside the watched tree.
#include "proto/field_checks.h"

namespace rnotify::proto {

std::string stringProblem(std::string_view field, std::string_view s, size_t limit) {
  if (s.size() > limit) {
    return std::string(field) + " is " + std::to_string(s.size()) + " bytes, the limit is " + std::to_string(limit);
  }
  if (size_t nul = s.find('\0'); nul != std::string_view::npos) {
    return std::string(field) + " contains a NUL byte at offset " + std::to_string(nul);
  }
  return {};
}

std::string dirProblem(std::string_view dir) {
  if (dir.empty()) return {};
  if (dir.front() == '/') return "event dir starts with '/' (it must be relative to the watch root)";
  size_t start = 0;
  while (start <= dir.size()) {
    size_t end = dir.find('/', start);
    if (end == std::string_view::npos) end = dir.size();
    std::string_view part = dir.substr(start, end - start);
    if (part.empty()) return "event dir has an empty component (a trailing or doubled '/')";
    if (part == "." || part == "..") return "event dir has a '" + std::string(part) + "' component";
    start = end + 1;
  }
  return {};
}

std::string nameProblem(std::string_view name) {
  if (name.find('/') != std::string_view::npos) return "event name contains '/'";
  if (name == "." || name == "..") return "event name is '" + std::string(name) + "'";
  return {};
}

std::string userProblem(std::string_view user) {
  if (user.empty()) return "user is empty";
  if (user.find('/') != std::string_view::npos) return "user contains '/'";
  if (user == "." || user == "..") return "user is '" + std::string(user) + "'";
  return {};
}

}  // namespace rnotify::proto
