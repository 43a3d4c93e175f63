// The SMB2 action table: FILE_NOTIFY_INFORMATION actions and the completion
// filter in force -> rnotify masks, and masks -> completion filters.
#include "smb/smb_actions.h"

#include <gtest/gtest.h>

namespace rnotify {
namespace {

constexpr uint32_t kAllFilters = 0xfff;

// One response, then nothing more: a held old name is given up.
std::vector<Event> translate(const std::vector<NotifyRecord>& records, uint32_t filter = kAllFilters) {
  NotifyTranslator t(filter);
  std::vector<Event> out;
  t.translate(records, &out);
  t.flush(&out);
  return out;
}

TEST(SmbActions, OneRecordOneEvent) {
  struct Row {
    uint32_t action;
    uint32_t mask;
  };
  for (Row row : {Row{kFileActionAdded, IN_CREATE}, Row{kFileActionRemoved, IN_DELETE},
                  Row{kFileActionModified, IN_MODIFY}, Row{kFileActionAddedStream, IN_MODIFY},
                  Row{kFileActionRemovedStream, IN_MODIFY}, Row{kFileActionModifiedStream, IN_MODIFY}}) {
    auto events = translate({{row.action, "f.txt"}});
    ASSERT_EQ(events.size(), 1u) << row.action;
    EXPECT_EQ(events[0].mask, row.mask) << row.action;
    EXPECT_EQ(events[0].cookie, 0u);
    EXPECT_EQ(events[0].dir, "");
    EXPECT_EQ(events[0].name, "f.txt");
  }
}

TEST(SmbActions, ModifiedMeansWhatTheFilterAskedFor) {
  EXPECT_EQ(modifiedMaskFor(kNotifyChangeLastWrite), static_cast<uint32_t>(IN_MODIFY));
  EXPECT_EQ(modifiedMaskFor(kNotifyChangeSize | kNotifyChangeAttributes), static_cast<uint32_t>(IN_MODIFY));
  EXPECT_EQ(modifiedMaskFor(kNotifyChangeAttributes), static_cast<uint32_t>(IN_ATTRIB));
  EXPECT_EQ(modifiedMaskFor(kNotifyChangeSecurity), static_cast<uint32_t>(IN_ATTRIB));
  EXPECT_EQ(modifiedMaskFor(kNotifyChangeEa | kNotifyChangeFileName), static_cast<uint32_t>(IN_ATTRIB));
  EXPECT_EQ(modifiedMaskFor(kNotifyChangeLastAccess), static_cast<uint32_t>(IN_ACCESS));
  auto attrib = translate({{kFileActionModified, "f"}}, completionFilterFor(IN_ATTRIB));
  ASSERT_EQ(attrib.size(), 1u);
  EXPECT_EQ(attrib[0].mask, static_cast<uint32_t>(IN_ATTRIB));
}

TEST(SmbActions, RenamePairSharesOneCookie) {
  auto events = translate({{kFileActionRenamedOldName, "a.txt"},
                           {kFileActionRenamedNewName, "sub\\b.txt"},
                           {kFileActionRenamedOldName, "c"},
                           {kFileActionRenamedNewName, "d"}});
  ASSERT_EQ(events.size(), 4u);
  EXPECT_EQ(events[0].mask, static_cast<uint32_t>(IN_MOVED_FROM));
  EXPECT_EQ(events[1].mask, static_cast<uint32_t>(IN_MOVED_TO));
  EXPECT_NE(events[0].cookie, 0u);
  EXPECT_EQ(events[0].cookie, events[1].cookie);
  EXPECT_EQ(events[1].dir, "sub");
  EXPECT_EQ(events[1].name, "b.txt");
  EXPECT_NE(events[2].cookie, events[0].cookie);
  EXPECT_EQ(events[2].cookie, events[3].cookie);
}

TEST(SmbActions, CookiesStayDistinctAcrossResponses) {
  NotifyTranslator t(kAllFilters);
  std::vector<Event> out;
  t.translate({{kFileActionRenamedOldName, "a"}, {kFileActionRenamedNewName, "b"}}, &out);
  t.translate({{kFileActionRenamedOldName, "b"}, {kFileActionRenamedNewName, "c"}}, &out);
  ASSERT_EQ(out.size(), 4u);
  EXPECT_NE(out[0].cookie, out[2].cookie);
}

TEST(SmbActions, RenamePairSplitAcrossResponses) {
  // Samba may end a response after the old name and send the new name first
  // in the next one.
  NotifyTranslator t(kAllFilters);
  std::vector<Event> out;
  t.translate({{kFileActionAdded, "x"}, {kFileActionRenamedOldName, "old"}}, &out);
  ASSERT_EQ(out.size(), 1u);
  EXPECT_TRUE(t.pending());
  t.translate({{kFileActionRenamedNewName, "new"}, {kFileActionRemoved, "new"}}, &out);
  EXPECT_FALSE(t.pending());
  ASSERT_EQ(out.size(), 4u) << out.size();
  EXPECT_EQ(out[1].mask, static_cast<uint32_t>(IN_MOVED_FROM));
  EXPECT_EQ(out[1].name, "old");
  EXPECT_EQ(out[2].mask, static_cast<uint32_t>(IN_MOVED_TO));
  EXPECT_EQ(out[2].name, "new");
  EXPECT_NE(out[1].cookie, 0u);
  EXPECT_EQ(out[1].cookie, out[2].cookie);
  EXPECT_EQ(out[3].mask, static_cast<uint32_t>(IN_DELETE));
}

TEST(SmbActions, HeldOldNameWithoutItsNewNameIsADelete) {
  NotifyTranslator t(kAllFilters);
  std::vector<Event> out;
  t.translate({{kFileActionRenamedOldName, "old"}}, &out);
  EXPECT_TRUE(out.empty());
  t.translate({{kFileActionAdded, "other"}}, &out);  // the next response is not its new name
  ASSERT_EQ(out.size(), 2u);
  EXPECT_EQ(out[0].mask, static_cast<uint32_t>(IN_DELETE));
  EXPECT_EQ(out[0].name, "old");
  EXPECT_EQ(out[0].cookie, 0u);
  EXPECT_EQ(out[1].mask, static_cast<uint32_t>(IN_CREATE));

  t.translate({{kFileActionRenamedOldName, "again"}}, &out);
  t.flush(&out);  // no response came for a while
  ASSERT_EQ(out.size(), 3u);
  EXPECT_EQ(out[2].mask, static_cast<uint32_t>(IN_DELETE));
  EXPECT_FALSE(t.pending());
}

TEST(SmbActions, UnpairedRenameHalvesBecomeDeleteAndCreate) {
  auto events =
      translate({{kFileActionRenamedOldName, "gone"}, {kFileActionAdded, "x"}, {kFileActionRenamedNewName, "arrived"}});
  ASSERT_EQ(events.size(), 3u);
  EXPECT_EQ(events[0].mask, static_cast<uint32_t>(IN_DELETE));
  EXPECT_EQ(events[0].cookie, 0u);
  EXPECT_EQ(events[1].mask, static_cast<uint32_t>(IN_CREATE));
  EXPECT_EQ(events[2].mask, static_cast<uint32_t>(IN_CREATE));
  EXPECT_EQ(events[2].name, "arrived");
}

TEST(SmbActions, SubdirectoryPathsSplitIntoDirAndName) {
  auto events = translate({{kFileActionAdded, "a\\b\\c.txt"}, {kFileActionModified, ""}});
  ASSERT_EQ(events.size(), 2u);
  EXPECT_EQ(events[0].dir, "a/b");
  EXPECT_EQ(events[0].name, "c.txt");
  EXPECT_EQ(events[1].dir, "");  // the watched directory itself
  EXPECT_EQ(events[1].name, "");
}

TEST(SmbActions, PathsThatLeaveTheWatchAndUnknownActionsAreDropped) {
  NotifyTranslator t(kAllFilters);
  std::vector<Event> out;
  size_t dropped = t.translate({{kFileActionAdded, "..\\etc\\passwd"},
                                {kFileActionAdded, "a\\\\b"},
                                {kFileActionAdded, "a\\."},
                                {kFileActionAdded, "a/b"},
                                {kFileActionAdded, "a\\"},
                                {99, "x"},
                                {kFileActionAdded, "ok"}},
                               &out);
  EXPECT_EQ(dropped, 6u);
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0].name, "ok");
}

TEST(SmbActions, MaskToCompletionFilter) {
  EXPECT_EQ(completionFilterFor(IN_CREATE), kNotifyChangeFileName | kNotifyChangeDirName);
  EXPECT_EQ(completionFilterFor(IN_MOVED_FROM | IN_DELETE), kNotifyChangeFileName | kNotifyChangeDirName);
  uint32_t modify = completionFilterFor(IN_MODIFY);
  EXPECT_NE(modify & kNotifyChangeLastWrite, 0u);
  EXPECT_NE(modify & kNotifyChangeSize, 0u);
  // Samba watches its own disk for writes only under ATTRIBUTES.
  EXPECT_NE(modify & kNotifyChangeAttributes, 0u);
  EXPECT_EQ(modify & kNotifyChangeFileName, 0u);
  uint32_t attrib = completionFilterFor(IN_ATTRIB);
  EXPECT_EQ(attrib, kNotifyChangeAttributes | kNotifyChangeSecurity | kNotifyChangeEa | kNotifyChangeCreation);
  EXPECT_EQ(completionFilterFor(IN_ACCESS), kNotifyChangeLastAccess);
  EXPECT_EQ(completionFilterFor(IN_OPEN | IN_CLOSE_NOWRITE), 0u);  // SMB2 has no such events
  // Every filter bit the default mask needs, and MODIFIED then means a write.
  EXPECT_EQ(modifiedMaskFor(completionFilterFor(kDefaultMask)), static_cast<uint32_t>(IN_MODIFY));
}

}  // namespace
}  // namespace rnotify
