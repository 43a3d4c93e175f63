// AgentProcess: the agent (normally ssh) starts without the LD_PRELOAD inotify
// shim that may be running the client library, and keeps the user's other
// preloads.
#include "transport/agent_process.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <poll.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <string>

#include "common/spawn.h"

namespace rnotify {
namespace {

std::string outputOf(AgentProcess& p) {
  std::string out;
  char buffer[256];
  for (int i = 0; i < 100; ++i) {
    struct pollfd fd = {p.output(), POLLIN, 0};
    ::poll(&fd, 1, 50);
    ssize_t n = ::read(p.output(), buffer, sizeof buffer);
    if (n > 0) out.append(buffer, static_cast<size_t>(n));
    if (n == 0) break;
  }
  return out;
}

TEST(AgentProcess, TheShimIsTakenOutOfLdPreloadAndOtherPreloadsStay) {
  const char* saved = std::getenv("LD_PRELOAD");
  std::string old = saved != nullptr ? saved : "";
  // Not loadable paths would make the dynamic loader complain; sh prints the
  // variable only, and the loader ignores missing preloads with a warning.
  ::setenv("LD_PRELOAD", "/nonexistent/librnotify-preload.so:/nonexistent/libother.so", 1);
  auto p = AgentProcess::spawn({"/bin/sh", "-c", "printf '%s' \"$LD_PRELOAD\""});
  if (saved != nullptr) {
    ::setenv("LD_PRELOAD", old.c_str(), 1);
  } else {
    ::unsetenv("LD_PRELOAD");
  }
  ASSERT_TRUE(p.ok()) << p.error().message;
  EXPECT_EQ(outputOf(*p), "/nonexistent/libother.so");
  EXPECT_EQ(p->reap(5000), 0);
}

TEST(AgentProcess, OnlyTheShimPreloadedMeansNoLdPreloadAtAll) {
  ::setenv("LD_PRELOAD", "/nonexistent/librnotify-preload.so", 1);
  auto p = AgentProcess::spawn({"/bin/sh", "-c", "printf '%s' \"${LD_PRELOAD-unset}\""});
  ::unsetenv("LD_PRELOAD");
  ASSERT_TRUE(p.ok()) << p.error().message;
  EXPECT_EQ(outputOf(*p), "unset");
}

// A host program that closed its standard descriptors gets them back from
// the next pipe or socketpair: a helper's source descriptor may then be one
// of the targets of an earlier mapping (here the pipe's write end is 1, and
// /dev/null is mapped to 1 first). The helper must still get each source.
TEST(SpawnHelper, ASourceThatIsAlsoAnEarlierTargetIsNotOverwritten) {
  const pid_t child = ::fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    ::close(0);
    ::close(1);
    int p[2];
    if (::pipe2(p, O_CLOEXEC) != 0 || p[0] != 0 || p[1] != 1) ::_exit(10);
    const int null = ::open("/dev/null", O_RDWR | O_CLOEXEC);
    auto pid = spawnHelper({"/bin/sh", "-c", "echo hello >&3"}, {{null, 1}, {p[1], 3}});
    if (!pid) ::_exit(11);
    ::close(p[1]);
    ::close(null);
    char buffer[16] = {};
    const ssize_t n = ::read(p[0], buffer, sizeof buffer - 1);
    int status = 0;
    ::waitpid(*pid, &status, 0);
    ::_exit(n == 6 && std::string(buffer) == "hello\n" ? 0 : 12);
  }
  int status = 0;
  ASSERT_EQ(::waitpid(child, &status, 0), child);
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 0) << "10: setup, 11: spawn failed, 12: the helper's descriptor 3 was not the pipe";
}

}  // namespace
}  // namespace rnotify
