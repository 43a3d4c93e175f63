// ClientFeed: the client core (rnotify.h) behind one shim descriptor, and
// the one thread that moves its events into that descriptor.
//
// Why a thread: the program's descriptor must be readable exactly when an
// event waits. The client core's own descriptor is readable whenever bytes
// arrive from a server, and those bytes may turn into nothing the program
// should see (a reply, the echo of a local change that de-duplication
// absorbs, a local report held for its echo). Only by running the core can
// one know, and the program will not run it for us between its poll() and
// its read(). So the thread runs the core whenever its descriptor wakes,
// and raises the program's descriptor only for events to deliver. It is
// started at the first watch on a network mount; programs that watch only
// local paths never get one.
//
// The handle is not thread-safe: every use (the thread's, and add/remove
// from the program's threads) happens with `lock` held, the mutex the owner
// passes in; the deliver callback runs with it held too.
#pragma once

#include <chrono>
#include <condition_variable>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include "common/unique_fd.h"
#include "rnotify/rnotify.h"

namespace rnotify::preload {

// True on a thread while it runs the client core. The core opens its own
// inotify descriptor (for this host's events on the mount): that call must
// reach the kernel, not the shim.
bool insideClientCore();

class ClientFeed {
 public:
  using Deliver = std::function<void(const rnotify_event& event)>;

  // nullptr and *why set if the client core cannot start.
  static std::unique_ptr<ClientFeed> start(std::mutex& lock, Deliver deliver, std::string* why);
  ~ClientFeed();
  ClientFeed(const ClientFeed&) = delete;
  ClientFeed& operator=(const ClientFeed&) = delete;

  // With the lock held. -1: *why says why (rnotify_last_error), errno set.
  int addWatch(const char* path, uint32_t mask, unsigned flags, std::string* why);
  void removeWatch(int clientWd);
  const char* watchSource(int clientWd) const;
  // With `held` locking the lock: while the watch (added with
  // RNOTIFY_NONBLOCK) waits for its server's first connection, releases the
  // lock and waits until the server has taken it or it fell back (or the
  // thread ended), at most `bound` (plus what it takes to get the lock
  // back: the thread holds it while the core makes the watch on the server
  // and lists it). False if it still waits.
  bool waitForServer(std::unique_lock<std::mutex>& held, int clientWd, std::chrono::milliseconds bound);

  // In the child of a fork: the thread and the server connections are the
  // parent's; forget them without touching them (no join, no close).
  void abandon();

 private:
  ClientFeed(std::mutex& lock, Deliver deliver, rnotify_t* handle, UniqueFd stop);
  void run();
  void runCore();

  std::mutex& lock_;
  Deliver deliver_;
  rnotify_t* handle_;
  UniqueFd stop_;                // eventfd: written to end the thread
  std::condition_variable ran_;  // the thread ran the core (with the lock held), or stopped
  bool stopped_ = false;         // the thread ended (with the lock held)
  std::thread thread_;
};

}  // namespace rnotify::preload
