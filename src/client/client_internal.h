// What the files of the client core (client.cc, client_sources.cc,
// client_connections.cc, ...) share beyond client.h: how the epoll set tells
// its descriptors apart, and how the per-mount maps key a mount.
#pragma once

#include <cstdint>
#include <string>

#include "mounts/mount_resolver.h"

namespace rnotify::client_detail {

constexpr uint64_t kTagLocal = 1;
constexpr uint64_t kTagReady = 2;
constexpr uint64_t kTagRelease = 3;
constexpr uint64_t kTagKeepalive = 4;
// A WatchSource's descriptor: this bit and the watch descriptor (connections
// are registered by their address, which never has it).
constexpr uint64_t kTagNotify = uint64_t{1} << 63;

}  // namespace rnotify::client_detail

namespace rnotify {

// Which mount a watch is on, as the client's per-mount maps key it (the
// mount point and the source: a remount elsewhere is another mount).
inline std::string mountKey(const MountInfo& mount) { return mount.mountPoint + '\n' + mount.source; }

}  // namespace rnotify
