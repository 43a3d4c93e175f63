// PolledTree: a watched tree whose changes are found by scanning it, for
// mounts that neither this host's kernel nor a server can watch. Two kinds:
// the tree as this host sees it (PollScanner on the mount: NFS, SMB, any
// FUSE filesystem) and, for sshfs, the tree on the server read over a
// separate SFTP session (SftpTree), which sshfs's caches cannot delay.
// Events are relative to the watch root and carry IN_POLLED. No thread: the
// client scans when deadline() has passed or fd() is readable. A scan of the
// mount is made in slices of Options::slice (the client's: 500 µs), one per
// scan() call; an SFTP scan, which waits for a server, over as many calls
// as its answers need: scan() returns nothing until one completes.
#pragma once

#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include "common/result.h"
#include "event/event.h"
#include "mounts/mount_resolver.h"
#include "poll/poll_scanner.h"

namespace rnotify {

class PolledTree {
 public:
  using Clock = std::chrono::steady_clock;
  virtual ~PolledTree() = default;
  // The differences since the previous scan (none at the first). An error
  // leaves the known state as it was; the next deadline is set either way.
  virtual Result<std::vector<Event>> scan() = 0;
  virtual Clock::time_point deadline() const = 0;
  // Readable when scan() has something to do before deadline() (-1: none).
  virtual int fd() const { return -1; }
  // No scan has completed since the tree (or its session) started: what
  // scan() returns until then is not a comparison with anything.
  virtual bool starting() const { return false; }
  // It could not start at all (its first session or baseline failed), and
  // will not try again: error() says why.
  virtual bool failed() const { return false; }
  virtual Error error() const { return Error{0, ""}; }
  // Handing over to a server: the scan that starts after this call is the
  // last one; finished() once scan() has returned its differences.
  virtual void finish() {}
  virtual bool finished() const { return true; }
  // Scan no later than `when`: this host just changed something in the tree.
  virtual void hurry(Clock::time_point when) = 0;
  // The root is gone: DELETE_SELF and IGNORED were the last events.
  virtual bool ended() const = 0;
  // Whether a scan reads directories through the mount, so that the local
  // kernel reports the scan's own OPEN/ACCESS/CLOSE_NOWRITE of them.
  virtual bool readsMount() const { return false; }
  // "polling every 2 s (scans of the mount)".
  virtual std::string describe() const = 0;
};

// PollScanner on a directory or file as this host sees it. A file is
// watched by scanning its directory for that one name.
std::unique_ptr<PolledTree> scanMount(const std::string& root, PollScanner::Options options);

// What in a mount's options makes a scan of it see changes late ("" when
// nothing): NFS's lookupcache=all. (Attribute caches do not: the scans of
// NFS and cifs mounts ask the server, AT_STATX_FORCE_SYNC.) Said with the
// fallback's warning.
std::string pollMountAdvice(const MountInfo& mount);

// "every 2 s (250 ms after a change, up to 5 s when idle)".
std::string describeInterval(const PollIntervalSettings& settings);

}  // namespace rnotify
