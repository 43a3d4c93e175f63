// Per-user authorization on a shared daemon (issue 6): a root rnotifyd
// serving a unix socket checks every watch as the connecting user (the
// kernel decides, with that user's fsuid and groups), sends no events from
// directories that user cannot list, and follows permission changes.
// The "other user" is nobody (uid 65534), in a forked child.
#include <fcntl.h>
#include <grp.h>
#include <gtest/gtest.h>
#include <poll.h>
#include <signal.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <set>
#include <string>

#include "transport/agent_process.h"
#include "transport/connection.h"

namespace rnotify {
namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;
constexpr uid_t kNobody = 65534;

// Child exit codes, so that the parent can say what went wrong.
enum Code { kOk = 0, kNoConnect = 10, kPrivateNotRefused, kSharedRefused, kMissing, kLeaked, kProtocol };

class Authorization : public ::testing::Test {
 protected:
  void SetUp() override {
    if (::geteuid() != 0) GTEST_SKIP() << "needs root (the daemon checks as other users)";
    char pattern[] = "/tmp/rnotify-authz-XXXXXX";
    ASSERT_NE(::mkdtemp(pattern), nullptr);
    base_ = pattern;
    ::chmod(base_.c_str(), 0755);
    for (const char* d : {"export", "export/private", "export/shared", "export/shared/secret"}) {
      fs::create_directories(base_ + "/" + d);
    }
    ::chmod((base_ + "/export").c_str(), 0755);
    ::chmod((base_ + "/export/private").c_str(), 0700);  // another user's home
    ::chmod((base_ + "/export/shared").c_str(), 0755);
    ::chmod((base_ + "/export/shared/secret").c_str(), 0700);
    socket_ = base_ + "/s.sock";
    auto p = AgentProcess::spawn({RNOTIFYD_PATH, "--listen", "unix:" + socket_, "--export", base_ + "/export"});
    ASSERT_TRUE(p.ok());
    daemon_ = std::move(*p);
    auto deadline = Clock::now() + std::chrono::seconds(10);
    while (::access(socket_.c_str(), F_OK) != 0 && Clock::now() < deadline) ::poll(nullptr, 0, 20);
    ASSERT_EQ(::chmod(socket_.c_str(), 0777), 0);  // any local user may connect
  }
  void TearDown() override {
    if (daemon_.pid() > 0) {
      ::kill(daemon_.pid(), SIGTERM);
      daemon_.reap(5000);
    }
    std::error_code ignored;
    if (!base_.empty()) fs::remove_all(base_, ignored);
  }

  std::string base_, socket_;
  AgentProcess daemon_;
};

// In the child, as nobody: watch, then report what arrives until "z".
int childAsNobody(const std::string& socket, const std::string& exportDir, int ready, int go) {
  if (::setgroups(0, nullptr) != 0 || ::setresgid(kNobody, kNobody, kNobody) != 0 ||
      ::setresuid(kNobody, kNobody, kNobody) != 0) {
    return kNoConnect;
  }
  auto c = Connection::overSocket("unix:" + socket, 5000);
  if (!c) return kNoConnect;
  proto::Watch w;
  w.mask = IN_CREATE;
  w.path = exportDir + "/private";
  auto r = (*c)->request(w, 5000);
  if (!r || r->status != EACCES) return kPrivateNotRefused;
  w.path = exportDir + "/shared";
  w.flags = proto::kWatchRecursive;
  r = (*c)->request(w, 5000);
  if (!r || r->status != 0) return kSharedRefused;
  std::set<std::string> seen;
  (*c)->setEventsHandler([&](Connection&, proto::Events& events) {
    for (const Event& e : events.events) seen.insert(e.dir.empty() ? e.name : e.dir + "/" + e.name);
  });
  char byte = 'r';
  if (::write(ready, &byte, 1) != 1) return kProtocol;
  // Until "m" (made after secret/b): the parent may then change the
  // permissions. Then until the parent is done and "z" arrived.
  auto deadline = Clock::now() + std::chrono::seconds(20);
  bool parentDone = false, toldM = false;
  while (Clock::now() < deadline && !(parentDone && seen.count("z"))) {
    struct pollfd p[2] = {{(*c)->readFd(), POLLIN, 0}, {go, POLLIN, 0}};
    ::poll(p, 2, 100);
    if (p[1].revents & POLLIN) parentDone = ::read(go, &byte, 1) == 1;
    if (!(*c)->pump()) return kProtocol;
    if (!toldM && seen.count("m")) {
      toldM = true;
      if (::write(ready, "m", 1) != 1) return kProtocol;
    }
  }
  if (!seen.count("a") || !seen.count("z") || !seen.count("secret/c")) return kMissing;
  if (seen.count("secret/b")) return kLeaked;
  return kOk;
}

TEST_F(Authorization, EachUserSeesWhatItMayListAndPermissionChangesTakeEffect) {
  int ready[2], go[2];
  ASSERT_EQ(::pipe(ready), 0);
  ASSERT_EQ(::pipe(go), 0);
  pid_t child = ::fork();
  ASSERT_GE(child, 0);
  if (child == 0) ::_exit(childAsNobody(socket_, base_ + "/export", ready[1], go[0]));
  char byte;
  struct pollfd p = {ready[0], POLLIN, 0};
  ASSERT_EQ(::poll(&p, 1, 10000), 1) << "the child never got its watches";
  ASSERT_EQ(::read(ready[0], &byte, 1), 1);
  const std::string shared = base_ + "/export/shared";
  std::ofstream(shared + "/a") << "visible";
  std::ofstream(shared + "/secret/b") << "not for nobody";  // 0700 root: invisible to nobody
  std::ofstream(shared + "/m") << "after b";
  // Permissions are checked when the server reads an event: change them
  // only once b's event has surely been read (m, made after it, arrived).
  ASSERT_EQ(::poll(&p, 1, 10000), 1) << "the child never saw m";
  ASSERT_EQ(::read(ready[0], &byte, 1), 1);
  ASSERT_EQ(::chmod((shared + "/secret").c_str(), 0755), 0);  // now it may list it
  std::ofstream(shared + "/secret/c") << "visible now";
  std::ofstream(shared + "/z") << "the end";
  ASSERT_EQ(::write(go[1], "g", 1), 1);
  int status = 0;
  ASSERT_EQ(::waitpid(child, &status, 0), child);
  ASSERT_TRUE(WIFEXITED(status));
  const char* what[] = {"ok",
                        "",
                        "",
                        "",
                        "",
                        "",
                        "",
                        "",
                        "",
                        "",
                        "could not connect as nobody",
                        "a watch on a 0700 directory of root was not refused with EACCES",
                        "a watch on a 0755 directory was refused",
                        "events nobody may see arrived late or not at all (a, secret/c after chmod, z)",
                        "an event from a directory nobody cannot list (secret/b) was sent",
                        "protocol failure"};
  int code = WEXITSTATUS(status);
  EXPECT_EQ(code, kOk) << (code < 16 ? what[code] : "unknown");
  for (int fd : {ready[0], ready[1], go[0], go[1]}) ::close(fd);
}

// A plain TCP client has no identity: a root daemon serves it as nobody.
TEST_F(Authorization, AnUnauthenticatedTcpClientSeesOnlyWhatAnybodyMaySee) {
  const int port = 30000 + ::getpid() % 20000;
  auto p = AgentProcess::spawn(
      {RNOTIFYD_PATH, "--listen", "tcp:127.0.0.1:" + std::to_string(port), "--export", base_ + "/export"});
  ASSERT_TRUE(p.ok());
  std::unique_ptr<Connection> c;
  auto deadline = Clock::now() + std::chrono::seconds(10);
  while (!c && Clock::now() < deadline) {
    auto attempt = Connection::overSocket("tcp:127.0.0.1:" + std::to_string(port), 2000);
    if (attempt)
      c = std::move(*attempt);
    else
      ::poll(nullptr, 0, 50);
  }
  ASSERT_TRUE(c) << p->stderrText();
  proto::Watch w;
  w.mask = IN_CREATE;
  w.path = base_ + "/export/private";
  auto reply = c->request(w, 5000);
  ASSERT_TRUE(reply.ok());
  EXPECT_EQ(reply->status, EACCES) << reply->message;
  w.path = base_ + "/export/shared";
  reply = c->request(w, 5000);
  ASSERT_TRUE(reply.ok());
  EXPECT_EQ(reply->status, 0) << reply->message;
  c.reset();
  ::kill(p->pid(), SIGTERM);
  p->reap(5000);
}

}  // namespace
}  // namespace rnotify
