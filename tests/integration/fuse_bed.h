// What the rnotify-fuse integration tests (fuse_view_test.cc,
// fuse_programs_test.cc) share.
#pragma once

#include <unistd.h>

#include <cstdlib>
#include <string>

namespace rnotify::testbed {

// The rnotify-fuse binary: $RNOTIFY_FUSE_BIN if set, else the one built with
// the tests ("" if the build has none).
inline std::string fuseBinary() {
  if (const char* env = std::getenv("RNOTIFY_FUSE_BIN")) return env;
#ifdef RNOTIFY_FUSE_PATH
  return RNOTIFY_FUSE_PATH;
#else
  return "";
#endif
}

// "" if fuseBinary() can be run, else why not (for GTEST_SKIP).
inline std::string missingFuseBinary() {
  std::string fuse = fuseBinary();
  if (fuse.empty() || ::access(fuse.c_str(), X_OK) != 0) return "rnotify-fuse is not built (" + fuse + ")";
  return "";
}

}  // namespace rnotify::testbed
