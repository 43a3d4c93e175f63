// RecordQueue: events waiting to be read from a shim descriptor, already in
// the kernel's byte format (struct inotify_event, the name padded with NULs
// to a multiple of 16 bytes, as the kernel pads it). take() hands out whole
// records only, so that a read never splits one.
#pragma once

#include <cstddef>
#include <cstdint>
#include <deque>
#include <string>
#include <string_view>

namespace rnotify::preload {

class RecordQueue {
 public:
  // At most this many records wait (the kernel's max_queued_events); past
  // it, like the kernel, one IN_Q_OVERFLOW record (wd -1) stands for the rest.
  explicit RecordQueue(size_t maxRecords) : maxRecords_(maxRecords) {}

  void push(int wd, uint32_t mask, uint32_t cookie, std::string_view name);
  // An IN_Q_OVERFLOW record (wd -1) with extra flags, unless the last
  // record waiting is already one.
  void pushOverflow(uint32_t extraFlags);

  // Copies whole records into buf, oldest first, while they fit. Returns the
  // bytes copied; *tooSmall is set when the next record did not fit.
  size_t take(char* buf, size_t size, bool* tooSmall);

  bool empty() const { return records_.empty(); }
  size_t bytes() const { return bytes_; }

  // The kernel's record for one event: what a read returns for it.
  static std::string encode(int wd, uint32_t mask, uint32_t cookie, std::string_view name);

 private:
  size_t maxRecords_;
  std::deque<std::string> records_;
  size_t bytes_ = 0;
  bool lastIsOverflow_ = false;
};

}  // namespace rnotify::preload
