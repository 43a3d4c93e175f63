// Helpers shared by the two halves of the passthrough handlers.
#pragma once

#include <fuse_lowlevel.h>

#include <cstdint>
#include <string>

#include "fuse/passthrough.h"

namespace rnotify::fuse {

// fi->fh of a file opened by an own request: nothing is open on SOURCE.
inline constexpr uint64_t kNoFile = ~uint64_t{0};

inline View& viewOf(fuse_req_t req) { return *static_cast<View*>(fuse_req_userdata(req)); }
inline bool isOwn(fuse_req_t req) { return viewOf(req).gate->isOwn(fuse_req_ctx(req)->pid); }
// A path that reopens an O_PATH fd with real access (open, chmod, xattrs).
inline std::string procPath(int fd) { return "/proc/self/fd/" + std::to_string(fd); }

// Attributes of `ino` (a ghost gets made-up ones, and so does an inode that
// SOURCE no longer has when `own`); 0 or an errno.
int statOf(View& view, fuse_ino_t ino, struct stat* st, bool own);

}  // namespace rnotify::fuse
