// pollDiff: the structural part of what a polling scan found (entries gone
// from the previous listing, entries new in this one, each with its subtree)
// as events that replay: applied in order to the previous listing they give
// the new one, every step possible where it stands (a name is free before
// something is created or moved there, a directory exists before anything
// goes into it and is empty when it is deleted).
//
// An inode that left one name and appears under another is a move
// (MOVED_FROM/MOVED_TO with one cookie): the same type, inode number and
// birth time, and for a file the same size and mtime (ext4 reuses a freed
// inode number at once, and not every filesystem has a birth time). A moved
// directory carries its contents; a moved entry that also changed gets
// MODIFY/ATTRIB after the structural events. The steps are found by
// simulation rather than by a fixed order, so that moves inside moved
// directories, names vacated by one step and taken by the next, and moves
// into directories that themselves arrive by a move all come out in an order
// that works. A cycle (two names swapped) cannot be replayed as moves without
// a name that never existed: one of its moves becomes DELETE + CREATE.
//
// Why not TreeView::diff: its fixed order does not replay in these cases
// (found by tests/unit/client/poll_scanner_random_test.cc).
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "client/poll_fs.h"
#include "event/event.h"

namespace rnotify {

struct PollItem {
  std::string path;  // relative to the watch root: "a/b"
  PollStat st;
};

// unchangedDir(path): whether a directory is at `path` both before and after
// (neither gone nor new). Returned events have IN_POLLED, and the entry's
// state on MOVED_TO, CREATE, MODIFY and ATTRIB.
std::vector<Event> pollDiff(const std::vector<PollItem>& gone, const std::vector<PollItem>& found,
                            const std::function<bool(const std::string&)>& unchangedDir, uint32_t* nextCookie);

EventStat eventStatOf(const PollStat& st);

}  // namespace rnotify
