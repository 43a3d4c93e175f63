// bench_preload_latency (issue 9): how long after a change on the server does
// an unmodified program, running under the inotify shim (librnotify-preload.so)
// on an sshfs mount, read its event? Same method as bench_latency (one
// mknodat on the server side, clock before it, clock when the program's
// report is in hand; lanes take turns in rotated blocks), with these lanes in
// one run:
//
//   inotify         raw inotify in this process (the floor)
//   helper          a child program reading plain inotify on a local directory
//                   and writing each created name to a pipe: the floor plus
//                   the pipe hop every helper lane pays
//   preload-local   the same child under the shim, local directory: what the
//                   shim adds to local watches (nothing but the interposition)
//   preload-remote  the same child under the shim, watching the sshfs mount;
//                   files created on the server: the product path of the shim
//   ssh             the C API in this process on the mount (bench_latency's
//                   ssh lane): the client core without the shim or the pipe
//
// The child is this binary (--watch-helper DIR). docs/BENCHMARKS.md, section
// "The inotify shim", has the results. Not a CTest test.
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/inotify.h>
#include <sys/wait.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <deque>
#include <fstream>
#include <stdexcept>
#include <string>
#include <vector>

#include "bench_scene.h"
#include "c_api_source.h"
#include "common/unique_fd.h"
#include "inotify_source.h"
#include "latency_runner.h"
#include "system_probe.h"

extern char** environ;

namespace {

using namespace rnotify;
using namespace rnotify::bench;

// The child: plain inotify, one line per created name, written at once.
int runWatchHelper(const char* dir) {
  int fd = ::inotify_init1(IN_CLOEXEC);
  if (fd < 0 || ::inotify_add_watch(fd, dir, IN_CREATE) < 0) {
    std::fprintf(stderr, "watch-helper: cannot watch %s: %s\n", dir, std::strerror(errno));
    return 1;
  }
  [[maybe_unused]] ssize_t w = ::write(STDOUT_FILENO, "ready\n", 6);
  alignas(struct inotify_event) char buffer[64 * 1024];
  std::string out;
  for (;;) {
    ssize_t n = ::read(fd, buffer, sizeof buffer);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return 1;
    out.clear();
    for (char* at = buffer; at < buffer + n;) {
      auto* ev = reinterpret_cast<struct inotify_event*>(at);
      if ((ev->mask & IN_CREATE) && ev->len > 0) out.append(ev->name).push_back('\n');
      at += sizeof(struct inotify_event) + ev->len;
    }
    if (!out.empty() && ::write(STDOUT_FILENO, out.data(), out.size()) < 0) return 1;
  }
}

// A lane whose events come from a helper child through a pipe.
class HelperSource final : public EventSource {
 public:
  HelperSource(std::string name, const std::string& self, const std::string& watchDir, std::string changeDir,
               const std::string& preload, const std::string& agent)
      : name_(std::move(name)), changeDir_(std::move(changeDir)) {
    description_ = "a child process: plain inotify on " + watchDir + ", names through a pipe" +
                   (preload.empty() ? std::string() : ", LD_PRELOAD=" + preload);
    int fds[2];
    if (::pipe2(fds, O_CLOEXEC) != 0) throw std::runtime_error("pipe2: " + std::string(std::strerror(errno)));
    UniqueFd readEnd(fds[0]), writeEnd(fds[1]);
    std::vector<std::string> env;
    for (char** e = environ; *e != nullptr; ++e) {
      if (std::strncmp(*e, "LD_PRELOAD=", 11) != 0 && std::strncmp(*e, "RNOTIFY_AGENT=", 14) != 0) env.push_back(*e);
    }
    if (!preload.empty()) env.push_back("LD_PRELOAD=" + preload);
    if (!agent.empty()) env.push_back("RNOTIFY_AGENT=" + agent);
    std::vector<char*> envp, argv;
    for (auto& e : env) envp.push_back(e.data());
    envp.push_back(nullptr);
    std::string flag = "--watch-helper", dir = watchDir, program = self;
    argv = {program.data(), flag.data(), dir.data(), nullptr};
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_adddup2(&actions, writeEnd.get(), STDOUT_FILENO);
    int rc = ::posix_spawn(&pid_, self.c_str(), &actions, nullptr, argv.data(), envp.data());
    posix_spawn_file_actions_destroy(&actions);
    if (rc != 0) throw std::runtime_error("cannot start the helper: " + std::string(std::strerror(rc)));
    pipe_ = std::move(readEnd);
    auto ready = nextCreate(30000);  // its "ready" line
    if (!ready || *ready != "ready") throw std::runtime_error(name_ + ": the helper did not start watching");
  }

  ~HelperSource() override {
    if (pid_ > 0) {
      ::kill(pid_, SIGTERM);
      ::waitpid(pid_, nullptr, 0);
    }
  }

  const std::string& name() const override { return name_; }
  const std::string& description() const override { return description_; }
  const std::string& changeDir() const override { return changeDir_; }

  std::optional<std::string> nextCreate(int timeoutMs) override {
    for (;;) {
      size_t newline = pending_.find('\n');
      if (newline != std::string::npos) {
        std::string name = pending_.substr(0, newline);
        pending_.erase(0, newline + 1);
        return name;
      }
      pollfd p{pipe_.get(), POLLIN, 0};
      int n = ::poll(&p, 1, timeoutMs);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) return std::nullopt;
      char buffer[4096];
      ssize_t got = ::read(pipe_.get(), buffer, sizeof buffer);
      if (got <= 0) throw std::runtime_error(name_ + ": the helper exited");
      pending_.append(buffer, static_cast<size_t>(got));
    }
  }

 private:
  std::string name_, description_, changeDir_;
  pid_t pid_ = -1;
  UniqueFd pipe_;
  std::string pending_;
};

std::string selfPath() {
  char buffer[4096];
  ssize_t n = ::readlink("/proc/self/exe", buffer, sizeof buffer - 1);
  if (n <= 0) throw std::runtime_error("cannot read /proc/self/exe");
  return std::string(buffer, static_cast<size_t>(n));
}

struct Options {
  RunnerOptions runner;
  std::string csv;
  std::string baseDir = "/dev/shm";
#ifdef RNOTIFYD_PATH
  std::string rnotifyd = RNOTIFYD_PATH;
#else
  std::string rnotifyd;
#endif
#ifdef PRELOAD_LIBRARY_PATH
  std::string preload = PRELOAD_LIBRARY_PATH;
#else
  std::string preload;
#endif
};

int run(const Options& o) {
  const std::string self = selfPath();
  BenchScene scene(o.rnotifyd, o.baseDir);
  scene.setSeparateFilesystems(::geteuid() == 0 && onTmpfs(o.baseDir));
  LatencyRunner runner(o.runner);
  runner.add(std::make_unique<InotifySource>(scene.laneDir("inotify")));
  std::string local = scene.laneDir("helper");
  runner.add(std::make_unique<HelperSource>("helper", self, local, local, "", ""));
  std::string shimLocal = scene.laneDir("preload-local");
  runner.add(std::make_unique<HelperSource>("preload-local", self, shimLocal, shimLocal, o.preload, ""));
  if (std::string why = BenchScene::sshMissing(); !why.empty()) {
    std::printf("skipping the remote lanes: %s\n", why.c_str());
  } else {
    scene.startSsh();
    ::setenv("RNOTIFY_AGENT", scene.agentCommand().c_str(), 1);
    std::string remote = scene.laneDir("preload-remote");
    runner.add(std::make_unique<HelperSource>("preload-remote", self, scene.mountPath("preload-remote"), remote,
                                              o.preload, scene.agentCommand()));
    std::string ssh = scene.laneDir("ssh");
    runner.add(std::make_unique<CApiSource>("ssh", scene.mountPath("ssh"), ssh));
  }
  std::printf("method: %zu timed + %zu warm-up creates per lane, blocks of %zu rotated per round\n", o.runner.events,
              o.runner.warmup, o.runner.block);
  for (const std::string& line : runner.descriptions()) std::printf("  %s\n", line.c_str());
  std::fflush(stdout);
  runner.run(stderr);
  auto latency = runner.summaries();
  std::printf("\ncreate on the server -> event read by the program (microseconds; ratios against raw inotify)\n");
  printLatencyTable(stdout, latency);
  if (!o.csv.empty()) {
    writeCsv(o.csv, latency, {}, {});
    std::printf("\nwrote %s\n", o.csv.c_str());
  }
  for (const auto& row : latency) {
    if (row.lost > 0) std::printf("warning: %s lost %zu events\n", row.transport.c_str(), row.lost);
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  ::signal(SIGPIPE, SIG_IGN);
  if (argc == 3 && std::string(argv[1]) == "--watch-helper") return runWatchHelper(argv[2]);
  Options o;
  o.runner.events = 5000;
  CLI::App app{"bench_preload_latency: remote change -> event latency for a program under the inotify shim",
               "bench_preload_latency"};
  app.add_option("--events", o.runner.events, "Timed events per lane")->capture_default_str();
  app.add_option("--warmup", o.runner.warmup, "Untimed events per lane first")->capture_default_str();
  app.add_option("--block", o.runner.block, "Events per turn")->capture_default_str();
  app.add_option("--timeout-ms", o.runner.timeoutMs, "An event not seen by then counts as lost")->capture_default_str();
  app.add_option("--csv", o.csv, "Write the summary here as CSV")->type_name("PATH");
  app.add_option("--dir", o.baseDir, "Create the export directory below this directory")->capture_default_str();
  app.add_option("--rnotifyd", o.rnotifyd, "The rnotifyd binary to run")->capture_default_str();
  app.add_option("--preload", o.preload, "librnotify-preload.so")->capture_default_str();
  CLI11_PARSE(app, argc, argv);
  try {
    return run(o);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "bench_preload_latency: %s\n", e.what());
    return 1;
  }
}
