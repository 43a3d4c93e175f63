#include "common/read_file.h"

#include <fcntl.h>
#include <unistd.h>

#include "common/unique_fd.h"

namespace rnotify {

Result<std::string> readFile(const std::string& path, size_t limit) {
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd) return lastError("open '" + path + "'");
  std::string text;
  char buffer[4096];
  while (text.size() < limit) {
    ssize_t n = ::read(fd.get(), buffer, sizeof buffer);
    if (n == 0) break;
    if (n < 0) {
      if (errno == EINTR) continue;
      return lastError("read '" + path + "'");
    }
    text.append(buffer, static_cast<size_t>(n));
  }
  if (text.size() > limit) text.resize(limit);
  return text;
}

}  // namespace rnotify
