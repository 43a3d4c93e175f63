// The kernel and rnotify EventCounters; see counters.h.
#include "counters.h"

#include <fcntl.h>
#include <sys/fanotify.h>
#include <sys/inotify.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <stdexcept>

#include "daemon_under_test.h"
#include "proto/wire.h"

namespace rnotify::bench {
namespace {

void countMask(EventCounts& counts, uint64_t create, uint64_t remove, uint64_t overflow, uint64_t mask) {
  if (mask & create) ++counts.creates;
  if (mask & remove) ++counts.deletes;
  if (mask & overflow) ++counts.overflows;
}

}  // namespace

RawInotifyCounter::RawInotifyCounter(const std::string& dir) {
  fd_.reset(::inotify_init1(IN_NONBLOCK | IN_CLOEXEC));
  if (!fd_) throw std::runtime_error(std::string("inotify_init1: ") + std::strerror(errno));
  if (::inotify_add_watch(fd_.get(), dir.c_str(), IN_CREATE | IN_DELETE) < 0) {
    throw std::runtime_error("inotify_add_watch on " + dir + ": " + std::strerror(errno));
  }
}

void RawInotifyCounter::pump() {
  alignas(struct inotify_event) char buffer[64 * 1024];
  for (;;) {
    ssize_t len = ::read(fd_.get(), buffer, sizeof buffer);
    if (len < 0 && errno == EINTR) continue;
    if (len < 0 && errno == EAGAIN) return;
    if (len < 0) throw std::runtime_error(std::string("read from inotify: ") + std::strerror(errno));
    for (char* at = buffer; at < buffer + len;) {
      auto* ev = reinterpret_cast<struct inotify_event*>(at);
      countMask(counts_, IN_CREATE, IN_DELETE, IN_Q_OVERFLOW, ev->mask);
      at += sizeof(struct inotify_event) + ev->len;
    }
  }
}

RawFanotifyCounter::RawFanotifyCounter(const std::string& dir) {
  fd_.reset(::fanotify_init(FAN_CLASS_NOTIF | FAN_REPORT_DFID_NAME_TARGET | FAN_NONBLOCK | FAN_CLOEXEC, O_RDONLY));
  if (!fd_) throw std::runtime_error(std::string("fanotify_init (needs root): ") + std::strerror(errno));
  if (::fanotify_mark(fd_.get(), FAN_MARK_ADD | FAN_MARK_FILESYSTEM, FAN_CREATE | FAN_DELETE | FAN_ONDIR, AT_FDCWD,
                      dir.c_str()) != 0) {
    throw std::runtime_error("fanotify_mark (filesystem) on " + dir + ": " + std::strerror(errno));
  }
}

void RawFanotifyCounter::pump() {
  alignas(struct fanotify_event_metadata) char buffer[64 * 1024];
  for (;;) {
    ssize_t len = ::read(fd_.get(), buffer, sizeof buffer);
    if (len < 0 && errno == EINTR) continue;
    if (len < 0 && errno == EAGAIN) return;
    if (len < 0) throw std::runtime_error(std::string("read from fanotify: ") + std::strerror(errno));
    auto* meta = reinterpret_cast<struct fanotify_event_metadata*>(buffer);
    for (; FAN_EVENT_OK(meta, len); meta = FAN_EVENT_NEXT(meta, len)) {
      countMask(counts_, FAN_CREATE, FAN_DELETE, FAN_Q_OVERFLOW, meta->mask);
    }
  }
}

ConnectionCounter::ConnectionCounter(std::unique_ptr<Connection> connection, const std::string& serverPath)
    : connection_(std::move(connection)) {
  connection_->setEventsHandler([this](Connection&, proto::Events& events) {
    for (const Event& event : events.events) countMask(counts_, IN_CREATE, IN_DELETE, IN_Q_OVERFLOW, event.mask);
  });
  watchOrThrow(*connection_, serverPath, IN_CREATE | IN_DELETE, 0, "rnotify client");
}

void ConnectionCounter::pump() {
  if (!connection_->pump()) throw std::runtime_error("rnotify client: " + connection_->failure().message);
}

FrameCounter::FrameCounter(std::unique_ptr<Connection> connection, const std::string& serverPath)
    : connection_(std::move(connection)) {
  // Events cannot come before the Reply (nothing changes before the burst),
  // so Connection's own reader holds nothing when this one takes over.
  watchOrThrow(*connection_, serverPath, IN_CREATE | IN_DELETE, 0, "rnotify client");
  buffer_.resize(1 << 20);
}

void FrameCounter::pump() {
  for (;;) {
    if (used_ == buffer_.size()) buffer_.resize(buffer_.size() * 2);  // a frame larger than the buffer
    ssize_t n = ::read(fd(), buffer_.data() + used_, buffer_.size() - used_);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && errno == EAGAIN) return;
    if (n < 0) throw std::runtime_error(std::string("rnotify client: read: ") + std::strerror(errno));
    if (n == 0) throw std::runtime_error("rnotify client: the daemon closed the connection");
    used_ += static_cast<size_t>(n);
    parse();
  }
}

void FrameCounter::parse() {
  using proto::wire::loadLe;
  size_t at = 0;
  while (used_ - at >= 4) {
    size_t length = loadLe<uint32_t>(buffer_.data() + at);
    if (used_ - at < 4 + length) break;
    const char* frame = buffer_.data() + at + 4;
    if (length >= 5 && static_cast<uint8_t>(frame[0]) == static_cast<uint8_t>(proto::Type::kEvents)) {
      // type, count, then records: u16 length, u32 watch, u64 seq, u32 mask, ...
      const char* record = frame + 5;
      const char* end = frame + length;
      while (end - record >= 2 + 4 + 8 + 4) {
        uint32_t mask = loadLe<uint32_t>(record + 2 + 4 + 8);
        countMask(counts_, IN_CREATE, IN_DELETE, IN_Q_OVERFLOW, mask);
        record += 2 + loadLe<uint16_t>(record);
      }
    } else if (length >= 1 && static_cast<uint8_t>(frame[0]) == static_cast<uint8_t>(proto::Type::kFatal)) {
      throw std::runtime_error("rnotify client: the daemon sent Fatal");
    }
    at += 4 + length;
  }
  std::memmove(buffer_.data(), buffer_.data() + at, used_ - at);
  used_ -= at;
}

}  // namespace rnotify::bench
