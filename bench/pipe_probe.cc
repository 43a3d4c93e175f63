// PipeProbe; see pipe_probe.h.
#include "pipe_probe.h"

#include <poll.h>
#include <time.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <stdexcept>

#include "transport/agent_process.h"

namespace rnotify::bench {
namespace {

int64_t nowNs() {
  struct timespec ts;
  ::clock_gettime(CLOCK_MONOTONIC, &ts);
  return int64_t{ts.tv_sec} * 1000000000 + ts.tv_nsec;
}

}  // namespace

int runProbeAgent() {
  char byte;
  while (::read(STDIN_FILENO, &byte, 1) == 1) {
    int64_t now = nowNs();
    if (::write(STDOUT_FILENO, &now, sizeof now) != sizeof now) return 1;
  }
  return 0;
}

std::vector<int64_t> measureOneWay(const std::vector<std::string>& argv, size_t count, size_t warmup) {
  auto agent = AgentProcess::spawn(argv);
  if (!agent) throw std::runtime_error("cannot start the probe agent: " + agent.error().message);
  std::vector<int64_t> samples;
  samples.reserve(count);
  for (size_t i = 0; i < warmup + count; ++i) {
    if (::write(agent->input(), "x", 1) != 1) throw std::runtime_error("probe agent: write failed");
    int64_t sent = 0;
    size_t have = 0;
    while (have < sizeof sent) {
      struct pollfd p = {agent->output(), POLLIN, 0};
      if (::poll(&p, 1, 20000) <= 0) {
        throw std::runtime_error("probe agent did not answer: " + agent->stderrText());
      }
      ssize_t n = ::read(agent->output(), reinterpret_cast<char*>(&sent) + have, sizeof sent - have);
      if (n == 0) throw std::runtime_error("probe agent ended: " + agent->stderrText());
      if (n < 0 && errno != EAGAIN && errno != EINTR) {
        throw std::runtime_error(std::string("probe agent: read: ") + std::strerror(errno));
      }
      if (n > 0) have += static_cast<size_t>(n);
    }
    const int64_t received = nowNs();
    if (i >= warmup) samples.push_back(received - sent);
  }
  return samples;
}

}  // namespace rnotify::bench
