// Change notification through a Linux cifs mount: the CIFS_IOC_NOTIFY_INFO
// ioctl (Linux 6.1+) sends one SMB2 CHANGE_NOTIFY for an open directory and
// returns the server's FILE_NOTIFY_INFORMATION records. It serves a watch on a
// cifs mount without a second SMB session (no credentials needed: the
// mount's own session is used).
//
// The decoder trusts nothing: the records come from the server through the
// kernel, so every offset and length is checked against the buffer, a chain
// must move forward, names must be valid UTF-16LE. It is fuzzed
// (tests/fuzz/smb_notify_fuzz.cc).
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "common/result.h"
#include "event/event.h"
#include "smb/smb_actions.h"

namespace rnotify {

// struct smb3_notify_info (fs/smb/client/cifs_ioctl.h), packed:
// u32 completion_filter, u8 watch_tree, u32 data_len, then data_len bytes.
inline constexpr size_t kCifsNotifyInfoHeader = 9;
// No response is larger than this: SMB2 caps OutputBufferLength far below.
inline constexpr size_t kMaxNotifyData = 1 << 20;

// UTF-16LE to UTF-8; EILSEQ on an odd length, a lone surrogate or U+0000.
Result<std::string> utf16leToUtf8(std::span<const uint8_t> bytes);

// The FILE_NOTIFY_INFORMATION chain of one response (MS-FSCC 2.4.42). An
// empty buffer is no records. EPROTO names the offset of the first bad field.
Result<std::vector<NotifyRecord>> decodeNotifyRecords(std::span<const uint8_t> data);

struct CifsNotifyInfo {
  uint32_t completionFilter = 0;
  bool watchTree = false;
  std::vector<NotifyRecord> records;
};
// A whole smb3_notify_info as the ioctl left it in a buffer of buffer.size()
// bytes. The kernel does not touch data_len or the data when the server
// returned nothing; the caller zeroes the first record's header before the
// call, and an all-zero header decodes as no records.
Result<CifsNotifyInfo> decodeCifsNotifyInfo(std::span<const uint8_t> buffer);

// Watches a directory on a cifs mount with CIFS_IOC_NOTIFY_INFO, in one
// thread (the ioctl blocks in the kernel until the server answers). The same
// shape as SmbNotify.
//
// Stopping: the ioctl waits killably only, so no signal ends it. The
// destructor detaches the thread, which owns its state and leaves after the
// server's next answer (or when the mount goes away); no event reaches the
// caller after the destructor returns.
class CifsNotify {
 public:
  // Opens `dir`, checks that it is on cifs and that the kernel knows the
  // ioctl (EOPNOTSUPP / ENOTTY otherwise: use another backend).
  static Result<std::unique_ptr<CifsNotify>> start(const std::string& dir, uint32_t mask, bool recursive);
  ~CifsNotify();
  CifsNotify(const CifsNotify&) = delete;
  CifsNotify& operator=(const CifsNotify&) = delete;

  int fd() const;
  std::vector<Event> take();
  bool failed() const;
  Error error() const;

  struct State;

 private:
  explicit CifsNotify(std::shared_ptr<State> state) : state_(std::move(state)) {}
  std::shared_ptr<State> state_;
};

}  // namespace rnotify
