// Starting helper processes from a library that may live in any program:
// posix_spawn (never fork without exec: another thread may hold a lock the
// child would need), every signal at its default and none blocked, and an
// environment without the LD_PRELOAD inotify shim that may be running this
// very library (a helper must not watch itself through it).
#pragma once

#include <sys/types.h>

#include <string>
#include <utility>
#include <vector>

#include "common/result.h"

namespace rnotify {

// dup2 of `from` (the caller's descriptor) to `to` in the child.
using FdMapping = std::pair<int, int>;

// Starts argv[0] (searched in PATH when it has no '/') with the descriptors
// mapped as given, standard error inherited and no other descriptor (those
// above the highest mapped one, or above 2, are closed), in a process group
// of its own. Its pid, or the error naming the program.
Result<pid_t> spawnHelper(const std::vector<std::string>& argv, const std::vector<FdMapping>& fds);

// The current environment minus the shim's LD_PRELOAD entry ("NAME=value"
// strings, LD_PRELOAD kept with its other entries, if any).
std::vector<std::string> environmentWithoutShim();

}  // namespace rnotify
