// pollDiff: the structural part of the difference between two listings of a
// tree (entries gone from the previous listing, entries new in this one, each
// with its whole subtree) as events that replay: applied in order to the previous listing they give
// the new one, every step possible where it stands (a name is free before
// something is created or moved there, a directory exists before anything
// goes into it and is empty when it is deleted).
//
// An inode that left one name and appears under another is a move
// (MOVED_FROM/MOVED_TO with one cookie): the same type, inode number and
// birth time, and for a file the same size and mtime (ext4 reuses a freed
// inode number at once, and not every filesystem has a birth time). Without
// a birth time (btime 0), a directory with files below it counts as moved
// only if one of them moved along with it (same name below the new path,
// same inode, size and mtime): `rm -r d; mkdir e` is no move even when e got
// d's inode number. A directory without files below it has nothing to tell
// it by: its inode decides. A moved directory carries its contents; a moved entry that also changed gets
// MODIFY/ATTRIB after the structural events. The steps are found by
// simulation rather than by a fixed order, so that moves inside moved
// directories, names vacated by one step and taken by the next, and moves
// into directories that themselves arrive by a move all come out in an order
// that works. A cycle (two names swapped) cannot be replayed as moves without
// a name that never existed: one of its moves becomes DELETE + CREATE. A
// name that a move replaces is deleted first: every MOVED_TO and CREATE is
// of a free name.
//
// Two users: PollScanner (its scans) and TreeView::diff (the client's view
// against a fresh listing by the server, after a gap). Tested by replay in
// tests/unit/client/poll_scanner_random_test.cc and tree_view_random_test.cc.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "event/event.h"
#include "poll/poll_fs.h"

namespace rnotify {

struct PollItem {
  std::string path;  // relative to the watch root: "a/b"
  PollStat st;
};

// unchangedDir(path): whether a directory is at `path` both before and after
// (neither gone nor new). Entries with inode number 0 (state unknown) never
// pair. Returned events have `flag` (IN_POLLED by default) and IN_ISDIR for
// directories, and the entry's state on MOVED_TO, CREATE, MODIFY and ATTRIB.
std::vector<Event> pollDiff(const std::vector<PollItem>& gone, const std::vector<PollItem>& found,
                            const std::function<bool(const std::string&)>& unchangedDir, uint32_t* nextCookie,
                            uint32_t flag = IN_POLLED);

EventStat eventStatOf(const PollStat& st);

}  // namespace rnotify
