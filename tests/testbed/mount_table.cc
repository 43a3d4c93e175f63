// mountinfo parsing; see mount_table.h. Format: proc(5), fields separated by
// spaces, optional fields end at " - ", octal escapes (\040) in paths.
#include "mount_table.h"

#include <fstream>
#include <sstream>

namespace rnotify::testbed {
namespace {

std::string unescape(const std::string& s) {
  std::string out;
  for (size_t i = 0; i < s.size(); ++i) {
    bool octal = s[i] == '\\' && i + 3 < s.size();
    for (size_t k = 1; octal && k <= 3; ++k) octal = s[i + k] >= '0' && s[i + k] <= '7';
    if (octal) {
      out += static_cast<char>((s[i + 1] - '0') * 64 + (s[i + 2] - '0') * 8 + (s[i + 3] - '0'));
      i += 3;
    } else {
      out += s[i];
    }
  }
  return out;
}

}  // namespace

std::vector<MountEntry> readMountTable() {
  std::vector<MountEntry> entries;
  std::ifstream in("/proc/self/mountinfo");
  std::string line;
  while (std::getline(in, line)) {
    std::istringstream ss(line);
    std::vector<std::string> fields;
    std::string f;
    while (ss >> f) fields.push_back(f);
    size_t sep = 0;
    while (sep < fields.size() && fields[sep] != "-") ++sep;
    if (fields.size() < 5 || sep + 2 >= fields.size()) continue;
    entries.push_back({unescape(fields[4]), fields[sep + 1], unescape(fields[sep + 2])});
  }
  return entries;
}

std::optional<MountEntry> findMount(const std::string& path) {
  std::optional<MountEntry> found;
  for (auto& e : readMountTable()) {
    if (e.mountPoint == path) found = e;
  }
  return found;
}

std::vector<std::string> mountsBelow(const std::string& dir) {
  std::vector<std::string> out;
  for (auto& e : readMountTable()) {
    if (e.mountPoint == dir || e.mountPoint.rfind(dir + "/", 0) == 0) out.push_back(e.mountPoint);
  }
  return out;
}

}  // namespace rnotify::testbed
