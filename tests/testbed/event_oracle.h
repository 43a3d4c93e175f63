// Event oracle: compares what a watcher under test reported with what a
// trusted watcher (the real inotifywait on the server's directory) reported,
// path by path. Two watchers of one change agree on which events happened to
// a name and in which order; they need not agree on how events of different
// names interleave (A merges two streams), so each path is compared on its own.
//
// Two inotify instances may coalesce identical consecutive events differently
// (the kernel merges an event into the queue's tail only if that tail is the
// same event), one write over sshfs may become several server writes, and
// fanotify (rnotifyd's backend when it runs as root) merges all unread events
// of one process on one entry into one, whose kinds rnotifyd then reports in a
// fixed order. So a run of MODIFY, ATTRIB and CLOSE_WRITE events on a path,
// between two structural events, is compared as the set of kinds in it; every
// other event (CREATE, DELETE, MOVED_FROM, MOVED_TO, with or without ISDIR)
// must match one for one and in order.
//
// The comparison aligns the two sequences of a path with a longest common
// subsequence. Whatever the alignment leaves over is a duplicate (only the
// watcher under test has it), missing (only the oracle has it) or, where both
// have the same number of an event but not in the same places, misordered.
#pragma once

#include <cstddef>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "watcher.h"

namespace rnotify::testbed {

// Per path (relative to the watch root), the kinds of its events in order. A
// kind is the event's flags without REMOTE, sorted, joined with ',':
// "CREATE", "CREATE,ISDIR", "MOVED_TO".
using EventHistory = std::map<std::string, std::vector<std::string>>;

// The kind of one event, as in EventHistory.
std::string eventKind(const WatchedEvent& event);

// The history of `events`, leaving out paths in `ignored` (barriers), with
// runs of identical MODIFY, ATTRIB and CLOSE_WRITE collapsed.
EventHistory historyOf(const std::vector<WatchedEvent>& events, const std::set<std::string>& ignored = {});

// Like historyOf, each kind followed by where the event came from:
// "MODIFY  local", "CREATE  remote", "MODIFY  local+remote" for a collapsed
// run. For showing what a merging watcher did at a difference.
std::map<std::string, std::vector<std::string>> annotatedHistoryOf(const std::vector<WatchedEvent>& events,
                                                                   const std::set<std::string>& ignored = {});

// How many events of each structural (not collapsible) kind `events` has.
std::map<std::string, size_t> structuralCounts(const std::vector<WatchedEvent>& events,
                                               const std::set<std::string>& ignored = {});

// Whether a run of this kind counts once: MODIFY, ATTRIB, CLOSE_WRITE (with or
// without ISDIR or CLOSE).
bool collapsible(const std::string& kind);
// Replaces each run of consecutive collapsible kinds by its distinct kinds, sorted.
void collapseRepeats(std::vector<std::string>& kinds);

// The result of comparing one path.
struct PathDifference {
  std::string path;
  std::vector<std::string> expected;  // the oracle's sequence
  std::vector<std::string> actual;    // the watcher under test's sequence
  size_t duplicates = 0;              // events only in actual (beyond the oracle's count of that kind)
  size_t missing = 0;                 // events only in expected
  size_t misordered = 0;              // events both have, but not alignable in order
  size_t firstDivergence = 0;         // index in `expected` where the alignment first breaks
  size_t firstDivergenceActual = 0;   // the same place in `actual`
  std::map<std::string, size_t> duplicatesByKind, missingByKind, misorderedByKind;
  // The aligned sequences around the first divergence: "  = CREATE",
  // "  + CREATE" (only actual), "  - DELETE" (only expected).
  std::string context(size_t around = 4) const;
};

struct HistoryComparison {
  size_t expectedEvents = 0, actualEvents = 0;  // after collapsing
  size_t duplicates = 0, missing = 0, misordered = 0;
  std::map<std::string, size_t> duplicatesByKind, missingByKind, misorderedByKind;
  std::vector<PathDifference> differences;  // only paths that differ
  bool clean() const { return duplicates == 0 && missing == 0 && misordered == 0; }
  // Totals, per kind, and the context of the first `maxPaths` differing paths.
  std::string describe(size_t maxPaths = 5) const;
};

// Compares `actual` (the watcher under test) against `expected` (the oracle).
HistoryComparison compareHistories(const EventHistory& expected, const EventHistory& actual);

}  // namespace rnotify::testbed
