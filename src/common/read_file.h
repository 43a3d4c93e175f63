// readFile: a whole small file (typically under /proc) read with read(2).
// Files under /proc/PID vanish while being read when the process exits; that
// must be an ordinary error (ESRCH, ENOENT), never an exception from the
// depths of an iostream (libstdc++'s filebuf throws on a failed read).
#pragma once

#include <string>

#include "common/result.h"

namespace rnotify {

Result<std::string> readFile(const std::string& path, size_t limit = 1u << 20);

}  // namespace rnotify
