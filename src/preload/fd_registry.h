// FdRegistry: which of the program's descriptor numbers are inotify
// descriptors served by the shim, and the ShimInstance behind each. Every
// interposed read/close/dup/ioctl asks it first, so the common answer ("not
// ours") costs one load from a bitmap and no lock. A dup of a shim descriptor
// is registered too (both numbers share one instance); the instance lives
// until its last number is closed and no call is using it.
//
// The registry is never destroyed: interposed calls may come from other
// threads while the process exits.
#pragma once

#include <memory>
#include <vector>

namespace rnotify::preload {

class ShimInstance;

namespace registry {

// True if fd may be registered (a false positive only costs a lookup).
bool maybe(int fd);
std::shared_ptr<ShimInstance> find(int fd);
void add(int fd, std::shared_ptr<ShimInstance> instance);
// Forgets fd; returns its instance (the caller drops it outside any lock).
std::shared_ptr<ShimInstance> remove(int fd);
// Forgets every number in [first, last] (close_range).
std::vector<std::shared_ptr<ShimInstance>> removeRange(unsigned first, unsigned last);

// Registers pthread_atfork handlers, once: the child of a fork gets the
// registry unlocked and every inherited instance turned into its local-only
// copy (the parent's thread and server connections stay the parent's).
void installForkHandlers();

}  // namespace registry
}  // namespace rnotify::preload
