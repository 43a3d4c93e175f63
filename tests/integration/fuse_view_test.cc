// Issue 9, the live view: rnotify-fuse mounts a view of client A's sshfs
// mount, and a plain `inotifywait -m -r` on the view (no shim, nothing
// injected) sees the changes made on the server, through client B's mount
// and through the view itself, each once, path by path as the server's own
// inotifywait saw them; so does a fanotify watcher. Also: a quick server-side
// script whose changes are undone before they are replayed; a burst of 500
// files; the polling fallback without an agent; the view shows server-side
// changes at once despite a 60 s cache timeout; a SOURCE that is not a
// network mount is refused (exit 2); a killed daemon leaves ENOTCONN and
// `fusermount3 -u` works; a SOURCE that goes away unmounts the view (exit 4);
// without -f the command returns with the view ready; a caching sshfs SOURCE
// is warned about.
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <csignal>
#include <cstring>
#include <filesystem>
#include <iostream>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "event_oracle.h"
#include "fuse_bed.h"
#include "mount_table.h"
#include "process.h"
#include "product.h"
#include "sshfs_bed.h"
#include "watcher.h"

namespace rnotify::testbed {
namespace {

using std::chrono::seconds;

std::string missingView() {
  if (auto why = SshfsBed::missing(); !why.empty()) return why;
  if (auto why = missingProduct(); !why.empty()) return why;
  if (auto why = missingFuseBinary(); !why.empty()) return why;
  if (runCommand({"sh", "-c", "command -v inotifywait"}, Deadline::in(seconds(5))).exitCode != 0) {
    return "inotifywait is not installed (Debian package inotify-tools)";
  }
  return "";
}

bool mounted(const std::string& path) {
  auto entry = findMount(path);
  return entry && entry->fstype == "fuse.rnotify";
}

// The events inotifywait is asked for, on the view and on the server: without
// the read-side ones, which every listing produces.
const std::vector<std::string> kWatchArgs{"-r", "-e", "modify,attrib,close_write,move,create,delete"};

enum class Writer { kServer, kClientB, kView };

class FuseView : public ::testing::Test {
 protected:
  void SetUp() override {
    if (auto why = missingView(); !why.empty()) GTEST_SKIP() << why;
    // SOURCE without sshfs's own caches (its 20 s dir_cache would show the
    // view stale state: rnotify-fuse cannot invalidate them; docs/USAGE.md).
    // The view caches instead, and the events keep its caches right.
    SshfsBedOptions options;
    if (freshSource_) options.mountAOptions = kFreshViewOptions;
    bed_ = std::make_unique<SshfsBed>(options);
    view_ = bed_->scratch().mkdir("view");
  }
  void TearDown() override {
    if (HasFailure()) {
      if (fuse_) std::cerr << "--- rnotify-fuse:\n" << fuse_->transcript();
      if (bed_) std::cerr << "--- the bed:\n" << bed_->transcript();
    }
    fuse_.reset();  // SIGTERM: the view unmounts before the bed goes
    if (bed_ && mounted(view_)) runCommand({"fusermount3", "-uz", view_}, Deadline::in(seconds(10)));
  }

  // rnotify-fuse -f on A's mount, in A's namespace; returns once the view is
  // listed in mountinfo.
  void startView(std::vector<std::string> extra = {}, std::string agent = agentCommand()) {
    ProcessOptions o;
    o.argv = {fuseBinary(), "-f", "--log-level", "debug"};
    o.argv.insert(o.argv.end(), extra.begin(), extra.end());
    o.argv.push_back(bed_->mountA().path());
    o.argv.push_back(view_);
    o.env = {{"RNOTIFY_AGENT", agent}};
    o.netns = bed_->netnsA();
    fuse_ = std::make_unique<Process>(o);
    ASSERT_TRUE(waitUntil(Deadline::in(seconds(20)), [&] { return mounted(view_) || !fuse_->running(); }))
        << fuse_->transcript();
    ASSERT_TRUE(mounted(view_)) << fuse_->transcript();
  }

  void act(Writer writer, const std::string& command) {
    std::string root = writer == Writer::kServer    ? bed_->exportDir()
                       : writer == Writer::kClientB ? bed_->mountB().path()
                                                    : view_;
    std::vector<std::string> argv{"sh", "-c", "cd '" + root + "' && " + command};
    CommandResult r = writer == Writer::kClientB ? bed_->runAsB(argv) : runCommand(argv, Deadline::in(seconds(20)));
    ASSERT_EQ(r.exitCode, 0) << r.describe(argv);
  }

  std::unique_ptr<Watcher> watch(const std::string& path) {
    WatcherOptions o;
    o.program = "inotifywait";
    o.args = kWatchArgs;
    o.path = path;
    o.cookie = false;  // inotifywait 3.22 has no %c; moves are paired by adjacency
    auto w = std::make_unique<Watcher>(o);
    EXPECT_TRUE(w->established());
    return w;
  }

  bool freshSource_ = true;
  std::unique_ptr<SshfsBed> bed_;
  std::string view_;
  std::unique_ptr<Process> fuse_;
};

class FuseViewWriters : public FuseView, public ::testing::WithParamInterface<Writer> {};

TEST_P(FuseViewWriters, EveryRemoteChangeOnceOnTheView) {
  ASSERT_NO_FATAL_FAILURE(startView());
  auto server = watch(bed_->exportDir());
  auto view = watch(view_);
  const Writer w = GetParam();

  act(w, "echo hello > f");
  EXPECT_TRUE(view->expectSequence({{"CREATE,!ISDIR", "f"}, {"CLOSE_WRITE", "f"}}));
  act(w, "echo more >> f");
  EXPECT_TRUE(view->expectSequence({{"MODIFY", "f"}, {"CLOSE_WRITE", "f"}}));
  act(w, "mv f g");
  EXPECT_TRUE(view->expectMove({"MOVED_FROM", "f"}, {"MOVED_TO", "g"}));
  act(w, "mkdir d");
  EXPECT_TRUE(view->expectSequence({{"CREATE,ISDIR", "d"}}));
  act(w, "mv g d/h");
  EXPECT_TRUE(view->expectMove({"MOVED_FROM", "g"}, {"MOVED_TO", "d/h"}));
  act(w, "chmod 600 d/h");
  EXPECT_TRUE(view->expectSequence({{"ATTRIB", "d/h"}}));
  // A directory moved on the server: the view follows it, and what happens
  // inside it afterwards is seen under its new name.
  act(w, "mv d e");
  EXPECT_TRUE(view->expectMove({"MOVED_FROM,ISDIR", "d"}, {"MOVED_TO,ISDIR", "e"}));
  act(w, "echo inside > e/new");
  EXPECT_TRUE(view->expectSequence({{"CREATE", "e/new"}, {"CLOSE_WRITE", "e/new"}}));
  EXPECT_EQ(readFile(view_ + "/e/new"), "inside\n");
  act(w, "rm e/h e/new");
  EXPECT_TRUE(view->expectSequence({{"DELETE,!ISDIR", "e/h"}}));
  act(w, "rmdir e");
  EXPECT_TRUE(view->expectSequence({{"DELETE,ISDIR", "e"}}));
  act(Writer::kServer, "touch end");  // a barrier: any echo would come before it
  ASSERT_TRUE(server->expectSequence({{"CREATE", "end"}}));
  ASSERT_TRUE(view->expectSequence({{"CREATE", "end"}}));

  HistoryComparison c = compareHistories(historyOf(server->events(), {"end"}), historyOf(view->events(), {"end"}));
  EXPECT_TRUE(c.clean()) << c.describe() << "\n--- view:\n"
                         << view->transcript() << "--- server:\n"
                         << server->transcript();
  // And the view's state is the server's.
  EXPECT_NE(::access((view_ + "/e").c_str(), F_OK), 0);
  EXPECT_TRUE(std::filesystem::exists(view_ + "/end"));
}

// kView: the changes are made through the view itself; the kernel reports
// them there, and their echo from the server must not be replayed.
INSTANTIATE_TEST_SUITE_P(Writers, FuseViewWriters, ::testing::Values(Writer::kServer, Writer::kClientB, Writer::kView),
                         [](const auto& info) {
                           return info.param == Writer::kServer    ? "OnServer"
                                  : info.param == Writer::kClientB ? "ThroughClientB"
                                                                   : "ThroughTheViewItself";
                         });

// Changes made by one quick script on the server: most of them are already
// undone on SOURCE when their events are replayed, and the view must still
// show the history the server's inotify saw. (Nothing happens inside the new
// directory: a recursive watch on the server, the oracle's as the agent's,
// races with it.)
TEST_F(FuseView, QuickServerScriptReplayedAsTheServerSawIt) {
  ASSERT_NO_FATAL_FAILURE(startView());
  auto server = watch(bed_->exportDir());
  auto view = watch(view_);
  act(Writer::kServer,
      "echo hello > f && echo more >> f && mv f g && chmod 600 g && mkdir d && mv d e && mv g e2 && rm e2 && "
      "rmdir e && touch end");
  ASSERT_TRUE(server->expectSequence({{"CREATE", "end"}}));
  ASSERT_TRUE(view->expectSequence({{"CREATE", "end"}}));
  HistoryComparison c = compareHistories(historyOf(server->events(), {"end"}), historyOf(view->events(), {"end"}));
  EXPECT_TRUE(c.clean()) << c.describe() << "\n--- view:\n"
                         << view->transcript() << "--- server:\n"
                         << server->transcript() << "--- rnotify-fuse:\n"
                         << fuse_->transcript();
}

// The view's kernel caches are kept right by the events: with names and
// attributes trusted for 60 s, a file created on the server is there for stat,
// in the listing and with its content as soon as its event has arrived; so is
// a change of its content.
TEST_F(FuseView, ServerChangesVisibleAtOnce) {
  ASSERT_NO_FATAL_FAILURE(startView({"--cache-timeout", "60"}));
  EXPECT_EQ(fuse_->transcript().find("dir_cache=no"), std::string::npos) << "a warning about a cache-less SOURCE";
  auto view = watch(view_);
  ASSERT_FALSE(std::filesystem::exists(view_ + "/fresh"));
  for (auto& e : std::filesystem::directory_iterator(view_)) (void)e;  // fill the caches
  writeFile(bed_->server("fresh"), "new content\n");
  ASSERT_TRUE(view->expectSequence({{"CREATE", "fresh"}, {"CLOSE_WRITE", "fresh"}}));
  struct stat st;
  EXPECT_EQ(::stat((view_ + "/fresh").c_str(), &st), 0) << std::strerror(errno);
  bool listed = false;
  for (auto& e : std::filesystem::directory_iterator(view_)) listed |= e.path().filename() == "fresh";
  EXPECT_TRUE(listed) << "a server-side create is missing from the view's listing";
  EXPECT_EQ(readFile(view_ + "/fresh"), "new content\n");
  // And a server-side change of content is read at once.
  writeFile(bed_->server("fresh"), "changed on the server, longer\n");
  ASSERT_TRUE(view->expectSequence({{"CLOSE_WRITE", "fresh"}}));
  EXPECT_EQ(readFile(view_ + "/fresh"), "changed on the server, longer\n");
  ASSERT_EQ(::unlink(bed_->server("fresh").c_str()), 0);
  ASSERT_TRUE(view->expectSequence({{"DELETE", "fresh"}}));
  EXPECT_FALSE(std::filesystem::exists(view_ + "/fresh"));
}

// A burst: 500 files created on the server, then deleted; each reaches the
// view's watcher once (the rate is printed, for information only).
TEST_F(FuseView, BurstOfServerChangesEachOnce) {
  ASSERT_NO_FATAL_FAILURE(startView({}, agentCommand()));
  auto view = watch(view_);
  constexpr int kFiles = 500;
  auto count = [&](const std::string& kind) {
    std::set<std::string> names;
    size_t total = 0;
    for (const WatchedEvent& e : view->events()) {
      if (e.flags.count(kind) && e.name.rfind("b", 0) == 0) {
        names.insert(e.name);
        total++;
      }
    }
    return std::make_pair(names.size(), total);
  };
  for (const char* kind : {"CREATE", "DELETE"}) {
    auto start = Clock::now();
    act(Writer::kServer, std::string(kind) == "CREATE" ? "for i in $(seq 1 500); do : > b$i; done" : "rm b*");
    bool all = waitUntil(Deadline::in(seconds(15)), [&] { return count(kind).first == kFiles; });
    double secs = std::chrono::duration<double>(Clock::now() - start).count();
    EXPECT_TRUE(all) << count(kind).first << " of " << kFiles << " " << kind << " seen\n" << view->transcript();
    EXPECT_EQ(count(kind).second, static_cast<size_t>(kFiles)) << "an event came twice";
    std::cout << "[ info ] " << kFiles << " server-side " << kind << " reflected on the view in " << secs << " s ("
              << static_cast<int>(kFiles / secs) << "/s, including the shell's own time)\n";
  }
}

// A fanotify watcher (directory mark in FID mode, as DESIGN.md found to work
// on FUSE) on the view: "KIND[,KIND]|name" per event.
constexpr const char* kFanotifyReader = R"PY(
import ctypes, os, struct, sys
libc = ctypes.CDLL(None, use_errno=True)
FAN_CLASS_NOTIF=0; FAN_REPORT_DFID_NAME=0x00000c00
FAN_CREATE=0x100; FAN_DELETE=0x200; FAN_MOVED_FROM=0x40; FAN_MOVED_TO=0x80; FAN_MODIFY=0x2; FAN_CLOSE_WRITE=0x8; FAN_ATTRIB=0x4
FAN_ONDIR=0x40000000; FAN_EVENT_ON_CHILD=0x08000000; FAN_MARK_ADD=1
libc.fanotify_mark.argtypes=[ctypes.c_int, ctypes.c_uint, ctypes.c_uint64, ctypes.c_int, ctypes.c_char_p]
fd = libc.fanotify_init(FAN_CLASS_NOTIF | FAN_REPORT_DFID_NAME, os.O_RDONLY)
if fd < 0: print("init failed", ctypes.get_errno(), flush=True); sys.exit(1)
mask = FAN_CREATE|FAN_DELETE|FAN_MOVED_FROM|FAN_MOVED_TO|FAN_MODIFY|FAN_CLOSE_WRITE|FAN_ATTRIB|FAN_ONDIR|FAN_EVENT_ON_CHILD
if libc.fanotify_mark(fd, FAN_MARK_ADD, mask, -100, sys.argv[1].encode()) != 0:
    print("mark failed", ctypes.get_errno(), flush=True); sys.exit(1)
print("ready", flush=True)
names = {FAN_CREATE:"CREATE", FAN_DELETE:"DELETE", FAN_MOVED_FROM:"MOVED_FROM", FAN_MOVED_TO:"MOVED_TO", FAN_MODIFY:"MODIFY", FAN_CLOSE_WRITE:"CLOSE_WRITE", FAN_ATTRIB:"ATTRIB"}
while True:
    data = os.read(fd, 65536)
    at = 0
    while at < len(data):
        event_len, vers, _, md_len, mask, efd, pid = struct.unpack_from("IBBHQii", data, at)
        name = ""
        info = at + md_len
        while info < at + event_len:
            itype, _, ilen = struct.unpack_from("BBH", data, info)
            if itype == 2:  # DFID_NAME: fsid(8) + file_handle(bytes, type, handle) + name
                hbytes, = struct.unpack_from("I", data, info + 4 + 8)
                nstart = info + 4 + 8 + 8 + hbytes
                name = data[nstart:info + ilen].split(b"\0")[0].decode()
            info += ilen
        kinds = [v for k, v in names.items() if mask & k]
        print("%s|%s" % (",".join(kinds), name), flush=True)
        at += event_len
)PY";

// fanotify users get the reflected changes too: they are the kernel's own
// events on the view.
TEST_F(FuseView, FanotifyWatcherSeesServerChanges) {
  if (::access("/usr/bin/python3", X_OK) != 0) GTEST_SKIP() << "/usr/bin/python3 is not installed";
  ASSERT_NO_FATAL_FAILURE(startView());
  ProcessOptions o;
  o.argv = {"/usr/bin/python3", "-c", kFanotifyReader, view_};
  Process reader(o);
  ASSERT_TRUE(reader.waitForLine(
      Stream::kStdout, [](const std::string& l) { return l == "ready"; }, Deadline::in(seconds(20))))
      << reader.transcript();
  act(Writer::kServer, "echo x > f && mv f g && rm g && touch end");
  ASSERT_TRUE(reader.waitForLine(
      Stream::kStdout, [](const std::string& l) { return l.find("|end") != std::string::npos; },
      Deadline::in(seconds(10))))
      << reader.transcript();
  // fanotify merges unread events on one object ("CREATE,MODIFY,CLOSE_WRITE|f"):
  // count each kind in them.
  std::map<std::string, int> seen;
  for (const std::string& line : reader.lines(Stream::kStdout)) {
    size_t bar = line.find('|');
    if (bar == std::string::npos) continue;
    std::string kinds = line.substr(0, bar) + ",";
    for (size_t at = 0, comma; (comma = kinds.find(',', at)) != std::string::npos; at = comma + 1) {
      seen[kinds.substr(at, comma - at) + line.substr(bar)]++;
    }
  }
  for (const char* expected : {"CREATE|f", "MOVED_FROM|f", "MOVED_TO|g", "DELETE|g"}) {
    EXPECT_EQ(seen[expected], 1) << expected << "\n" << reader.transcript();
  }
}

// No agent on the server: the client core polls SOURCE, and what it finds
// (IN_REMOTE|IN_POLLED) is reflected the same way.
TEST_F(FuseView, WithoutAgentPolledChangesAreReflected) {
  ASSERT_NO_FATAL_FAILURE(startView({}, "/nonexistent/rnotifyd --stdio"));
  bool polling = waitUntil(Deadline::in(seconds(10)), [&] {
    for (const std::string& line : fuse_->lines(Stream::kStderr)) {
      if (line.find("come from:") != std::string::npos) return line.find("poll") != std::string::npos;
    }
    return false;
  });
  if (!polling) GTEST_SKIP() << "this client core does not fall back to polling\n" << fuse_->transcript();
  auto view = watch(view_);
  act(Writer::kServer, "echo polled > p");
  EXPECT_TRUE(view->expectSequence({{"CREATE,!ISDIR", "p"}}, seconds(15)));
  act(Writer::kServer, "rm p");
  EXPECT_TRUE(view->expectSequence({{"DELETE,!ISDIR", "p"}}, seconds(15)));
  EXPECT_FALSE(std::filesystem::exists(view_ + "/p"));
}

// sshfs's own 20 s cache would make the view lag: rnotify-fuse says so.
class FuseViewOverCachingSshfs : public FuseView {
 protected:
  void SetUp() override {
    freshSource_ = false;
    FuseView::SetUp();
  }
};

TEST_F(FuseViewOverCachingSshfs, WarnsAboutTheSourceCache) {
  ASSERT_NO_FATAL_FAILURE(startView());
  EXPECT_NE(fuse_->transcript().find("dir_cache=no"), std::string::npos) << fuse_->transcript();
  // Events are reflected all the same.
  auto view = watch(view_);
  act(Writer::kServer, "touch cached");
  EXPECT_TRUE(view->expectSequence({{"CREATE", "cached"}}));
}

TEST_F(FuseView, LocalSourceIsRefused) {
  std::vector<std::string> argv{fuseBinary(), "-f", bed_->scratch().mkdir("local"), view_};
  CommandResult r = runCommand(argv, Deadline::in(seconds(10)));
  EXPECT_EQ(r.exitCode, 2) << r.describe(argv);
  EXPECT_NE(r.stderrText.find("not a network mount"), std::string::npos) << r.describe(argv);
  EXPECT_FALSE(mounted(view_));
}

// kill -9: no clean unmount is possible; the view answers ENOTCONN (it does
// not hang) and fusermount3 -u removes it.
TEST_F(FuseView, KilledDaemonLeavesEnotconnAndFusermountWorks) {
  ASSERT_NO_FATAL_FAILURE(startView());
  fuse_->signal(SIGKILL);
  ASSERT_TRUE(fuse_->waitExit(Deadline::in(seconds(10))));
  struct stat st;
  EXPECT_EQ(::stat((view_ + "/x").c_str(), &st), -1);
  EXPECT_EQ(errno, ENOTCONN);
  CommandResult r = runCommand({"fusermount3", "-u", view_}, Deadline::in(seconds(10)));
  EXPECT_EQ(r.exitCode, 0) << r.describe({"fusermount3", "-u", view_});
  EXPECT_FALSE(mounted(view_));
}

// SIGTERM while the view is busy reflecting a stream of server-side changes:
// the reflector is stopped before the session is unmounted, so none of its
// cache invalidations goes to the closed /dev/fuse descriptor (libfuse would
// print "fuse: writing device: Bad file descriptor", and the number could
// already belong to another open file), and the exit is clean. Three rounds:
// the window is narrow.
TEST_F(FuseView, SigtermDuringServerChangesStopsCleanly) {
  for (int round = 0; round < 3; round++) {
    SCOPED_TRACE("round " + std::to_string(round));
    ASSERT_NO_FATAL_FAILURE(startView());
    ProcessOptions o;
    o.argv = {
        "sh", "-c",
        "cd '" + bed_->exportDir() + "' && i=0; while :; do : > s$i; rm s$((i - 1)) 2>/dev/null; i=$((i + 1)); done"};
    Process churn(o);
    // Busy: the reflector has replayed a few dozen changes.
    ASSERT_TRUE(fuse_->waitForLine(
        Stream::kStderr, [](const std::string& line) { return line.find("remote event") != std::string::npos; },
        Deadline::in(seconds(10)), 40))
        << fuse_->transcript();
    fuse_->signal(SIGTERM);
    auto code = fuse_->waitExit(Deadline::in(seconds(10)));
    churn.terminate();
    ASSERT_TRUE(code) << fuse_->transcript();
    EXPECT_EQ(*code, 0) << fuse_->transcript();
    EXPECT_EQ(fuse_->transcript().find("Bad file descriptor"), std::string::npos) << fuse_->transcript();
    EXPECT_FALSE(mounted(view_));
    if (mounted(view_)) runCommand({"fusermount3", "-uz", view_}, Deadline::in(seconds(10)));
    fuse_.reset();
    act(Writer::kServer, "rm -f s*");
  }
}

// The network mount goes away under the view: the view is unmounted and
// rnotify-fuse says why, with exit code 4.
TEST_F(FuseView, SourceGoneUnmountsTheView) {
  ASSERT_NO_FATAL_FAILURE(startView());
  CommandResult r = runCommand({"fusermount3", "-uz", bed_->mountA().path()}, Deadline::in(seconds(10)));
  ASSERT_EQ(r.exitCode, 0) << r.describe({"fusermount3", "-uz", bed_->mountA().path()});
  auto code = fuse_->waitExit(Deadline::in(seconds(10)));
  ASSERT_TRUE(code) << fuse_->transcript();
  EXPECT_EQ(*code, 4) << fuse_->transcript();
  EXPECT_FALSE(mounted(view_));
  EXPECT_NE(fuse_->transcript().find("unmounting the view"), std::string::npos) << fuse_->transcript();
}

// Without -f the command returns once the view is usable, and the daemon
// leaves when the view is unmounted.
TEST_F(FuseView, BackgroundCommandReturnsWithTheViewReady) {
  writeFile(bed_->server("there"), "x");
  std::vector<std::string> argv{"env", "RNOTIFY_AGENT=" + agentCommand(), fuseBinary(), bed_->mountA().path(), view_};
  CommandResult r = runCommand(argv, Deadline::in(seconds(20)), bed_->netnsA());
  ASSERT_EQ(r.exitCode, 0) << r.describe(argv);
  EXPECT_TRUE(mounted(view_));
  EXPECT_TRUE(std::filesystem::exists(view_ + "/there"));
  CommandResult u = runCommand({"fusermount3", "-u", view_}, Deadline::in(seconds(10)));
  EXPECT_EQ(u.exitCode, 0) << u.describe({"fusermount3", "-u", view_});
  EXPECT_FALSE(mounted(view_));
}

}  // namespace
}  // namespace rnotify::testbed
