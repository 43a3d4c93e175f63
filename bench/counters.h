// EventCounters for the burst benchmarks (burst.h): the kernel's own
// interfaces read directly (the baselines) and rnotify clients.
#pragma once

#include <memory>
#include <string>

#include "burst.h"
#include "common/unique_fd.h"
#include "transport/connection.h"

namespace rnotify::bench {

// inotify_init1 + inotify_add_watch(dir, IN_CREATE | IN_DELETE), read(2) with
// a 64 KiB buffer: the raw kernel rate rnotify is compared with.
class RawInotifyCounter final : public EventCounter {
 public:
  explicit RawInotifyCounter(const std::string& dir);
  int fd() const override { return fd_.get(); }
  void pump() override;

 private:
  UniqueFd fd_;
};

// fanotify_init(FAN_CLASS_NOTIF | FAN_REPORT_DFID_NAME_TARGET) with a filesystem
// mark for FAN_CREATE | FAN_DELETE on dir's filesystem, as rnotifyd's fanotify
// backend sets it up; counts the bits of every record (fanotify merges a
// create and a delete of one name that are both unread into one record).
class RawFanotifyCounter final : public EventCounter {
 public:
  explicit RawFanotifyCounter(const std::string& dir);
  int fd() const override { return fd_.get(); }
  void pump() override;

 private:
  UniqueFd fd_;
};

// An rnotify client: rnotify::Connection decodes every Events frame into
// Event structs, as the library does for an application.
class ConnectionCounter final : public EventCounter {
 public:
  // Watches serverPath for IN_CREATE | IN_DELETE on `connection`.
  ConnectionCounter(std::unique_ptr<Connection> connection, const std::string& serverPath);
  int fd() const override { return connection_->readFd(); }
  void pump() override;

 private:
  std::unique_ptr<Connection> connection_;
};

// A lighter client for many connections in one process: after the handshake
// and the Watch (through rnotify::Connection), it reads the socket itself and
// walks each Events frame's records only for their masks (docs/PROTOCOL.md
// 4.6), without building strings. What the daemon sends is counted exactly;
// the client's decoding cost is left out, so that the benchmark process does
// not become the bottleneck when 100 clients share its thread.
class FrameCounter final : public EventCounter {
 public:
  FrameCounter(std::unique_ptr<Connection> connection, const std::string& serverPath);
  int fd() const override { return connection_->readFd(); }
  void pump() override;

 private:
  void parse();
  std::unique_ptr<Connection> connection_;
  std::string buffer_;
  size_t used_ = 0;  // bytes of buffer_ already parsed
};

}  // namespace rnotify::bench
