// The cifs ioctl backend and its record decoder; see cifs_notify.h.
#include "smb/cifs_notify.h"

#include <fcntl.h>
#include <fmt/core.h>
#include <sys/inotify.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/statfs.h>

#include <atomic>
#include <cstring>
#include <thread>
#include <unordered_set>

#include "common/log.h"
#include "common/unique_fd.h"
#include "smb/notify_queue.h"

namespace rnotify {
namespace {

// fs/smb/client/cifs_ioctl.h; packed, so the kernel's size is 9.
struct __attribute__((packed)) Smb3NotifyInfo {
  uint32_t completion_filter;
  bool watch_tree;
  uint32_t data_len;
};
static_assert(sizeof(Smb3NotifyInfo) == kCifsNotifyInfoHeader);
constexpr unsigned long kCifsIocNotifyInfo = _IOWR(0xCF, 11, Smb3NotifyInfo);
constexpr long kCifsMagic = 0xFF534D42;  // CIFS_SUPER_MAGIC
constexpr long kSmb2Magic = 0xFE534D42;  // SMB2_SUPER_MAGIC
// The OutputBufferLength asked of the server; Windows and Samba accept 64 KiB.
constexpr uint32_t kRequestData = 64 * 1024;
// FILE_NOTIFY_INFORMATION without its name.
constexpr size_t kRecordHeader = 12;

uint32_t le32(std::span<const uint8_t> b, size_t at) {
  return static_cast<uint32_t>(b[at]) | static_cast<uint32_t>(b[at + 1]) << 8 | static_cast<uint32_t>(b[at + 2]) << 16 |
         static_cast<uint32_t>(b[at + 3]) << 24;
}

Error malformed(size_t offset, const std::string& what) {
  return Error{EPROTO, fmt::format("malformed FILE_NOTIFY_INFORMATION at byte {}: {}", offset, what)};
}

void appendUtf8(uint32_t cp, std::string* out) {
  if (cp < 0x80) {
    *out += static_cast<char>(cp);
  } else if (cp < 0x800) {
    *out += static_cast<char>(0xC0 | (cp >> 6));
    *out += static_cast<char>(0x80 | (cp & 0x3F));
  } else if (cp < 0x10000) {
    *out += static_cast<char>(0xE0 | (cp >> 12));
    *out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    *out += static_cast<char>(0x80 | (cp & 0x3F));
  } else {
    *out += static_cast<char>(0xF0 | (cp >> 18));
    *out += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
    *out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    *out += static_cast<char>(0x80 | (cp & 0x3F));
  }
}

}  // namespace

Result<std::string> utf16leToUtf8(std::span<const uint8_t> bytes) {
  if (bytes.size() % 2 != 0) return Error{EILSEQ, fmt::format("UTF-16 name of odd length {}", bytes.size())};
  std::string out;
  out.reserve(bytes.size());
  for (size_t i = 0; i < bytes.size(); i += 2) {
    uint32_t unit = bytes[i] | (static_cast<uint32_t>(bytes[i + 1]) << 8);
    if (unit == 0) return Error{EILSEQ, fmt::format("UTF-16 name holds U+0000 at byte {}", i)};
    if (unit >= 0xDC00 && unit <= 0xDFFF) {
      return Error{EILSEQ, fmt::format("UTF-16 name holds a lone low surrogate at byte {}", i)};
    }
    if (unit >= 0xD800 && unit <= 0xDBFF) {
      if (i + 3 >= bytes.size()) return Error{EILSEQ, fmt::format("UTF-16 name ends inside a surrogate pair")};
      uint32_t low = bytes[i + 2] | (static_cast<uint32_t>(bytes[i + 3]) << 8);
      if (low < 0xDC00 || low > 0xDFFF) {
        return Error{EILSEQ, fmt::format("UTF-16 name holds a lone high surrogate at byte {}", i)};
      }
      unit = 0x10000 + ((unit - 0xD800) << 10) + (low - 0xDC00);
      i += 2;
    }
    appendUtf8(unit, &out);
  }
  return out;
}

Result<std::vector<NotifyRecord>> decodeNotifyRecords(std::span<const uint8_t> data) {
  std::vector<NotifyRecord> out;
  if (data.size() > kMaxNotifyData) return malformed(0, fmt::format("{} bytes is more than any response", data.size()));
  size_t at = 0;
  if (data.empty()) return out;
  for (;;) {
    size_t left = data.size() - at;
    if (left < kRecordHeader)
      return malformed(at, fmt::format("{} bytes left, a record needs {}", left, kRecordHeader));
    uint32_t next = le32(data, at);
    uint32_t action = le32(data, at + 4);
    uint32_t nameLength = le32(data, at + 8);
    if (nameLength > left - kRecordHeader) {
      return malformed(at,
                       fmt::format("FileNameLength {} exceeds the {} bytes left", nameLength, left - kRecordHeader));
    }
    if (next != 0) {
      // Forward only, past this record, 4-byte aligned (MS-FSCC 2.4.42): a
      // chain that loops or overlaps is rejected, never followed.
      if (next % 4 != 0) return malformed(at, fmt::format("NextEntryOffset {} is not 4-byte aligned", next));
      if (next < kRecordHeader + nameLength) {
        return malformed(
            at, fmt::format("NextEntryOffset {} overlaps the record ({} bytes)", next, kRecordHeader + nameLength));
      }
      if (next >= left)
        return malformed(at, fmt::format("NextEntryOffset {} leaves the buffer ({} bytes left)", next, left));
    }
    auto name = utf16leToUtf8(data.subspan(at + kRecordHeader, nameLength));
    if (!name.ok()) return malformed(at + kRecordHeader, name.error().message);
    out.push_back(NotifyRecord{action, std::move(*name)});
    if (next == 0) break;
    at += next;
  }
  return out;
}

Result<CifsNotifyInfo> decodeCifsNotifyInfo(std::span<const uint8_t> buffer) {
  if (buffer.size() < kCifsNotifyInfoHeader) {
    return Error{EPROTO, fmt::format("smb3_notify_info of {} bytes, the header alone is {}", buffer.size(),
                                     kCifsNotifyInfoHeader)};
  }
  CifsNotifyInfo info;
  info.completionFilter = le32(buffer, 0);
  info.watchTree = buffer[4] != 0;
  uint32_t dataLen = le32(buffer, 5);
  std::span<const uint8_t> data = buffer.subspan(kCifsNotifyInfoHeader);
  if (dataLen > data.size()) {
    return Error{EPROTO,
                 fmt::format("smb3_notify_info data_len {} exceeds the {} bytes present", dataLen, data.size())};
  }
  data = data.first(dataLen);
  // Untouched by the kernel (the server sent nothing): the zeroed header.
  if (data.size() >= kRecordHeader && le32(data, 0) == 0 && le32(data, 4) == 0 && le32(data, 8) == 0) return info;
  auto records = decodeNotifyRecords(data);
  if (!records.ok()) return records.error();
  info.records = std::move(*records);
  return info;
}

// ---- the ioctl loop ----

struct CifsNotify::State {
  NotifyQueue queue;
  std::atomic<bool> stopped{false};
  UniqueFd dir;
  std::string path;
  uint32_t mask = 0;
  uint32_t filter = 0;
  bool recursive = false;
};

namespace {

// SMB2 does not say whether an entry is a directory. An entry that is there
// (CREATE, MOVED_TO, MODIFY, ATTRIB) is looked at through the mount (a stat
// makes no event); one that is gone (DELETE, MOVED_FROM) is a directory if
// it came as one while watched. A directory that was there before the watch
// and goes is not known as one.
void markDirectories(int dirfd, std::vector<Event>* events, std::unordered_set<std::string>* knownDirs) {
  constexpr size_t kMaxKnownDirs = 4096;
  for (Event& e : *events) {
    if (e.name.empty()) continue;
    const std::string path = e.dir.empty() ? e.name : e.dir + "/" + e.name;
    if (e.mask & (IN_DELETE | IN_MOVED_FROM)) {
      if (knownDirs->erase(path) != 0) e.mask |= IN_ISDIR;
      continue;
    }
    if (!(e.mask & (IN_CREATE | IN_MOVED_TO | IN_MODIFY | IN_ATTRIB))) continue;
    struct stat st;
    if (::fstatat(dirfd, path.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0 || !S_ISDIR(st.st_mode)) continue;
    e.mask |= IN_ISDIR;
    if (e.mask & (IN_CREATE | IN_MOVED_TO)) {
      if (knownDirs->size() >= kMaxKnownDirs) knownDirs->clear();
      knownDirs->insert(path);
    }
  }
}

void cifsLoop(std::shared_ptr<CifsNotify::State> s) {
  std::unordered_set<std::string> knownDirs;
  NotifyTranslator translator(s->filter);
  std::vector<uint8_t> buffer(kCifsNotifyInfoHeader + kRequestData);
  while (!s->stopped.load()) {
    Smb3NotifyInfo header{s->filter, s->recursive, kRequestData};
    std::memcpy(buffer.data(), &header, sizeof header);
    std::memset(buffer.data() + kCifsNotifyInfoHeader, 0, kRecordHeader);
    if (::ioctl(s->dir.get(), kCifsIocNotifyInfo, buffer.data()) != 0) {
      if (errno == EINTR) continue;
      if (errno == ENOBUFS || errno == EOVERFLOW) {  // STATUS_NOTIFY_ENUM_DIR on newer kernels
        s->queue.push({overflowEvent()});
        continue;
      }
      s->queue.fail(lastError(fmt::format("CIFS_IOC_NOTIFY_INFO on '{}'", s->path)));
      return;
    }
    if (s->stopped.load()) return;
    auto info = decodeCifsNotifyInfo(buffer);
    std::vector<Event> events;
    if (!info.ok()) {
      // A truncated or garbled answer lost changes: resynchronise.
      log::warn("cifs notify on '{}': {}; resynchronising", s->path, info.error().message);
      events.push_back(overflowEvent());
    } else if (info->records.empty()) {
      events.push_back(overflowEvent());  // the server's buffer overflowed
    } else {
      translator.translate(info->records, &events);
      // The next answer may be long in coming: a rename's old name does not wait.
      translator.flush(&events);
      markDirectories(s->dir.get(), &events, &knownDirs);
      std::erase_if(events, [&](const Event& e) { return (e.mask & s->mask) == 0; });
    }
    s->queue.push(std::move(events));
  }
}

}  // namespace

Result<std::unique_ptr<CifsNotify>> CifsNotify::start(const std::string& dir, uint32_t mask, bool recursive) {
  auto state = std::make_shared<State>();
  state->path = dir;
  state->mask = mask;
  state->recursive = recursive;
  state->filter = completionFilterFor(mask);
  if (state->filter == 0) {
    return Error{EINVAL, fmt::format("cifs notify on '{}': none of the requested events exists in SMB2", dir)};
  }
  state->dir.reset(::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!state->dir) return lastError(fmt::format("open '{}'", dir));
  struct statfs fs {};
  if (::fstatfs(state->dir.get(), &fs) != 0) return lastError(fmt::format("statfs '{}'", dir));
  if (fs.f_type != kCifsMagic && fs.f_type != kSmb2Magic) {
    return Error{EOPNOTSUPP, fmt::format("'{}' is not on a cifs mount", dir)};
  }
  std::thread(cifsLoop, state).detach();
  return std::unique_ptr<CifsNotify>(new CifsNotify(std::move(state)));
}

CifsNotify::~CifsNotify() { state_->stopped.store(true); }

int CifsNotify::fd() const { return state_->queue.fd(); }
std::vector<Event> CifsNotify::take() { return state_->queue.take(); }
bool CifsNotify::failed() const { return state_->queue.failed(); }
Error CifsNotify::error() const { return state_->queue.error(); }

}  // namespace rnotify
