// Attribution of a change to the client connection that made it: the
// parsing of what /proc says, and the lookup on real processes.
#include "server/origin_resolver.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <signal.h>
#include <spawn.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/proc_net.h"
#include "common/unique_fd.h"

extern char** environ;

namespace rnotify {
namespace {

TEST(OriginResolver, SshKeyIsTheClientEndOfSshConnection) {
  EXPECT_EQ(OriginResolver::sshKey("10.0.0.2 41234 10.0.0.1 22"), "ssh 10.0.0.2 41234");
  EXPECT_EQ(OriginResolver::sshKey("::ffff:10.0.0.2 41234 10.0.0.1 22"), "ssh 10.0.0.2 41234");
  EXPECT_EQ(OriginResolver::sshKey("0:0:0:0:0:0:0:1 22 ::1 22"), "ssh ::1 22");
  EXPECT_EQ(OriginResolver::sshKey("garbage"), "");
  EXPECT_EQ(OriginResolver::sshKey("10.0.0.2 0 10.0.0.1 22"), "");
  EXPECT_EQ(OriginResolver::sshKey("10.0.0.2 70000 10.0.0.1 22"), "");
  EXPECT_EQ(OriginResolver::sshKey("host.example 22 10.0.0.1 22"), "");
}

TEST(ProcNet, ParsesTheKernelsTable) {
  // Two established connections (one loopback IPv4) and a listener.
  const char* table =
      "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n"
      "   0: 00000000:0016 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1111 1 0 100 0 0 10 "
      "0\n"
      "   1: 0100007F:A0F2 0100007F:0016 01 00000000:00000000 02:000A7D6F 00000000     0        0 2222 2 0 20 4 30 10 "
      "-1\n"
      "   2: 0200000A:0016 0300000A:C350 01 00000000:00000000 02:000A7D6F 00000000     0        0 3333 2 0 20 4 30 10 "
      "-1\n";
  auto rows = parseProcNetTcp(table, false);
  ASSERT_EQ(rows.size(), 2u);
  EXPECT_EQ(rows[0].first, 2222u);
  EXPECT_EQ(rows[0].second.localAddress, "127.0.0.1");
  EXPECT_EQ(rows[0].second.localPort, 0xA0F2);
  EXPECT_EQ(rows[0].second.remotePort, 22);
  EXPECT_EQ(rows[1].second.localAddress, "10.0.0.2");
  EXPECT_EQ(rows[1].second.remoteAddress, "10.0.0.3");
  EXPECT_EQ(rows[1].second.remotePort, 50000);
  EXPECT_TRUE(parseProcNetTcp("header only\n", false).empty());
  EXPECT_TRUE(parseProcNetTcp("h\n 1: zz:0016 00:00 01 x x x 0 0 5\n", false).empty());
}

TEST(ProcNet, FindsTheConnectionsOfThisProcess) {
  UniqueFd listener(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  ASSERT_TRUE(listener);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(::bind(listener.get(), reinterpret_cast<sockaddr*>(&address), sizeof address), 0);
  ASSERT_EQ(::listen(listener.get(), 1), 0);
  socklen_t length = sizeof address;
  ASSERT_EQ(::getsockname(listener.get(), reinterpret_cast<sockaddr*>(&address), &length), 0);
  UniqueFd client(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  ASSERT_EQ(::connect(client.get(), reinterpret_cast<sockaddr*>(&address), sizeof address), 0);
  sockaddr_in local{};
  length = sizeof local;
  ASSERT_EQ(::getsockname(client.get(), reinterpret_cast<sockaddr*>(&local), &length), 0);
  UniqueFd accepted(::accept4(listener.get(), nullptr, nullptr, SOCK_CLOEXEC));
  ASSERT_TRUE(accepted);

  auto connections = tcpConnectionsOf(::getpid());
  ASSERT_TRUE(connections.ok()) << connections.error().message;
  bool found = false;
  for (const TcpConnection& c : *connections) {
    if (c.localPort == ntohs(local.sin_port) && c.remotePort == ntohs(address.sin_port)) {
      found = true;
      EXPECT_EQ(c.localAddress, "127.0.0.1");
    }
  }
  EXPECT_TRUE(found);
}

// A process with SSH_CONNECTION in its environment, as sftp-server has.
class Child {
 public:
  explicit Child(const std::string& sshConnection) {
    std::vector<std::string> env = {"PATH=/usr/bin:/bin"};
    if (!sshConnection.empty()) env.push_back("SSH_CONNECTION=" + sshConnection);
    std::vector<char*> envp;
    for (auto& e : env) envp.push_back(e.data());
    envp.push_back(nullptr);
    // sh starts a grandchild that clears its environment: attributed through its parent.
    const char* argv[] = {"sh", "-c", "env -i sleep 30 & wait", nullptr};
    EXPECT_EQ(::posix_spawnp(&pid_, "sh", nullptr, nullptr, const_cast<char**>(argv), envp.data()), 0);
  }
  ~Child() {
    ::kill(pid_, SIGKILL);
    if (grandchild_ > 0) ::kill(grandchild_, SIGKILL);
    ::waitpid(pid_, nullptr, 0);
  }
  pid_t pid() const { return pid_; }
  // The sleep, once it runs.
  pid_t grandchild() {
    for (int i = 0; i < 500 && grandchild_ <= 0; ++i) {
      FILE* f = ::fopen(("/proc/" + std::to_string(pid_) + "/task/" + std::to_string(pid_) + "/children").c_str(), "r");
      if (f != nullptr) {
        if (std::fscanf(f, "%d", &grandchild_) != 1) grandchild_ = 0;
        ::fclose(f);
      }
      if (grandchild_ <= 0) ::usleep(10000);  // bounded wait for the fork
    }
    return grandchild_;
  }

 private:
  pid_t pid_ = -1;
  pid_t grandchild_ = 0;
};

TEST(OriginResolver, AttributesAProcessAndItsDescendants) {
  if (!OriginResolver::privileged()) GTEST_SKIP() << "needs root";
  Child served("192.0.2.7 50412 192.0.2.1 22");
  Child unserved("");
  // Until the spawned child execs, /proc shows this process's environment.
  ASSERT_GT(served.grandchild(), 0);
  ASSERT_GT(unserved.grandchild(), 0);
  OriginResolver resolver;
  EXPECT_EQ(resolver.keyOf(served.pid()), "ssh 192.0.2.7 50412");
  EXPECT_EQ(resolver.keyOf(served.grandchild()), "ssh 192.0.2.7 50412");
  EXPECT_EQ(resolver.keyOf(unserved.pid()), "");
  EXPECT_EQ(resolver.keyOf(0), "");
  EXPECT_EQ(resolver.keyOf(-1), "");

  // Cached: asking again reads nothing from /proc.
  uint64_t lookups = resolver.lookups();
  for (int i = 0; i < 1000; ++i) EXPECT_EQ(resolver.keyOf(served.pid()), "ssh 192.0.2.7 50412");
  EXPECT_EQ(resolver.lookups(), lookups);
}

TEST(OriginResolver, AnExitedProcessIsForgotten) {
  if (!OriginResolver::privileged()) GTEST_SKIP() << "needs root";
  OriginResolver resolver;
  pid_t pid;
  {
    Child gone("192.0.2.7 50412 192.0.2.1 22");
    pid = gone.pid();
    ASSERT_GT(gone.grandchild(), 0);
    EXPECT_EQ(resolver.keyOf(pid), "ssh 192.0.2.7 50412");
  }
  // Past the revalidation interval, the dead pid no longer resolves.
  EXPECT_EQ(resolver.keyOf(pid, OriginResolver::Clock::now() + std::chrono::seconds(2)), "");
}

// A process named "smbd" holding one TCP connection, whose real user is
// root (as smbd's per-client processes are: they switch only their
// effective user) or not (anyone can name a process so, with prctl).
class FakeSmbd {
 public:
  FakeSmbd(uint16_t port, bool realRoot) {
    int ready[2];
    if (::pipe(ready) != 0) return;
    pid_ = ::fork();
    if (pid_ == 0) {
      ::close(ready[0]);
      const uid_t nobody = 65534;
      if (realRoot ? ::setresuid(static_cast<uid_t>(-1), nobody, static_cast<uid_t>(-1)) != 0
                   : ::setresuid(nobody, nobody, nobody) != 0) {
        ::_exit(2);
      }
      ::prctl(PR_SET_NAME, "smbd", 0, 0, 0);
      int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
      sockaddr_in to{};
      to.sin_family = AF_INET;
      to.sin_port = htons(port);
      to.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
      if (fd < 0 || ::connect(fd, reinterpret_cast<sockaddr*>(&to), sizeof to) != 0) ::_exit(3);
      char c = 'y';
      if (::write(ready[1], &c, 1) != 1) ::_exit(4);
      ::pause();
      ::_exit(0);
    }
    ::close(ready[1]);
    char c = 0;
    ok_ = pid_ > 0 && ::read(ready[0], &c, 1) == 1 && c == 'y';
    ::close(ready[0]);
  }
  ~FakeSmbd() {
    if (pid_ > 0) {
      ::kill(pid_, SIGKILL);
      ::waitpid(pid_, nullptr, 0);
    }
  }
  FakeSmbd(const FakeSmbd&) = delete;
  FakeSmbd& operator=(const FakeSmbd&) = delete;
  pid_t pid() const { return pid_; }
  bool ok() const { return ok_; }

 private:
  pid_t pid_ = -1;
  bool ok_ = false;
};

TEST(OriginResolver, AnSmbdIsKnownByItsClientOnlyIfItsRealUserIsRoot) {
  if (!OriginResolver::privileged()) GTEST_SKIP() << "needs root";
  UniqueFd listener(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  ASSERT_TRUE(listener);
  sockaddr_in at{};
  at.sin_family = AF_INET;
  at.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(::bind(listener.get(), reinterpret_cast<sockaddr*>(&at), sizeof at), 0);
  ASSERT_EQ(::listen(listener.get(), 8), 0);
  socklen_t length = sizeof at;
  ASSERT_EQ(::getsockname(listener.get(), reinterpret_cast<sockaddr*>(&at), &length), 0);
  const uint16_t port = ntohs(at.sin_port);

  FakeSmbd real(port, /*realRoot=*/true);
  FakeSmbd spoofed(port, /*realRoot=*/false);
  ASSERT_TRUE(real.ok());
  ASSERT_TRUE(spoofed.ok());
  OriginResolver resolver;
  EXPECT_EQ(resolver.keyOf(real.pid()), "smb 127.0.0.1 " + std::to_string(port));
  EXPECT_EQ(resolver.keyOf(spoofed.pid()), "") << "any user can name a process smbd";
}

}  // namespace
}  // namespace rnotify
