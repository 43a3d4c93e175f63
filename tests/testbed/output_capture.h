// OutputCapture: reads a child's stdout and stderr pipes on one background
// thread and keeps every line. A thread (not reads done inside each wait) so
// that a chatty child, e.g. rnotifywait with RNOTIFY_LOG_LEVEL=debug, never
// blocks on a full pipe while the test is busy acting; that would delay the
// very events the test waits for.
#pragma once

#include <condition_variable>
#include <functional>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "common/unique_fd.h"
#include "deadline.h"

namespace rnotify::testbed {

enum class Stream { kStdout, kStderr };

class OutputCapture {
 public:
  // Either fd may be invalid (that stream is not captured).
  OutputCapture(UniqueFd out, UniqueFd err);
  ~OutputCapture();
  OutputCapture(const OutputCapture&) = delete;
  OutputCapture& operator=(const OutputCapture&) = delete;

  // The index of the first line of `stream`, at or after `from`, that
  // satisfies `match`; waits for it until the deadline or until the stream
  // ends (the child closed it). nullopt if none came.
  std::optional<size_t> waitForLine(Stream stream, const std::function<bool(const std::string&)>& match,
                                    const Deadline& deadline, size_t from = 0);
  // Waits until both streams are closed by the child(ren), or the deadline.
  bool waitForEof(const Deadline& deadline);
  std::vector<std::string> lines(Stream stream) const;
  // Every line of both streams in arrival order, prefixed "out| " or "err| ".
  std::string transcript() const;
  // Stops reading; lines seen so far are kept. Called before the child is
  // killed would lose its last words, so Process calls it after reaping.
  void stop();

 private:
  void run();
  void append(Stream stream, std::string& partial, const char* data, size_t n);

  UniqueFd out_, err_, stopEvent_;
  mutable std::mutex mutex_;
  std::condition_variable changed_;
  std::vector<std::string> outLines_, errLines_;
  std::vector<std::pair<Stream, std::string>> merged_;
  bool outOpen_, errOpen_;
  std::thread thread_;
};

}  // namespace rnotify::testbed
