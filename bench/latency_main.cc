// bench_latency: how long after a change on the server does the client see
// its event? Measures create -> IN_CREATE latency (p50/p90/p99/max over >=
// 10,000 events per transport) for raw local inotify (the floor), rnotify over
// a unix socket, rnotify over ssh stdio through the C API on a real sshfs
// mount (the product path), and the same agent driven by rnotify::Connection
// directly, side by side in one run; optionally a burst throughput figure.
// docs/BENCHMARKS.md explains the method and the results. Not a CTest test:
// a benchmark has no pass/fail, and it takes a minute.
#include <signal.h>
#include <stdlib.h>
#include <sys/utsname.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <cstdio>
#include <fstream>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "bench_scene.h"
#include "c_api_source.h"
#include "connection_source.h"
#include "inotify_source.h"
#include "latency_runner.h"
#include "pipe_probe.h"

namespace {

using namespace rnotify::bench;

struct Options {
  RunnerOptions runner;
  size_t burst = 100000;
  bool probes = true;
  int burstIdleMs = 10000;
  std::vector<std::string> transports{"inotify", "unix", "ssh", "ssh-agent"};
  std::string csv;
  std::string samples;
  std::vector<std::string> sshOptions;
  // tmpfs: a create costs ~4 us there and never waits for a journal, so the
  // numbers are about notification, not about the disk (docs/BENCHMARKS.md).
  std::string baseDir = "/dev/shm";
#ifdef RNOTIFYD_PATH
  std::string rnotifyd = RNOTIFYD_PATH;
#else
  std::string rnotifyd;
#endif
};

bool wants(const Options& o, const std::string& name) {
  return std::find(o.transports.begin(), o.transports.end(), name) != o.transports.end();
}

std::string cpuModel() {
  std::ifstream in("/proc/cpuinfo");
  for (std::string line; std::getline(in, line);) {
    if (line.rfind("model name", 0) == 0) return line.substr(line.find(':') + 2);
  }
  return "unknown";
}

std::string fsType(const std::string& path) {
  // The longest mount point that is a prefix of path; enough for a report.
  std::ifstream in("/proc/self/mounts");
  std::string device, mountPoint, type, rest, best, bestType = "unknown";
  while (in >> device >> mountPoint >> type && std::getline(in, rest)) {
    bool under = path.rfind(mountPoint, 0) == 0 &&
                 (path.size() == mountPoint.size() || mountPoint == "/" || path[mountPoint.size()] == '/');
    if (under && mountPoint.size() >= best.size()) {
      best = mountPoint;
      bestType = type;
    }
  }
  return bestType;
}

std::string selfPath() {
  char buffer[4096];
  ssize_t n = ::readlink("/proc/self/exe", buffer, sizeof buffer - 1);
  if (n <= 0) throw std::runtime_error("cannot read /proc/self/exe");
  return std::string(buffer, static_cast<size_t>(n));
}

void printMachine(const Options& o) {
  struct utsname u;
  ::uname(&u);
  std::printf("machine: %u cpus (%s), kernel %s %s\n", std::thread::hardware_concurrency(), cpuModel().c_str(),
              u.sysname, u.release);
  std::printf("export directory below %s (%s)\n", o.baseDir.c_str(), fsType(o.baseDir).c_str());
  std::printf(
      "method: %zu timed + %zu warm-up creates per transport, blocks of %zu rotated per round, "
      "timeout %d ms, gap %d us\n",
      o.runner.events, o.runner.warmup, o.runner.block, o.runner.timeoutMs, o.runner.gapUs);
}

int run(const Options& o) {
  BenchScene scene(o.rnotifyd, o.baseDir);
  scene.setExtraSshOptions(o.sshOptions);
  LatencyRunner runner(o.runner);
  if (wants(o, "inotify")) runner.add(std::make_unique<InotifySource>(scene.laneDir("inotify")));
  if (wants(o, "unix")) {
    std::string dir = scene.laneDir("unix");
    runner.add(std::make_unique<ConnectionSource>("unix", scene.connectUnix(), dir, dir));
  }
  if (wants(o, "ssh") || wants(o, "ssh-agent")) {
    if (std::string why = BenchScene::sshMissing(); !why.empty()) {
      std::printf("skipping ssh transports: %s\n", why.c_str());
    } else {
      scene.startSsh();
      if (wants(o, "ssh")) {
        std::string dir = scene.laneDir("ssh");
        // The client library reads the agent command from here (config.cc).
        ::setenv("RNOTIFY_AGENT", scene.agentCommand().c_str(), 1);
        runner.add(std::make_unique<CApiSource>("ssh", scene.mountPath("ssh"), dir));
      }
      if (wants(o, "ssh-agent")) {
        std::string dir = scene.laneDir("ssh-agent");
        runner.add(std::make_unique<ConnectionSource>("ssh-agent", scene.connectAgent(), dir, dir));
      }
    }
  }
  printMachine(o);
  for (const std::string& line : runner.descriptions()) std::printf("  %s\n", line.c_str());
  std::fflush(stdout);

  runner.run(stderr);
  auto latency = runner.summaries();
  std::printf("\ncreate -> event latency (microseconds; ratios against raw inotify)\n");
  printLatencyTable(stdout, latency);
  std::fflush(stdout);

  // What the byte streams alone cost, without rnotify, for the discussion of
  // where the time goes. Same sample count as the timed events.
  std::vector<LatencySummary> streams;
  if (o.probes) {
    std::string self = selfPath();
    streams.push_back(summarize("pipe", measureOneWay({self, "--probe-agent"}, o.runner.events, o.runner.warmup), 0));
    if (scene.sshStarted()) {
      streams.push_back(summarize(
          "ssh-pipe", measureOneWay(scene.sshArgv({self, "--probe-agent"}), o.runner.events, o.runner.warmup), 0));
    }
    std::printf("\none-way byte-stream latency without rnotify: agent write -> client read (microseconds)\n");
    printLatencyTable(stdout, streams, false);
    std::fflush(stdout);
  }

  std::vector<BurstResult> bursts;
  if (o.burst > 0) {
    bursts = runner.bursts(o.burst, o.burstIdleMs);
    std::printf("\nburst of %zu creates from a second thread, events/s = received / (first create -> last event)\n",
                o.burst);
    printBurstTable(stdout, bursts);
  }
  if (!o.csv.empty()) {
    writeCsv(o.csv, latency, streams, bursts);
    std::printf("\nwrote %s\n", o.csv.c_str());
  }
  if (!o.samples.empty()) {
    runner.writeSamples(o.samples);
    std::printf("wrote %s\n", o.samples.c_str());
  }
  for (const auto& row : latency) {
    if (row.lost > 0) {
      std::printf("warning: %s lost %zu events (no event within %d ms)\n", row.transport.c_str(), row.lost,
                  o.runner.timeoutMs);
    }
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  ::signal(SIGPIPE, SIG_IGN);
  // The probe agent: this binary, started over ssh by the benchmark itself.
  if (argc == 2 && std::string(argv[1]) == "--probe-agent") return runProbeAgent();
  Options o;
  CLI::App app{"bench_latency: create -> event latency of raw inotify and rnotify's transports, side by side",
               "bench_latency"};
  app.add_option("--events", o.runner.events, "Timed events per transport")->capture_default_str();
  app.add_option("--warmup", o.runner.warmup, "Untimed events per transport before timing")->capture_default_str();
  app.add_option("--block", o.runner.block, "Events per turn before the next transport")->capture_default_str();
  app.add_option("--timeout-ms", o.runner.timeoutMs, "An event not seen by then counts as lost")->capture_default_str();
  app.add_option("--gap-us", o.runner.gapUs, "Pause after each event (let all processes go idle)")
      ->capture_default_str();
  app.add_option("--burst", o.burst, "Creates in the throughput burst per transport; 0 skips it")
      ->capture_default_str();
  app.add_option("--transports", o.transports, "Any of inotify, unix, ssh, ssh-agent")
      ->delimiter(',')
      ->check(CLI::IsMember({"inotify", "unix", "ssh", "ssh-agent"}))
      ->capture_default_str();
  app.add_flag("!--no-probes", o.probes, "Skip the byte-stream probes (pipe, ssh-pipe)");
  app.add_option("--csv", o.csv, "Write the summary here as CSV")->type_name("PATH");
  app.add_option("--samples", o.samples, "Write every sample here as CSV (transport,index,latency_ns)")
      ->type_name("PATH");
  app.add_option("--ssh-option", o.sshOptions,
                 "Extra ssh option for ssh-agent and ssh-pipe (repeatable), e.g. -oCiphers=aes128-gcm@openssh.com");
  app.add_option("--dir", o.baseDir, "Create the export directory below this directory")->capture_default_str();
  app.add_option("--rnotifyd", o.rnotifyd, "The rnotifyd binary to run")->capture_default_str();
  CLI11_PARSE(app, argc, argv);
  if (o.runner.events == 0) {
    std::fprintf(stderr, "bench_latency: --events must be at least 1\n");
    return 2;
  }
  try {
    return run(o);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "bench_latency: %s\n", e.what());
    return 1;
  }
}
