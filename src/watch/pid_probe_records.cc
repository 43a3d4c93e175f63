// The record half of PidProbe: fanotify events in, a table of (watch, name)
// -> {bits, pid} in arrival order, and each inotify event's pid out.
#include <sys/fanotify.h>
#include <sys/inotify.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>

#include "common/log.h"
#include "watch/file_handle.h"
#include "watch/pid_probe.h"

namespace rnotify {
namespace {

constexpr uint32_t kEventBits = IN_ACCESS | IN_MODIFY | IN_ATTRIB | IN_CLOSE_WRITE | IN_CLOSE_NOWRITE | IN_OPEN |
                                IN_MOVED_FROM | IN_MOVED_TO | IN_CREATE | IN_DELETE;
constexpr size_t kBufferSize = 64 * 1024;
constexpr int kMaxReadsPerDrain = 64;
// The table never holds more than this, however the stream goes: the kernel
// queues at most 16384 events per group, and records live one or two reads.
constexpr size_t kMaxRecords = 1 << 16;
constexpr auto kMaxAge = std::chrono::seconds(5);

}  // namespace

size_t PidProbe::KeyHash::operator()(const Key& key) const {
  return std::hash<std::string>()(key.second) * 31 + static_cast<size_t>(key.first);
}

void PidProbe::drain() {
  drainAll();
  const auto now = Clock::now();
  while (records_.size() > kMaxRecords || (!records_.empty() && now - records_.front().drained > kMaxAge)) {
    popOldest();
  }
  if (last_.size() > kMaxRecords) last_.clear();
}

void PidProbe::drainAll() {
  for (const auto& group : groups_) drainGroup(group.get());
}

// Events are only 4-byte aligned in the buffer: every structure is copied out
// rather than read in place.
void PidProbe::drainGroup(Group* group) {
  const auto now = Clock::now();
  const char* buffer = buffer_.get();
  for (int reads = 0; reads < kMaxReadsPerDrain; ++reads) {
    ssize_t n = ::read(group->fd.get(), buffer_.get(), kBufferSize);
    if (n < 0) {
      if (errno == EINTR) continue;
      if (errno != EAGAIN) log::error("pid probe: read failed: {}", std::strerror(errno));
      return;
    }
    const size_t length = static_cast<size_t>(n);
    for (size_t offset = 0; offset + sizeof(fanotify_event_metadata) <= length;) {
      fanotify_event_metadata meta;
      std::memcpy(&meta, buffer + offset, sizeof meta);
      if (meta.event_len < sizeof meta || offset + meta.event_len > length || meta.vers != FANOTIFY_METADATA_VERSION) {
        break;
      }
      if (meta.mask & FAN_Q_OVERFLOW) {
        // Only pids are lost; inotify's queue is another matter.
        log::warn("pid probe: the fanotify queue overflowed; some events carry no pid");
        clearTable();
        offset += meta.event_len;
        continue;
      }
      std::string_view dirKey, name, objectKey;
      const char* p = buffer + offset + meta.metadata_len;
      const char* end = buffer + offset + meta.event_len;
      while (p + sizeof(fanotify_event_info_header) <= end) {
        fanotify_event_info_header header;
        std::memcpy(&header, p, sizeof header);
        if (header.len < sizeof header || p + header.len > end) break;
        const char* recordEnd = p + header.len;
        const char* fsid = p + sizeof header;
        const bool named = header.info_type == FAN_EVENT_INFO_TYPE_DFID_NAME;
        if ((named || header.info_type == FAN_EVENT_INFO_TYPE_FID) &&
            fsid + kFsidSize + kFileHandleHeaderSize <= recordEnd) {
          uint32_t handleBytes;
          std::memcpy(&handleBytes, fsid + kFsidSize, sizeof handleBytes);
          const char* handleEnd = fsid + kFsidSize + kFileHandleHeaderSize + handleBytes;
          if (handleEnd <= recordEnd) {
            std::string_view key(fsid, static_cast<size_t>(handleEnd - fsid));
            if (named) {
              dirKey = key;
              name = std::string_view(handleEnd, ::strnlen(handleEnd, recordEnd - handleEnd));
            } else {
              objectKey = key;
            }
          }
        }
        p = recordEnd;
      }
      addRecords(group, dirKey, name, objectKey, static_cast<uint32_t>(meta.mask), meta.pid, now);
      offset += meta.event_len;
    }
    if (length < kBufferSize / 2) return;  // the queue is empty; spare a read that says so
  }
}

// One fanotify event is about an entry of a watched directory, or a watched
// object itself (a directory names itself "."), or both: a watched file in a
// watched directory, which inotify reports on both watches.
void PidProbe::addRecords(Group* group, std::string_view dirKey, std::string_view name, std::string_view objectKey,
                          uint32_t mask, int pid, Clock::time_point now) {
  const uint32_t bits = mask & kEventBits;
  if (bits == 0) return;
  int selfWd = -1;
  if (!dirKey.empty()) {
    if (auto it = group->wdOf.find(dirKey); it != group->wdOf.end()) {
      const bool self = name.empty() || name == ".";
      if (self) selfWd = it->second;
      addRecord(Key{it->second, self ? std::string() : std::string(name)}, bits, pid, now);
    }
  }
  if (!objectKey.empty()) {
    if (auto it = group->wdOf.find(objectKey); it != group->wdOf.end() && it->second != selfWd) {
      addRecord(Key{it->second, std::string()}, bits, pid, now);
    }
  }
}

void PidProbe::addRecord(Key key, uint32_t bits, int pid, Clock::time_point now) {
  const uint64_t seq = firstSeq_ + records_.size();
  index_[key].push_back(seq);
  records_.push_back(Record{std::move(key), bits, pid, epoch_, now});
}

PidProbe::Record* PidProbe::at(uint64_t seq) {
  if (seq < firstSeq_ || seq - firstSeq_ >= records_.size()) return nullptr;
  return &records_[seq - firstSeq_];
}

void PidProbe::clearBit(uint64_t seq, uint32_t bit) {
  Record* r = at(seq);
  if (r == nullptr || !(r->mask & bit)) return;
  r->mask &= ~bit;
  if (r->mask != 0) return;
  auto it = index_.find(r->key);
  if (it == index_.end()) return;
  auto& seqs = it->second;
  if (auto s = std::find(seqs.begin(), seqs.end(), seq); s != seqs.end()) seqs.erase(s);
  if (seqs.empty()) index_.erase(it);
}

void PidProbe::popOldest() {
  Record& r = records_.front();
  if (r.mask != 0) {
    if (auto it = index_.find(r.key); it != index_.end()) {
      auto& seqs = it->second;
      if (!seqs.empty() && seqs.front() == firstSeq_) seqs.pop_front();
      if (seqs.empty()) index_.erase(it);
    }
  }
  records_.pop_front();
  ++firstSeq_;
}

void PidProbe::clearTable() {
  firstSeq_ += records_.size();
  records_.clear();
  index_.clear();
  last_.clear();
  pendingSeq_ = 0;
  shadow_ = {};
}

void PidProbe::retire() {
  while (!records_.empty() && records_.front().epoch < epoch_) popOldest();
  std::erase_if(last_, [this](const auto& entry) { return entry.second.epoch < epoch_; });
}

void PidProbe::rememberLast(const Key& key, uint32_t bit, int pid, uint64_t epoch) {
  Last& last = last_[key];
  last.epoch = std::max(last.epoch, epoch);
  for (auto& [b, p] : last.pids) {
    if (b == bit) {
      p = pid;
      return;
    }
  }
  last.pids.emplace_back(bit, pid);
}

int PidProbe::lastPid(const Key& key, uint32_t bit) const {
  auto it = last_.find(key);
  if (it == last_.end()) return -1;
  for (const auto& [b, p] : it->second.pids) {
    if (b == bit) return p;
  }
  return -1;
}

int PidProbe::takeFrom(const Key& key, uint32_t bit) {
  auto it = index_.find(key);
  if (it == index_.end()) return -1;
  for (uint64_t seq : it->second) {
    Record* r = at(seq);
    if (r == nullptr || !(r->mask & bit)) continue;
    const int pid = r->pid;
    rememberLast(key, bit, pid, r->epoch);
    // inotify drops an event identical to the one still unread at the tail
    // of its queue, whoever made it; fanotify keeps two processes' records
    // apart. So the next record, if it has this name and bit, may have been
    // merged into this event: the next take() decides.
    if (Record* next = at(seq + 1); next != nullptr && (next->mask & bit) && next->key == key) {
      pendingSeq_ = seq + 1;
      pendingBit_ = bit;
    }
    clearBit(seq, bit);
    return pid;
  }
  return -1;
}

int PidProbe::peek(int wd, std::string_view name, uint32_t bit) {
  const Key key{wd, std::string(name)};
  for (int attempt = 0; attempt < 2; ++attempt) {
    if (auto it = index_.find(key); it != index_.end()) {
      for (uint64_t seq : it->second) {
        if (const Record* r = at(seq); r != nullptr && (r->mask & bit)) return r->pid;
      }
    }
    drainAll();  // fsnotify may hand the event to the fanotify group a moment later
  }
  return 0;
}

int PidProbe::take(int wd, std::string_view name, uint32_t bit, int childWd, bool mayDrain) {
  // fanotify reports an event on a watched subdirectory once, as the
  // subdirectory's own; inotify twice, on the parent's watch (taken first)
  // and right after on the subdirectory's.
  if (shadow_.wd >= 0) {
    Shadow shadow = std::exchange(shadow_, {});
    if (name.empty() && wd == shadow.wd && bit == shadow.bit) return shadow.pid;
  }
  Key key{wd, std::string(name)};
  if (pendingSeq_ != 0) {
    const uint64_t seq = std::exchange(pendingSeq_, 0);
    Record* r = at(seq);
    if (r != nullptr && (r->mask & pendingBit_) && !(r->key == key && bit == pendingBit_)) {
      // Merged by inotify into the event before: spent. Its pid stays the
      // answer for an event that fanotify merged into it in turn.
      rememberLast(r->key, pendingBit_, r->pid, r->epoch);
      clearBit(seq, pendingBit_);
    }
  }
  const Key own{childWd, std::string()};
  for (int attempt = 0; attempt < 2; ++attempt) {
    if (int pid = takeFrom(key, bit); pid >= 0) return pid;
    if (childWd >= 0) {
      if (int pid = takeFrom(own, bit); pid >= 0) {
        shadow_ = Shadow{childWd, bit, pid};
        return pid;
      }
    }
    // fsnotify may hand the event to the inotify group a moment before the
    // fanotify one: look once more.
    if (!mayDrain) break;
    drainAll();
  }
  if (int pid = lastPid(key, bit); pid >= 0) return pid;
  if (childWd >= 0) {
    if (int pid = lastPid(own, bit); pid >= 0) return pid;
  }
  return 0;
}

}  // namespace rnotify
