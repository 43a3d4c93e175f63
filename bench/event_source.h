// EventSource: one way of learning that a file was created in a directory, as
// the latency benchmark sees it. Each transport under test (raw inotify, the
// rnotify client over a unix socket, over ssh stdio through the C API, over ssh
// through the Connection class) implements this, so the runner that times
// "create -> event" is the same code for all of them and the comparison is fair.
#pragma once

#include <deque>
#include <memory>
#include <optional>
#include <string>

namespace rnotify::bench {

struct SourceStats {
  size_t overflows = 0;    // IN_Q_OVERFLOW seen: events were lost upstream
  size_t localEvents = 0;  // events without IN_REMOTE on a remote watch (ignored)
};

class EventSource {
 public:
  virtual ~EventSource() = default;
  // Short name for tables and CSV ("inotify", "unix", "ssh", "ssh-agent").
  virtual const std::string& name() const = 0;
  // One line saying what exactly runs, for the report.
  virtual const std::string& description() const = 0;
  // The server-side directory in which the runner creates files; the source
  // watches it (directly, or through a mount or a server).
  virtual const std::string& changeDir() const = 0;
  // The entry name of the next IN_CREATE event, waiting at most timeoutMs
  // (0: do not wait); nullopt on timeout. Throws std::runtime_error when the
  // source failed (connection lost), naming the source.
  virtual std::optional<std::string> nextCreate(int timeoutMs) = 0;
  const SourceStats& stats() const { return stats_; }

 protected:
  SourceStats stats_;
};

}  // namespace rnotify::bench
