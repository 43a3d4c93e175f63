#include "fuse/source_check.h"

#include <dirent.h>

#include <climits>
#include <cstdlib>
#include <string_view>
#include <vector>

#include "common/read_file.h"

namespace rnotify::fuse {
namespace {

std::vector<std::string> argvOf(const std::string& pid) {
  std::vector<std::string> out;
  auto read = readFile("/proc/" + pid + "/cmdline");
  if (!read) return out;
  const std::string& text = *read;
  size_t start = 0;
  while (start < text.size()) {
    size_t end = text.find('\0', start);
    if (end == std::string::npos) end = text.size();
    out.push_back(text.substr(start, end - start));
    start = end + 1;
  }
  return out;
}

bool isSshfs(const std::string& argv0) {
  std::string_view base(argv0);
  if (auto slash = base.rfind('/'); slash != std::string_view::npos) base.remove_prefix(slash + 1);
  return base == "sshfs";
}

}  // namespace

std::optional<bool> sshfsCachesListings(const std::string& mountPoint) {
  DIR* proc = ::opendir("/proc");
  if (proc == nullptr) return std::nullopt;
  std::optional<bool> answer;
  while (dirent* entry = ::readdir(proc)) {
    if (entry->d_name[0] < '0' || entry->d_name[0] > '9') continue;
    std::vector<std::string> argv = argvOf(entry->d_name);
    if (argv.empty() || !isSshfs(argv[0])) continue;
    bool ours = false, uncached = false;
    for (const std::string& arg : argv) {
      if (arg.empty()) continue;
      char real[PATH_MAX];
      ours |= arg == mountPoint || (arg.front() == '/' && ::realpath(arg.c_str(), real) && real == mountPoint);
      uncached |= arg.find("dir_cache=no") != std::string::npos || arg.find("cache=no") != std::string::npos;
    }
    if (ours) {
      answer = !uncached;
      break;
    }
  }
  ::closedir(proc);
  return answer;
}

}  // namespace rnotify::fuse
