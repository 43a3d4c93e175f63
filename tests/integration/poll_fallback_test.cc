// Issue 8: when no server can help, rnotify polls; it picks the source by
// itself, says so once, and upgrades when the server becomes reachable.
// - sshfs without rnotifyd on the server: the tree is scanned over a separate
//   SFTP session (sshfs's own caches would hide a server-side change for 20 s);
//   changes on the server arrive flagged REMOTE,POLLED within one interval;
//   this host's own change through the mount is reported once.
// - rnotifyd installed while watching: the watch moves to the server.
// - --poll on a local directory: replaying the events gives the final tree,
//   the same as replaying the real inotifywait's.
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <random>
#include <set>

#include "deadline.h"
#include "process.h"
#include "product.h"
#include "sshfs_bed.h"
#include "temp_dir.h"
#include "watcher.h"

namespace rnotify::testbed {
namespace {

namespace fs = std::filesystem;
using std::chrono::seconds;

std::string joined(const std::vector<std::string>& lines) {
  std::string out;
  for (const auto& l : lines) out += l + "\n";
  return out;
}

bool stderrHas(const Watcher& w, const std::string& text) {
  return joined(w.stderrLines()).find(text) != std::string::npos;
}

size_t count(const std::string& haystack, const std::string& needle) {
  size_t n = 0;
  for (size_t at = haystack.find(needle); at != std::string::npos; at = haystack.find(needle, at + 1)) ++n;
  return n;
}

TEST(PollFallback, SshfsWithoutAgentIsScannedOverSftp) {
  if (auto why = SshfsBed::missing(); !why.empty()) GTEST_SKIP() << why;
  if (auto why = missingProduct(); !why.empty()) GTEST_SKIP() << why;
  SshfsBed bed;
  WatcherOptions o = bed.watchA({"-r", "-v"});
  o.agent = "/nonexistent/rnotifyd --stdio";
  o.env["RNOTIFY_LOG_LEVEL"] = std::nullopt;  // what a user sees
  Watcher a(o);
  ASSERT_TRUE(a.established()) << bed.transcript();
  EXPECT_TRUE(stderrHas(a, "SFTP scans")) << a.transcript();
  EXPECT_EQ(count(joined(a.stderrLines()), "falling back"), 1u) << a.transcript();
  // -v names the source and why each one before it was not used.
  EXPECT_TRUE(stderrHas(a, "through polling every 2 s")) << a.transcript();
  EXPECT_TRUE(stderrHas(a, "+ local inotify (rnotifyd: rnotifyd is not installed on")) << a.transcript();

  // Default interval (2 s): each change shows within the expectation's 10 s.
  writeFile(bed.server("f"), "one\n");
  EXPECT_TRUE(a.expectSequence({{"CREATE,REMOTE,POLLED", "f"}})) << bed.transcript();
  ASSERT_EQ(::mkdir(bed.server("d").c_str(), 0755), 0);
  writeFile(bed.server("d/g"), "x\n");
  EXPECT_TRUE(a.expectSequence({{"CREATE,ISDIR,REMOTE,POLLED", "d"}, {"CREATE,REMOTE,POLLED", "d/g"}}));
  { std::ofstream(bed.server("f"), std::ios::app) << "two\n"; }
  EXPECT_TRUE(a.expectSequence({{"MODIFY,REMOTE,POLLED", "f"}}));
  fs::rename(bed.server("d/g"), bed.server("d/h"));
  // SFTP carries no inode numbers: a rename is a DELETE and a CREATE.
  EXPECT_TRUE(a.expectSequence({{"DELETE,REMOTE,POLLED", "d/g"}, {"CREATE,REMOTE,POLLED", "d/h"}}));
  fs::remove_all(bed.server("d"));
  EXPECT_TRUE(a.expectSequence({{"DELETE,REMOTE,POLLED", "d/h"}, {"DELETE,ISDIR,REMOTE,POLLED", "d"}}));

  // Through another mount: the same as on the server.
  ASSERT_EQ(bed.runAsB({"sh", "-c", "echo b > " + bed.b("from-b")}).exitCode, 0);
  EXPECT_TRUE(a.expectSequence({{"CREATE,REMOTE,POLLED", "from-b"}}));

  // This host's own change: the kernel's report, and no second one from a scan.
  writeFile(bed.a("mine"), "m\n");
  EXPECT_TRUE(a.expectSequence({{"CREATE,!REMOTE", "mine"}}));
  writeFile(bed.server("barrier"), "b\n");
  EXPECT_TRUE(a.expectNoneBefore({"CREATE", "mine"}, {"CREATE,REMOTE,POLLED", "barrier"})) << a.transcript();
  EXPECT_EQ(count(joined(a.stderrLines()), "falling back"), 1u) << a.transcript();
}

TEST(PollFallback, MovesToTheServerWhenRnotifydAppears) {
  if (auto why = SshfsBed::missing(); !why.empty()) GTEST_SKIP() << why;
  if (auto why = missingProduct(); !why.empty()) GTEST_SKIP() << why;
  SshfsBedOptions options;
  options.withMountB = false;
  SshfsBed bed(options);
  // The agent as a script that does not exist yet ("not installed").
  const std::string script = bed.scratch() / "late-rnotifyd";
  WatcherOptions o = bed.watchA({"-r"});
  o.agent = script + " --stdio";
  o.env["RNOTIFY_RECONNECT_MAX_MS"] = "500";  // try again often
  o.env["RNOTIFY_POLL_INTERVAL_MS"] = "300";
  o.env["RNOTIFY_POLL_MIN_MS"] = "100";
  o.env["RNOTIFY_POLL_MAX_MS"] = "1000";
  Watcher a(o);
  ASSERT_TRUE(a.established()) << bed.transcript();
  writeFile(bed.server("polled"), "x\n");
  ASSERT_TRUE(a.expectSequence({{"CREATE,REMOTE,POLLED", "polled"}})) << bed.transcript();

  // "Install" it: the script runs the built rnotifyd with the test's options.
  std::string agent = agentCommand();
  agent = agent.substr(0, agent.find(" --stdio")) + agent.substr(agent.find(" --stdio") + 8);
  writeFile(script, "#!/bin/sh\nexec " + agent + " \"$@\"\n");
  ASSERT_EQ(::chmod(script.c_str(), 0755), 0);
  ASSERT_TRUE(waitUntil(Deadline::in(seconds(20)), [&] { return stderrHas(a, "no more polling"); })) << a.transcript();

  writeFile(bed.server("served"), "y\n");
  EXPECT_TRUE(a.expectSequence({{"CREATE,REMOTE,!POLLED", "served"}}, seconds(5))) << a.transcript();
  fs::rename(bed.server("served"), bed.server("renamed"));
  EXPECT_TRUE(a.expectMove({"MOVED_FROM,REMOTE,!POLLED", "served"}, {"MOVED_TO,REMOTE,!POLLED", "renamed"}));
}

// --- a local tree polled, against the real inotifywait ---------------------

// Replays create/delete/move events into the set of paths they leave.
std::set<std::string> replay(const std::vector<WatchedEvent>& events) {
  std::set<std::string> paths;
  std::map<uint32_t, std::set<std::string>> movedAway;  // by cookie: the subtree, relative to the moved entry
  std::set<std::string> lastAway;
  auto subtree = [&](const std::string& root) {
    std::set<std::string> out;
    for (auto it = paths.lower_bound(root); it != paths.end(); ++it) {
      if (*it == root) {
        out.insert("");
      } else if (it->rfind(root + "/", 0) == 0) {
        out.insert(it->substr(root.size()));
      } else if (*it > root + "/") {
        break;
      }
    }
    return out;
  };
  auto erase = [&](const std::string& root) {
    for (const std::string& rel : subtree(root)) paths.erase(root + rel);
  };
  for (const WatchedEvent& e : events) {
    if (e.path.empty()) continue;
    if (e.flags.count("CREATE")) paths.insert(e.path);
    if (e.flags.count("DELETE")) erase(e.path);
    if (e.flags.count("MOVED_FROM")) {
      lastAway = subtree(e.path);
      if (e.cookie != 0) movedAway[e.cookie] = lastAway;
      erase(e.path);
    }
    if (e.flags.count("MOVED_TO")) {
      std::set<std::string> moved = lastAway;
      if (e.cookie != 0 && movedAway.count(e.cookie)) moved = movedAway[e.cookie];
      if (moved.empty()) moved.insert("");
      for (const std::string& rel : moved) paths.insert(e.path + rel);
    }
  }
  return paths;
}

std::set<std::string> treeOf(const std::string& root) {
  std::set<std::string> out;
  for (const auto& entry : fs::recursive_directory_iterator(root)) {
    std::string rel = entry.path().string().substr(root.size() + 1);
    if (rel.rfind("barrier-", 0) != 0) out.insert(rel);
  }
  return out;
}

std::set<std::string> withoutBarriers(std::set<std::string> paths) {
  for (auto it = paths.begin(); it != paths.end();) it = it->rfind("barrier-", 0) == 0 ? paths.erase(it) : ++it;
  return paths;
}

TEST(PollFallback, LocalPollingReplaysToTheTreeLikeInotifywait) {
  if (auto why = missingProduct(); !why.empty()) GTEST_SKIP() << why;
  if (::access("/usr/bin/inotifywait", X_OK) != 0) GTEST_SKIP() << "inotifywait is not installed (inotify-tools)";
  TempDir dir;
  WatcherOptions p;
  p.args = {"-r", "--poll"};
  p.path = dir.path();
  p.env["RNOTIFY_POLL_INTERVAL_MS"] = "200";
  p.env["RNOTIFY_POLL_MIN_MS"] = "100";
  p.env["RNOTIFY_POLL_MAX_MS"] = "500";
  Watcher polled(p);
  WatcherOptions i;
  i.program = "inotifywait";
  i.args = {"-r"};
  i.path = dir.path();
  i.cookie = false;
  Watcher oracle(i);
  ASSERT_TRUE(polled.established());
  ASSERT_TRUE(oracle.established());

  std::mt19937 random(20261127);
  std::vector<std::string> dirs{""}, files;
  int serial = 0;
  auto pick = [&](std::vector<std::string>& from) -> std::string& {
    return from[std::uniform_int_distribution<size_t>(0, from.size() - 1)(random)];
  };
  auto under = [&](const std::string& d, const std::string& name) { return d.empty() ? name : d + "/" + name; };
  for (int round = 0; round < 8; ++round) {
    // Directories first, then what goes in them, each step awaited in both
    // watchers: inotifywait -r misses what is made in a new directory before
    // it has added its watch there.
    std::vector<std::string> parents = dirs;  // not in a directory made in this step
    for (int k = 0; k < 2; ++k) {
      std::string d = under(pick(parents), "d" + std::to_string(serial++));
      fs::create_directory(dir / d);
      dirs.push_back(d);
    }
    std::string barrier = "barrier-" + std::to_string(round) + "a";
    writeFile(dir / barrier, "");
    ASSERT_TRUE(polled.expectSequence({{"CREATE", barrier}}));
    ASSERT_TRUE(oracle.expectSequence({{"CREATE", barrier}}));
    for (int k = 0; k < 12; ++k) {
      int op = std::uniform_int_distribution<int>(0, 9)(random);
      if (op < 5 || files.empty()) {
        std::string f = under(pick(dirs), "f" + std::to_string(serial++));
        writeFile(dir / f, std::string(static_cast<size_t>(op + 1), 'x'));
        files.push_back(f);
      } else if (op < 7) {
        std::string& f = pick(files);
        std::string to = under(pick(dirs), "m" + std::to_string(serial++));
        fs::rename(dir / f, dir / to);
        f = to;
      } else if (op < 8) {
        std::ofstream(dir / pick(files), std::ios::app) << "more";
      } else {
        std::string& f = pick(files);
        fs::remove(dir / f);
        f = files.back();
        files.pop_back();
      }
    }
    if (round % 3 == 2 && dirs.size() > 2) {
      // A directory moved, with what is in it.
      std::string from = dirs.back();
      std::string to = "moved" + std::to_string(serial++);
      fs::rename(dir / from, dir / to);
      for (auto* list : {&dirs, &files}) {
        for (std::string& path : *list) {
          if (path == from || path.rfind(from + "/", 0) == 0) path = to + path.substr(from.size());
        }
      }
    }
    barrier = "barrier-" + std::to_string(round) + "b";
    writeFile(dir / barrier, "");
    ASSERT_TRUE(polled.expectSequence({{"CREATE", barrier}}));
    ASSERT_TRUE(oracle.expectSequence({{"CREATE", barrier}}));
  }
  // A scan reports in the order it walks the tree, not in the order of the
  // changes: one more barrier, found by a later scan, closes the last one.
  writeFile(dir / "barrier-end", "");
  ASSERT_TRUE(polled.expectSequence({{"CREATE", "barrier-end"}}));
  ASSERT_TRUE(oracle.expectSequence({{"CREATE", "barrier-end"}}));
  const std::set<std::string> truth = treeOf(dir.path());
  const std::set<std::string> fromPolled = withoutBarriers(replay(polled.events()));
  const std::set<std::string> fromOracle = withoutBarriers(replay(oracle.events()));
  EXPECT_EQ(fromOracle, truth) << "inotifywait itself did not replay to the tree:\n"
                               << [&] {
                                    std::string all;
                                    for (const WatchedEvent& e : oracle.events()) all += e.line + "\n";
                                    return all;
                                  }();
  EXPECT_EQ(fromPolled, truth) << polled.transcript();
  EXPECT_EQ(fromPolled, fromOracle);
  for (const WatchedEvent& e : polled.events()) {
    EXPECT_TRUE(e.flags.count("POLLED")) << e.line;
    EXPECT_FALSE(e.flags.count("REMOTE")) << e.line;  // a local tree: nothing came from a server
  }
}

}  // namespace
}  // namespace rnotify::testbed
