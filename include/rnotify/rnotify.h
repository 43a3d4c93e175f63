/*
 * rnotify.h: change notification that also works on network filesystems.
 *
 * An inotify-shaped API. A watch on a local filesystem is served by the
 * kernel's inotify; a watch on an sshfs mount is forwarded to the rnotifyd agent
 * on the server (started over ssh with the mount's own ssh options); nfs, nfs4,
 * cifs and smb3 mounts use the rnotifyd endpoint configured in
 * ~/.config/rnotify/config.toml or /etc/rnotify/config.toml. Events that came
 * from the server carry IN_REMOTE in their mask; local events on the same mount
 * (what this host did) are merged into the same stream.
 *
 * Event masks are inotify's IN_* values (<sys/inotify.h>), plus IN_REMOTE.
 * All work happens inside these calls, mostly rnotify_next(), in the
 * caller's thread, with two exceptions: a watch on a local cifs mount (SMB2
 * change notify through the mount) starts one thread of its own, and a watch
 * on an SMB share without rnotifyd starts one rnotify-smb-helper process
 * (posix_spawn; it holds libsmbclient, which is not thread-safe). A watch on
 * an sshfs mount starts ssh (posix_spawn) to run the agent on the server,
 * and, when the agent is not installed there, a second ssh for SFTP scans
 * (one per watch).
 * A handle is not thread-safe: use it from one thread at a time.
 */
#ifndef RNOTIFY_RNOTIFY_H
#define RNOTIFY_RNOTIFY_H

#include <stdint.h>
#include <sys/inotify.h>

#ifdef __cplusplus
extern "C" {
#endif

/* The shared library exports only these functions. */
#define RNOTIFY_API __attribute__((visibility("default")))

/* Set on events reported by the file server rather than the local kernel. */
#ifndef IN_REMOTE
#define IN_REMOTE 0x00800000u
#endif

/* Set on events rnotify computed instead of receiving them: after a gap (a
 * lost connection, an overflowed queue) it re-reads the watched tree and
 * reports what changed meanwhile as ordinary events with this bit. */
#ifndef IN_SYNTHESIZED
#define IN_SYNTHESIZED 0x00400000u
#endif

/* A status event, alone or with IN_REMOTE: the connection to the server is
 * back after a loss (which was reported as IN_Q_OVERFLOW | IN_REMOTE); the
 * changes missed meanwhile follow as IN_SYNTHESIZED events. When the loss
 * came right after the watch was added, before the server's first listing of
 * the tree, there is nothing to compare with: another IN_Q_OVERFLOW |
 * IN_REMOTE follows IN_RESTORED instead (rescan). For a watch added
 * with RNOTIFY_NONBLOCK, IN_RESTORED | IN_REMOTE also says that the server has
 * taken the watch: its changes are reported from then on. So it does for a
 * watch that fell back (polling) when its server takes it: the scans end, and
 * what the last scan found comes before it. */
#ifndef IN_RESTORED
#define IN_RESTORED 0x00200000u
#endif

/* Set on events found by polling: where neither the local kernel nor a server
 * can watch, rnotify re-reads the tree at an interval and reports the
 * differences (CREATE, DELETE, MODIFY, ATTRIB, MOVED_FROM/MOVED_TO with one
 * cookie). A polled event comes up to one interval late, and changes that
 * cancel out between two scans are not seen. Free in inotify's mask (its
 * event bits end at 0x00008000, its flags start at 0x01000000). */
#ifndef IN_POLLED
#define IN_POLLED 0x00100000u
#endif

/* rnotify_init() flags. */
#define RNOTIFY_CLOEXEC 0x1u

/* rnotify_add_watch() flags. */
#define RNOTIFY_RECURSIVE 0x1u  /* watch every directory below, including new ones */
#define RNOTIFY_LOCAL_ONLY 0x2u /* never contact a server; plain inotify */
#define RNOTIFY_POLL 0x4u       /* watch by scanning only (events have IN_POLLED), on any filesystem */
#define RNOTIFY_NONBLOCK 0x8u   /* do not wait for the server's first connection (see rnotify_add_watch) */

/* rnotify_watch_source() of a watch added with RNOTIFY_NONBLOCK begins with
 * this while its server's first connection is under way. */
#define RNOTIFY_SOURCE_CONNECTING "connecting to "

typedef struct rnotify_handle rnotify_t;

struct rnotify_event {
  int wd;          /* the watch descriptor rnotify_add_watch() returned */
  uint32_t mask;   /* IN_* bits, IN_ISDIR, IN_REMOTE */
  uint32_t cookie; /* pairs IN_MOVED_FROM with IN_MOVED_TO, else 0 */
  uint64_t seq;    /* per-watch sequence number from the server, 0 for local events; a gap
                    * means the server's event was the echo of a local one already returned */
  /* The directory the event happened in, written the way inotifywait prints
   * %w: the watched path as given, plus the subdirectory for recursive watches,
   * ending in '/' for directories; for a watch on a file, the file's path. */
  const char *path;
  const char *name; /* the entry's name inside path, "" for events on path itself */
};

/* Creates a handle. Returns NULL and sets errno on failure. */
RNOTIFY_API rnotify_t *rnotify_init(unsigned flags);

/* Releases the handle: stops agents, closes connections and descriptors. */
RNOTIFY_API void rnotify_close(rnotify_t *rn);

/* A descriptor that becomes readable when rnotify_next() has an event to
 * return or work to do (a server's data, a scan under way); for
 * poll/select/epoll. Owned by the handle. */
RNOTIFY_API int rnotify_fd(const rnotify_t *rn);

/* Watches path for the IN_* events in mask. The first watch on a server waits
 * for the connection to it (RNOTIFY_CONNECT_TIMEOUT_MS, 20 s by default);
 * while a server is known to be unreachable, a watch returns at once, polled
 * until the server is back.
 * With RNOTIFY_NONBLOCK the first watch on a server does not wait: it returns
 * at once with this host's changes reported, while the connection is made in
 * rnotify_next() (poll rnotify_fd()). When the server has taken the watch,
 * an IN_RESTORED | IN_REMOTE event says so: the server's changes made before
 * it are not reported. If the server cannot be reached or will not watch
 * there, the watch falls back to the mount's next source (polling), also
 * where a waiting add would have failed (EACCES, ENOENT on the server):
 * rnotify_watch_source() and the log say why, no event does. Once its source
 * no longer begins with RNOTIFY_SOURCE_CONNECTING, the server's changes are
 * reported (by scans when it fell back; SFTP scans say "connecting" until
 * their first listing is in). A watch added while a first
 * connection is under way joins it, with or without the flag. With the
 * flag, a watch on a server already connected returns at once too: the
 * server is asked without waiting, and IN_RESTORED | IN_REMOTE says when it
 * has taken the watch. Without it, this call waits for the server's answer
 * (each request within 3 x the connect timeout), or, when it falls back to
 * SFTP scans, for their first listing (as long again at most), or, for
 * scans of the mount, for their first scan (to its end). With it, a first
 * scan of the mount is made by rnotify_next() too, and the source says
 * "connecting" until it is complete. The server's listings (the first, and
 * after a gap) are asked for and taken in by rnotify_next() without
 * waiting for them.
 * Returns a watch descriptor (> 0),
 * or -1 with errno set (ENOENT, EACCES, ENOTDIR, ENOSYS: the server cannot
 * watch there, ENOSPC: a limit was reached, EHOSTUNREACH: the server could
 * not be reached); rnotify_last_error() then says why, naming the path. */
RNOTIFY_API int rnotify_add_watch(rnotify_t *rn, const char *path, uint32_t mask, unsigned flags);

/* Removes a watch. Returns 0, or -1 with errno set (EINVAL: unknown wd). */
RNOTIFY_API int rnotify_rm_watch(rnotify_t *rn, int wd);

/* Waits up to timeout_ms (-1: forever, 0: do not wait) for the next event.
 * Returns 1 and fills *ev (its strings stay valid until the next call on this
 * handle), 0 on timeout, -1 with errno set on error (EINTR when a signal
 * interrupted the wait). Reconnecting to a lost server never waits here: an
 * attempt (ssh, connect, TLS and protocol handshakes) proceeds while
 * rnotify_fd() is polled. Once the server has answered, making its watches
 * again and re-reading their trees are requests to that server whose
 * answers are taken in by later calls, without waiting for them (each
 * within 3 x the connect timeout, else given up as unanswered). A scan of a
 * mount (polling) works about 500 us per call and goes on at the next one
 * (rnotify_fd() stays readable meanwhile); a call with a timeout goes on
 * scanning until the timeout. */
RNOTIFY_API int rnotify_next(rnotify_t *rn, struct rnotify_event *ev, int timeout_ms);

/* Describes the last failure on this handle, or "" if none. Never NULL. */
RNOTIFY_API const char *rnotify_last_error(const rnotify_t *rn);

/* Describes where the events of a watch come from: "local inotify",
 * "rnotifyd over ssh user@host + local inotify, origin attribution",
 * "polling every 2 s (...), SFTP scans of user@host:/dir + local inotify
 * (rnotifyd is not installed on ...)", ... It can change over the watch's
 * life (a fallback to polling is upgraded when the server is reachable
 * again). NULL for an unknown wd. */
RNOTIFY_API const char *rnotify_watch_source(const rnotify_t *rn, int wd);

#ifdef __cplusplus
}
#endif

#endif /* RNOTIFY_RNOTIFY_H */
