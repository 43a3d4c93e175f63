// Watcher: runs `rnotifywait -m --format '%w|%f|%e|%c' [args] path` the way a user
// would, and turns its stdout into events that a test checks in order:
//
//   Watcher a(bed.watchA({"-r"}));
//   ASSERT_TRUE(a.established());
//   ... act on the server ...
//   EXPECT_TRUE(a.expectSequence({{"CREATE,REMOTE", "f"}, {"CLOSE_WRITE,REMOTE", "f"}}));
//
// Every expectation has a deadline and, when it fails, says what it expected,
// what it matched so far and prints everything rnotifywait wrote (stdout and
// stderr; the agent's debug log comes with RNOTIFY_LOG_LEVEL=debug).
#pragma once

#include <gtest/gtest.h>

#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "process.h"

namespace rnotify::testbed {

class Netns;

// One line of output, split.
struct WatchedEvent {
  std::string line;             // as printed
  std::string dir;              // %w
  std::string name;             // %f
  std::set<std::string> flags;  // %e split at ','
  uint32_t cookie = 0;          // %c, when the watcher prints it
  std::string path;             // relative to the watch root: "a/b/f", "" for the root itself
};

// What a test expects: `flags` must all be present ("CREATE,ISDIR,REMOTE"),
// flags written "!X" must be absent ("CREATE,!ISDIR"); `path` as in
// WatchedEvent::path, or "*" for any path.
struct ExpectedEvent {
  std::string flags;
  std::string path;
  bool matches(const WatchedEvent& e) const;
  std::string describe() const;
};

struct WatcherOptions {
  std::string program;                                    // default: the built rnotifywait
  std::vector<std::string> args;                          // e.g. {"-r"}, {"-e", "create"}
  std::string path;                                       // what to watch
  std::optional<std::string> agent;                       // RNOTIFY_AGENT; default agentCommand()
  std::map<std::string, std::optional<std::string>> env;  // more overrides
  const Netns* netns = nullptr;                           // run inside this namespace (client A)
  bool monitor = true;                                    // -m
  bool format = true;                                     // --format '%w|%f|%e|%c' (off: raw output)
  bool cookie = true;                                     // print %c (inotifywait 3.22 lacks it: set false)
};

class Watcher {
 public:
  explicit Watcher(WatcherOptions options);
  Watcher(const Watcher&) = delete;
  Watcher& operator=(const Watcher&) = delete;

  // Waits for "Watches established." on stderr (as inotifywait prints it).
  ::testing::AssertionResult established(Clock::duration timeout = std::chrono::seconds(20));

  // Waits until `expected` have all appeared, in this order (other events may
  // come in between), after the events matched by earlier expectations.
  ::testing::AssertionResult expectSequence(const std::vector<ExpectedEvent>& expected,
                                            Clock::duration timeout = std::chrono::seconds(10));
  // Like expectSequence, but the events after the first must follow each
  // other with nothing in between: a MOVED_FROM/MOVED_TO pair, which
  // inotifywait's output can only pair by adjacency (it prints no cookie).
  ::testing::AssertionResult expectAdjacent(const std::vector<ExpectedEvent>& expected,
                                            Clock::duration timeout = std::chrono::seconds(10));
  // A rename: `from` (MOVED_FROM) and `to` (MOVED_TO) adjacent, and, when the
  // watcher prints cookies, carrying the same non-zero cookie.
  ::testing::AssertionResult expectMove(const ExpectedEvent& from, const ExpectedEvent& to,
                                        Clock::duration timeout = std::chrono::seconds(10));
  // Waits for `barrier` and checks that no event before it (since the last
  // expectation) matches `forbidden`. A test that must show that something
  // does NOT happen acts, then does something that surely produces `barrier`.
  ::testing::AssertionResult expectNoneBefore(const ExpectedEvent& forbidden, const ExpectedEvent& barrier,
                                              Clock::duration timeout = std::chrono::seconds(10));
  // Waits for a stdout line matching `regex` (ECMAScript, searched anywhere
  // in the line) after the last matched line.
  ::testing::AssertionResult waitFor(const std::string& regex, Clock::duration timeout = std::chrono::seconds(10));
  // Waits for the process to end with `code`.
  ::testing::AssertionResult expectExit(int code, Clock::duration timeout = std::chrono::seconds(20));

  // Every event printed so far.
  std::vector<WatchedEvent> events() const;
  std::vector<std::string> stderrLines() const { return process_->lines(Stream::kStderr); }
  std::string transcript() const { return process_->transcript(); }
  Process& process() { return *process_; }

 private:
  WatchedEvent parse(const std::string& line) const;
  std::string report(const std::string& what) const;

  WatcherOptions options_;
  std::unique_ptr<Process> process_;
  size_t cursor_ = 0;  // first stdout line not consumed by an expectation
};

}  // namespace rnotify::testbed
