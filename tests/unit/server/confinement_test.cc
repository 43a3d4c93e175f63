// Confinement of a root rnotifyd (issue 15, classes 2, 3 and 4), checked the
// way a hostile local user would: a real root daemon exporting a directory,
// a client running as nobody in a forked child, the changes made by this
// (root) process.
//  - One answer for every forbidden path: whether a path outside the export
//    or in a directory nobody may not search exists must not show.
//  - Revocation: once nobody may no longer reach the watched directory (an
//    ancestor's permissions changed, it moved into a private directory or
//    out of the export) the watch ends with IN_IGNORED and a notice, and no
//    event follows.
//  - Stat attachments describe the watched object, never what a swapped
//    ancestor now leads to.
#include <dirent.h>
#include <fcntl.h>
#include <grp.h>
#include <gtest/gtest.h>
#include <poll.h>
#include <signal.h>
#include <sys/inotify.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "common/log.h"
#include "common/proc_stat.h"
#include "transport/agent_process.h"
#include "transport/connection.h"

namespace rnotify {
namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;
constexpr uid_t kNobody = 65534;
constexpr int kWaitMs = 5000;

// Reads one line from fd, at most timeoutMs; "" on timeout or end.
std::string readLine(int fd, int timeoutMs) {
  std::string line;
  const auto deadline = Clock::now() + std::chrono::milliseconds(timeoutMs);
  char c;
  while (Clock::now() < deadline) {
    struct pollfd p = {fd, POLLIN, 0};
    const int left =
        static_cast<int>(std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count());
    if (::poll(&p, 1, left > 0 ? left : 0) != 1) continue;
    if (::read(fd, &c, 1) != 1) return line;
    if (c == '\n') return line;
    line += c;
  }
  return line;
}

void writeLine(int fd, const std::string& line) {
  std::string text = line + "\n";
  // MSG_NOSIGNAL: a client that died is a failure to report, not a SIGPIPE.
  ASSERT_EQ(::send(fd, text.data(), text.size(), MSG_NOSIGNAL), static_cast<ssize_t>(text.size()))
      << "the client (as nobody) is gone";
}

// The client, as nobody, in a child process. It obeys one command a line
// and answers one line:
//   watch FLAGS PATH       -> "STATUS WATCHID MESSAGE"
//   watchmask MASK FLAGS PATH -> the same, for the events of MASK
//   wait WATCH MASK NAME   -> the first event of WATCH with a bit of MASK
//                             named NAME, within kWaitMs: "MASK HASSTAT INO",
//                             or "timeout"
//   after WATCH            -> how many events of WATCH came after its IN_IGNORED
//   count WATCH MASK       -> how many events of WATCH with every bit of MASK came
//   quiet MS               -> how many events come in the next MS ms
//   quit
int clientAsNobody(const std::string& socket, const std::string& logFile, int link) {
  if (::setgroups(0, nullptr) != 0 || ::setresgid(kNobody, kNobody, kNobody) != 0 ||
      ::setresuid(kNobody, kNobody, kNobody) != 0) {
    return 2;
  }
  log::setFile(logFile);  // notices are logged as warnings
  // The socket file exists from bind(); connections are taken from
  // listen() on: try again until then, at most kWaitMs.
  auto c = Connection::overSocket("unix:" + socket, kWaitMs);
  for (auto deadline = Clock::now() + std::chrono::milliseconds(kWaitMs); !c && Clock::now() < deadline;) {
    ::poll(nullptr, 0, 20);
    c = Connection::overSocket("unix:" + socket, kWaitMs);
  }
  if (!c) return 3;
  std::vector<Event> seen;
  (*c)->setEventsHandler([&](Connection&, proto::Events& events) {
    for (Event& e : events.events) seen.push_back(e);
  });
  for (;;) {
    std::istringstream command(readLine(link, 60000));
    std::string verb;
    command >> verb;
    std::string answer;
    if (verb == "watch" || verb == "watchmask") {
      proto::Watch w;
      w.mask = IN_CREATE | IN_ATTRIB | IN_MOVE;
      if (verb == "watchmask") command >> w.mask;
      command >> w.flags;
      command.get();
      std::getline(command, w.path);
      auto r = (*c)->request(w, kWaitMs);
      if (!r) return 4;
      answer = std::to_string(r->status) + " " + std::to_string(r->watchId) + " " + r->message;
    } else if (verb == "wait") {
      uint32_t watch = 0, mask = 0;
      std::string name;
      command >> watch >> mask >> name;
      answer = "timeout";
      const auto deadline = Clock::now() + std::chrono::milliseconds(kWaitMs);
      for (;;) {
        auto found = std::find_if(seen.begin(), seen.end(), [&](const Event& e) {
          return e.watch == watch && (e.mask & mask) != 0 && (name == "-" || e.name == name);
        });
        if (found != seen.end()) {
          answer = std::to_string(found->mask) + " " + std::to_string(found->hasStat) + " " +
                   std::to_string(found->stat.ino);
          break;
        }
        if (Clock::now() >= deadline) break;
        struct pollfd p = {(*c)->readFd(), POLLIN, 0};
        ::poll(&p, 1, 50);
        if (!(*c)->pump()) return 5;
      }
    } else if (verb == "after") {
      uint32_t watch = 0;
      command >> watch;
      int after = 0;
      bool ignored = false;
      for (const Event& e : seen) {
        if (e.watch != watch) continue;
        if (ignored) ++after;
        if (e.mask & IN_IGNORED) ignored = true;
      }
      answer = std::to_string(after);
    } else if (verb == "count") {
      uint32_t watch = 0, mask = 0;
      command >> watch >> mask;
      answer = std::to_string(std::count_if(
          seen.begin(), seen.end(), [&](const Event& e) { return e.watch == watch && (e.mask & mask) == mask; }));
    } else if (verb == "quiet") {
      int ms = 0;
      command >> ms;
      const size_t before = seen.size();
      for (const auto deadline = Clock::now() + std::chrono::milliseconds(ms); Clock::now() < deadline;) {
        struct pollfd p = {(*c)->readFd(), POLLIN, 0};
        ::poll(&p, 1, 50);
        if (!(*c)->pump()) return 5;
      }
      answer = std::to_string(seen.size() - before);
    } else {
      return 0;
    }
    std::string text = answer + "\n";
    if (::write(link, text.data(), text.size()) != static_cast<ssize_t>(text.size())) return 6;
  }
}

class Confinement : public ::testing::Test {
 protected:
  void SetUp() override {
    if (::geteuid() != 0) GTEST_SKIP() << "needs root (a root daemon, a client as nobody)";
    char pattern[] = "/tmp/rnotify-confine-XXXXXX";
    ASSERT_NE(::mkdtemp(pattern), nullptr);
    base_ = pattern;
    ASSERT_EQ(::chmod(base_.c_str(), 0755), 0);
    exportDir_ = base_ + "/export";
    fs::create_directories(exportDir_);
    ASSERT_EQ(::chmod(exportDir_.c_str(), 0755), 0);
    logFile_ = base_ + "/client.log";
    std::ofstream(logFile_).flush();
    ASSERT_EQ(::chmod(logFile_.c_str(), 0666), 0);
    socket_ = base_ + "/s.sock";
    // RNOTIFYD: another build of the daemon (to run these against an older one).
    const char* daemon = std::getenv("RNOTIFYD");
    auto p =
        AgentProcess::spawn({daemon ? daemon : RNOTIFYD_PATH, "--listen", "unix:" + socket_, "--export", exportDir_});
    ASSERT_TRUE(p.ok());
    daemon_ = std::move(*p);
    auto deadline = Clock::now() + std::chrono::seconds(10);
    while (::access(socket_.c_str(), F_OK) != 0 && Clock::now() < deadline) ::poll(nullptr, 0, 20);
    ASSERT_EQ(::chmod(socket_.c_str(), 0777), 0) << "rnotifyd did not start: " << daemon_.stderrText();
  }
  void TearDown() override {
    if (child_ > 0) {
      if (link_ >= 0) writeLine(link_, "quit");
      struct pollfd p = {link_, POLLIN, 0};
      ::poll(&p, 1, 2000);
      ::kill(child_, SIGKILL);
      ::waitpid(child_, nullptr, 0);
    }
    if (link_ >= 0) ::close(link_);
    if (daemon_.pid() > 0) {
      ::kill(daemon_.pid(), SIGTERM);
      daemon_.reap(5000);
    }
    std::error_code ignored;
    if (!base_.empty()) fs::remove_all(base_, ignored);
  }

  void startClient() {
    int pair[2];
    ASSERT_EQ(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, pair), 0);
    child_ = ::fork();
    ASSERT_GE(child_, 0);
    if (child_ == 0) {
      ::close(pair[0]);
      ::_exit(clientAsNobody(socket_, logFile_, pair[1]));
    }
    ::close(pair[1]);
    link_ = pair[0];
  }
  std::string ask(const std::string& command) {
    writeLine(link_, command);
    std::string answer = readLine(link_, kWaitMs + 5000);
    if (answer.empty()) {
      int status = 0;
      if (::waitpid(child_, &status, WNOHANG) == child_) {
        ADD_FAILURE() << "the client (as nobody) exited with " << (WIFEXITED(status) ? WEXITSTATUS(status) : -1)
                      << " at '" << command << "' (2 setuid, 3 connect, 4 request, 5 connection lost, 6 link)";
        child_ = -1;
      }
    }
    return answer;
  }
  // Watches path as nobody; the watch id, 0 if refused (*reply: the answer).
  // mask: the events asked for (0: the client's default).
  uint32_t watch(const std::string& path, uint32_t flags = 0, std::string* reply = nullptr, uint32_t mask = 0) {
    std::string answer =
        ask(mask == 0 ? "watch " + std::to_string(flags) + " " + path
                      : "watchmask " + std::to_string(mask) + " " + std::to_string(flags) + " " + path);
    if (reply) *reply = answer;
    std::istringstream in(answer);
    int status = -1;
    uint32_t id = 0;
    in >> status >> id;
    return status == 0 ? id : 0;
  }
  std::string waitFor(uint32_t watch, uint32_t mask, const std::string& name) {
    return ask("wait " + std::to_string(watch) + " " + std::to_string(mask) + " " + name);
  }
  std::string clientLog() {
    std::ifstream in(logFile_);
    return std::string(std::istreambuf_iterator<char>(in), {});
  }
  void mkdir(const std::string& relative, mode_t mode) {
    fs::create_directories(base_ + "/" + relative);
    ASSERT_EQ(::chmod((base_ + "/" + relative).c_str(), mode), 0);
  }
  void touch(const std::string& relative) { std::ofstream(base_ + "/" + relative) << "x"; }

  std::string base_, exportDir_, socket_, logFile_;
  AgentProcess daemon_;
  pid_t child_ = -1;
  int link_ = -1;
};

// The daemon's check of what the client may see is not itself an event the
// client sees, and never feeds itself. (Found by session_fuzz: the check
// opened the directory for reading, an IN_OPEN in it, checked in its turn;
// and two watches of one path, one of a directory moved away since, took
// turns invalidating each other's cached answer, each check then being
// another event. The daemon spun, sending its own opens without end.)
TEST_F(Confinement, TheDaemonsChecksAreNoEventsAndNeverFeedThemselves) {
  mkdir("export/d/n0", 0755);
  startClient();
  const uint32_t mask = IN_OPEN | IN_CLOSE_NOWRITE | IN_CREATE;
  const uint32_t first = watch(exportDir_ + "/d/n0", 0, nullptr, mask);
  ASSERT_NE(first, 0u);
  fs::rename(exportDir_ + "/d/n0", exportDir_ + "/d/n1");
  mkdir("export/d/n0", 0755);
  const uint32_t second = watch(exportDir_ + "/d/n0", 0, nullptr, mask);
  ASSERT_NE(second, 0u);
  constexpr int kOpens = 20;
  for (int i = 0; i < kOpens; ++i) {
    for (const char* dir : {"/d/n1", "/d/n0"}) {
      DIR* d = ::opendir((exportDir_ + dir).c_str());
      ASSERT_NE(d, nullptr);
      ::closedir(d);
    }
  }
  // Directories: a file would be opened after its IN_CREATE (an IN_OPEN
  // that could come after the wait below).
  mkdir("export/d/n1/end", 0755);
  mkdir("export/d/n0/end", 0755);
  ASSERT_NE(waitFor(first, IN_CREATE, "end"), "timeout");
  ASSERT_NE(waitFor(second, IN_CREATE, "end"), "timeout");
  EXPECT_EQ(ask("quiet 1000"), "0") << "events went on after the last change";
  const std::string opendir = std::to_string(IN_OPEN | IN_ISDIR);
  EXPECT_EQ(ask("count " + std::to_string(first) + " " + opendir), std::to_string(kOpens))
      << "IN_OPEN events of the moved directory that this process did not make";
  EXPECT_EQ(ask("count " + std::to_string(second) + " " + opendir), std::to_string(kOpens))
      << "IN_OPEN events of the new directory that this process did not make";
  const std::string closedir = std::to_string(IN_CLOSE_NOWRITE | IN_ISDIR);
  EXPECT_EQ(ask("count " + std::to_string(first) + " " + closedir), std::to_string(kOpens));
  EXPECT_EQ(ask("count " + std::to_string(second) + " " + closedir), std::to_string(kOpens));
}

// Every refusal of a path nobody may not know about is the same answer, but
// for the path it echoes.
TEST_F(Confinement, EveryForbiddenPathGetsTheSameAnswer) {
  mkdir("rootonly", 0700);  // like /root
  touch("rootonly/.profile");
  mkdir("export/private", 0700);  // another user's home in the export
  touch("export/private/notes");
  fs::create_symlink(base_ + "/rootonly", exportDir_ + "/out");
  startClient();
  const std::vector<std::string> paths = {
      base_ + "/rootonly/.profile",          // outside, exists
      base_ + "/rootonly/zzz",               // outside, missing
      base_ + "/rootonly",                   // outside, exists, a directory
      base_ + "/nothere",                    // outside, missing
      exportDir_ + "/../rootonly/.profile",  // escape by "..", exists
      exportDir_ + "/../rootonly/zzz",       // escape by "..", missing
      exportDir_ + "/out/.profile",          // a symbolic link out, exists
      exportDir_ + "/out/zzz",               // a symbolic link out, missing
      exportDir_ + "/private/notes",         // inside, not searchable, exists
      exportDir_ + "/private/zzz",           // inside, not searchable, missing
      exportDir_ + "/private",               // inside, not readable
      "/etc/passwd",                         // elsewhere, exists
  };
  std::string first, firstPath;
  for (const std::string& path : paths) {
    std::string reply;
    EXPECT_EQ(watch(path, 0, &reply), 0u) << path << " was watched: " << reply;
    // The message may echo the path asked for: compare without it.
    if (size_t at = reply.find(path); at != std::string::npos) reply.replace(at, path.size(), "<P>");
    if (first.empty()) {
      first = reply;
      firstPath = path;
    }
    EXPECT_EQ(reply, first) << "the answers for '" << firstPath << "' and '" << path << "' differ";
  }
  std::cerr << "the one answer: " << first << "\n";
}

class Revocation : public Confinement {
 protected:
  // export/a/b/w is watched; export/marker tells when the daemon has read
  // everything made before it.
  void SetUp() override {
    Confinement::SetUp();
    if (IsSkipped() || HasFatalFailure()) return;
    mkdir("export/a/b/w", 0755);
    mkdir("export/marker", 0755);
    mkdir("export/private", 0700);
    mkdir("outside", 0755);
    startClient();
    watched_ = watch(exportDir_ + "/a/b/w");
    ASSERT_NE(watched_, 0u);
    marker_ = watch(exportDir_ + "/marker");
    ASSERT_NE(marker_, 0u);
    touch("export/a/b/w/before");
    ASSERT_NE(waitFor(watched_, IN_CREATE, "before"), "timeout") << "no event before the change";
  }
  // After the change: IN_IGNORED, a notice, and nothing more from where the
  // watched directory is now (newPlace, relative to base_).
  void expectRevoked(const std::string& newPlace, const std::string& why) {
    EXPECT_NE(waitFor(watched_, IN_IGNORED, "-"), "timeout") << "no IN_IGNORED after " << why;
    touch(newPlace + "/after");
    touch("export/marker/m");
    ASSERT_NE(waitFor(marker_, IN_CREATE, "m"), "timeout");
    EXPECT_EQ(ask("after " + std::to_string(watched_)), "0") << "events came after IN_IGNORED (" << why << ")";
    const std::string log = clientLog();
    EXPECT_NE(log.find("watch " + std::to_string(watched_) + " on '" + exportDir_ + "/a/b/w' ended"), std::string::npos)
        << "no notice after " << why << "; the client logged:\n"
        << log;
  }
  uint32_t watched_ = 0, marker_ = 0;
};

TEST_F(Revocation, AnAncestorMadePrivateEndsTheWatch) {
  ASSERT_EQ(::chmod((exportDir_ + "/a").c_str(), 0700), 0);
  expectRevoked("export/a/b/w", "chmod 0700 of an ancestor");
}

TEST_F(Revocation, TheWatchedDirectoryMadePrivateEndsTheWatch) {
  ASSERT_EQ(::chmod((exportDir_ + "/a/b/w").c_str(), 0700), 0);
  expectRevoked("export/a/b/w", "chmod 0700 of the watched directory");
}

TEST_F(Revocation, MovingTheWatchedDirectoryIntoAPrivateOneEndsTheWatch) {
  fs::rename(exportDir_ + "/a/b/w", exportDir_ + "/private/w");
  expectRevoked("export/private/w", "a move into a 0700 directory");
}

TEST_F(Revocation, MovingAnAncestorOutOfTheExportEndsTheWatch) {
  fs::rename(exportDir_ + "/a", base_ + "/outside/a");
  expectRevoked("outside/a/b/w", "a move of an ancestor out of the export");
}

TEST_F(Revocation, AMoveInsideTheExportKeepsTheWatch) {
  fs::rename(exportDir_ + "/a", exportDir_ + "/a2");
  touch("export/a2/b/w/later");
  // Had the watch ended, its IN_IGNORED would be the last event: "later"
  // would not come.
  EXPECT_NE(waitFor(watched_, IN_CREATE, "later"), "timeout") << "a move that changes nobody's access ended the watch";
  EXPECT_EQ(clientLog().find("ended"), std::string::npos) << clientLog();
}

// After a move inside the export, the directories above the watch are
// others: those are the ones guarded now.
TEST_F(Revocation, AfterAMoveTheNewAncestorsAreGuarded) {
  mkdir("export/c", 0755);
  fs::rename(exportDir_ + "/a", exportDir_ + "/c/a");
  touch("export/c/a/b/w/moved");
  ASSERT_NE(waitFor(watched_, IN_CREATE, "moved"), "timeout") << "the move inside the export ended the watch";
  ASSERT_EQ(::chmod((exportDir_ + "/c").c_str(), 0700), 0);
  expectRevoked("export/c/a/b/w", "chmod 0700 of a directory the watch was moved under");
}

// A change of the root's own attributes suspends the watch until it is
// re-checked; what happens meanwhile is held, then sent when access stays.
// The daemon is stopped so that the chmod and the creates are read in one
// drain, after the suspension.
TEST_F(Revocation, EventsHeldDuringARecheckThatKeepsAccessAreDelivered) {
  ASSERT_EQ(::kill(daemon_.pid(), SIGSTOP), 0);
  ASSERT_EQ(::chmod((exportDir_ + "/a/b/w").c_str(), 0755), 0);  // the same mode: access unchanged
  touch("export/a/b/w/held1");
  touch("export/a/b/w/held2");
  ASSERT_EQ(::kill(daemon_.pid(), SIGCONT), 0);
  EXPECT_NE(waitFor(watched_, IN_CREATE, "held1"), "timeout") << "an event held during the re-check was lost";
  EXPECT_NE(waitFor(watched_, IN_CREATE, "held2"), "timeout") << "an event held during the re-check was lost";
  EXPECT_EQ(clientLog().find("ended"), std::string::npos) << clientLog();
}

// What is held has a bound: past it, the client is told to re-read
// (IN_Q_OVERFLOW), and the watch goes on.
TEST_F(Revocation, TooManyHeldEventsBecomeOneOverflow) {
  ASSERT_EQ(::kill(daemon_.pid(), SIGSTOP), 0);
  ASSERT_EQ(::chmod((exportDir_ + "/a/b/w").c_str(), 0755), 0);
  for (int i = 0; i < 3000; ++i) touch("export/a/b/w/f" + std::to_string(i));
  ASSERT_EQ(::kill(daemon_.pid(), SIGCONT), 0);
  EXPECT_NE(waitFor(watched_, IN_Q_OVERFLOW, "-"), "timeout") << "3,000 held events and no IN_Q_OVERFLOW";
  touch("export/a/b/w/later");
  EXPECT_NE(waitFor(watched_, IN_CREATE, "later"), "timeout") << "the watch did not go on after the overflow";
}

// With the stat capability, an event's attachment describes the entry in the
// watched directory, whatever an ancestor's name now leads to.
TEST_F(Confinement, StatAttachmentsNeverDescribeAnythingOutsideTheWatch) {
  mkdir("export/x/w", 0755);
  ASSERT_EQ(::chown((exportDir_ + "/x").c_str(), kNobody, kNobody), 0);  // nobody's own, to swap
  mkdir("secret/w", 0700);
  ASSERT_EQ(::chmod((base_ + "/secret").c_str(), 0700), 0);
  touch("secret/w/f");
  struct stat secret;
  ASSERT_EQ(::stat((base_ + "/secret/w/f").c_str(), &secret), 0);
  startClient();
  const uint32_t w = watch(exportDir_ + "/x/w", proto::kWatchStat);
  ASSERT_NE(w, 0u);
  touch("export/x/w/warm");  // the daemon has looked at the directory once
  ASSERT_NE(waitFor(w, IN_CREATE, "warm"), "timeout");
  // What nobody could do: x is its own.
  fs::rename(exportDir_ + "/x", exportDir_ + "/x2");
  fs::create_symlink(base_ + "/secret", exportDir_ + "/x");
  touch("export/x2/w/f");
  struct stat real;
  ASSERT_EQ(::stat((exportDir_ + "/x2/w/f").c_str(), &real), 0);
  std::istringstream answer(waitFor(w, IN_CREATE, "f"));
  uint32_t mask = 0;
  int hasStat = 0;
  uint64_t ino = 0;
  ASSERT_TRUE(answer >> mask >> hasStat >> ino) << "no event for f";
  EXPECT_NE(ino, static_cast<uint64_t>(secret.st_ino)) << "the stat block described the root-only file";
  if (hasStat) {
    EXPECT_EQ(ino, static_cast<uint64_t>(real.st_ino)) << "the stat block describes another object";
  }
}

// The stat attachments keep the watched root's descriptor while events come
// (Session::kRootHold): its entries are still described, and removing the
// root still ends the watch with IN_DELETE_SELF and IN_IGNORED (a descriptor
// held for good would hold them back), not as a revocation (the parent's
// DELETE suspends the watch for a re-check, which once dropped them).
TEST_F(Confinement, AWatchedRootKeptForStatAttachmentsStillEndsTheWatchWhenRemoved) {
  mkdir("export/r", 0755);
  startClient();
  const uint32_t w = watch(exportDir_ + "/r", proto::kWatchStat, nullptr, IN_CREATE | IN_DELETE | IN_DELETE_SELF);
  ASSERT_NE(w, 0u);
  for (const std::string name : {"f", "g"}) {
    touch("export/r/" + name);
    struct stat real;
    ASSERT_EQ(::stat((exportDir_ + "/r/" + name).c_str(), &real), 0);
    std::istringstream answer(waitFor(w, IN_CREATE, name));
    uint32_t mask = 0;
    int hasStat = 0;
    uint64_t ino = 0;
    ASSERT_TRUE(answer >> mask >> hasStat >> ino) << "no event for " << name;
    EXPECT_EQ(hasStat, 1) << name;
    EXPECT_EQ(ino, static_cast<uint64_t>(real.st_ino)) << name;
  }
  fs::remove_all(exportDir_ + "/r");
  EXPECT_NE(waitFor(w, IN_DELETE_SELF, "-"), "timeout") << "the removed root's IN_DELETE_SELF was lost or held back";
  EXPECT_NE(waitFor(w, IN_IGNORED, "-"), "timeout") << "the watch of a removed root did not end";
  EXPECT_EQ(clientLog().find("ended:"), std::string::npos) << "a removed root is not a revocation: " << clientLog();
}

// A subdirectory of a recursive watch removed, as a root daemon serving an
// unprivileged client sees it: its own IN_DELETE_SELF no longer opens, and
// was judged as a directory moved away, so the rest was held back, the
// client told that events were lost (IN_Q_OVERFLOW) and the DELETE not
// delivered, on every rmdir (found with NFS clients in the qemu guest,
// tests/vm). It is judged by the directory that held it.
TEST_F(Confinement, ASubdirectoryRemovedComesWithItsDeleteAndDeleteSelf) {
  mkdir("export/r", 0755);
  startClient();
  const uint32_t w = watch(exportDir_ + "/r", proto::kWatchRecursive | proto::kWatchStat, nullptr,
                           IN_CREATE | IN_DELETE | IN_DELETE_SELF);
  ASSERT_NE(w, 0u);
  for (int round = 0; round < 3; ++round) {
    const std::string d = "d" + std::to_string(round);
    mkdir("export/r/" + d, 0755);
    ASSERT_NE(waitFor(w, IN_CREATE, d), "timeout");  // the daemon watches it once it has read this
    ASSERT_EQ(::rmdir((exportDir_ + "/r/" + d).c_str()), 0);
    ASSERT_NE(waitFor(w, IN_DELETE, d), "timeout");
  }
  touch("export/r/after");
  ASSERT_NE(waitFor(w, IN_CREATE, "after"), "timeout");
  EXPECT_NE(waitFor(w, IN_DELETE_SELF, "-"), "timeout") << "a removed subdirectory's IN_DELETE_SELF was dropped";
  // Not checked: that no IN_Q_OVERFLOW came. The kernel may also report an
  // IN_ATTRIB of the directory itself as it goes; judged after it is gone,
  // that still looks like a directory moved away (its path no longer
  // opens), and the watch is re-read: seen in about 1 run in 30 here.
  // Telling a removed directory from a moved one there is open (issue 17).
}

// `rm -rf` of a watched directory that has entries, all of it read in one
// drain (the daemon is stopped meanwhile): the guard's own watch of the root
// suspends the watch before the entries' events are judged, and the re-check
// finds the root deleted. The client still gets IN_DELETE_SELF and
// IN_IGNORED, and no revocation: the entries' events, which can no longer be
// judged, once made the re-check suspend the watch again and drop it all,
// and an entry of a subdirectory judged after the root was gone dropped
// what followed, the root's IN_DELETE_SELF among it. (Found in review.)
class RemovedRoot : public Confinement, public ::testing::WithParamInterface<uint32_t> {};

TEST_P(RemovedRoot, RemovingAWatchedTreeAtOnceEndsTheWatchWithItsDeleteSelf) {
  mkdir("export/r/a/b", 0755);
  for (int i = 0; i < 5; ++i) {
    touch("export/r/f" + std::to_string(i));
    touch("export/r/a/b/f" + std::to_string(i));
  }
  startClient();
  const uint32_t w = watch(exportDir_ + "/r", GetParam(), nullptr, IN_CREATE | IN_DELETE | IN_DELETE_SELF);
  ASSERT_NE(w, 0u);
  touch("export/r/ready");  // the daemon has judged an event of r once
  ASSERT_NE(waitFor(w, IN_CREATE, "ready"), "timeout");
  ASSERT_EQ(::kill(daemon_.pid(), SIGSTOP), 0);
  fs::remove_all(exportDir_ + "/r");
  ASSERT_EQ(::kill(daemon_.pid(), SIGCONT), 0);
  EXPECT_NE(waitFor(w, IN_IGNORED, "-"), "timeout") << "the watch of a removed root did not end";
  EXPECT_NE(waitFor(w, IN_DELETE_SELF, "-"), "timeout") << "the removed root's IN_DELETE_SELF was lost";
  EXPECT_EQ(clientLog().find("ended:"), std::string::npos) << "a removed root is not a revocation: " << clientLog();
}

INSTANTIATE_TEST_SUITE_P(Flags, RemovedRoot,
                         ::testing::Values(0u, uint32_t{proto::kWatchStat}, uint32_t{proto::kWatchRecursive},
                                           uint32_t{proto::kWatchRecursive | proto::kWatchStat}),
                         [](const auto& info) {
                           return std::string((info.param & proto::kWatchRecursive) ? "Recursive" : "Flat") +
                                  ((info.param & proto::kWatchStat) ? "WithStat" : "");
                         });

// The root kept for one watch's stat attachments is let go 50 ms after its
// own last use, whatever other watches of the session do: a busy neighbour
// once kept a removed root open until the session's watchdog (2 s).
TEST_F(Confinement, ABusyWatchDoesNotHoldBackAnotherWatchsRemovedRoot) {
  mkdir("export/a", 0755);
  mkdir("export/b", 0755);
  startClient();
  const uint32_t busy = watch(exportDir_ + "/a", proto::kWatchStat, nullptr, IN_CREATE);
  const uint32_t removed = watch(exportDir_ + "/b", proto::kWatchStat, nullptr, IN_CREATE | IN_DELETE_SELF);
  ASSERT_NE(busy, 0u);
  ASSERT_NE(removed, 0u);
  touch("export/b/f");  // b's root is now kept for its stat attachments
  ASSERT_NE(waitFor(removed, IN_CREATE, "f"), "timeout");
  std::atomic<bool> stop{false};
  std::thread neighbour([&] {
    for (int i = 0; !stop; ++i) {
      touch("export/a/x" + std::to_string(i));
      ::poll(nullptr, 0, 5);  // a steady pace of events, not a synchronisation
    }
  });
  fs::remove_all(exportDir_ + "/b");
  const auto start = Clock::now();
  const std::string got = waitFor(removed, IN_DELETE_SELF, "-");
  const auto waited = Clock::now() - start;
  stop = true;
  neighbour.join();
  EXPECT_NE(got, "timeout");
  EXPECT_LT(waited, std::chrono::seconds(1)) << "b's IN_DELETE_SELF waited for the watchdog";
}

// A measurement, not a check (run with --gtest_also_run_disabled_tests):
// how long nobody waits for the events of RNOTIFY_MEASURE_FILES creates
// (default 20000) in a watch with stat attachments.
TEST_F(Confinement, DISABLED_MeasureEventsWithStat) {
  const char* env = std::getenv("RNOTIFY_MEASURE_FILES");
  const int files = env ? std::atoi(env) : 20000;
  mkdir("export/m", 0755);
  startClient();
  const uint32_t w = watch(exportDir_ + "/m", proto::kWatchStat);
  ASSERT_NE(w, 0u);
  auto daemonCpuMs = [&] {  // utime + stime of rnotifyd
    auto stat = readProcStat(daemon_.pid());
    return stat ? stat->cpuMs() : int64_t{-1};
  };
  const long cpuBefore = daemonCpuMs();
  const auto start = Clock::now();
  for (int i = 0; i < files; ++i) touch("export/m/f" + std::to_string(i));
  ASSERT_NE(waitFor(w, IN_CREATE, "f" + std::to_string(files - 1)), "timeout");
  const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - start).count();
  std::cerr << files << " creates with stat attachments: all events received after " << ms << " ms; rnotifyd used "
            << daemonCpuMs() - cpuBefore << " ms of CPU\n";
}

}  // namespace
}  // namespace rnotify
