// The SMB2 action table; see smb_actions.h.
#include "smb/smb_actions.h"

#include <array>

namespace rnotify {
namespace {

// The filter bits that make MODIFIED a change of content.
constexpr uint32_t kDataBits =
    kNotifyChangeSize | kNotifyChangeLastWrite | kNotifyChangeStreamSize | kNotifyChangeStreamWrite;
constexpr uint32_t kAttribBits =
    kNotifyChangeAttributes | kNotifyChangeSecurity | kNotifyChangeEa | kNotifyChangeCreation;
constexpr uint32_t kNameBits = kNotifyChangeFileName | kNotifyChangeDirName;

// The action table. kByFilter: decided by modifiedMaskFor().
constexpr uint32_t kByFilter = 0xffffffff;
struct ActionRule {
  uint32_t action;
  uint32_t mask;
};
constexpr std::array<ActionRule, 8> kActionTable{{
    {kFileActionAdded, IN_CREATE},
    {kFileActionRemoved, IN_DELETE},
    {kFileActionModified, kByFilter},
    {kFileActionRenamedOldName, IN_MOVED_FROM},
    {kFileActionRenamedNewName, IN_MOVED_TO},
    // A named stream is part of the file's content (Windows keeps the
    // Zone.Identifier and similar there).
    {kFileActionAddedStream, IN_MODIFY},
    {kFileActionRemovedStream, IN_MODIFY},
    {kFileActionModifiedStream, IN_MODIFY},
}};

// The inverse, one row per group of IN_* bits.
struct FilterRule {
  uint32_t mask;
  uint32_t filter;
};
// A write asks for ATTRIBUTES too: Samba (4.17) learns of a write made on its
// own filesystem only through its kernel watch, and it asks the kernel for
// IN_MODIFY only under ATTRIBUTES (source3/smbd/notify_inotify.c,
// inotify_mapping). A changed attribute then comes as IN_MODIFY as well.
constexpr std::array<FilterRule, 4> kFilterTable{{
    {IN_CREATE | IN_DELETE | IN_MOVED_FROM | IN_MOVED_TO | IN_DELETE_SELF | IN_MOVE_SELF, kNameBits},
    {IN_MODIFY | IN_CLOSE_WRITE, kDataBits | kNotifyChangeStreamName | kNotifyChangeAttributes},
    {IN_ATTRIB, kAttribBits},
    {IN_ACCESS, kNotifyChangeLastAccess},
}};

uint32_t maskOf(uint32_t action, uint32_t filter) {
  for (const auto& rule : kActionTable) {
    if (rule.action == action) return rule.mask == kByFilter ? modifiedMaskFor(filter) : rule.mask;
  }
  return 0;
}

}  // namespace

uint32_t completionFilterFor(uint32_t mask) {
  uint32_t filter = 0;
  for (const auto& rule : kFilterTable) {
    if ((mask & rule.mask) != 0) filter |= rule.filter;
  }
  return filter;
}

uint32_t modifiedMaskFor(uint32_t completionFilter) {
  if ((completionFilter & kDataBits) != 0) return IN_MODIFY;
  if ((completionFilter & kAttribBits) != 0) return IN_ATTRIB;
  if ((completionFilter & kNotifyChangeLastAccess) != 0) return IN_ACCESS;
  return IN_MODIFY;  // a filter without any of them gets no MODIFIED from a correct server
}

Event overflowEvent() {
  Event e;
  e.mask = IN_Q_OVERFLOW;
  return e;
}

bool splitNotifyName(std::string_view name, std::string* dir, std::string* leaf) {
  dir->clear();
  leaf->clear();
  if (name.empty()) return true;  // the watched directory itself
  size_t last = name.rfind('\\');
  std::string_view dirPart = last == std::string_view::npos ? std::string_view() : name.substr(0, last);
  std::string_view leafPart = last == std::string_view::npos ? name : name.substr(last + 1);
  // '/' cannot be in an SMB name; here it would invent a subdirectory.
  auto bad = [](std::string_view c) { return c.empty() || c == "." || c == ".." || c.find('/') != c.npos; };
  if (bad(leafPart)) return false;
  if (last != std::string_view::npos) {
    size_t i = 0;
    while (i <= dirPart.size()) {
      size_t j = dirPart.find('\\', i);
      if (j == std::string_view::npos) j = dirPart.size();
      std::string_view c = dirPart.substr(i, j - i);
      if (bad(c)) return false;
      if (!dir->empty()) *dir += '/';
      *dir += c;
      i = j + 1;
    }
  }
  *leaf = std::string(leafPart);
  return true;
}

uint32_t NotifyTranslator::cookie() {
  uint32_t c = nextCookie_++;
  if (nextCookie_ == 0) nextCookie_ = 1;  // 0 means "no pair"
  return c;
}

void NotifyTranslator::flush(std::vector<Event>* out) {
  if (!hasPending_) return;
  hasPending_ = false;
  pending_.mask = IN_DELETE;
  out->push_back(std::move(pending_));
}

size_t NotifyTranslator::translate(const std::vector<NotifyRecord>& records, std::vector<Event>* out) {
  size_t dropped = 0;
  for (size_t i = 0; i < records.size(); ++i) {
    const NotifyRecord& r = records[i];
    Event e;
    bool valid = splitNotifyName(r.name, &e.dir, &e.name);
    if (hasPending_) {
      if (valid && r.action == kFileActionRenamedNewName) {  // the second half of a split pair
        pending_.cookie = e.cookie = cookie();
        e.mask = IN_MOVED_TO;
        hasPending_ = false;
        out->push_back(std::move(pending_));
        out->push_back(std::move(e));
        continue;
      }
      flush(out);
    }
    if (!valid) {
      ++dropped;
      continue;
    }
    e.mask = maskOf(r.action, filter_);
    if (e.mask == 0) {
      ++dropped;
      continue;
    }
    if (r.action == kFileActionRenamedOldName) {
      if (i + 1 == records.size()) {
        hasPending_ = true;
        pending_ = std::move(e);
        continue;
      }
      Event to;
      if (records[i + 1].action == kFileActionRenamedNewName &&
          splitNotifyName(records[i + 1].name, &to.dir, &to.name)) {
        e.cookie = to.cookie = cookie();
        to.mask = IN_MOVED_TO;
        out->push_back(std::move(e));
        out->push_back(std::move(to));
        ++i;
        continue;
      }
      e.mask = IN_DELETE;
    } else if (r.action == kFileActionRenamedNewName) {
      e.mask = IN_CREATE;
    }
    out->push_back(std::move(e));
  }
  return dropped;
}

}  // namespace rnotify
