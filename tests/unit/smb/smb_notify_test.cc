// SmbNotify against a real smbd (testbed Samba): changes made on the server
// itself and through a second SMB client (smbclient) reach the watch with the
// right masks; bad credentials, unknown shares, absent and dying servers are
// reported clearly and promptly.
#include "smb/smb_notify.h"

#include <fmt/core.h>
#include <gtest/gtest.h>
#include <poll.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iterator>
#include <vector>

#include "deadline.h"
#include "samba.h"
#include "tcp_probe.h"
#include "temp_dir.h"

namespace rnotify {
namespace {

using testbed::Deadline;
using testbed::Samba;
using namespace std::chrono_literals;

std::string describe(const std::vector<Event>& events) {
  std::string out;
  for (const auto& e : events) {
    char line[64];
    std::snprintf(line, sizeof line, "mask=0x%x cookie=%u ", e.mask, e.cookie);
    out += line + e.dir + (e.dir.empty() ? "" : "/") + e.name + "\n";
  }
  return out.empty() ? "(none)\n" : out;
}

// Everything the watch delivers, gathered until `done` holds or the deadline.
class Collector {
 public:
  explicit Collector(SmbNotify& watch) : watch_(watch) {}
  // `done` is asked again at least every 200 ms, so it may also act (make
  // another change) while it waits.
  bool waitFor(const std::function<bool(const std::vector<Event>&)>& done, Deadline deadline = Deadline::in(10s)) {
    while (!done(events_)) {
      if (deadline.expired()) return false;
      pollfd p{watch_.fd(), POLLIN, 0};
      if (::poll(&p, 1, std::min(deadline.remainingMs(), 200)) > 0) {
        for (auto& e : watch_.take()) events_.push_back(std::move(e));
        if (watch_.failed()) return done(events_);
      }
    }
    return true;
  }
  const std::vector<Event>& events() const { return events_; }

 private:
  SmbNotify& watch_;
  std::vector<Event> events_;
};

const Event* find(const std::vector<Event>& events, uint32_t mask, const std::string& dir, const std::string& name) {
  for (const auto& e : events) {
    if (e.mask == mask && e.dir == dir && e.name == name) return &e;
  }
  return nullptr;
}

// Waits for each of `wanted` (mask, dir, name) to arrive.
::testing::AssertionResult arrives(Collector& c, std::vector<std::tuple<uint32_t, std::string, std::string>> wanted) {
  bool ok = c.waitFor([&](const std::vector<Event>& events) {
    for (const auto& [mask, dir, name] : wanted) {
      if (find(events, mask, dir, name) == nullptr) return false;
    }
    return true;
  });
  if (ok) return ::testing::AssertionSuccess();
  std::string want;
  for (const auto& [mask, dir, name] : wanted) want += fmt::format("mask=0x{:x} {}/{}\n", mask, dir, name);
  return ::testing::AssertionFailure() << "expected:\n" << want << "got:\n" << describe(c.events());
}

class SmbNotifyTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (std::string why = Samba::missing(); !why.empty()) GTEST_SKIP() << why;
    samba_ = std::make_unique<Samba>();
  }
  SmbLocation location(const std::string& path = "") const {
    return SmbLocation{"127.0.0.1", samba_->port(), Samba::kShare, path};
  }
  SmbCredentials credentials() const { return SmbCredentials{Samba::kUser, samba_->password(), ""}; }
  std::unique_ptr<SmbNotify> watch(uint32_t mask = kDefaultMask, bool recursive = false, const std::string& path = "") {
    auto w = SmbNotify::start(location(path), credentials(), mask, recursive);
    EXPECT_TRUE(w.ok()) << w.error().message << "\n" << samba_->transcript();
    return w.ok() ? std::move(*w) : nullptr;
  }
  // A local file for smbclient to put.
  std::string payload() {
    std::string path = local_ / "payload";
    testbed::writeFile(path, "hello over SMB");
    return path;
  }
  std::unique_ptr<Samba> samba_;
  testbed::TempDir local_{"rnotify-smb-src-"};
};

TEST_F(SmbNotifyTest, ChangesOnTheServerReachTheWatch) {
  auto w = watch();
  ASSERT_TRUE(w);
  Collector c(*w);
  testbed::writeFile(samba_->serverPath("new.txt"), "one");
  ASSERT_TRUE(arrives(c, {{IN_CREATE, "", "new.txt"}}));
  testbed::writeFile(samba_->serverPath("new.txt"), "two, longer");
  ASSERT_TRUE(arrives(c, {{IN_MODIFY, "", "new.txt"}}));
  std::filesystem::rename(samba_->serverPath("new.txt"), samba_->serverPath("renamed.txt"));
  // smbd learns of a rename made on its disk from the kernel's two inotify
  // events; when one read of its inotify descriptor splits the pair (seen
  // on a loaded machine), it reports REMOVED and ADDED instead of the old
  // and new names, and the watch then gets DELETE and CREATE.
  bool paired = false;
  ASSERT_TRUE(c.waitFor([&](const std::vector<Event>& events) {
    paired = find(events, IN_MOVED_FROM, "", "new.txt") && find(events, IN_MOVED_TO, "", "renamed.txt");
    return paired || (find(events, IN_DELETE, "", "new.txt") && find(events, IN_CREATE, "", "renamed.txt"));
  })) << "the rename did not arrive; got:\n"
      << describe(c.events());
  std::filesystem::remove(samba_->serverPath("renamed.txt"));
  ASSERT_TRUE(arrives(c, {{IN_DELETE, "", "renamed.txt"}}));

  if (paired) {
    const Event* from = find(c.events(), IN_MOVED_FROM, "", "new.txt");
    const Event* to = find(c.events(), IN_MOVED_TO, "", "renamed.txt");
    EXPECT_NE(from->cookie, 0u);
    EXPECT_EQ(from->cookie, to->cookie) << describe(c.events());
  }
  for (const auto& e : c.events()) EXPECT_EQ(e.mask & IN_REMOTE, 0u) << "the client core adds IN_REMOTE";
}

TEST_F(SmbNotifyTest, ChangesThroughASecondSmbClientReachTheWatch) {
  auto w = watch();
  ASSERT_TRUE(w);
  Collector c(*w);
  samba_->smbclient("put " + payload() + " a.txt; rename a.txt b.txt; mkdir folder; rm b.txt");
  ASSERT_TRUE(arrives(c, {{IN_CREATE, "", "a.txt"},
                          {IN_MOVED_FROM, "", "a.txt"},
                          {IN_MOVED_TO, "", "b.txt"},
                          {IN_CREATE, "", "folder"},
                          {IN_DELETE, "", "b.txt"}}));
  EXPECT_EQ(find(c.events(), IN_MOVED_FROM, "", "a.txt")->cookie, find(c.events(), IN_MOVED_TO, "", "b.txt")->cookie);
  // The order of the operations is kept.
  auto index = [&](uint32_t mask, const char* name) { return find(c.events(), mask, "", name) - c.events().data(); };
  EXPECT_LT(index(IN_CREATE, "a.txt"), index(IN_MOVED_FROM, "a.txt"));
  EXPECT_LT(index(IN_MOVED_TO, "b.txt"), index(IN_DELETE, "b.txt"));
}

TEST_F(SmbNotifyTest, RecursiveWatchSeesSubdirectories) {
  // Samba watches its own tree through SMB operations; its inotify backend
  // covers only the watched directory itself, so the deep changes are made
  // through the second client.
  samba_->smbclient("mkdir sub; mkdir sub/deeper");
  auto w = watch(kDefaultMask, true);
  ASSERT_TRUE(w);
  Collector c(*w);
  samba_->smbclient("put " + payload() + " sub/deeper/x.txt; mkdir sub/newdir");
  ASSERT_TRUE(arrives(c, {{IN_CREATE, "sub/deeper", "x.txt"}, {IN_CREATE, "sub", "newdir"}}));
}

TEST_F(SmbNotifyTest, NonRecursiveWatchIgnoresSubdirectories) {
  samba_->smbclient("mkdir sub");
  auto w = watch(kDefaultMask, false);
  ASSERT_TRUE(w);
  Collector c(*w);
  samba_->smbclient("put " + payload() + " sub/inner.txt; put " + payload() + " marker");
  ASSERT_TRUE(arrives(c, {{IN_CREATE, "", "marker"}}));
  for (const auto& e : c.events()) EXPECT_EQ(e.dir, "") << describe(c.events());
  EXPECT_EQ(find(c.events(), IN_CREATE, "sub", "inner.txt"), nullptr);
}

TEST_F(SmbNotifyTest, WatchOnADirectoryInsideTheShare) {
  std::filesystem::create_directories(samba_->serverPath("projects/q4"));
  auto w = watch(kDefaultMask, false, "projects/q4");
  ASSERT_TRUE(w);
  Collector c(*w);
  testbed::writeFile(samba_->serverPath("projects/q4/report.txt"), "r");
  ASSERT_TRUE(arrives(c, {{IN_CREATE, "", "report.txt"}}));
}

TEST_F(SmbNotifyTest, OnlyTheRequestedEvents) {
  auto w = watch(IN_DELETE);
  ASSERT_TRUE(w);
  Collector c(*w);
  testbed::writeFile(samba_->serverPath("f"), "1");
  testbed::writeFile(samba_->serverPath("f"), "22");
  std::filesystem::remove(samba_->serverPath("f"));
  ASSERT_TRUE(arrives(c, {{IN_DELETE, "", "f"}}));
  for (const auto& e : c.events()) EXPECT_EQ(e.mask, static_cast<uint32_t>(IN_DELETE)) << describe(c.events());
}

TEST_F(SmbNotifyTest, ServerOverflowBecomesQOverflowAndTheWatchGoesOn) {
  auto w = watch();
  ASSERT_TRUE(w);
  Collector c(*w);
  // libsmbclient asks for at most 1000 bytes of records per response, and a
  // record of a 250-character name takes 512. The server answers at once while
  // a request is pending and keeps what comes before the next one: a burst of
  // such creates overflows that, and the server answers
  // STATUS_NOTIFY_ENUM_DIR. (How many changes fall between two requests is up
  // to the scheduler, so bursts are repeated until one overflows.)
  int made = 0;
  ASSERT_TRUE(c.waitFor([&](const std::vector<Event>& events) {
    for (const auto& e : events) {
      if (e.mask == IN_Q_OVERFLOW) return true;
    }
    for (int k = 0; k < 6; ++k) {
      std::string name = std::to_string(made++);
      testbed::writeFile(samba_->serverPath(std::string(250 - name.size(), 'a') + name), "");
    }
    return false;
  })) << describe(c.events());
  EXPECT_FALSE(w->failed()) << w->error().message;
  // The watch asks again by itself; changes from then on arrive. (Those
  // between the overflow and the new request are what the caller's resync
  // covers, so keep creating until one shows.)
  int n = 0;
  bool again = c.waitFor(
      [&](const std::vector<Event>& events) {
        for (const auto& e : events) {
          if (e.mask == IN_CREATE && e.name.rfind("after-", 0) == 0) return true;
        }
        testbed::writeFile(samba_->serverPath("after-" + std::to_string(n++)), "x");
        return false;
      },
      Deadline::in(10s));
  EXPECT_TRUE(again) << describe(c.events());
}

TEST_F(SmbNotifyTest, BadPasswordFailsClearly) {
  auto start = std::chrono::steady_clock::now();
  auto w = SmbNotify::start(location(), SmbCredentials{Samba::kUser, "wrong-password", ""}, kDefaultMask, false);
  ASSERT_FALSE(w.ok());
  EXPECT_LT(std::chrono::steady_clock::now() - start, 5s);
  EXPECT_EQ(w.error().code, EACCES) << w.error().message;
  EXPECT_NE(w.error().message.find("password"), std::string::npos) << w.error().message;
  EXPECT_NE(w.error().message.find("smb://127.0.0.1:"), std::string::npos) << w.error().message;
}

TEST_F(SmbNotifyTest, UnknownShareFailsClearly) {
  SmbLocation l = location();
  l.share = "no-such-share";
  auto w = SmbNotify::start(l, credentials(), kDefaultMask, false);
  ASSERT_FALSE(w.ok());
  EXPECT_EQ(w.error().code, ENOENT) << w.error().message;
  EXPECT_NE(w.error().message.find("no-such-share"), std::string::npos) << w.error().message;
  EXPECT_NE(w.error().message.find("share name"), std::string::npos) << w.error().message;
}

TEST_F(SmbNotifyTest, UnknownDirectoryFailsClearly) {
  auto w = SmbNotify::start(location("not/there"), credentials(), kDefaultMask, false);
  ASSERT_FALSE(w.ok());
  EXPECT_EQ(w.error().code, ENOENT) << w.error().message;
}

TEST_F(SmbNotifyTest, NoServerFailsClearly) {
  SmbLocation l = location();
  l.port = testbed::freePort();
  auto start = std::chrono::steady_clock::now();
  auto w = SmbNotify::start(l, credentials(), kDefaultMask, false);
  ASSERT_FALSE(w.ok());
  EXPECT_LT(std::chrono::steady_clock::now() - start, 6s);
  EXPECT_EQ(w.error().code, ECONNREFUSED) << w.error().message;
  EXPECT_NE(w.error().message.find("address and port"), std::string::npos) << w.error().message;
}

// Asking whether the watch failed reads nothing: the events that wait keep
// fd() readable for the next take(). (failed() used to read them in, and
// they waited, unsignalled, for the helper's next message: a change was
// reported late, or never if nothing else changed.)
TEST_F(SmbNotifyTest, AskingWhetherItFailedLeavesWaitingEventsSignalled) {
  auto w = watch();
  ASSERT_TRUE(w);
  testbed::writeFile(samba_->serverPath("waiting.txt"), "x");
  pollfd p{w->fd(), POLLIN, 0};
  ASSERT_EQ(::poll(&p, 1, Deadline::in(10s).remainingMs()), 1) << "no event from the server";
  EXPECT_FALSE(w->failed());
  EXPECT_EQ(::poll(&p, 1, 0), 1) << "an event waits but fd() is no longer readable";
  std::vector<Event> events = w->take();
  EXPECT_NE(find(events, IN_CREATE, "", "waiting.txt"), nullptr) << describe(events);
}

TEST_F(SmbNotifyTest, ServerKilledIsReportedThroughTheFd) {
  auto w = watch();
  ASSERT_TRUE(w);
  samba_->kill();
  pollfd p{w->fd(), POLLIN, 0};
  ASSERT_EQ(::poll(&p, 1, Deadline::in(5s).remainingMs()), 1) << "fd not readable after smbd died";
  (void)w->take();
  EXPECT_TRUE(w->failed());
  EXPECT_NE(w->error().code, 0);
  EXPECT_NE(w->error().message.find("smb://127.0.0.1:"), std::string::npos) << w->error().message;
  // Still readable: a level-triggered loop sees the failure until it acts.
  EXPECT_EQ(::poll(&p, 1, 0), 1);
}

TEST_F(SmbNotifyTest, SeveralWatchesAtOnce) {
  // Each watch runs libsmbclient in its own helper process: two loops in one
  // process would corrupt libsmbclient's (process-wide) talloc stack. The
  // changes are paced (one per directory, then their four events): a burst
  // made on the server's own filesystem can leave one of several watches
  // silent (Samba 4.17; 1 run in 40 under load, with a forked helper as with
  // this one; docs/ARCHITECTURE.md, "What SMB2 cannot give").
  std::vector<std::unique_ptr<SmbNotify>> watches;
  std::vector<std::unique_ptr<Collector>> collectors;
  for (int i = 0; i < 4; ++i) {
    std::filesystem::create_directories(samba_->serverPath("d" + std::to_string(i)));
    watches.push_back(watch(kDefaultMask, false, "d" + std::to_string(i)));
    ASSERT_TRUE(watches.back());
    collectors.push_back(std::make_unique<Collector>(*watches.back()));
  }
  for (int round = 0; round < 20; ++round) {
    const std::string name = "f" + std::to_string(round);
    for (int i = 0; i < 4; ++i) testbed::writeFile(samba_->serverPath("d" + std::to_string(i) + "/" + name), "x");
    for (int i = 0; i < 4; ++i) {
      ASSERT_TRUE(arrives(*collectors[i], {{IN_CREATE, "", name}})) << "watch " << i << ", round " << round;
    }
  }
  for (int i = 0; i < 4; ++i) {
    EXPECT_FALSE(watches[i]->failed()) << watches[i]->error().message;
    // Each saw its own directory's changes only: 20 creates, nothing else named.
    size_t creates = 0;
    for (const Event& e : collectors[i]->events()) {
      EXPECT_TRUE(e.dir.empty() && e.name.rfind("f", 0) == 0) << describe(collectors[i]->events());
      creates += e.mask == IN_CREATE;
    }
    EXPECT_EQ(creates, 20u) << "watch " << i << "\n" << describe(collectors[i]->events());
  }
}

// libsmbclient runs in a program of its own, started with exec (never a
// fork of a possibly multithreaded caller), holding nothing of the caller's:
// not even a descriptor the caller left inheritable.
TEST_F(SmbNotifyTest, TheHelperIsAProgramOfItsOwnThatHoldsNothingOfTheCallers) {
  int leaked[2];
  ASSERT_EQ(::pipe(leaked), 0);  // inheritable, as a careless host program's
  auto w = watch();
  ASSERT_TRUE(w);
  pid_t helper = -1;
  for (const auto& entry : std::filesystem::directory_iterator("/proc")) {
    const std::string name = entry.path().filename();
    if (name.find_first_not_of("0123456789") != std::string::npos) continue;
    std::error_code ec;
    const auto exe = std::filesystem::read_symlink(entry.path() / "exe", ec);
    if (!ec && exe == std::filesystem::path(SmbNotify::helperPath())) helper = std::stoi(name);
  }
  ASSERT_GT(helper, 0) << "no process runs " << SmbNotify::helperPath();
  // Its own: /dev/null (0, 1), the caller's standard error (2), its socket
  // (3), then whatever libsmbclient opens (its connection to the server).
  // Never the pipe the caller left inheritable.
  struct stat pipeStat;
  ASSERT_EQ(::fstat(leaked[1], &pipeStat), 0);
  const std::string fdDir = "/proc/" + std::to_string(helper) + "/fd/";
  for (const auto& entry : std::filesystem::directory_iterator(fdDir)) {
    struct stat st;
    if (::stat(entry.path().c_str(), &st) != 0) continue;
    EXPECT_FALSE(st.st_dev == pipeStat.st_dev && st.st_ino == pipeStat.st_ino)
        << "the helper holds the caller's pipe as descriptor " << entry.path().filename();
  }
  for (int fd : {0, 1}) {
    std::error_code ec;
    EXPECT_EQ(std::filesystem::read_symlink(fdDir + std::to_string(fd), ec), "/dev/null") << "descriptor " << fd;
  }
  ::close(leaked[0]);
  ::close(leaked[1]);
  // And the caller never loads Samba's libraries.
  std::ifstream maps("/proc/self/maps");
  std::string text((std::istreambuf_iterator<char>(maps)), std::istreambuf_iterator<char>());
  EXPECT_EQ(text.find("libsmbclient"), std::string::npos) << "libsmbclient is mapped into the caller";
}

TEST_F(SmbNotifyTest, AMissingHelperProgramIsAClearError) {
  ::setenv("RNOTIFY_SMB_HELPER", "/nonexistent/rnotify-smb-helper", 1);
  auto w = SmbNotify::start(location(), credentials(), kDefaultMask, false);
  ::unsetenv("RNOTIFY_SMB_HELPER");
  ASSERT_FALSE(w.ok());
  EXPECT_EQ(w.error().code, ENOENT);
  EXPECT_NE(w.error().message.find("/nonexistent/rnotify-smb-helper"), std::string::npos) << w.error().message;
  EXPECT_NE(w.error().message.find("RNOTIFY_SMB_HELPER"), std::string::npos) << w.error().message;
}

TEST_F(SmbNotifyTest, StopsPromptly) {
  auto w = watch(kDefaultMask, true);
  ASSERT_TRUE(w);
  auto start = std::chrono::steady_clock::now();
  w.reset();
  EXPECT_LT(std::chrono::steady_clock::now() - start, 1s);
}

}  // namespace
}  // namespace rnotify
