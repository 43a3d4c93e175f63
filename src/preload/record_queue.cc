#include "preload/record_queue.h"

#include <sys/inotify.h>

#include <cstring>

namespace rnotify::preload {

std::string RecordQueue::encode(int wd, uint32_t mask, uint32_t cookie, std::string_view name) {
  // fs/notify/inotify: len = round_up(name length + 1, sizeof(struct inotify_event)); 0 without a name.
  constexpr size_t kAlign = sizeof(struct inotify_event);
  uint32_t len = name.empty() ? 0 : static_cast<uint32_t>((name.size() + 1 + kAlign - 1) / kAlign * kAlign);
  std::string record(sizeof(struct inotify_event) + len, '\0');
  struct inotify_event header {};
  header.wd = wd;
  header.mask = mask;
  header.cookie = cookie;
  header.len = len;
  std::memcpy(record.data(), &header, sizeof header);
  if (!name.empty()) std::memcpy(record.data() + sizeof header, name.data(), name.size());
  return record;
}

void RecordQueue::push(int wd, uint32_t mask, uint32_t cookie, std::string_view name) {
  if (records_.size() >= maxRecords_) {
    pushOverflow(0);
    return;
  }
  records_.push_back(encode(wd, mask, cookie, name));
  bytes_ += records_.back().size();
  lastIsOverflow_ = false;
}

void RecordQueue::pushOverflow(uint32_t extraFlags) {
  if (lastIsOverflow_) return;
  records_.push_back(encode(-1, IN_Q_OVERFLOW | extraFlags, 0, {}));
  bytes_ += records_.back().size();
  lastIsOverflow_ = true;
}

size_t RecordQueue::take(char* buf, size_t size, bool* tooSmall) {
  size_t used = 0;
  *tooSmall = false;
  while (!records_.empty()) {
    const std::string& next = records_.front();
    if (next.size() > size - used) {
      *tooSmall = true;
      break;
    }
    // Whole binary records, not strings.
    std::memcpy(buf + used, next.data(), next.size());  // NOLINT(bugprone-not-null-terminated-result)
    used += next.size();
    bytes_ -= next.size();
    records_.pop_front();
  }
  if (records_.empty()) lastIsOverflow_ = false;
  return used;
}

}  // namespace rnotify::preload
