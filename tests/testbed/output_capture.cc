// OutputCapture; see output_capture.h.
#include "output_capture.h"

#include <poll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>

namespace rnotify::testbed {

OutputCapture::OutputCapture(UniqueFd out, UniqueFd err)
    : out_(std::move(out)),
      err_(std::move(err)),
      stopEvent_(::eventfd(0, EFD_CLOEXEC)),
      outOpen_(out_.valid()),
      errOpen_(err_.valid()) {
  thread_ = std::thread([this] { run(); });
}

OutputCapture::~OutputCapture() { stop(); }

void OutputCapture::stop() {
  if (!thread_.joinable()) return;
  uint64_t one = 1;
  [[maybe_unused]] auto n = ::write(stopEvent_.get(), &one, sizeof one);
  thread_.join();
}

void OutputCapture::append(Stream stream, std::string& partial, const char* data, size_t n) {
  partial.append(data, n);
  size_t start = 0;
  std::lock_guard lock(mutex_);
  for (size_t nl; (nl = partial.find('\n', start)) != std::string::npos; start = nl + 1) {
    std::string line = partial.substr(start, nl - start);
    (stream == Stream::kStdout ? outLines_ : errLines_).push_back(line);
    merged_.emplace_back(stream, std::move(line));
  }
  partial.erase(0, start);
  changed_.notify_all();
}

void OutputCapture::run() {
  std::string outPartial, errPartial;
  char buf[65536];
  bool stopping = false;
  for (;;) {
    pollfd fds[3] = {{outOpen_ ? out_.get() : -1, POLLIN, 0},
                     {errOpen_ ? err_.get() : -1, POLLIN, 0},
                     {stopEvent_.get(), POLLIN, 0}};
    if (fds[0].fd < 0 && fds[1].fd < 0) break;
    // Once asked to stop, drain what is already in the pipes, then leave.
    int r = ::poll(fds, stopping ? 2 : 3, stopping ? 0 : -1);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) break;
    if (fds[2].revents != 0) stopping = true;
    for (int i = 0; i < 2; ++i) {
      if (fds[i].revents == 0) continue;
      Stream stream = i == 0 ? Stream::kStdout : Stream::kStderr;
      std::string& partial = i == 0 ? outPartial : errPartial;
      ssize_t n = ::read(fds[i].fd, buf, sizeof buf);
      if (n > 0) {
        append(stream, partial, buf, static_cast<size_t>(n));
        continue;
      }
      if (n < 0 && errno == EINTR) continue;
      if (!partial.empty()) append(stream, partial, "\n", 1);
      std::lock_guard lock(mutex_);
      (i == 0 ? outOpen_ : errOpen_) = false;
      changed_.notify_all();
    }
  }
  std::lock_guard lock(mutex_);
  if (!outPartial.empty()) outLines_.push_back(outPartial), merged_.emplace_back(Stream::kStdout, outPartial);
  if (!errPartial.empty()) errLines_.push_back(errPartial), merged_.emplace_back(Stream::kStderr, errPartial);
  outOpen_ = errOpen_ = false;
  changed_.notify_all();
}

std::optional<size_t> OutputCapture::waitForLine(Stream stream, const std::function<bool(const std::string&)>& match,
                                                 const Deadline& deadline, size_t from) {
  std::unique_lock lock(mutex_);
  size_t next = from;
  for (;;) {
    const auto& lines = stream == Stream::kStdout ? outLines_ : errLines_;
    for (; next < lines.size(); ++next) {
      if (match(lines[next])) return next;
    }
    bool open = stream == Stream::kStdout ? outOpen_ : errOpen_;
    if (!open || deadline.expired()) return std::nullopt;
    changed_.wait_until(lock, deadline.at());
  }
}

bool OutputCapture::waitForEof(const Deadline& deadline) {
  std::unique_lock lock(mutex_);
  return changed_.wait_until(lock, deadline.at(), [this] { return !outOpen_ && !errOpen_; });
}

std::vector<std::string> OutputCapture::lines(Stream stream) const {
  std::lock_guard lock(mutex_);
  return stream == Stream::kStdout ? outLines_ : errLines_;
}

std::string OutputCapture::transcript() const {
  std::lock_guard lock(mutex_);
  std::string out;
  for (const auto& [stream, line] : merged_) {
    out += stream == Stream::kStdout ? "out| " : "err| ";
    out += line;
    out += '\n';
  }
  return out;
}

}  // namespace rnotify::testbed
