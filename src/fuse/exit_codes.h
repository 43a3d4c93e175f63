// rnotify-fuse's exit codes, stable for scripts (documented in --help and
// docs/USAGE.md).
#pragma once

namespace rnotify::fuse {

inline constexpr int kExitOk = 0;               // unmounted on request (signal, fusermount3 -u)
inline constexpr int kExitUsage = 1;            // bad command line
inline constexpr int kExitBadSource = 2;        // SOURCE missing, not a directory, not a network mount
inline constexpr int kExitMountFailed = 3;      // the view could not be mounted
inline constexpr int kExitSourceLost = 4;       // SOURCE disappeared while mounted; the view was unmounted
inline constexpr int kExitSubscribeFailed = 5;  // no event source for SOURCE could be set up
inline constexpr int kExitInternal = 6;         // an unexpected failure (out of memory); a mounted view is unmounted

}  // namespace rnotify::fuse
