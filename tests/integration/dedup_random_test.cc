// One change, one event, under load and contention: the randomized big
// brother of echo_test. Client A watches its sshfs mount with rnotifywait -r
// while three actors change the export at once, each on its own thread: A
// through its own mount (reported by A's kernel and echoed by the server),
// B through its mount, and the server directly on the export. A small pool
// of names makes A and B touch the same name within milliseconds all the
// time; "collision" steps release A and B on the same name at the same
// instant. Operations that fail because another actor got there first are
// part of the game: the server's filesystem is the truth.
//
// The oracle is the real inotifywait -r on the server's export. Per path, A's
// events (REMOTE ignored) must be the oracle's: no duplicate, nothing missing,
// the same order (see event_oracle.h for the tolerance for coalesced writes).
// Each de-duplication mode (RNOTIFY_DEDUP) must pass; with de-duplication off
// the test must see duplicates, which shows that it can fail.
//
// Files live only in directories made before the watchers start (d0..d3):
// inotifywait -r misses what is created in a new directory before it has
// added its watch there, so directories made during the run stay empty.
//
// RNOTIFY_TEST_SEED repeats a schedule (the interleaving is the machine's);
// RNOTIFY_DEDUP_OPS sets the number of operations per mode (20000, 2000 under
// AddressSanitizer); RNOTIFY_DEDUP_DUMP=<dir> writes both watchers' output
// and the log of operations there, per mode.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <barrier>
#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <iostream>
#include <mutex>
#include <random>
#include <set>
#include <sstream>
#include <thread>

#include "common/unique_fd.h"
#include "event_oracle.h"
#include "product.h"
#include "sshfs_bed.h"
#include "temp_dir.h"
#include "watcher.h"

#if defined(__SANITIZE_ADDRESS__)
#define RNOTIFY_TEST_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define RNOTIFY_TEST_ASAN 1
#endif
#endif

namespace rnotify::testbed {
namespace {

#ifdef RNOTIFY_TEST_ASAN
constexpr size_t kDefaultOps = 2000;
#else
constexpr size_t kDefaultOps = 20000;
#endif

constexpr int kDirs = 4;             // d0..d3, made before the watchers start
constexpr int kFilesPerDir = 6;      // f0..f5 in each
constexpr int kLeavesPerDir = 3;     // e0..e2 in each: empty directories made and removed during the run
constexpr size_t kPacingWindow = 6;  // no actor runs more than this many steps ahead of another
constexpr int kCollisionOneIn = 12;

const std::vector<std::string> kEvents = {"-e", "create,delete,modify,attrib,close_write,moved_from,moved_to"};

enum Actor : size_t { kA, kB, kServer, kActors };
constexpr const char* kActorNames[] = {"A", "B", "S"};

enum class OpKind { kCreate, kAppend, kChmod, kRename, kUnlink, kMkdir, kRmdir, kRenameDir };

// What each kind is called and the structural events (kinds as in
// EventHistory) it makes on the server when it succeeds.
struct OpKindInfo {
  const char* name;
  std::vector<std::string> events;
};
const std::map<OpKind, OpKindInfo> kOpKinds = {
    {OpKind::kCreate, {"create", {"CREATE"}}},
    {OpKind::kAppend, {"append", {}}},
    {OpKind::kChmod, {"chmod", {}}},
    {OpKind::kRename, {"rename", {"MOVED_FROM", "MOVED_TO"}}},
    {OpKind::kUnlink, {"unlink", {"DELETE"}}},
    {OpKind::kMkdir, {"mkdir", {"CREATE,ISDIR"}}},
    {OpKind::kRmdir, {"rmdir", {"DELETE,ISDIR"}}},
    {OpKind::kRenameDir, {"rename dir", {"ISDIR,MOVED_FROM", "ISDIR,MOVED_TO"}}},
};

struct Op {
  OpKind kind = OpKind::kAppend;
  std::string path, target;  // relative to the export; target only for renames
  mode_t mode = 0644;
  size_t bytes = 1;
  size_t step = 0;         // place in the common schedule
  bool collision = false;  // A and B start this step together
};

std::string describe(const Op& op) {
  std::string out = kOpKinds.at(op.kind).name;
  if (op.kind == OpKind::kChmod) out += " " + std::to_string(op.mode & 0777);
  out += " " + op.path;
  return op.target.empty() ? out : out + " -> " + op.target;
}

// Whether `op` puts a structural event (CREATE, DELETE, MOVED_*) on `path`.
bool structuralOn(const Op& op, const std::string& path) {
  return !kOpKinds.at(op.kind).events.empty() && (op.path == path || op.target == path);
}

// The operations of one run, decided by the seed before anything runs. Only
// the interleaving is left to the machine.
class Schedule {
 public:
  Schedule(uint64_t seed, size_t total) : rng_(seed) {
    size_t step = 0;
    for (size_t n = 0; n < total; ++step) {
      if (pick(kCollisionOneIn) == 0) {
        // The same name for both; each does its own thing to it.
        bool dirs = pick(4) == 0;
        std::string name = dirs ? leaf() : file();
        for (Actor actor : {kA, kB}) {
          Op op = dirs ? dirOp(name) : fileOp(name);
          op.step = step, op.collision = true;
          ops_[actor].push_back(op);
        }
        n += 2;
        continue;
      }
      size_t r = pick(100);
      Actor actor = r < 45 ? kA : r < 75 ? kB : kServer;
      Op op = pick(5) == 0 ? dirOp(leaf()) : fileOp(file());
      op.step = step;
      ops_[actor].push_back(op);
      ++n;
    }
  }
  const std::vector<Op>& of(Actor actor) const { return ops_[actor]; }

 private:
  size_t pick(size_t n) { return std::uniform_int_distribution<size_t>(0, n - 1)(rng_); }
  std::string file() { return "d" + std::to_string(pick(kDirs)) + "/f" + std::to_string(pick(kFilesPerDir)); }
  std::string leaf() { return "d" + std::to_string(pick(kDirs)) + "/e" + std::to_string(pick(kLeavesPerDir)); }
  // Another name of the same pool, half of the time in the same directory.
  std::string otherThan(const std::string& path, bool isLeaf) {
    for (;;) {
      std::string candidate = isLeaf ? leaf() : file();
      if (pick(2) == 0) candidate = path.substr(0, path.find('/')) + candidate.substr(candidate.find('/'));
      if (candidate != path) return candidate;
    }
  }
  Op fileOp(const std::string& path) {
    Op op;
    op.path = path;
    size_t r = pick(100);
    op.kind = r < 22   ? OpKind::kCreate
              : r < 50 ? OpKind::kAppend
              : r < 64 ? OpKind::kChmod
              : r < 82 ? OpKind::kRename
                       : OpKind::kUnlink;
    if (op.kind == OpKind::kRename) op.target = otherThan(path, false);
    op.mode = pick(2) == 0 ? 0600 : 0644;
    op.bytes = 1 + pick(64);
    return op;
  }
  Op dirOp(const std::string& path) {
    Op op;
    op.path = path;
    size_t r = pick(3);
    op.kind = r == 0 ? OpKind::kMkdir : r == 1 ? OpKind::kRmdir : OpKind::kRenameDir;
    if (op.kind == OpKind::kRenameDir) op.target = otherThan(path, true);
    return op;
  }

  std::mt19937_64 rng_;
  std::array<std::vector<Op>, kActors> ops_;
};

// Applies `op` below `root`; 0 or the errno of the step that failed.
int apply(const std::string& root, const Op& op) {
  std::string path = root + "/" + op.path, target = root + "/" + op.target;
  auto writeTo = [&](int flags) {
    UniqueFd fd(::open(path.c_str(), flags | O_WRONLY | O_CLOEXEC, 0644));
    if (!fd) return errno;
    std::string data(op.bytes, 'x');
    if (::write(fd.get(), data.data(), data.size()) < 0) return errno;
    return ::close(fd.release()) == 0 ? 0 : errno;
  };
  if (op.kind == OpKind::kCreate) return writeTo(O_CREAT | O_EXCL);
  if (op.kind == OpKind::kAppend) return writeTo(O_APPEND);
  const char* p = path.c_str();
  int rc = op.kind == OpKind::kChmod    ? ::chmod(p, op.mode)
           : op.kind == OpKind::kUnlink ? ::unlink(p)
           : op.kind == OpKind::kMkdir  ? ::mkdir(p, 0755)
           : op.kind == OpKind::kRmdir  ? ::rmdir(p)
                                        : ::rename(p, target.c_str());
  return rc == 0 ? 0 : errno;
}

// Keeps the actors within kPacingWindow steps of each other, so that the
// server (microseconds per operation) really runs between A's and B's
// operations (a millisecond each over sshfs) instead of finishing first.
class Pacer {
 public:
  Pacer() { position_.fill(0); }
  // Waits until no other actor is more than the window behind `step`; false
  // at the deadline.
  bool waitTurn(Actor actor, size_t step, const Deadline& deadline) {
    std::unique_lock lock(mutex_);
    position_[actor] = step;
    changed_.notify_all();
    return changed_.wait_until(lock, deadline.at(), [&] {
      for (size_t other = 0; other < kActors; ++other) {
        if (other != actor && position_[other] + kPacingWindow < step) return false;
      }
      return true;
    });
  }
  void finish(Actor actor) {
    std::lock_guard lock(mutex_);
    position_[actor] = SIZE_MAX / 2;
    changed_.notify_all();
  }

 private:
  std::mutex mutex_;
  std::condition_variable changed_;
  std::array<size_t, kActors> position_;
};

struct Applied {
  Actor actor;
  const Op* op;
  int error;  // 0: it happened
  int64_t startUs, endUs;
};

struct RunResult {
  std::vector<Applied> log;  // every attempt, by start time
  std::array<size_t, kActors> done{}, failed{};
  double seconds = 0;
  bool finished = true;  // false: the deadline stopped it
};

// Runs the three actors on their threads until each has done its part.
RunResult runActors(const Schedule& schedule, const std::array<std::string, kActors>& roots) {
  Pacer pacer;
  std::barrier together(2);  // A and B, at each collision step
  std::array<std::vector<Applied>, kActors> logs;
  auto deadline = Deadline::in(std::chrono::seconds(600));
  auto start = Clock::now();
  auto sinceStart = [&] { return std::chrono::duration_cast<std::chrono::microseconds>(Clock::now() - start).count(); };
  std::atomic<bool> stopped{false};
  auto act = [&](Actor actor) {
    for (const Op& op : schedule.of(actor)) {
      if (stopped || !pacer.waitTurn(actor, op.step, deadline)) {
        stopped = true;
        break;
      }
      if (op.collision) together.arrive_and_wait();
      int64_t begin = sinceStart();
      int error = apply(roots[actor], op);
      logs[actor].push_back(Applied{actor, &op, error, begin, sinceStart()});
    }
    // A client that stops early must not leave the other waiting at a collision.
    if (actor != kServer) together.arrive_and_drop();
    pacer.finish(actor);
  };
  std::vector<std::thread> threads;
  for (size_t actor = 0; actor < kActors; ++actor) threads.emplace_back(act, static_cast<Actor>(actor));
  for (auto& t : threads) t.join();

  RunResult result;
  result.seconds = std::chrono::duration<double>(Clock::now() - start).count();
  result.finished = !stopped;
  for (size_t actor = 0; actor < kActors; ++actor) {
    for (const Applied& a : logs[actor]) ++(a.error == 0 ? result.done : result.failed)[actor];
    result.log.insert(result.log.end(), logs[actor].begin(), logs[actor].end());
  }
  std::sort(result.log.begin(), result.log.end(), [](auto& x, auto& y) { return x.startUs < y.startUs; });
  return result;
}

// The successful operations on `path` around its `k`-th structural change,
// in the order they ended: which interleaving led to a difference.
std::string opsAround(const RunResult& run, const std::string& path, size_t k) {
  std::vector<const Applied*> onPath;
  for (const Applied& a : run.log) {
    if (a.error == 0 && (a.op->path == path || a.op->target == path)) onPath.push_back(&a);
  }
  std::stable_sort(onPath.begin(), onPath.end(), [](auto* x, auto* y) { return x->endUs < y->endUs; });
  std::ostringstream out;
  size_t structural = 0;
  for (const Applied* a : onPath) {
    bool isStructural = structuralOn(*a->op, path);
    if (structural + 3 >= k && structural <= k + 3) {
      out << "    " << kActorNames[a->actor] << (a->op->collision ? "* " : "  ") << describe(*a->op) << "  ["
          << a->startUs << ".." << a->endUs << " us]\n";
    }
    if (isStructural) ++structural;
  }
  return out.str();
}

// The events before the barrier `end`, without events that directories made
// during the run report about themselves (empty name). Those come only from a
// watch on that directory, and whether a watcher has one depends on how fast
// it added it after the CREATE: the ATTRIB that a directory replaced by a
// rename gets is seen by one watcher and not by the other. `dropped` counts them.
std::vector<WatchedEvent> untilBarrier(const Watcher& watcher, size_t& dropped) {
  std::vector<WatchedEvent> events = watcher.events();
  auto end = std::find_if(events.begin(), events.end(), [](const WatchedEvent& e) { return e.path == "end"; });
  events.erase(end, events.end());
  auto self = std::remove_if(events.begin(), events.end(), [](const WatchedEvent& e) { return e.name.empty(); });
  dropped = static_cast<size_t>(events.end() - self);
  events.erase(self, events.end());
  return events;
}

// sshfs with its default options (libfuse's high-level API without
// hard_remove) renames a file unlinked while still open to .fuse_hiddenN and
// deletes that when the file is released. close() returns before the kernel's
// RELEASE is handled, so an unlink right after a write is often such a rename,
// and the DELETE of .fuse_hiddenN can come just after the barrier. It belongs
// to the run: awaited (at most 10 s for all) and added, for both watchers
// alike. (Without it, the oracle once counted one DELETE fewer than the
// unlinks that succeeded.)
//
// A hidden file whose DELETE has not come by then and that is still on the
// export was left behind by sshfs (libfuse's check of whether the file is
// still open races with its release): the unlink succeeded for the program,
// the file stays on the server, and no watcher can report a DELETE. Those
// are returned. (A CI run once waited 10 s in vain, for both watchers, and
// the oracle counted one DELETE fewer.) A pending name that is gone from the
// export is a lost event and stays missing.
bool isHidden(const WatchedEvent& e) { return e.name.rfind(".fuse_hidden", 0) == 0; }

std::set<std::string> addLateHiddenDeletes(const Watcher& watcher, std::vector<WatchedEvent>& events,
                                           const std::string& exportDir) {
  std::set<std::string> pending;  // by name: unique, and right even if the directory was renamed since
  for (const WatchedEvent& e : events) {
    if (!isHidden(e)) continue;
    if (e.flags.count("MOVED_TO") != 0) pending.insert(e.name);
    if (e.flags.count("DELETE") != 0) pending.erase(e.name);
  }
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  size_t scanned = 0;
  bool pastBarrier = false;
  while (!pending.empty()) {
    const std::vector<WatchedEvent> all = watcher.events();
    for (; scanned < all.size(); ++scanned) {
      const WatchedEvent& e = all[scanned];
      if (e.path == "end") pastBarrier = true;
      if (pastBarrier && e.flags.count("DELETE") != 0 && pending.erase(e.name) != 0) events.push_back(e);
    }
    if (pending.empty() || std::chrono::steady_clock::now() >= deadline) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));  // polling a condition, within the deadline
  }
  std::set<std::string> leftBehind;
  std::error_code ec;
  for (auto it = std::filesystem::recursive_directory_iterator(exportDir, ec);
       !ec && it != std::filesystem::recursive_directory_iterator(); it.increment(ec)) {
    const std::string name = it->path().filename();
    if (pending.count(name) != 0) leftBehind.insert(name);
  }
  return leftBehind;
}

// What the operations make of a hidden rename: the unlink's DELETE. The
// MOVED_FROM name / MOVED_TO .fuse_hiddenN pair (adjacent: one rename) is
// left out; the DELETE of .fuse_hiddenN stays, counted as the unlink's.
std::vector<WatchedEvent> withoutHiddenRenames(const std::vector<WatchedEvent>& events) {
  std::vector<WatchedEvent> out;
  for (const WatchedEvent& e : events) {
    if (isHidden(e) && e.flags.count("MOVED_TO") != 0) {
      if (!out.empty() && out.back().flags.count("MOVED_FROM") != 0) out.pop_back();
      continue;
    }
    out.push_back(e);
  }
  return out;
}

// The structural events the server must have reported for the operations
// that succeeded, by kind, and how many more it may have (`possible`): an
// operation through sshfs that failed may still have happened (a mkdir is
// followed by a lookup of the new name, which another actor may have removed
// by then: ENOENT; a rename was seen to fail with ENOENT and happen). Only
// EEXIST is sure to mean that nothing happened. A check of the oracle itself:
// inotifywait drops a queue overflow silently, and an event lost there would
// pass for a duplicate in A.
std::map<std::string, size_t> structuralEventsOf(const RunResult& run, std::map<std::string, size_t>& possible) {
  std::map<std::string, size_t> out;
  for (const Applied& a : run.log) {
    bool certain = a.error == 0;
    if (!certain && (a.actor == kServer || a.error == EEXIST)) continue;
    for (const std::string& kind : kOpKinds.at(a.op->kind).events) ++(certain ? out : possible)[kind];
  }
  return out;
}

// "" if the oracle's structural events fit the operations, else how not.
std::string checkOracle(const std::vector<WatchedEvent>& seenByServer, const RunResult& run, size_t leftBehind) {
  std::map<std::string, size_t> possible;
  std::map<std::string, size_t> expected = structuralEventsOf(run, possible);
  expected["DELETE"] -= std::min(leftBehind, expected["DELETE"]);  // see addLateHiddenDeletes
  std::map<std::string, size_t> seen = structuralCounts(seenByServer, {"start"});
  std::set<std::string> kinds;
  for (auto& [k, n] : expected) kinds.insert(k);
  for (auto& [k, n] : seen) kinds.insert(k);
  std::string out;
  for (const std::string& k : kinds) {
    if (seen[k] < expected[k] || seen[k] > expected[k] + possible[k]) {
      out += "  " + k + ": the oracle saw " + std::to_string(seen[k]) + ", the operations that succeeded make " +
             std::to_string(expected[k]) + " (+ up to " + std::to_string(possible[k]) + ")\n";
    }
  }
  return out;
}

size_t countOr(const char* variable, size_t fallback) {
  const char* value = std::getenv(variable);
  return value != nullptr && *value != '\0' ? std::strtoull(value, nullptr, 10) : fallback;
}

// One seed for every mode of a run, so that the modes face the same schedule.
uint64_t seedFromEnvironment() {
  static const uint64_t seed = [] {
    const char* value = std::getenv("RNOTIFY_TEST_SEED");
    return value != nullptr && *value != '\0' ? std::strtoull(value, nullptr, 10) : std::random_device{}();
  }();
  return seed;
}

struct ModeReport {
  RunResult run;
  HistoryComparison comparison;
  size_t serverEvents = 0, aEvents = 0;                        // raw, before collapsing
  size_t serverSelfEvents = 0, aSelfEvents = 0;                // left out, see untilBarrier
  size_t hiddenLeftBehind = 0;                                 // see addLateHiddenDeletes
  std::map<std::string, std::vector<std::string>> aAnnotated;  // see annotatedHistoryOf
  HistoryComparison remoteOnly;                                // A's REMOTE events alone against the oracle
};

class DedupRandomTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (auto why = SshfsBed::missing(); !why.empty()) GTEST_SKIP() << why;
    if (auto why = missingProduct(); !why.empty()) GTEST_SKIP() << why;
    const char* agentArgs = std::getenv("RNOTIFY_TEST_AGENT_ARGS");
    if (agentArgs != nullptr && std::string(agentArgs).find("--watcher fanotify") != std::string::npos) {
      GTEST_SKIP() << "the fanotify backend merges a process's unread events on one entry, so the per-name order "
                      "this test compares with inotifywait is not kept (docs/ARCHITECTURE.md, which backend)";
    }
    bed_ = std::make_unique<SshfsBed>();
    for (int d = 0; d < kDirs; ++d) ASSERT_EQ(::mkdir(bed_->server("d" + std::to_string(d)).c_str(), 0755), 0);
    seed_ = seedFromEnvironment();
    ops_ = countOr("RNOTIFY_DEDUP_OPS", kDefaultOps);
  }
  void TearDown() override {
    if (HasFailure()) {
      std::cerr << "seed: repeat with RNOTIFY_TEST_SEED=" << seed_ << " RNOTIFY_DEDUP_OPS=" << ops_ << "\n";
      if (bed_) std::cerr << "--- the bed:\n" << bed_->transcript();
    }
  }

  // One run with A's rnotifywait in `mode`; the comparison and the counts.
  ModeReport run(const std::string& mode) {
    std::vector<std::string> args = {"-r"};
    args.insert(args.end(), kEvents.begin(), kEvents.end());
    WatcherOptions a = bed_->watchA(args);
    a.env["RNOTIFY_DEDUP"] = mode;
    if (mode == "off") a.env["RNOTIFY_ECHO_WINDOW_MS"] = "0";
    // The agent's debug log would be a line per event, for tens of thousands.
    a.env["RNOTIFY_LOG_LEVEL"] = "info";
    Watcher watcherA(a);
    WatcherOptions o;
    o.program = "inotifywait";
    o.args = args;
    o.path = bed_->exportDir();
    o.cookie = false;
    Watcher oracle(o);
    ModeReport report;
    EXPECT_TRUE(watcherA.established());
    EXPECT_TRUE(oracle.established());
    // The remote half of A's watch is live once a server-side change reaches it.
    writeFile(bed_->server("start"), "x\n");
    EXPECT_TRUE(watcherA.expectSequence({{"CLOSE_WRITE", "start"}}, std::chrono::seconds(20)));
    EXPECT_TRUE(oracle.expectSequence({{"CLOSE_WRITE", "start"}}, std::chrono::seconds(20)));
    if (HasFailure()) return report;

    Schedule schedule(seed_, ops_);
    report.run = runActors(schedule, {bed_->mountA().path(), bed_->mountB().path(), bed_->exportDir()});
    EXPECT_TRUE(report.run.finished) << "the actors did not finish in time";
    // The barrier: made on the server after every actor is done, so it comes
    // after every event of the run on both sides.
    writeFile(bed_->server("end"), "x\n");
    EXPECT_TRUE(watcherA.expectSequence({{"CLOSE_WRITE", "end"}}, std::chrono::seconds(120)))
        << watcherA.stderrLines().size() << " stderr lines";
    EXPECT_TRUE(oracle.expectSequence({{"CLOSE_WRITE", "end"}}, std::chrono::seconds(120)));

    std::vector<WatchedEvent> seenByA = untilBarrier(watcherA, report.aSelfEvents);
    std::vector<WatchedEvent> seenByServer = untilBarrier(oracle, report.serverSelfEvents);
    addLateHiddenDeletes(watcherA, seenByA, bed_->exportDir());
    report.hiddenLeftBehind = addLateHiddenDeletes(oracle, seenByServer, bed_->exportDir()).size();
    report.aEvents = seenByA.size();
    report.serverEvents = seenByServer.size();
    if (const char* dir = std::getenv("RNOTIFY_DEDUP_DUMP"); dir != nullptr && *dir != '\0') {
      dump(std::string(dir) + "/" + mode, watcherA, oracle, report.run);
    }
    std::string oracleMismatch = checkOracle(withoutHiddenRenames(seenByServer), report.run, report.hiddenLeftBehind);
    EXPECT_EQ(oracleMismatch, "") << "the oracle does not match the operations that were applied (lost events?)";
    report.comparison = compareHistories(historyOf(seenByServer, {"start"}), historyOf(seenByA, {"start"}));
    std::vector<WatchedEvent> remote;
    std::copy_if(seenByA.begin(), seenByA.end(), std::back_inserter(remote),
                 [](const WatchedEvent& e) { return e.flags.count("REMOTE") != 0; });
    report.remoteOnly = compareHistories(historyOf(seenByServer, {"start"}), historyOf(remote, {"start"}));
    if (!report.comparison.clean()) report.aAnnotated = annotatedHistoryOf(seenByA, {"start"});
    print(mode, report);
    for (const std::string& line : watcherA.stderrLines()) {
      if (line.find("lost") != std::string::npos || line.find("overflow") != std::string::npos) {
        ADD_FAILURE() << "rnotifywait reported a gap: " << line;
      }
    }
    return report;
  }

  // Everything both watchers printed and every operation, for a closer look.
  static void dump(const std::string& prefix, const Watcher& a, const Watcher& oracle, const RunResult& run) {
    std::string lines;
    for (const WatchedEvent& e : a.events()) lines += e.line + "\n";
    writeFile(prefix + "-a.txt", lines);
    lines.clear();
    for (const WatchedEvent& e : oracle.events()) lines += e.line + "\n";
    writeFile(prefix + "-server.txt", lines);
    std::ostringstream ops;
    for (const Applied& x : run.log) {
      ops << x.startUs << " " << x.endUs << " " << kActorNames[x.actor] << (x.op->collision ? "* " : "  ")
          << describe(*x.op) << " -> " << (x.error == 0 ? "ok" : std::strerror(x.error)) << "\n";
    }
    writeFile(prefix + "-ops.txt", ops.str());
  }

  void print(const std::string& mode, const ModeReport& r) {
    const RunResult& run = r.run;
    std::cout << "[dedup " << mode << "] seed " << seed_ << ": " << ops_ << " ops in " << run.seconds
              << " s; applied A " << run.done[kA] << " B " << run.done[kB] << " S " << run.done[kServer]
              << " (failed A " << run.failed[kA] << " B " << run.failed[kB] << " S " << run.failed[kServer]
              << "); server events " << r.serverEvents << ", A events " << r.aEvents
              << " (directories' own events left out: server " << r.serverSelfEvents << ", A " << r.aSelfEvents
              << "); duplicates " << r.comparison.duplicates << ", missing " << r.comparison.missing
              << ", order violations " << r.comparison.misordered;
    if (r.hiddenLeftBehind > 0) std::cout << "; files sshfs left behind as .fuse_hidden " << r.hiddenLeftBehind;
    std::cout << "\n";
    if (r.comparison.clean()) return;
    std::cout << r.comparison.describe(mode == "off" ? 1 : 8);
    if (mode == "off") return;
    for (size_t k = 0; k < r.comparison.differences.size() && k < 8; ++k) {
      const PathDifference& d = r.comparison.differences[k];
      size_t structural = 0;
      for (size_t i = 0; i < d.firstDivergence && i < d.expected.size(); ++i) structural += !collapsible(d.expected[i]);
      std::cout << "  what A saw of '" << d.path << "' from its event " << d.firstDivergenceActual << " on:\n";
      static const std::vector<std::string> kNone;
      auto found = r.aAnnotated.find(d.path);
      const auto& annotated = found == r.aAnnotated.end() ? kNone : found->second;
      for (size_t i = d.firstDivergenceActual > 2 ? d.firstDivergenceActual - 2 : 0;
           i < annotated.size() && i < d.firstDivergenceActual + 8; ++i) {
        std::cout << "    " << annotated[i] << "\n";
      }
      std::cout << "  successful operations on '" << d.path << "' around its structural change " << structural
                << " (* = collision step, times from the start of the run):\n"
                << opsAround(run, d.path, structural);
    }
  }

  std::unique_ptr<SshfsBed> bed_;
  uint64_t seed_ = 0;
  size_t ops_ = 0;
};

class DedupModeTest : public DedupRandomTest, public ::testing::WithParamInterface<std::string> {};

// The oracle's own noise: the kernel hands an event to each inotify instance
// in turn, so two processes acting on one name in the same microsecond can be
// queued in one order for rnotifyd's instance and in the other for
// inotifywait's. Measured: 0 differences in most 20k-operation runs, 1-3 now
// and then, even with de-duplication off (A's REMOTE events alone against
// the oracle; one swap counts as 2 misordered, or 1 missing + 1 misordered).
// Real de-duplication faults have shown as 5 to thousands per run.
// RNOTIFY_DEDUP_TOLERANCE=0 makes every run strict.
size_t tolerance() {
  const char* env = std::getenv("RNOTIFY_DEDUP_TOLERANCE");
  return env != nullptr ? std::strtoul(env, nullptr, 10) : 4;
}

TEST_P(DedupModeTest, EveryChangeIsReportedOnceAndInOrder) {
  ModeReport r = run(GetParam());
  EXPECT_GT(r.run.done[kA], 0u);
  EXPECT_GT(r.serverEvents, 0u);
  const size_t differences = r.comparison.duplicates + r.comparison.missing + r.comparison.misordered;
  EXPECT_LE(differences, tolerance()) << "duplicates " << r.comparison.duplicates << ", missing "
                                      << r.comparison.missing << ", misordered " << r.comparison.misordered;
  if (differences > 0) {
    std::cout << "[dedup " << GetParam() << "] " << differences
              << " difference(s) within the oracle's tolerance (see above)\n";
  }
}

INSTANTIATE_TEST_SUITE_P(Modes, DedupModeTest, ::testing::Values("auto", "origin", "state", "echo"),
                         [](const auto& info) { return info.param; });

// The negative control: without de-duplication A's own changes come twice,
// and this test sees it.
TEST_F(DedupRandomTest, WithoutDeduplicationDuplicatesAreSeen) {
  ModeReport r = run("off");
  EXPECT_GT(r.run.done[kA], 0u);
  EXPECT_GT(r.comparison.duplicates, 0u);
  EXPECT_LE(r.comparison.missing, tolerance()) << "with nothing suppressed, nothing may be missing";
  // Nothing is filtered anywhere, so what came from the server is exactly
  // what the server's kernel reported: a failure here is in rnotifyd or the
  // stream, not in de-duplication.
  EXPECT_LE(r.remoteOnly.duplicates + r.remoteOnly.missing + r.remoteOnly.misordered, tolerance())
      << "A's REMOTE events against the oracle: " << r.remoteOnly.describe(8);
}

}  // namespace
}  // namespace rnotify::testbed
