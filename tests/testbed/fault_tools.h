// Tools of the fault-injection tests (tests/integration/fault_*_test.cc):
// breaking a running scene in one precise way and checking, afterwards, that
// the client's picture of the tree is still the server's.
//
//   TreeReplay    the client's picture: a listing replayed with every event
//                 rnotifywait printed (CREATE, DELETE, MOVED_FROM/MOVED_TO),
//                 noting events that contradict it (a CREATE of a name that
//                 is there, a DELETE of one that is not: a change told twice)
//                 where no loss notice excuses them
//   mergingOutput rnotifywait 2>&1, so that its notices sit among the events
//   listTree      the server's truth: the paths below a directory
//   AgentGate     an agent command that refuses to start while the gate is
//                 closed, so that "the server is unreachable" lasts as long
//                 as the test needs it to, however fast the client retries
//   LinkCut       a network partition: the veth ends in one namespace down
//   SysctlOverride  a /proc/sys value for the length of a test, restored by
//                 the destructor, and by the next run if this one was killed
//   ScopedStop    SIGSTOP one process (not its group), SIGCONT at the end
//   TmpfsMount    a tmpfs over a directory, for bursts of changes that /tmp's
//                 ext4 (mounted with discard) makes 20 times slower
#pragma once

#include <sys/types.h>

#include <map>
#include <set>
#include <string>
#include <vector>

#include "temp_dir.h"
#include "watcher.h"

namespace rnotify::testbed {

class Netns;

// Every entry below `root` (directories included, not followed through
// symlinks), as paths relative to it: "d", "d/f". Throws on errors.
std::set<std::string> listTree(const std::string& root);

// "missing on the client: ... / only on the client: ..." (at most `limit`
// names each), "" when equal.
std::string compareListings(const std::set<std::string>& server, const std::set<std::string>& client,
                            size_t limit = 20);

// rnotifywait with its stderr sent into its stdout (2>&1, by a small script
// in `dir`): its notices ("events were lost", "the server is reachable
// again") then sit among the events exactly where it wrote them, which is
// what tells a change that fell into a gap from a change told twice. Such a
// watcher says "Watches established." on stdout: wait with outputSays.
WatcherOptions mergingOutput(WatcherOptions options, const TempDir& dir);
// Waits for a line of the merged output containing `text`, from line `from`.
::testing::AssertionResult outputSays(Watcher& watcher, const std::string& text, Clock::duration timeout,
                                      size_t from = 0);
// Lines of the merged output containing `text`.
size_t countOutput(const Watcher& watcher, const std::string& text);

class TreeReplay {
 public:
  explicit TreeReplay(std::set<std::string> initial) : paths_(std::move(initial)) {}

  // Applies one printed line. Events on the watch root itself and events
  // that do not change names (MODIFY, ATTRIB, OPEN, ...) change nothing.
  // A loss notice ("events were lost", in merged output) opens a gap: until
  // the re-read's SYNTHESIZED events have been told, live events may concern
  // names whose creation or deletion fell into the gap, and do not count as
  // contradictions. The SYNTHESIZED events themselves must fit exactly.
  void apply(const WatchedEvent& event);
  void applyAll(const std::vector<WatchedEvent>& events) {
    for (const WatchedEvent& e : events) apply(e);
  }

  const std::set<std::string>& paths() const { return paths_; }
  // Events that contradict what came before: each one is a change reported
  // twice, or a report of something the client was never told of.
  const std::vector<std::string>& contradictions() const { return contradictions_; }
  std::string describeContradictions(size_t limit = 20) const;

 private:
  void eraseTree(const std::string& path, std::vector<std::string>* below);

  std::set<std::string> paths_;
  // MOVED_FROM of directories whose MOVED_TO may follow: what was below, by cookie.
  std::map<uint32_t, std::vector<std::string>> movedAway_;
  std::vector<std::string> contradictions_;
  bool inGap_ = false;
  bool resynced_ = false;  // in a gap, SYNTHESIZED events were told
};

// The check every fault test ends with: `initial` replayed with `events`
// must be the listing of `serverRoot` now, and no event may contradict the
// ones before it.
::testing::AssertionResult clientViewIsServerTree(const std::set<std::string>& initial,
                                                  const std::vector<WatchedEvent>& events,
                                                  const std::string& serverRoot);

// Waits until everything the server did so far has been printed, also after
// a loss: writes barrier files "settle-<n>" in `serverDir` until one arrives
// live (its CLOSE_WRITE; a barrier made while events were being dropped is
// only covered by the re-read), then one more, made after any re-read that
// the loss caused was reported. The barriers stay in the tree.
::testing::AssertionResult settle(Watcher& watcher, const std::string& serverDir,
                                  Clock::duration timeout = std::chrono::seconds(60));

// How many printed events carry all of `flags` (comma-separated) on `path`
// ("*": any path).
size_t countEvents(const std::vector<WatchedEvent>& events, const std::string& flags, const std::string& path = "*");

// Lines of a stream containing `text`.
size_t countLines(const std::vector<std::string>& lines, const std::string& text);

// The last `n` lines of stdout and all of stderr: a failure message that stays
// readable when rnotifywait printed 200,000 events (RNOTIFY_TEST_VERBOSE=1:
// all lines).
std::string tailTranscript(const Watcher& watcher, size_t n = 40);

// /proc helpers.
std::string commOf(pid_t pid);
pid_t parentOf(pid_t pid);
// The agents (processes named rnotifyd) below sshd.
std::vector<pid_t> agentsBelow(pid_t sshd);

// An executable script in `dir` that runs the agent (agentCommand()) unless
// the gate is closed; then it exits 75 at once, as a server without a
// working rnotifyd would. Use command() as WatcherOptions::agent.
class AgentGate {
 public:
  // extraArgs: appended to the agent's command line (e.g. "--no-daemon").
  explicit AgentGate(const TempDir& dir, const std::string& extraArgs = "");
  const std::string& command() const { return script_; }
  void close();
  void open();

 private:
  std::string script_, gate_;
};

// Sets every veth interface in `netns` down: the namespace is cut off from
// its peers (packets to and from it are dropped; established TCP connections
// survive and retransmit). restore() or the destructor sets them up again.
class LinkCut {
 public:
  explicit LinkCut(const Netns& netns);
  ~LinkCut();
  LinkCut(const LinkCut&) = delete;
  LinkCut& operator=(const LinkCut&) = delete;
  void restore();
  const std::vector<std::string>& interfaces() const { return interfaces_; }

 private:
  const Netns& netns_;
  std::vector<std::string> interfaces_;
  bool cut_ = false;
};

// Writes `value` to `path` (a /proc/sys file) and restores the old value in
// restore() or the destructor. The old value is also kept in
// /run/rnotify-test-sysctl/<name>.<pid>: a later SysctlOverride of the same
// file restores it if the process that wrote it died without doing so.
// Throws std::runtime_error when the value cannot be written.
class SysctlOverride {
 public:
  SysctlOverride(std::string path, const std::string& value);
  ~SysctlOverride();
  SysctlOverride(const SysctlOverride&) = delete;
  SysctlOverride& operator=(const SysctlOverride&) = delete;
  void restore();
  const std::string& original() const { return original_; }

 private:
  std::string path_, original_, record_;
  bool active_ = false;
};

// Stops one process (SIGSTOP to that pid only: its children, e.g. the ssh that
// rnotifywait runs, go on) and continues it in resume() or the destructor.
class ScopedStop {
 public:
  explicit ScopedStop(pid_t pid);
  ~ScopedStop() { resume(); }
  ScopedStop(const ScopedStop&) = delete;
  ScopedStop& operator=(const ScopedStop&) = delete;
  void resume();

 private:
  pid_t pid_;
  bool stopped_ = false;
};

// Mounts a fresh tmpfs on `dir` (which should be empty); the destructor
// detaches it. Throws std::runtime_error when the mount fails.
class TmpfsMount {
 public:
  explicit TmpfsMount(std::string dir);
  ~TmpfsMount();
  TmpfsMount(const TmpfsMount&) = delete;
  TmpfsMount& operator=(const TmpfsMount&) = delete;

 private:
  std::string dir_;
};

}  // namespace rnotify::testbed
