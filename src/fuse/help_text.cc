#include "fuse/help_text.h"

namespace rnotify::fuse {

std::string helpDescription() {
  return R"(rnotify-fuse - a live view of a network mount, with the server's change events

On an sshfs, NFS or SMB mount the kernel reports only the changes this host
makes: inotify, and every editor, file manager, media server or dev server
built on it, misses what others change on the server. rnotify-fuse mounts a
view of SOURCE on MOUNTPOINT. The view shows the same files (every operation
is passed through to SOURCE), and each change made on the server or by
another client is replayed on the view, so that programs watching the view
get the kernel's own inotify/fanotify events: IN_CREATE, IN_DELETE,
IN_MOVED_FROM/IN_MOVED_TO (one cookie), IN_MODIFY, IN_CLOSE_WRITE, IN_ATTRIB.
Static binaries and Go programs included: nothing is injected into them.

  rnotify-fuse /mnt/share ~/share-live      # returns once the view is ready
  inotifywait -m -r ~/share-live            # sees the server's changes
  fusermount3 -u ~/share-live               # unmounts (so does SIGINT/SIGTERM)

Events come from rnotifyd on the server (started over the mount's own ssh
connection for sshfs, or a configured endpoint for NFS/SMB); without one the
client core falls back to polling SOURCE.)";
}

std::string helpFooter() {
  return R"(EXIT STATUS
  0  unmounted on request (SIGINT, SIGTERM, fusermount3 -u)
  1  bad command line or options
  2  SOURCE is missing, not a directory, or not on a network mount
  3  the view could not be mounted (MOUNTPOINT missing or busy, no /dev/fuse)
  4  SOURCE disappeared while mounted (the network mount went away); the view
     was unmounted
  5  no event source for SOURCE could be set up
  6  an unexpected failure (out of memory), logged; after the view was
     mounted, it is unmounted first
  Without -f these are the exit status of the command itself: it returns only
  once the view is mounted and subscribed, or has failed.

NOTES
  The view is a second mount point: programs must open files through it to
  get the events. Changes made through the view are reported once, by the
  kernel. SOURCE itself caches (sshfs: dir_cache, 20 s); mount it with
  -o dir_cache=no for listings that are fresh at once (see docs/USAGE.md).
  If rnotify-fuse is killed, the view reports "Transport endpoint is not
  connected" until `fusermount3 -u MOUNTPOINT`.

ENVIRONMENT
  RNOTIFY_LOG_LEVEL  default for --log-level
  RNOTIFY_AGENT      the agent command run on the server (default: rnotifyd --stdio))";
}

}  // namespace rnotify::fuse
