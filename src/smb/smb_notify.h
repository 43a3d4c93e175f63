// SmbNotify: one SMB2 CHANGE_NOTIFY watch on a directory of an SMB server,
// through Samba's client library (libsmbclient). For shares that cannot run
// rnotifyd (Windows servers, NAS appliances): the server itself reports
// changes, for the watched directory or, with WATCH_TREE, its whole tree.
//
// smbc_notify() blocks in its own event loop, and Debian's libsmbclient is
// not thread-safe (it keeps its talloc stack frames in one process-wide
// pointer: two smbc_notify() loops in two threads corrupt the heap). So each
// SmbNotify runs libsmbclient in a helper program of its own,
// rnotify-smb-helper (smb_helper.cc), started with posix_spawn (never a fork
// without exec: the caller may be multithreaded, and a lock another thread
// held at the fork would deadlock the child). Nothing else links
// libsmbclient: a program that loads librnotify (or the preload shim) does
// not load Samba's libraries. The helper is found at RNOTIFY_SMB_HELPER, else
// where it is installed, else where it was built. The helper gets its
// settings (credentials included) in the first packet, and sends each event
// as one packet over a SOCK_SEQPACKET socketpair (smb_helper_wire.h); fd() is
// the parent's end, readable while events wait or after the helper failed or
// died. smbc_notify() calls back every kTickMs with no actions; the first
// tick tells the parent that the request is out. The destructor kills the
// helper (SIGKILL) and reaps it, at once; the helper keeps no descriptor of
// the parent's but its socket and standard error, and leaves by itself
// within a tick when that socket's other end closes (the parent process
// died).
//
// When the changes do not fit the response (libsmbclient asks for at most
// 1000 bytes of records) the server answers STATUS_NOTIFY_ENUM_DIR and
// libsmbclient ends smbc_notify() with -1 and errno 0 (the status has no error
// severity, so no errno maps to it). That becomes one IN_Q_OVERFLOW event and
// a new request; the caller resynchronises. A server that keeps answering so
// (more than 20 times a second) fails the watch with EIO instead of spinning.
//
// Recursion (WATCH_TREE) is the server's: Windows reports the whole tree. Samba
// reports changes made through SMB anywhere below the watched directory, but
// of changes made on the server's own filesystem it sees only those directly
// in the watched directory (its inotify backend watches that one directory).
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "common/result.h"
#include "common/unique_fd.h"
#include "event/event.h"
#include "smb/smb_credentials.h"

namespace rnotify {

class SmbNotify {
 public:
  // Connects, opens the directory and starts the watch. Returns once the
  // first CHANGE_NOTIFY request is out (one tick, kTickMs): a change made
  // after start() returns is reported. Fails within about
  // kConnectTimeoutMs with errno and a message naming the URL and the fix
  // (EACCES: bad user or password; ENOENT: unknown share or path;
  // ECONNREFUSED/ETIMEDOUT/EHOSTUNREACH: no server there).
  static Result<std::unique_ptr<SmbNotify>> start(const SmbLocation& location, const SmbCredentials& credentials,
                                                  uint32_t mask, bool recursive);
  ~SmbNotify();
  SmbNotify(const SmbNotify&) = delete;
  SmbNotify& operator=(const SmbNotify&) = delete;

  // Readable while events wait or after a failure.
  int fd() const;
  // Events relative to the watched directory (dir "" or "a/b"), masks IN_*
  // (no IN_REMOTE, no IN_ISDIR: see smb_actions.h), cookies on moves,
  // IN_Q_OVERFLOW when the server lost track.
  std::vector<Event> take();
  // The connection broke (server gone, share removed), as far as the last
  // take() read; fd() stays readable then.
  bool failed() const;
  Error error() const;

  static constexpr unsigned kTickMs = 100;
  static constexpr int kConnectTimeoutMs = 5000;
  // The helper program that start() runs.
  static std::string helperPath();

 private:
  SmbNotify(pid_t child, UniqueFd socket);
  // Reads every waiting message into events_ / failed_.
  void drain() const;
  // Kills and reaps the helper (idempotent).
  void endHelper() const;
  mutable pid_t child_;
  UniqueFd socket_;
  mutable std::vector<Event> events_;
  mutable bool failed_ = false;
  mutable Error error_;
};

}  // namespace rnotify
