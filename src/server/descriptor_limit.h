// Descriptor budget: how many clients rnotifyd can serve within its
// RLIMIT_NOFILE. Every client holds descriptors (a socket; an ssh agent's
// handed-over connection three), and the daemon needs more for itself
// (inotify, fanotify, listeners, logs, a snapshot walk's directories). If
// --max-clients allowed more clients than that, accept() would fail with
// EMFILE while the server believes it has room, and clients would be
// dropped at random instead of refused by the client limit. So the daemon
// raises its limit at start and keeps --max-clients within it.
#pragma once

#include <sys/resource.h>

#include <cstdint>

#include "common/result.h"

namespace rnotify {

// The most descriptors one client may make the daemon hold: an ssh agent's
// connection is its stdin, stdout and control socket; a socket client holds
// one and leaves the rest for the descriptors opened on its behalf.
inline constexpr rlim_t kDescriptorsPerClient = 3;
// Descriptors the daemon keeps for itself: 64 for its own (watch backends,
// listeners and their spare descriptors, log file, lock files, TLS files,
// /proc reads) and 64 for a snapshot walk, which holds one per directory
// level (a deeper walk gets EMFILE on that directory only).
inline constexpr rlim_t kReservedDescriptors = 128;
// Never asks for more than this (fs.nr_open is 1<<20 by default).
inline constexpr rlim_t kDescriptorCap = rlim_t{1} << 20;

struct DescriptorBudget {
  rlim_t limit = 0;  // the soft RLIMIT_NOFILE in force
  rlim_t hardLimit = 0;
  uint32_t maxClients = 0;  // the clients served at once
  bool fitted = false;      // maxClients is below what was asked for
};

// Descriptors needed for `clients` clients.
inline rlim_t descriptorsFor(uint32_t clients) { return kReservedDescriptors + kDescriptorsPerClient * clients; }

// Raises the soft RLIMIT_NOFILE to the hard limit, and the hard limit too if
// it is below what `wantedClients` need and the process may (root:
// CAP_SYS_RESOURCE), up to fs.nr_open and kDescriptorCap. Then fits the
// clients into the soft limit: a `wantedClients` that was asked for
// explicitly (`explicitRequest`) and does not fit is an Error that names the
// limits; the default is lowered to what fits (fitted = true). An Error too
// if not even one client fits.
Result<DescriptorBudget> fitClientsToDescriptors(uint32_t wantedClients, bool explicitRequest);

}  // namespace rnotify
