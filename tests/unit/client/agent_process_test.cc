// AgentProcess: the agent (normally ssh) starts without the LD_PRELOAD inotify
// shim that may be running the client library, and keeps the user's other
// preloads.
#include "transport/agent_process.h"

#include <gtest/gtest.h>
#include <poll.h>
#include <unistd.h>

#include <cstdlib>
#include <string>

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

}  // namespace
}  // namespace rnotify
