// RealProgram: an unmodified watcher program, the kind of client issue 9 is
// for, started on a directory; what it reports is collected as records in
// its own vocabulary, and waited for with deadlines:
//
//   inotifywait   inotifywait -m [-r] (inotify-tools)           "CREATE|f", "MOVED_FROM|f"
//   gio           gio monitor DIR (GLib; one directory)         "created|f", "renamed|f|g"
//   watchdog      Python watchdog, InotifyObserver (recursive)  "created|f", "moved|f|g"
//   node          Node's fs.watch (recursive on request)        "rename|f", "change|f"
//   go            a static Go program calling syscall.InotifyInit1 and
//                 InotifyAddWatch itself (tests/programs/gowatch; built at
//                 test time with CGO_ENABLED=0): no dynamic loader, so no
//                 LD_PRELOAD shim reaches it                    "CREATE|f", "MOVED_TO|g"
//
//   RealProgram p(RealProgramKind::kWatchdog, view);
//   ASSERT_TRUE(p.watching([&](const std::string& probe) { touch(server / probe); }));
//   ReportTally tally(p);
//   act("echo hello > f");
//   EXPECT_TRUE(tally.expect({FileChange::Type::kCreate, "f"}));
//   ... more changes, then a barrier (a change whose report comes after all others) ...
//   EXPECT_TRUE(tally.verify());  // nothing missing, nothing twice
//
// Each failure message names the program and prints everything it wrote.
#pragma once

#include <gtest/gtest.h>

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "deadline.h"
#include "process.h"
#include "temp_dir.h"

namespace rnotify::testbed {

class Netns;

enum class RealProgramKind { kInotifywait, kGioMonitor, kWatchdog, kNodeFsWatch, kGoInotify };

// Every kind, in the order above.
const std::vector<RealProgramKind>& allRealPrograms();
// "inotifywait", "gio", "watchdog", "node", "go": for test names and messages.
const char* realProgramName(RealProgramKind kind);
// "" if the program can run here, else why not and which Debian package to
// install (for GTEST_SKIP).
std::string missingRealProgram(RealProgramKind kind);

// The static Go watcher, built once per test process (CGO_ENABLED=0 go build
// in a temporary directory that holds GOCACHE and GOPATH too, GOPROXY=off:
// standard library only, nothing fetched). Throws std::runtime_error with
// go's output if the build fails. The source is tests/programs/gowatch, or
// $RNOTIFY_GOWATCH_SOURCE.
std::string goWatchBinary();
// Whether the ELF file at `path` has no program interpreter (PT_INTERP):
// statically linked, out of reach of LD_PRELOAD.
bool isStaticExecutable(const std::string& path);

// One report of a program.
struct ProgramEvent {
  std::string kind;     // in the program's words: "CREATE", "CREATE,ISDIR", "created", "created,dir", "rename"
  std::string path;     // relative to the watched directory; "" for the directory itself
  std::string to;       // the new name, for programs that report a rename as one record
  uint32_t cookie = 0;  // inotify cookie, where the program prints it (go)
  std::string line;     // as printed
  // "kind|path" or "kind|path|to": the form expectations are written in.
  std::string key() const;
};

// A change made by the test: to a regular file, or a new directory (which a
// recursive program must then watch too); `path` and `to` are relative to the
// watched directory.
struct FileChange {
  enum class Type { kCreate, kModify, kRename, kDelete, kMakeDir };
  Type type;
  std::string path;
  std::string to;  // kRename
  std::string describe() const;
};

// What a program reports for a change: each record of `once` exactly once
// (counted over a whole scenario: Node reports a create and a rename away
// both as "rename|f"), each of `atLeastOnce` one or more times (one write
// may reach a server as several).
struct ExpectedReports {
  std::vector<std::string> once;
  std::vector<std::string> atLeastOnce;
};

struct RealProgramOptions {
  // Watch the tree below the directory, where the program can (gio cannot;
  // Node's recursive mode on Linux is its own userspace walk, and misses
  // changes made quickly after a directory appears: off by default).
  bool recursive = true;
  bool nodeRecursive = false;
  std::map<std::string, std::optional<std::string>> env;  // e.g. LD_PRELOAD
  const Netns* netns = nullptr;                           // run inside this namespace
};

class RealProgram {
 public:
  // Starts the program on `dir`. Throws std::runtime_error if it cannot be
  // started (check missingRealProgram first).
  RealProgram(RealProgramKind kind, std::string dir, RealProgramOptions options = {});
  RealProgram(const RealProgram&) = delete;
  RealProgram& operator=(const RealProgram&) = delete;

  RealProgramKind kind() const { return kind_; }
  // Whether it watches the directories below its directory, new ones
  // included (the Go program always does, gio never).
  bool recursive() const;
  const char* name() const { return realProgramName(kind_); }
  const std::string& dir() const { return dir_; }

  // Waits for the program's own "watching" line where it has one, then
  // calls makeProbe("probe<N>") (which must create that file so that the
  // program can see it) until the program reports a probe as created: a
  // program that does not say when it is ready (gio), or whose events travel
  // a longer way (a view, a shim), is then known to be watching end to end.
  // Events up to here are not counted by a later ReportTally.
  ::testing::AssertionResult watching(const std::function<void(const std::string& probe)>& makeProbe,
                                      Clock::duration timeout = std::chrono::seconds(20));

  // What this program reports for `change`.
  ExpectedReports expectedFor(const FileChange& change) const;
  // Whether a record of this kind is structural (create, delete, rename:
  // must come exactly as often as expected) rather than a modification.
  bool structural(const std::string& kind) const;
  // The record that says "`name` was created" (readiness probes, barriers).
  std::string createdKey(const std::string& name) const;

  // Every record so far, from the first with index >= from (parsed from the
  // program's stdout; lines that are not events are left out).
  std::vector<ProgramEvent> events(size_t from = 0) const;
  // The number of records so far: a starting point for events()/count().
  size_t mark() const { return events().size(); }
  // Records with this key since `from`.
  size_t count(const std::string& key, size_t from = 0) const;
  // Waits until at least `n` records with this key came since `from`.
  bool waitForCount(const std::string& key, size_t n, Clock::duration timeout, size_t from = 0) const;

  // The records since `from`, one per line, then everything the program wrote.
  std::string report(size_t from = 0) const;
  Process& process() { return *process_; }

 private:
  std::optional<ProgramEvent> parse(const std::string& line) const;

  RealProgramKind kind_;
  std::string dir_;
  RealProgramOptions options_;
  std::string readyLine_;  // "" if the program prints none
  Stream readyStream_ = Stream::kStdout;
  std::unique_ptr<Process> process_;
};

// Follows one program through a scenario of changes and checks what it
// reported: after each change expect() waits until the program reported it;
// verify(), after a barrier, checks every structural record on the
// scenario's paths came exactly as often as expected (nothing missing,
// nothing twice, nothing made up), every modification at least once, and
// each rename as one pair (inotify-style programs: MOVED_FROM right before
// MOVED_TO, with one cookie where the program prints cookies).
class ReportTally {
 public:
  // Counts from the program's current mark().
  explicit ReportTally(const RealProgram& program);
  ::testing::AssertionResult expect(const FileChange& change, Clock::duration timeout = std::chrono::seconds(10));
  // A file created only to know that everything before it was reported:
  // waits for its create record. Its path is left out of verify().
  ::testing::AssertionResult barrier(const std::string& name, Clock::duration timeout = std::chrono::seconds(10));
  ::testing::AssertionResult verify() const;

 private:
  const RealProgram& program_;
  size_t from_;
  std::vector<FileChange> changes_;
  std::map<std::string, size_t> once_;  // key -> expected count so far
  std::vector<std::string> atLeastOnce_;
};

}  // namespace rnotify::testbed
