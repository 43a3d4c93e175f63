// rnotifyd as a root daemon on a shared host (issue 15, classes 7 and 9):
// running out of descriptors must not make it spin, flood its log or leave
// new clients hanging; a second daemon must not take its socket over (nor
// delete it when it leaves); a stale socket file is replaced; client-supplied
// text cannot forge log lines; --max-clients is kept within the descriptor
// limit. Each test runs real rnotifyd processes and talks to them over their
// unix socket.
#include <fcntl.h>
#include <grp.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include "common/log.h"
#include "common/proc_stat.h"
#include "common/unique_fd.h"
#include "proto/codec.h"
#include "transport/agent_process.h"

namespace rnotify {
namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;
constexpr uid_t kNobody = 65534;

sockaddr_un unixAddress(const std::string& path) {
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::strncpy(addr.sun_path, path.c_str(), sizeof addr.sun_path - 1);
  return addr;
}

// One connection attempt; an invalid fd if nothing accepts connections there.
UniqueFd tryConnect(const std::string& path) {
  UniqueFd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  sockaddr_un addr = unixAddress(path);
  if (::connect(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) return UniqueFd();
  return fd;
}

std::string encoded(const proto::Message& message) {
  std::string out;
  proto::encode(message, out);
  return out;
}

bool sendAll(int fd, const std::string& bytes) {
  return ::send(fd, bytes.data(), bytes.size(), MSG_NOSIGNAL) == static_cast<ssize_t>(bytes.size());
}

// The first frame the daemon sends on fd (a Welcome, or a Fatal), waiting
// until the deadline; nothing if none came.
std::optional<proto::Message> firstFrame(int fd, Clock::time_point deadline) {
  proto::FrameReader reader;
  while (Clock::now() < deadline) {
    struct pollfd p = {fd, POLLIN, 0};
    if (::poll(&p, 1, 20) <= 0) continue;
    char buffer[4096];
    ssize_t n = ::recv(fd, buffer, sizeof buffer, MSG_DONTWAIT);
    if (n <= 0) return std::nullopt;
    reader.feed(std::string_view(buffer, static_cast<size_t>(n)));
    auto next = reader.next();
    if (!next.ok()) return std::nullopt;
    if (next->has_value()) return std::move(**next);
  }
  return std::nullopt;
}

// Connects and says Hello; the daemon's Welcome, or nothing.
std::optional<proto::Welcome> welcomeFrom(const std::string& socket, UniqueFd* keep = nullptr) {
  UniqueFd fd = tryConnect(socket);
  if (!fd || !sendAll(fd.get(), encoded(proto::Hello{}))) return std::nullopt;
  auto frame = firstFrame(fd.get(), Clock::now() + std::chrono::seconds(5));
  if (!frame || !std::holds_alternative<proto::Welcome>(*frame)) return std::nullopt;
  if (keep != nullptr) *keep = std::move(fd);
  return std::get<proto::Welcome>(*frame);
}

// Utime + stime of a process, in ms; -1 once it is gone.
long cpuMs(pid_t pid) {
  auto stat = readProcStat(pid);
  return stat ? static_cast<long>(stat->cpuMs()) : -1;
}

size_t openDescriptors(pid_t pid) {
  size_t n = 0;
  for ([[maybe_unused]] auto& e : fs::directory_iterator("/proc/" + std::to_string(pid) + "/fd")) ++n;
  return n;
}

std::string readFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

size_t lineCount(const std::string& text) { return static_cast<size_t>(std::count(text.begin(), text.end(), '\n')); }

class DaemonHardening : public ::testing::Test {
 protected:
  void SetUp() override {
    if (::geteuid() != 0) GTEST_SKIP() << "needs root (rnotifyd's hardening is for a root daemon)";
    char pattern[] = "/tmp/rnotify-harden-XXXXXX";
    ASSERT_NE(::mkdtemp(pattern), nullptr);
    base_ = pattern;
    ::chmod(base_.c_str(), 0755);
    fs::create_directories(base_ + "/export/dir");
    socket_ = base_ + "/d.sock";
    log_ = base_ + "/d.log";
  }
  void TearDown() override {
    for (auto& d : daemons_) {
      if (d->pid() > 0 && d->reap(0) == -1) {
        ::kill(d->pid(), SIGTERM);
        if (d->reap(5000) == -1) ::kill(d->pid(), SIGKILL);
      }
    }
    daemons_.clear();  // kills and reaps what is left
    std::error_code ignored;
    if (!base_.empty()) fs::remove_all(base_, ignored);
  }

  // Starts rnotifyd on socket_ serving export/; with wait, returns once it answers there.
  AgentProcess& spawn(std::vector<std::string> extra, bool wait = true) {
    std::vector<std::string> argv{RNOTIFYD_PATH, "--listen", "unix:" + socket_, "--export", base_ + "/export"};
    argv.insert(argv.end(), extra.begin(), extra.end());
    auto p = AgentProcess::spawn(argv);
    EXPECT_TRUE(p.ok()) << p.error().message;
    daemons_.push_back(std::make_unique<AgentProcess>(std::move(*p)));
    AgentProcess& d = *daemons_.back();
    if (wait) {
      auto deadline = Clock::now() + std::chrono::seconds(10);
      while (!tryConnect(socket_) && Clock::now() < deadline && d.reap(20) == -1) {
      }
      EXPECT_TRUE(tryConnect(socket_)) << "rnotifyd did not start listening: " << d.stderrText();
    }
    return d;
  }

  std::string base_, socket_, log_;
  std::vector<std::unique_ptr<AgentProcess>> daemons_;
};

// Issue 15 class 7. Idle clients take every descriptor the daemon may open;
// more clients connect. Before: accept failed with EMFILE and was retried at
// once (a core busy, megabytes of log), and the new clients hung with no
// answer. Now each gets a Welcome or a clear refusal, the daemon stays idle,
// logs the episode once, and serves again when the idle clients leave.
TEST_F(DaemonHardening, OutOfDescriptorsTheDaemonBacksOffRefusesClearlyAndRecovers) {
  AgentProcess& d = spawn({"--log-file", log_});
  const pid_t pid = d.pid();
  // Room for a few clients only (prlimit from outside: the daemon itself
  // raises its limit at start, as it should).
  const rlim_t limit = openDescriptors(pid) + 6;
  struct rlimit low = {limit, limit};
  ASSERT_EQ(::prlimit(pid, RLIMIT_NOFILE, &low, nullptr), 0) << std::strerror(errno);

  constexpr int kClients = 40;
  std::vector<UniqueFd> clients;
  for (int i = 0; i < kClients; ++i) {
    UniqueFd fd = tryConnect(socket_);  // the kernel completes it in the backlog even if never accepted
    ASSERT_TRUE(fd) << "connection " << i << ": " << std::strerror(errno);
    ASSERT_TRUE(sendAll(fd.get(), encoded(proto::Hello{})));
    clients.push_back(std::move(fd));
  }
  int welcomed = 0, refused = 0, silent = 0;
  std::string refusal;
  auto deadline = Clock::now() + std::chrono::seconds(5);
  for (auto& fd : clients) {
    auto frame = firstFrame(fd.get(), deadline);
    if (frame && std::holds_alternative<proto::Welcome>(*frame)) {
      ++welcomed;
    } else if (frame && std::holds_alternative<proto::Fatal>(*frame)) {
      ++refused;
      refusal = std::get<proto::Fatal>(*frame).message;
    } else {
      ++silent;
    }
  }
  EXPECT_EQ(silent, 0) << silent << " of " << kClients << " clients got neither a Welcome nor a refusal within 5 s ("
                       << welcomed << " welcomed, " << refused << " refused)";
  EXPECT_GE(welcomed, 1);
  EXPECT_GE(refused, 1) << "expected the clients beyond the descriptor limit to be refused";
  if (refused > 0) {
    EXPECT_NE(refusal.find("descriptor"), std::string::npos) << refusal;
  }

  // The idle clients stay; someone keeps knocking. The daemon must not spin.
  const long cpuBefore = cpuMs(pid);
  ASSERT_GE(cpuBefore, 0) << "rnotifyd is gone";
  const auto measureStart = Clock::now();
  std::vector<UniqueFd> knocks;
  while (Clock::now() - measureStart < std::chrono::seconds(2)) {
    if (UniqueFd k = tryConnect(socket_)) knocks.push_back(std::move(k));
    struct pollfd none {};
    ::poll(&none, 0, 100);
  }
  const long cpuAfter = cpuMs(pid);
  ASSERT_GE(cpuAfter, 0) << "rnotifyd is gone";
  const long cpu = cpuAfter - cpuBefore;
  EXPECT_LT(cpu, 300) << "rnotifyd used " << cpu << " ms of CPU in 2 s while out of descriptors";
  const std::string log = readFile(log_);
  std::printf(
      "out of descriptors: %d clients welcomed, %d refused, %d silent; %zu knocks; %ld ms CPU in 2 s; "
      "%zu log lines\n",
      welcomed, refused, silent, knocks.size(), cpu, lineCount(log));
  EXPECT_LT(lineCount(log), 10u) << "the episode took " << lineCount(log) << " log lines (" << log.size()
                                 << " bytes); the first ones:\n"
                                 << log.substr(0, 2000);

  clients.clear();
  knocks.clear();
  std::optional<proto::Welcome> welcome;
  deadline = Clock::now() + std::chrono::seconds(5);
  while (!welcome && Clock::now() < deadline) welcome = welcomeFrom(socket_);
  EXPECT_TRUE(welcome) << "no Welcome within 5 s after the idle clients left\nlog:\n" << readFile(log_).substr(0, 2000);
  EXPECT_EQ(d.reap(0), -1) << "rnotifyd exited: " << d.stderrText();
}

// The same on a TCP listener (TLS listeners share its accept loop): no
// client is left without an answer, and the daemon does not spin.
TEST_F(DaemonHardening, OutOfDescriptorsATcpListenerBacksOffToo) {
  const int port = 20000 + ::getpid() % 20000;
  auto p = AgentProcess::spawn({RNOTIFYD_PATH, "--listen", "tcp:127.0.0.1:" + std::to_string(port), "--export",
                                base_ + "/export", "--log-file", log_});
  ASSERT_TRUE(p.ok()) << p.error().message;
  daemons_.push_back(std::make_unique<AgentProcess>(std::move(*p)));
  AgentProcess& d = *daemons_.back();
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  auto connectTcp = [&] {
    UniqueFd fd(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
    if (::connect(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) return UniqueFd();
    return fd;
  };
  auto deadline = Clock::now() + std::chrono::seconds(10);
  while (!connectTcp() && Clock::now() < deadline && d.reap(20) == -1) {
  }
  ASSERT_TRUE(connectTcp()) << "rnotifyd did not listen on port " << port << ": " << d.stderrText();
  const rlim_t limit = openDescriptors(d.pid()) + 4;
  struct rlimit low = {limit, limit};
  ASSERT_EQ(::prlimit(d.pid(), RLIMIT_NOFILE, &low, nullptr), 0) << std::strerror(errno);

  constexpr int kClients = 20;
  std::vector<UniqueFd> clients;
  for (int i = 0; i < kClients; ++i) {
    UniqueFd fd = connectTcp();
    ASSERT_TRUE(fd) << "connection " << i << ": " << std::strerror(errno);
    ASSERT_TRUE(sendAll(fd.get(), encoded(proto::Hello{})));
    clients.push_back(std::move(fd));
  }
  // A refused TCP client gets the Fatal, or at worst a reset: an answer either way.
  int silent = 0;
  deadline = Clock::now() + std::chrono::seconds(5);
  for (auto& fd : clients) {
    bool answered = false;
    while (!answered && Clock::now() < deadline) {
      struct pollfd p = {fd.get(), POLLIN, 0};
      answered = ::poll(&p, 1, 20) == 1;
    }
    silent += answered ? 0 : 1;
  }
  EXPECT_EQ(silent, 0) << silent << " of " << kClients << " TCP clients got no answer within 5 s";
  const long cpuBefore = cpuMs(d.pid());
  ASSERT_GE(cpuBefore, 0) << "rnotifyd is gone";
  for (int i = 0; i < 10; ++i) {
    UniqueFd knock = connectTcp();
    ::poll(nullptr, 0, 100);
  }
  const long cpuAfter = cpuMs(d.pid());
  ASSERT_GE(cpuAfter, 0) << "rnotifyd is gone";
  const long cpu = cpuAfter - cpuBefore;
  EXPECT_LT(cpu, 200) << "rnotifyd used " << cpu << " ms of CPU in 1 s while out of descriptors";
  std::printf("tcp, out of descriptors: %d of %d clients silent; %ld ms CPU in 1 s\n", silent, kClients, cpu);
  EXPECT_EQ(d.reap(0), -1) << "rnotifyd exited: " << d.stderrText();
}

// Issue 15 class 9: a second daemon on the same socket path. Before: it
// removed the first one's socket file and took its place, and removed the
// path again when it exited, leaving the first unreachable.
TEST_F(DaemonHardening, ASecondDaemonOnTheSameSocketRefusesToStartAndTheFirstStaysReachable) {
  spawn({});
  auto first = welcomeFrom(socket_);
  ASSERT_TRUE(first) << "no Welcome from the first daemon";

  AgentProcess& second = spawn({}, false);
  int code = second.reap(5000);
  if (code == -1) {  // it took the socket over: stop it, as an administrator would
    ::kill(second.pid(), SIGTERM);
    second.reap(5000);
  }
  EXPECT_EQ(code, 1) << "the second daemon should refuse to start (exit 1); " << second.stderrText();
  EXPECT_NE(second.stderrText().find("is listening on " + socket_), std::string::npos) << second.stderrText();

  struct stat st;
  EXPECT_EQ(::lstat(socket_.c_str(), &st), 0) << "the socket file is gone after the second daemon left";
  auto again = welcomeFrom(socket_);
  ASSERT_TRUE(again) << "the first daemon no longer answers on " << socket_;
  EXPECT_EQ(again->instanceId, first->instanceId) << "another daemon answers on the socket";
}

// A socket file left by a daemon that died (nothing answers on it) is replaced.
TEST_F(DaemonHardening, AStaleSocketFileIsReplaced) {
  {
    UniqueFd stale(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
    sockaddr_un addr = unixAddress(socket_);
    ASSERT_EQ(::bind(stale.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
  }  // closed without listening: connect() now gets ECONNREFUSED
  ASSERT_FALSE(tryConnect(socket_));
  AgentProcess& d = spawn({});
  EXPECT_TRUE(welcomeFrom(socket_)) << "no Welcome on a path that had a stale socket file: " << d.stderrText();
}

// At exit the daemon removes its socket file, and only its own: a socket put
// in its place meanwhile (here: a plain listening socket) is left alone.
TEST_F(DaemonHardening, AtExitTheDaemonRemovesOnlyItsOwnSocketFile) {
  AgentProcess& d = spawn({});
  ASSERT_EQ(::unlink(socket_.c_str()), 0);
  UniqueFd other(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  sockaddr_un addr = unixAddress(socket_);
  ASSERT_EQ(::bind(other.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
  ASSERT_EQ(::listen(other.get(), 4), 0);
  ::kill(d.pid(), SIGTERM);
  EXPECT_EQ(d.reap(5000), 0) << d.stderrText();
  EXPECT_TRUE(tryConnect(socket_)) << "the daemon removed a socket file it had not created";

  // Its own file, unchanged, is removed.
  other.reset();
  ASSERT_EQ(::unlink(socket_.c_str()), 0);
  AgentProcess& d2 = spawn({});
  ::kill(d2.pid(), SIGTERM);
  EXPECT_EQ(d2.reap(5000), 0) << d2.stderrText();
  struct stat st;
  EXPECT_NE(::lstat(socket_.c_str(), &st), 0) << "the daemon left its socket file behind";
}

// Issue 15 class 9: control characters in client-supplied text (a client
// name, a watch path) forged whole log lines.
TEST_F(DaemonHardening, ClientTextCannotForgeLogLines) {
  AgentProcess& d = spawn({"--log-level", "info", "--log-file", log_});
  UniqueFd fd = tryConnect(socket_);
  ASSERT_TRUE(fd);
  proto::Hello hello;
  hello.clientName = "evil\nFAKE LINE from the client name\r\x1b[2K";
  proto::Watch watch;
  watch.requestId = 1;
  watch.mask = 0x100;  // IN_CREATE
  watch.path = base_ + "/export/missing\nFAKE LINE from a path\t\x7f";
  ASSERT_TRUE(sendAll(fd.get(), encoded(hello) + encoded(watch)));
  // Until the refusal of the watch is logged (at most 5 s).
  std::string log;
  auto deadline = Clock::now() + std::chrono::seconds(5);
  while (log.find("from a path") == std::string::npos && Clock::now() < deadline) {
    struct pollfd none {};
    ::poll(&none, 0, 20);
    log = readFile(log_);
  }
  ASSERT_NE(log.find("from a path"), std::string::npos) << "the watch was never logged:\n" << log << d.stderrText();
  std::istringstream lines(log);
  for (std::string line; std::getline(lines, line);) {
    EXPECT_EQ(line.rfind("rnotifyd[", 0), 0u) << "a log line that rnotifyd did not begin: " << line;
    EXPECT_EQ(line.find_first_of("\r\x1b\t\x7f"), std::string::npos) << "a raw control character in: " << line;
  }
  EXPECT_NE(log.find("evil\\nFAKE LINE from the client name\\r\\x1b[2K"), std::string::npos) << log;
  EXPECT_NE(log.find("missing\\nFAKE LINE from a path\\t\\x7f"), std::string::npos) << log;
}

// What the log makes of text: one line whatever it contains, readable
// UTF-8 left as it is.
TEST(LogEscaping, ControlsAndInvalidUtf8AreEscapedValidUtf8StaysReadable) {
  using log::escapeControls;
  EXPECT_EQ(escapeControls("a\nb\rc\td"), "a\\nb\\rc\\td");
  EXPECT_EQ(escapeControls(std::string("nul\0esc\x1b[2Kdel\x7f", 15)), "nul\\x00esc\\x1b[2Kdel\\x7f");
  EXPECT_EQ(escapeControls("caf\xc3\xa9 \xe6\x97\xa5\xe6\x9c\xac \xf0\x9f\x93\x81"),
            "caf\xc3\xa9 \xe6\x97\xa5\xe6\x9c\xac \xf0\x9f\x93\x81");
  // C1 NEL and CSI, the Unicode line separator: line breaks to some viewers.
  EXPECT_EQ(escapeControls("a\xc2\x85"
                           "b\xc2\x9b"
                           "c\xe2\x80\xa8"),
            "a\\xc2\\x85b\\xc2\\x9bc\\xe2\\x80\\xa8");
  // Invalid UTF-8: a stray continuation, an overlong '/', a surrogate, a truncated sequence.
  EXPECT_EQ(escapeControls("\x80|\xc0\xaf|\xed\xa0\x80|\xe6\x97"), "\\x80|\\xc0\\xaf|\\xed\\xa0\\x80|\\xe6\\x97");
  EXPECT_EQ(escapeControls("back\\slash stays"), "back\\slash stays");
}

// Issue 15 class 7: --max-clients must stay below the descriptor limit. A
// request that cannot fit even after raising the limit is refused at start.
TEST_F(DaemonHardening, MaxClientsBeyondTheDescriptorLimitIsRefusedAtStart) {
  AgentProcess& d = spawn({"--max-clients", "1000000"}, false);
  int code = d.reap(5000);
  EXPECT_EQ(code, 1) << "rnotifyd should refuse 1,000,000 clients (more descriptors than fs.nr_open); "
                     << d.stderrText();
  EXPECT_NE(d.stderrText().find("--max-clients"), std::string::npos) << d.stderrText();
}

// A non-root daemon whose hard descriptor limit is low serves fewer clients
// than the default --max-clients, and says so; it starts all the same.
TEST_F(DaemonHardening, TheDefaultMaxClientsIsFittedToALowDescriptorLimit) {
  const std::string dir = base_ + "/nobody";
  fs::create_directories(dir);
  ASSERT_EQ(::chown(dir.c_str(), kNobody, kNobody), 0);
  const std::string socket = dir + "/d.sock", log = dir + "/d.log";
  std::vector<std::string> argv{RNOTIFYD_PATH, "--listen", "unix:" + socket, "--export", base_ + "/export",
                                "--log-level", "info",     "--log-file",     log};
  std::vector<char*> args;
  for (auto& a : argv) args.push_back(a.data());
  args.push_back(nullptr);
  pid_t child = ::fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    struct rlimit low = {512, 512};
    if (::setrlimit(RLIMIT_NOFILE, &low) != 0 || ::setgroups(0, nullptr) != 0 ||
        ::setresgid(kNobody, kNobody, kNobody) != 0 || ::setresuid(kNobody, kNobody, kNobody) != 0) {
      ::_exit(120);
    }
    int null = ::open("/dev/null", O_RDWR);
    ::dup2(null, STDIN_FILENO);
    ::execv(args[0], args.data());
    ::_exit(127);
  }
  std::string text;
  auto deadline = Clock::now() + std::chrono::seconds(10);
  bool listening = false;
  int status = 0;
  bool exited = false;
  while (!listening && Clock::now() < deadline) {
    if (::waitpid(child, &status, WNOHANG) == child) {
      exited = true;
      break;
    }
    listening = static_cast<bool>(tryConnect(socket));
    if (!listening) ::poll(nullptr, 0, 20);
  }
  text = readFile(log);
  if (!exited) {
    ::kill(child, SIGTERM);
    ::waitpid(child, &status, 0);
  }
  EXPECT_TRUE(listening) << "rnotifyd (nobody, 512 descriptors) did not start; log:\n" << text;
  EXPECT_NE(text.find("--max-clients"), std::string::npos) << "the fitted limit was not logged:\n" << text;
  EXPECT_EQ(text.find("at most 1024 clients"), std::string::npos) << text;
}

}  // namespace
}  // namespace rnotify
