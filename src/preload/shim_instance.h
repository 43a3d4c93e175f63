// ShimInstance: one inotify descriptor the program created through the shim.
//
// The program gets an epoll descriptor (P) holding two sources: the kernel
// inotify instance (K) that serves and numbers every watch, and an eventfd
// (E) that is readable while events from the client core wait in a queue.
// P is therefore readable exactly when something is to be read, for poll,
// select and epoll alike, without intercepting them. The program's read() on
// P is intercepted: queued records first, then K's, whole records only.
//
// Watches on local filesystems are K's alone: the kernel reports their
// events and the program reads them straight from K. A watch on a network
// mount is numbered by K too (so that the same inode keeps its wd and
// IN_MASK_CREATE fails with EEXIST, as the kernel decides), but with no event
// bits; its events come from the client core — this host's changes and the
// server's (IN_REMOTE), one copy each — and its end (IN_IGNORED) from the
// core as well, after its last event. K's own IGNORED/UNMOUNT for such a
// watch are dropped on the way.
//
// Threads: read() takes only the queue's lock; addWatch/rmWatch and the
// feed's thread share `mutex_` (the client core is not thread-safe).
#pragma once

#include <sys/types.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>

#include "common/unique_fd.h"
#include "preload/client_feed.h"
#include "preload/record_queue.h"

namespace rnotify::preload {

class WatchRoute;

class ShimInstance {
 public:
  // The program's descriptor in *programFd (flags: IN_NONBLOCK, IN_CLOEXEC).
  // plainMasks: deliver only inotify's own bits (no IN_REMOTE), for code
  // that compares masks with == (see MaskStyle). nullptr with errno set on
  // failure.
  static std::shared_ptr<ShimInstance> create(int flags, bool plainMasks, int* programFd);
  ~ShimInstance();
  ShimInstance(const ShimInstance&) = delete;
  ShimInstance& operator=(const ShimInstance&) = delete;

  // read(2) on the program's descriptor `fd` (its O_NONBLOCK flag decides
  // whether to wait). Returns bytes, or -1 with errno (EAGAIN, EINVAL, EINTR).
  ssize_t read(int fd, char* buf, size_t size);
  // ioctl(FIONREAD): bytes that a read could return now.
  int bytesReady(int* out);
  int addWatch(const char* path, uint32_t mask);
  int rmWatch(int wd);

  // In the child of a fork (called by the fork handler for each of the
  // instance's numbers, one thread alive): from now on only K serves,
  // without locks; the parent keeps the rest. The number is pointed at a new
  // epoll set of K alone: the inherited set also holds E, which the parent
  // raises for events the child can never read.
  void becomeForkedCopy(int programFd);

 private:
  struct ServedWatch {
    int clientWd = 0;
    uint32_t programMask = 0;  // as the program asked (IN_MASK_ADD applied)
    uint32_t clientMask = 0;   // event bits the client core was asked for
    std::string path;
    unsigned clientFlags = 0;  // rnotify_add_watch's flags, again when the mask is widened
    bool removing = false;     // the program removed it; only its IGNORED is still to come
  };

  ShimInstance(UniqueFd kernel, UniqueFd ready, bool plainMasks);
  ssize_t readReady(char* buf, size_t size);
  size_t dropServedRecords(char* records, size_t size);
  int addKernelWatch(const char* path, uint32_t mask);
  int addServedWatch(std::unique_lock<std::mutex>& lock, const char* path, uint32_t mask, int wd, bool localOnly,
                     const std::string& mountPoint, dev_t device);
  int updateServedWatch(ServedWatch& watch, int wd, const char* path, uint32_t mask);
  bool ensureFeed();
  void deliver(const rnotify_event& event);
  void enqueue(int wd, uint32_t mask, uint32_t cookie, const char* name);
  void enqueueOverflow(uint32_t flags);
  void settleReadiness();  // with queueMutex_ held

  UniqueFd kernel_;  // K, non-blocking
  UniqueFd ready_;   // E: readable while queue_ is not empty
  bool forked_ = false;
  uint32_t deliveredBits_;  // of the client core's masks, what the program gets
  UniqueFd childPoll_;      // in a forked child: the program's descriptor, K alone

  std::mutex queueMutex_;
  RecordQueue queue_;
  bool readySignalled_ = false;
  std::set<int> dropKernel_;  // served wds: K's records for them are not the program's
  std::atomic<bool> anyServed_{false};

  std::mutex mutex_;
  std::unique_ptr<ClientFeed> feed_;
  bool feedFailed_ = false;
  // How long inotify_add_watch waits for a server's first answer
  // (RNOTIFY_PRELOAD_WAIT_MS): by default until the client core's connection
  // attempt ends (RNOTIFY_CONNECT_TIMEOUT_MS).
  std::chrono::milliseconds attachWait_;
  std::map<int, ServedWatch> served_;  // by the program's wd
  std::map<int, int> byClient_;        // client wd -> program wd
  std::set<int> kernelServed_;         // wds the kernel alone serves
};

}  // namespace rnotify::preload
