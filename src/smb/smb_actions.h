// The one table between SMB2 change notification and rnotify's event model.
//
// A CHANGE_NOTIFY response (MS-SMB2 2.2.36) carries FILE_NOTIFY_INFORMATION
// records (MS-FSCC 2.4.42): an Action and a path relative to the watched
// directory, '\' separated, with subdirectories when the watch is WATCH_TREE.
// Both the libsmbclient backend (smb_notify.h) and the cifs ioctl decoder
// (cifs_notify.h) produce NotifyRecords and translate them here, so the two
// cannot disagree on a mask.
//
// What SMB2 cannot say, and what we do about it:
// - MODIFIED does not say what changed. The completion filter in force
//   decides: if it contains a data bit (size, last write, stream size/write)
//   MODIFIED is IN_MODIFY; if it holds only attribute, security, EA or creation
//   time bits it is IN_ATTRIB; only last access, IN_ACCESS.
// - A rename is two records, OLD_NAME then NEW_NAME, adjacent. They become
//   MOVED_FROM/MOVED_TO with one fresh cookie. Samba may end a response after
//   the OLD_NAME and send the NEW_NAME first in the next one, so an OLD_NAME
//   that ends a response is held (pending()) until the next response or
//   flush(). An OLD_NAME without its NEW_NAME (the new name is outside the
//   watch) becomes IN_DELETE, and a lone NEW_NAME IN_CREATE, because a
//   MOVED_FROM whose MOVED_TO never comes is what inotify users wait on forever.
// - Records do not say whether the entry is a directory, and asking the server
//   would take a round trip per record on the connection that waits for the
//   next notification: IN_ISDIR is never set on SMB events.
// - There is no open, close or access-by-read; IN_CLOSE_WRITE is served as
//   IN_MODIFY (the write itself), IN_OPEN/IN_CLOSE_NOWRITE not at all.
// - A record whose path would leave the watched directory ("..", "." or an
//   empty component) is dropped: the server does not decide where events land.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "event/event.h"

namespace rnotify {

// FILE_NOTIFY_INFORMATION.Action (MS-FSCC 2.4.42).
inline constexpr uint32_t kFileActionAdded = 1;
inline constexpr uint32_t kFileActionRemoved = 2;
inline constexpr uint32_t kFileActionModified = 3;
inline constexpr uint32_t kFileActionRenamedOldName = 4;
inline constexpr uint32_t kFileActionRenamedNewName = 5;
inline constexpr uint32_t kFileActionAddedStream = 6;
inline constexpr uint32_t kFileActionRemovedStream = 7;
inline constexpr uint32_t kFileActionModifiedStream = 8;

// CHANGE_NOTIFY CompletionFilter bits (MS-SMB2 2.2.35).
inline constexpr uint32_t kNotifyChangeFileName = 0x001;
inline constexpr uint32_t kNotifyChangeDirName = 0x002;
inline constexpr uint32_t kNotifyChangeAttributes = 0x004;
inline constexpr uint32_t kNotifyChangeSize = 0x008;
inline constexpr uint32_t kNotifyChangeLastWrite = 0x010;
inline constexpr uint32_t kNotifyChangeLastAccess = 0x020;
inline constexpr uint32_t kNotifyChangeCreation = 0x040;
inline constexpr uint32_t kNotifyChangeEa = 0x080;
inline constexpr uint32_t kNotifyChangeSecurity = 0x100;
inline constexpr uint32_t kNotifyChangeStreamName = 0x200;
inline constexpr uint32_t kNotifyChangeStreamSize = 0x400;
inline constexpr uint32_t kNotifyChangeStreamWrite = 0x800;

// One FILE_NOTIFY_INFORMATION record, its name already in UTF-8.
struct NotifyRecord {
  uint32_t action = 0;
  std::string name;  // relative to the watched directory, '\' separated
  bool operator==(const NotifyRecord&) const = default;
};

// The completion filter that serves an IN_* mask; 0 if none of the mask's
// events exist in SMB2 (then there is nothing to watch).
uint32_t completionFilterFor(uint32_t mask);

// What MODIFIED means under `completionFilter` (IN_MODIFY, IN_ATTRIB or IN_ACCESS).
uint32_t modifiedMaskFor(uint32_t completionFilter);

// "a\b\c" -> dir "a/b", name "c"; false if a component is empty, "." or
// "..", or contains '/'.
bool splitNotifyName(std::string_view name, std::string* dir, std::string* leaf);

// The event that tells the caller to resynchronise: the server dropped changes
// (STATUS_NOTIFY_ENUM_DIR) or an answer could not be read.
Event overflowEvent();

// Translates the records of one response into events, in order. Keeps the
// cookie counter between responses, so one per watch.
class NotifyTranslator {
 public:
  explicit NotifyTranslator(uint32_t completionFilter) : filter_(completionFilter) {}
  // Appends one Event per record (two per rename pair) to `out`, except an
  // OLD_NAME that ends the response, which is held; returns how many records
  // were dropped (unknown action, path leaving the watch).
  size_t translate(const std::vector<NotifyRecord>& records, std::vector<Event>* out);
  // An OLD_NAME is held, waiting for the next response.
  bool pending() const { return hasPending_; }
  // Gives up waiting: the held OLD_NAME becomes IN_DELETE.
  void flush(std::vector<Event>* out);

 private:
  uint32_t cookie();
  uint32_t filter_;
  uint32_t nextCookie_ = 1;
  bool hasPending_ = false;
  Event pending_;
};

}  // namespace rnotify
