// The client core keeps one connection per server and shares it between the
// watches it serves. When that connection dies, every watch it served must
// learn it (IN_Q_OVERFLOW, then the server's events again once reconnected),
// however the death is noticed: by a read, or by a write that fails while
// another watch is being removed, before the next read. Getting it back
// never holds up the application: a reconnection attempt to a server that
// does not answer runs in the handle's epoll set, not inside rnotify_next().
//
// Through the C API in this process, on client A's sshfs mount (loopback
// topology: the client's ssh runs in this process's network namespace).
#include <gtest/gtest.h>
#include <poll.h>
#include <signal.h>
#include <sys/inotify.h>

#include <chrono>
#include <filesystem>
#include <optional>
#include <set>
#include <string>

#include "common/read_file.h"
#include "process.h"
#include "product.h"
#include "rnotify/rnotify.h"
#include "sshfs_bed.h"
#include "temp_dir.h"

namespace rnotify::testbed {
namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

// The state letter of /proc/PID/stat ('Z' once it has exited), '?' if gone.
char stateOf(pid_t pid) {
  auto stat = readProcStat(pid);
  return stat ? stat->state : '?';
}

// The ssh processes this process started (the agent connections); sshfs's own
// ssh processes are reparented away and not found.
std::vector<pid_t> ownSsh() {
  std::vector<pid_t> found;
  for (pid_t pid : descendantsOf(::getpid())) {
    auto comm = rnotify::readFile("/proc/" + std::to_string(pid) + "/comm");
    if (comm.ok() && comm->rfind("ssh\n", 0) == 0 && stateOf(pid) != 'Z') found.push_back(pid);
  }
  return found;
}

class ClientConnectionReuse : public ::testing::Test {
 protected:
  void SetUp() override {
    if (auto why = SshfsBed::missing(); !why.empty()) GTEST_SKIP() << why;
    if (auto why = missingProduct(); !why.empty()) GTEST_SKIP() << why;
    SshfsBedOptions options;
    options.useNetns = false;
    options.withMountB = false;
    bed_ = std::make_unique<SshfsBed>(options);
    for (const char* d : {"a", "b", "c"}) fs::create_directory(bed_->server(d));
    ::setenv("RNOTIFY_AGENT", agentCommand().c_str(), 1);  // the agent just built
    rn_ = rnotify_init(RNOTIFY_CLOEXEC);
    ASSERT_NE(rn_, nullptr);
  }
  void TearDown() override {
    if (rn_) rnotify_close(rn_);
  }
  int watch(const std::string& rel) {
    int wd = rnotify_add_watch(rn_, bed_->a(rel).c_str(), IN_CREATE | IN_CLOSE_WRITE, 0);
    EXPECT_GT(wd, 0) << rnotify_last_error(rn_);
    return wd;
  }
  // The first event of wd with a bit of mask (and name, unless empty) within
  // timeout; false if none.
  bool waitFor(int wd, uint32_t mask, const std::string& name, std::chrono::seconds timeout) {
    const auto deadline = Clock::now() + timeout;
    while (Clock::now() < deadline) {
      rnotify_event ev;
      const int left =
          static_cast<int>(std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count());
      if (rnotify_next(rn_, &ev, left > 0 ? left : 0) != 1) continue;
      if (ev.wd == wd && (ev.mask & mask) && (name.empty() || name == ev.name)) return true;
    }
    return false;
  }
  // One turn of an application's loop: wait on the handle's descriptor
  // (50 ms at most), then take what is there without waiting. Counts the
  // calls and keeps the slowest's duration.
  template <typename OnEvent>
  void turn(OnEvent&& onEvent) {
    struct pollfd p = {rnotify_fd(rn_), POLLIN, 0};
    ::poll(&p, 1, 50);
    for (;;) {
      rnotify_event ev;
      const auto before = Clock::now();
      const int r = rnotify_next(rn_, &ev, 0);
      slowestUs_ = std::max<long>(slowestUs_,
                                  std::chrono::duration_cast<std::chrono::microseconds>(Clock::now() - before).count());
      ++calls_;
      if (r != 1) break;
      onEvent(ev);
    }
  }
  std::unique_ptr<SshfsBed> bed_;
  rnotify_t* rn_ = nullptr;
  long slowestUs_ = 0;
  int calls_ = 0;
};

TEST_F(ClientConnectionReuse, AConnectionFoundDeadByAWriteIsLostForEveryWatchItServed) {
  const int a = watch("a"), b = watch("b");
  ASSERT_GT(a, 0);
  ASSERT_GT(b, 0);
  writeFile(bed_->server("b/first"), "x\n");
  ASSERT_TRUE(waitFor(b, IN_CREATE, "first", std::chrono::seconds(10))) << "no remote event before the loss";
  const std::string served = rnotify_watch_source(rn_, b);
  ASSERT_NE(served.find("rnotifyd"), std::string::npos) << "b is not served by the agent: " << served;

  // The agent's ssh dies; nothing reads the connection before the next calls.
  std::vector<pid_t> ssh = ownSsh();
  ASSERT_EQ(ssh.size(), 1u) << "expected one agent connection";
  ASSERT_EQ(::kill(ssh[0], SIGKILL), 0);
  const auto deadline = Clock::now() + std::chrono::seconds(5);
  while (stateOf(ssh[0]) != 'Z' && Clock::now() < deadline) ::poll(nullptr, 0, 10);
  ASSERT_EQ(stateOf(ssh[0]), 'Z');

  // Removing a: its Unwatch is written into the dead pipe. Then c needs the
  // same server: a new connection.
  ASSERT_EQ(rnotify_rm_watch(rn_, a), 0) << rnotify_last_error(rn_);
  const int c = watch("c");
  ASSERT_GT(c, 0);

  // b was served by the dead connection: it is told (never silence) ...
  EXPECT_TRUE(waitFor(b, IN_Q_OVERFLOW, "", std::chrono::seconds(10)))
      << "the watch served by the dead connection was not told; it says: " << rnotify_watch_source(rn_, b);
  // ... and served again: the server's changes in b and in c arrive.
  const auto until = Clock::now() + std::chrono::seconds(20);
  bool bSeen = false, cSeen = false;
  for (int i = 0; Clock::now() < until && !(bSeen && cSeen); ++i) {
    const std::string n = "again" + std::to_string(i);
    if (!bSeen) writeFile(bed_->server("b/" + n), "x\n");
    if (!cSeen) writeFile(bed_->server("c/" + n), "x\n");
    for (auto stop = Clock::now() + std::chrono::seconds(1); Clock::now() < stop;) {
      rnotify_event ev;
      if (rnotify_next(rn_, &ev, 100) != 1) continue;
      if (!(ev.mask & IN_REMOTE) || !(ev.mask & IN_CREATE)) continue;
      bSeen |= ev.wd == b;
      cSeen |= ev.wd == c;
    }
  }
  EXPECT_TRUE(bSeen) << "b never got the server's events again: " << rnotify_watch_source(rn_, b);
  EXPECT_TRUE(cSeen) << "c never got the server's events: " << rnotify_watch_source(rn_, c);
  EXPECT_EQ(rnotify_rm_watch(rn_, b), 0) << rnotify_last_error(rn_);
}

// Stops a process for the scope (SIGSTOP), then lets it go on (SIGCONT).
class Stopped {
 public:
  explicit Stopped(pid_t pid) : pid_(pid) { ::kill(pid_, SIGSTOP); }
  ~Stopped() { ::kill(pid_, SIGCONT); }

 private:
  pid_t pid_;
};

TEST_F(ClientConnectionReuse, AReconnectionToAServerThatDoesNotAnswerNeverBlocksTheApplication) {
  const int a = watch("a");
  ASSERT_GT(a, 0);
  writeFile(bed_->server("a/first"), "x\n");
  ASSERT_TRUE(waitFor(a, IN_CREATE, "first", std::chrono::seconds(10))) << "no remote event before the loss";

  // sshd's listener stops answering: a new ssh connection is accepted by the
  // kernel and then hears nothing (ssh gives up after its ConnectTimeout, 5 s).
  // The sshfs mount's own session, a child of the listener, goes on.
  std::vector<pid_t> ssh = ownSsh();
  ASSERT_EQ(ssh.size(), 1u) << "expected one agent connection";
  std::optional<Stopped> frozen(bed_->sshd().pid());
  ASSERT_EQ(::kill(ssh[0], SIGKILL), 0);

  // The application's loop: wait on the handle's descriptor, take what is
  // there without waiting. While attempts hang, local events flow and no
  // call waits for the server.
  bool lost = false, attempted = false, localSeen = false;
  const auto until = Clock::now() + std::chrono::seconds(9);
  while (Clock::now() < until) {
    turn([&](const rnotify_event& ev) {
      lost |= ev.wd == a && (ev.mask & IN_Q_OVERFLOW);
      localSeen |= ev.wd == a && !(ev.mask & IN_REMOTE) && (ev.mask & IN_CREATE) && std::string(ev.name) == "local";
    });
    if (!attempted) {
      for (pid_t pid : ownSsh()) attempted |= pid != ssh[0];
      // An attempt hangs now: what this host does must still be reported.
      if (attempted && lost) writeFile(bed_->a("a/local"), "made here during the attempt\n");
    }
  }
  EXPECT_TRUE(lost) << "the loss was not reported";
  EXPECT_TRUE(attempted) << "no reconnection was attempted";
  EXPECT_TRUE(localSeen) << "this host's change was not reported while the attempt hung";
  // The old client waited in rnotify_next() for each attempt, up to 5 s.
  EXPECT_LT(slowestUs_, 1000000) << "one rnotify_next(..., 0) call took " << slowestUs_ << " us (of " << calls_ << ")";
  std::printf("%d calls of rnotify_next(..., 0) while the server did not answer; the slowest took %ld us\n", calls_,
              slowestUs_);

  // The server answers again: the watch is served by it again.
  frozen.reset();
  bool back = false;
  for (int i = 0; i < 40 && !back; ++i) {
    writeFile(bed_->server("a/again" + std::to_string(i)), "x\n");
    for (auto stop = Clock::now() + std::chrono::seconds(1); Clock::now() < stop && !back;) {
      rnotify_event ev;
      if (rnotify_next(rn_, &ev, 100) != 1) continue;
      back = ev.wd == a && (ev.mask & IN_REMOTE) && (ev.mask & IN_CREATE);
    }
  }
  EXPECT_TRUE(back) << "the server's events never came back: " << rnotify_watch_source(rn_, a);
}

// RNOTIFY_NONBLOCK: the first watch on a server that does not answer returns
// at once; this host's changes are reported meanwhile, and the server takes
// the watch (IN_RESTORED | IN_REMOTE) once it answers.
TEST_F(ClientConnectionReuse, ANonblockingFirstWatchReturnsBeforeTheServerAnswers) {
  // The mount's own session is up (its first request answered) before the
  // listener stops; the agent's connection is not made yet.
  ASSERT_TRUE(fs::is_directory(bed_->a("a")));
  std::optional<Stopped> frozen(bed_->sshd().pid());
  const int a = rnotify_add_watch(rn_, bed_->a("a").c_str(), IN_CREATE | IN_CLOSE_WRITE, RNOTIFY_NONBLOCK);
  ASSERT_GT(a, 0) << rnotify_last_error(rn_);
  // A waiting add would have returned only once ssh gave up (5 s), polling.
  EXPECT_EQ(std::string(rnotify_watch_source(rn_, a)).rfind(RNOTIFY_SOURCE_CONNECTING, 0), 0u)
      << rnotify_watch_source(rn_, a);

  bool attempted = false, localSeen = false, restored = false;
  const auto until = Clock::now() + std::chrono::seconds(3);
  while (Clock::now() < until && !localSeen) {
    turn([&](const rnotify_event& ev) {
      restored |= ev.wd == a && (ev.mask & IN_RESTORED);
      localSeen |= ev.wd == a && !(ev.mask & IN_REMOTE) && (ev.mask & IN_CREATE) && std::string(ev.name) == "local";
    });
    if (!attempted) {
      attempted = !ownSsh().empty();
      if (attempted) writeFile(bed_->a("a/local"), "made here while the server is silent\n");
    }
  }
  EXPECT_TRUE(attempted) << "no connection was attempted";
  EXPECT_TRUE(localSeen) << "this host's change was not reported while the server was silent";
  EXPECT_FALSE(restored) << "the watch was announced as taken by a server that never answered";
  EXPECT_LT(slowestUs_, 1000000) << "one rnotify_next(..., 0) call took " << slowestUs_ << " us";

  // The server answers: the waiting attempt goes on, the watch is taken and
  // announced, and the server's changes are reported from then on.
  frozen.reset();
  EXPECT_TRUE(waitFor(a, IN_RESTORED, "", std::chrono::seconds(20)))
      << "the server never took the watch: " << rnotify_watch_source(rn_, a);
  writeFile(bed_->server("a/theirs"), "x\n");
  EXPECT_TRUE(waitFor(a, IN_CREATE, "theirs", std::chrono::seconds(10)))
      << "the server's change was not reported: " << rnotify_watch_source(rn_, a);
  EXPECT_NE(std::string(rnotify_watch_source(rn_, a)).find("rnotifyd over ssh"), std::string::npos)
      << rnotify_watch_source(rn_, a);
}

// A first connection whose ssh cannot reach the server: the watch falls
// back to scans of the mount, without trying SFTP (which goes over ssh too
// and would wait as long again).
TEST_F(ClientConnectionReuse, ANonblockingWatchWhoseSshCannotConnectScansTheMount) {
  ASSERT_TRUE(fs::is_directory(bed_->a("a")));  // the mount's own session is up
  std::optional<Stopped> frozen(bed_->sshd().pid());
  const int a = rnotify_add_watch(rn_, bed_->a("a").c_str(), IN_CREATE, RNOTIFY_NONBLOCK);
  ASSERT_GT(a, 0) << rnotify_last_error(rn_);
  auto settled = [&] { return std::string(rnotify_watch_source(rn_, a)).rfind(RNOTIFY_SOURCE_CONNECTING, 0) != 0; };
  // ssh gives up after its ConnectTimeout (5 s); SFTP would have taken 20 s more.
  for (auto until = Clock::now() + std::chrono::seconds(15); !settled() && Clock::now() < until;) {
    rnotify_event ev;
    rnotify_next(rn_, &ev, 100);
  }
  const std::string source = rnotify_watch_source(rn_, a);
  EXPECT_TRUE(settled()) << source;
  EXPECT_NE(source.find("SFTP scans: not tried, ssh cannot reach"), std::string::npos) << source;
  EXPECT_NE(source.find("scans of the mount"), std::string::npos) << source;
}

// Watches added while a server's first connection is under way join it:
// one connection, every watch taken and announced; also when the watch that
// started the connection was removed before it was made.
TEST_F(ClientConnectionReuse, WatchesAddedWhileTheFirstConnectionIsUnderWayShareIt) {
  const int starter = rnotify_add_watch(rn_, bed_->a("a").c_str(), IN_CREATE, RNOTIFY_NONBLOCK);
  ASSERT_GT(starter, 0) << rnotify_last_error(rn_);
  ASSERT_EQ(rnotify_rm_watch(rn_, starter), 0) << rnotify_last_error(rn_);
  const int a = rnotify_add_watch(rn_, bed_->a("a").c_str(), IN_CREATE, RNOTIFY_NONBLOCK);
  const int b = rnotify_add_watch(rn_, bed_->a("b").c_str(), IN_CREATE, RNOTIFY_NONBLOCK);
  const int c = rnotify_add_watch(rn_, bed_->a("c").c_str(), IN_CREATE, 0);  // joins without waiting
  ASSERT_GT(a, 0);
  ASSERT_GT(b, 0);
  ASSERT_GT(c, 0) << rnotify_last_error(rn_);
  for (int wd : {a, b, c}) {
    EXPECT_EQ(std::string(rnotify_watch_source(rn_, wd)).rfind(RNOTIFY_SOURCE_CONNECTING, 0), 0u)
        << "watch " << wd << " did not join the connection under way: " << rnotify_watch_source(rn_, wd);
  }
  std::set<int> restored;
  for (auto until = Clock::now() + std::chrono::seconds(20); restored.size() < 3 && Clock::now() < until;) {
    rnotify_event ev;
    if (rnotify_next(rn_, &ev, 100) == 1 && (ev.mask & IN_RESTORED) && (ev.mask & IN_REMOTE)) restored.insert(ev.wd);
  }
  EXPECT_EQ(restored, (std::set<int>{a, b, c}));
  EXPECT_EQ(ownSsh().size(), 1u) << "one connection to the server, shared";
  for (const char* d : {"a", "b", "c"}) writeFile(bed_->server(std::string(d) + "/theirs"), "x\n");
  for (int wd : {a, b, c}) {
    EXPECT_TRUE(waitFor(wd, IN_CREATE, "theirs", std::chrono::seconds(10)))
        << "watch " << wd << ": " << rnotify_watch_source(rn_, wd);
  }
}

// RNOTIFY_NONBLOCK on a server already connected that has stopped answering
// (its rnotifyd frozen: the connection stands, nothing comes back): the
// call returns at once, and neither it nor rnotify_next() waits for the
// server's answer; once the server answers, the watch is taken
// (IN_RESTORED | IN_REMOTE) and the server's changes are reported. Before,
// the watch request was made inside the call, which waited for the answer
// (up to 3 x RNOTIFY_CONNECT_TIMEOUT_MS, 60 s by default).
TEST_F(ClientConnectionReuse, ANonblockingWatchOnAServerThatStoppedAnsweringReturnsAtOnce) {
  const int a = watch("a");
  ASSERT_GT(a, 0);
  writeFile(bed_->server("a/first"), "x\n");
  ASSERT_TRUE(waitFor(a, IN_CREATE, "first", std::chrono::seconds(10))) << "no remote event before the freeze";
  std::vector<pid_t> daemons = bed_->sshd().agentDaemons();
  ASSERT_EQ(daemons.size(), 1u) << "expected one rnotifyd daemon serving this process";
  std::optional<Stopped> frozen(daemons[0]);

  const auto before = Clock::now();
  const int b = rnotify_add_watch(rn_, bed_->a("b").c_str(), IN_CREATE | IN_CLOSE_WRITE, RNOTIFY_NONBLOCK);
  const long addMs = std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - before).count();
  ASSERT_GT(b, 0) << rnotify_last_error(rn_);
  EXPECT_LT(addMs, 1000) << "rnotify_add_watch(RNOTIFY_NONBLOCK) waited for a server that does not answer";
  EXPECT_EQ(std::string(rnotify_watch_source(rn_, b)).rfind(RNOTIFY_SOURCE_CONNECTING, 0), 0u)
      << rnotify_watch_source(rn_, b);

  // The application's loop while the server is frozen (well under the
  // keepalive's 6 s, after which the connection would be given up): this
  // host's change is reported, no call waits.
  writeFile(bed_->a("b/local"), "made here\n");
  bool localSeen = false, early = false;
  for (auto until = Clock::now() + std::chrono::seconds(2); Clock::now() < until && !localSeen;) {
    turn([&](const rnotify_event& ev) {
      localSeen |= ev.wd == b && !(ev.mask & IN_REMOTE) && (ev.mask & IN_CREATE) && std::string(ev.name) == "local";
      early |= ev.wd == b && (ev.mask & IN_RESTORED);
    });
  }
  EXPECT_TRUE(localSeen) << "this host's change was not reported while the server was frozen";
  EXPECT_FALSE(early) << "IN_RESTORED before the server answered";
  EXPECT_LT(slowestUs_, 1000000) << "one rnotify_next(..., 0) call took " << slowestUs_ << " us (of " << calls_ << ")";
  std::printf("add: %ld ms; %d calls of rnotify_next(..., 0) while the server was frozen, the slowest %ld us\n", addMs,
              calls_, slowestUs_);

  frozen.reset();
  EXPECT_TRUE(waitFor(b, IN_RESTORED, "", std::chrono::seconds(10)))
      << "the server never took the watch: " << rnotify_watch_source(rn_, b);
  writeFile(bed_->server("b/theirs"), "x\n");
  EXPECT_TRUE(waitFor(b, IN_CREATE, "theirs", std::chrono::seconds(10))) << rnotify_watch_source(rn_, b);
  EXPECT_EQ(ownSsh().size(), 1u) << "the same connection serves both watches";
}

// A watch its server does not take for a passing reason (here the server's
// limit of watches per client, ENOSPC) while the connection stays up: it
// falls back, and is asked for again after a backoff on the same
// connection; once the server has room, the server's events replace the
// fallback. Before, it stayed on the fallback until a reconnection.
TEST_F(ClientConnectionReuse, AWatchTheServerHadNoRoomForIsTakenOnceItHas) {
  ::setenv("RNOTIFY_AGENT", (agentCommand() + " --max-watches-per-client 1").c_str(), 1);
  const int a = watch("a");
  ASSERT_GT(a, 0);
  const int b = rnotify_add_watch(rn_, bed_->a("b").c_str(), IN_CREATE | IN_CLOSE_WRITE, RNOTIFY_NONBLOCK);
  ASSERT_GT(b, 0) << rnotify_last_error(rn_);
  const std::string served = "rnotifyd over ssh";
  auto source = [&] { return std::string(rnotify_watch_source(rn_, b)); };
  for (auto until = Clock::now() + std::chrono::seconds(10);
       source().rfind(RNOTIFY_SOURCE_CONNECTING, 0) == 0 && Clock::now() < until;) {
    turn([](const rnotify_event&) {});
  }
  const std::string fallback = source();
  EXPECT_EQ(fallback.rfind(RNOTIFY_SOURCE_CONNECTING, 0), std::string::npos) << "never answered: " << fallback;
  EXPECT_EQ(fallback.rfind(served, 0), std::string::npos) << "taken past the server's limit: " << fallback;

  // The server has room again: the watch is taken without a reconnection.
  ASSERT_EQ(rnotify_rm_watch(rn_, a), 0) << rnotify_last_error(rn_);
  bool restored = false;
  for (auto until = Clock::now() + std::chrono::seconds(15); !restored && Clock::now() < until;) {
    turn([&](const rnotify_event& ev) { restored |= ev.wd == b && (ev.mask & IN_RESTORED) && (ev.mask & IN_REMOTE); });
  }
  EXPECT_TRUE(restored) << "no IN_RESTORED | IN_REMOTE when the server took the watch: " << source();
  ASSERT_EQ(source().rfind(served, 0), 0u) << "still not served by the server: " << source();
  writeFile(bed_->server("b/theirs"), "x\n");
  bool remote = false;
  for (auto until = Clock::now() + std::chrono::seconds(10); !remote && Clock::now() < until;) {
    turn([&](const rnotify_event& ev) {
      remote |= ev.wd == b && (ev.mask & IN_CREATE) && (ev.mask & IN_REMOTE) && !(ev.mask & IN_POLLED) &&
                std::string(ev.name) == "theirs";
    });
  }
  EXPECT_TRUE(remote) << "the server's change did not come from the server: " << source();
  EXPECT_EQ(ownSsh().size(), 1u) << "the same connection, not a new one";
}

// Removing many watches while ssh reads nothing (stopped): their Unwatch
// requests fill ssh's pipe (64 KiB) and the rest wait in the connection for
// the handle's epoll set to find room. Before, the write to ssh's stdin was
// a blocking one: rnotify_rm_watch() hung for as long as ssh read nothing.
// Once ssh reads again, the same connection goes on.
TEST_F(ClientConnectionReuse, RemovingWatchesWhileSshReadsNothingNeverWaitsForIt) {
  const int a = watch("a");
  ASSERT_GT(a, 0);
  constexpr int kMany = 6000;  // Unwatch frames of 13 bytes: more than the pipe holds
  fs::create_directory(bed_->server("many"));
  for (int i = 0; i < kMany; ++i) fs::create_directory(bed_->server("many/d" + std::to_string(i)));
  std::vector<int> many;
  for (int i = 0; i < kMany; ++i) {
    const int wd = rnotify_add_watch(rn_, bed_->a("many/d" + std::to_string(i)).c_str(), IN_CREATE, 0);
    ASSERT_GT(wd, 0) << rnotify_last_error(rn_);
    many.push_back(wd);
  }
  ASSERT_NE(std::string(rnotify_watch_source(rn_, many.back())).find("rnotifyd"), std::string::npos)
      << rnotify_watch_source(rn_, many.back());
  const std::vector<pid_t> ssh = ownSsh();
  ASSERT_EQ(ssh.size(), 1u);

  bool overflow = false;
  auto onEvent = [&](const rnotify_event& ev) { overflow |= ev.wd == a && (ev.mask & IN_Q_OVERFLOW); };
  {
    Stopped stopped(ssh[0]);  // well under the keepalive's 6 s
    for (int wd : many) ASSERT_EQ(rnotify_rm_watch(rn_, wd), 0) << rnotify_last_error(rn_);
    turn(onEvent);
  }
  writeFile(bed_->server("a/after"), "x\n");
  bool seen = false;
  for (auto until = Clock::now() + std::chrono::seconds(20); !seen && Clock::now() < until;) {
    turn([&](const rnotify_event& ev) {
      onEvent(ev);
      seen |= ev.wd == a && (ev.mask & IN_REMOTE) && (ev.mask & IN_CREATE) && std::string(ev.name) == "after";
    });
  }
  EXPECT_TRUE(seen) << "the server's change after the removals never came: " << rnotify_watch_source(rn_, a);
  EXPECT_FALSE(overflow) << "the connection was lost";
  EXPECT_EQ(ownSsh(), ssh) << "the connection was replaced";
}

// A server whose agent cannot start: the watch falls back as a waiting add
// would have, and its changes are found by scanning.
TEST_F(ClientConnectionReuse, ANonblockingWatchFallsBackWhenTheAgentCannotStart) {
  rnotify_close(rn_);
  ::setenv("RNOTIFY_AGENT", "/nonexistent/rnotifyd --stdio", 1);
  rn_ = rnotify_init(RNOTIFY_CLOEXEC);
  ASSERT_NE(rn_, nullptr);
  const int a = rnotify_add_watch(rn_, bed_->a("a").c_str(), IN_CREATE, RNOTIFY_NONBLOCK);
  ASSERT_GT(a, 0) << rnotify_last_error(rn_);
  // Until the watch has a source, the server's changes are not reported.
  auto settled = [&] { return std::string(rnotify_watch_source(rn_, a)).rfind(RNOTIFY_SOURCE_CONNECTING, 0) != 0; };
  for (auto until = Clock::now() + std::chrono::seconds(20); !settled() && Clock::now() < until;) {
    rnotify_event ev;
    rnotify_next(rn_, &ev, 100);
  }
  ASSERT_TRUE(settled()) << rnotify_watch_source(rn_, a);
  writeFile(bed_->server("a/theirs"), "x\n");
  EXPECT_TRUE(waitFor(a, IN_CREATE, "theirs", std::chrono::seconds(20)))
      << "the server's change was not found: " << rnotify_watch_source(rn_, a);
  const std::string source = rnotify_watch_source(rn_, a);
  EXPECT_NE(source.find("SFTP scans"), std::string::npos) << source;
}

}  // namespace
}  // namespace rnotify::testbed
