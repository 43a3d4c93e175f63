// DaemonUnderTest; see daemon_under_test.h.
#include "daemon_under_test.h"

#include <stdexcept>

#include "deadline.h"

namespace rnotify::bench {

DaemonUnderTest::DaemonUnderTest(DaemonOptions options) : options_(std::move(options)) {
  testbed::ProcessOptions p;
  if (!options_.cgroupProcs.empty()) {
    // The shell enters the cgroup and becomes rnotifyd: same pid, so the
    // daemon's inotify instance and every watch are charged to the cgroup.
    p.argv = {"/bin/sh", "-c", "echo $$ > \"$0\" && exec \"$@\"", options_.cgroupProcs};
  }
  p.argv.push_back(options_.rnotifyd);
  p.argv.push_back("--listen");
  p.argv.push_back("unix:" + options_.socketPath);
  for (const std::string& dir : options_.exports) {
    p.argv.push_back("--export");
    p.argv.push_back(dir);
  }
  if (!options_.watcher.empty()) {
    p.argv.push_back("--watcher");
    p.argv.push_back(options_.watcher);
  }
  p.argv.insert(p.argv.end(), options_.extraArgs.begin(), options_.extraArgs.end());
  process_ = std::make_unique<testbed::Process>(std::move(p));
  // No readiness signal from the daemon: retry the connect until it listens.
  std::string lastError;
  bool up = testbed::waitUntil(testbed::Deadline::in(std::chrono::seconds(10)), [&] {
    if (!process_->running()) return true;
    auto c = Connection::overSocket("unix:" + options_.socketPath, 2000);
    if (c) return true;
    lastError = c.error().message;
    return false;
  });
  if (!up || !process_->running()) {
    throw std::runtime_error("rnotifyd did not start listening on " + options_.socketPath + ": " + lastError + "\n" +
                             process_->transcript());
  }
}

DaemonUnderTest::~DaemonUnderTest() { process_->terminate(); }

std::unique_ptr<Connection> DaemonUnderTest::connect() {
  auto c = Connection::overSocket("unix:" + options_.socketPath, 10000);
  if (!c) throw std::runtime_error("cannot connect to rnotifyd: " + c.error().message + "\n" + transcript());
  return std::move(*c);
}

uint32_t watchOrThrow(Connection& connection, const std::string& path, uint32_t mask, uint32_t flags,
                      const std::string& what, int timeoutMs) {
  proto::Watch watch;
  watch.mask = mask;
  watch.flags = flags;
  watch.path = path;
  auto reply = connection.request(watch, timeoutMs);
  if (!reply) throw std::runtime_error(what + ": watch request on " + path + " failed: " + reply.error().message);
  if (reply->status != 0)
    throw std::runtime_error(what + ": server refused the watch on " + path + ": " + reply->message);
  return reply->watchId;
}

}  // namespace rnotify::bench
