// InotifyAgentSource; see inotify_agent_source.h.
#include "inotify_agent_source.h"

#include <poll.h>
#include <sys/inotify.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <stdexcept>

namespace rnotify::bench {

int runInotifyAgent(const std::string& dir) {
  int fd = ::inotify_init1(IN_CLOEXEC);
  if (fd < 0 || ::inotify_add_watch(fd, dir.c_str(), IN_CREATE) < 0) {
    std::fprintf(stderr, "inotify agent: cannot watch %s: %s\n", dir.c_str(), std::strerror(errno));
    return 1;
  }
  if (::write(STDOUT_FILENO, "\n", 1) != 1) return 1;  // watching: an empty line
  alignas(struct inotify_event) char buffer[64 * 1024];
  for (;;) {
    // Leaves when the benchmark closes its end (ssh passes that on as EOF).
    struct pollfd p[2] = {{fd, POLLIN, 0}, {STDIN_FILENO, POLLIN, 0}};
    if (::poll(p, 2, -1) < 0 && errno != EINTR) return 1;
    if (p[1].revents != 0) {
      char byte;
      if (::read(STDIN_FILENO, &byte, 1) <= 0) return 0;
    }
    if ((p[0].revents & POLLIN) == 0) continue;
    ssize_t n = ::read(fd, buffer, sizeof buffer);
    if (n <= 0) return 1;
    std::string lines;
    for (ssize_t at = 0; at < n;) {
      const auto* event = reinterpret_cast<const struct inotify_event*>(buffer + at);
      if (event->mask & IN_Q_OVERFLOW) lines += "!\n";  // the kernel dropped events
      if (event->len > 0) lines += std::string(event->name) + '\n';
      at += static_cast<ssize_t>(sizeof(struct inotify_event) + event->len);
    }
    if (::write(STDOUT_FILENO, lines.data(), lines.size()) != static_cast<ssize_t>(lines.size())) return 0;
  }
}

InotifyAgentSource::InotifyAgentSource(std::string name, const std::vector<std::string>& argv, std::string dir)
    : name_(std::move(name)), dir_(std::move(dir)) {
  for (const std::string& a : argv) description_ += (description_.empty() ? "" : " ") + a;
  description_ += " (an inotify agent: one line per created name)";
  auto agent = AgentProcess::spawn(argv);
  if (!agent) throw std::runtime_error(name_ + ": cannot start the agent: " + agent.error().message);
  agent_ = std::move(*agent);
  auto ready = nextCreate(20000);
  if (!ready || !ready->empty()) throw std::runtime_error(name_ + ": the agent did not start: " + agent_.stderrText());
}

std::optional<std::string> InotifyAgentSource::nextCreate(int timeoutMs) {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeoutMs);
  for (;;) {
    if (size_t end = buffer_.find('\n'); end != std::string::npos) {
      std::string name = buffer_.substr(0, end);
      buffer_.erase(0, end + 1);
      if (name == "!") {
        ++stats_.overflows;
        continue;
      }
      return name;
    }
    const auto left =
        std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
    struct pollfd p = {agent_.output(), POLLIN, 0};
    int n = ::poll(&p, 1, static_cast<int>(std::max<int64_t>(left.count(), 0)));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return std::nullopt;
    char chunk[4096];
    ssize_t len = ::read(agent_.output(), chunk, sizeof chunk);
    if (len < 0 && (errno == EAGAIN || errno == EINTR)) continue;
    if (len <= 0) throw std::runtime_error(name_ + ": the agent ended: " + agent_.stderrText());
    buffer_.append(chunk, static_cast<size_t>(len));
  }
}

}  // namespace rnotify::bench
