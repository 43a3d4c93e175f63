// What rnotify-fuse can tell about SOURCE's own caching before it mounts the
// view. The view cannot invalidate a network mount's caches; sshfs's
// dir_cache (on by default) keeps listings and attributes for 20 s, which
// then lag the view behind the events. Worth a warning, not a refusal.
#pragma once

#include <optional>
#include <string>

namespace rnotify::fuse {

// For the sshfs process serving `mountPoint` (found by its command line in
// /proc): true if it runs with its directory cache (no dir_cache=no or
// cache=no among its options), false if not; nullopt if no such process is
// visible (another user's, another pid namespace).
std::optional<bool> sshfsCachesListings(const std::string& mountPoint);

}  // namespace rnotify::fuse
