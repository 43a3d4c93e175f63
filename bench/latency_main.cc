// bench_latency: how long after a change on the server does the client see
// its event? Measures create -> IN_CREATE latency (p50/p90/p99/max over >=
// 10,000 events per transport) for raw local inotify (the floor), rnotify over
// a unix socket, rnotify over ssh stdio through the C API on a real sshfs
// mount (the product path), and the same agent driven by rnotify::Connection
// directly, side by side in one run; optionally a burst throughput figure.
// The own-* lanes measure what de-duplication adds: the file is created
// through the client's own sshfs mount, so the local kernel and the server
// both report it, and each lane runs the C API with another RNOTIFY_DEDUP.
// docs/BENCHMARKS.md explains the method and the results. Not a CTest test:
// a benchmark has no pass/fail, and it takes a minute.
#include <signal.h>
#include <stdlib.h>
#include <sys/utsname.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "bench_scene.h"
#include "c_api_source.h"
#include "connection_source.h"
#include "inotify_agent_source.h"
#include "inotify_source.h"
#include "latency_runner.h"
#include "pipe_probe.h"

namespace {

using namespace rnotify::bench;

// Changes made through the client's own mount, one lane per RNOTIFY_DEDUP
// mode. own-off is their floor: the local kernel's event, nothing held.
struct OwnLane {
  const char* name;
  const char* dedup;
};
constexpr OwnLane kOwnLanes[] = {
    {"own-off", "off"}, {"own-echo", "echo"}, {"own-state", "state"}, {"own-origin", "origin"}, {"own-auto", "auto"},
};

struct Options {
  RunnerOptions runner;
  size_t burst = 100000;
  bool probes = true;
  int burstIdleMs = 10000;
  std::vector<std::string> transports{"inotify",    "unix",     "ssh",       "own-off",      "own-echo",   "own-state",
                                      "own-origin", "own-auto", "ssh-agent", "inotify-pipe", "ssh-inotify"};
  std::string csv;
  std::string dedupCsv;
  std::string samples;
  int settleMs = 50;
  int drainMs = 300;
  std::vector<std::string> sshOptions;
  std::string watcher;    // rnotifyd --watcher for every rnotifyd started; "" = its default
  bool sharedFs = false;  // all lanes on the base directory's filesystem
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

bool wantsOwn(const Options& o) {
  for (const OwnLane& lane : kOwnLanes) {
    if (wants(o, lane.name)) return true;
  }
  return false;
}

struct OwnRow {
  std::string lane;
  std::string dedup;
  std::string strategy;  // in force, from rnotify_watch_source()
  const CApiSource* source = nullptr;
  CopyCount copies;
  LatencySummary latency;
};

// lane -> its RNOTIFY_DEDUP and source (owned by the runner)
using OwnModes = std::map<std::string, std::pair<std::string, const CApiSource*>>;

std::vector<OwnRow> ownRows(const std::vector<CopyCount>& copies, const std::vector<LatencySummary>& latency,
                            const OwnModes& modes) {
  std::vector<OwnRow> rows;
  for (const CopyCount& c : copies) {
    OwnRow row;
    row.lane = c.transport;
    row.copies = c;
    auto mode = modes.find(c.transport);
    if (mode != modes.end()) {
      row.dedup = mode->second.first;
      row.source = mode->second.second;
      row.strategy = row.source->strategy();
    }
    for (const LatencySummary& l : latency) {
      if (l.transport == c.transport) row.latency = l;
    }
    rows.push_back(std::move(row));
  }
  return rows;
}

const OwnRow* ownFloor(const std::vector<OwnRow>& rows) {
  for (const OwnRow& r : rows) {
    if (r.lane == "own-off") return &r;
  }
  return nullptr;
}

void printOwnTable(std::FILE* out, const std::vector<OwnRow>& rows) {
  const OwnRow* floor = ownFloor(rows);
  std::fprintf(out, "%-10s %-6s %-19s %7s %5s %8s %6s %6s %6s %6s %10s %9s %9s %9s %9s", "lane", "dedup",
               "strategy in force", "changes", "lost", "copies/c", "0", "1", "2", "3+", "mknod_p50", "wait_p50",
               "wait_p99", "p50_us", "p99_us");
  std::fprintf(out, floor ? " %9s %9s\n" : "\n", "+p50_us", "+p99_us");
  for (const OwnRow& r : rows) {
    const CopyCount& c = r.copies;
    std::fprintf(out, "%-10s %-6s %-19s %7zu %5zu %8.3f %6zu %6zu %6zu %6zu %10.1f %9.1f %9.1f %9.1f %9.1f",
                 r.lane.c_str(), r.dedup.c_str(), r.strategy.empty() ? "?" : r.strategy.c_str(), c.changes,
                 r.latency.lost, c.perChange(), c.withCopies[0], c.withCopies[1], c.withCopies[2], c.withCopies[3],
                 c.create.p50Us, c.wait.p50Us, c.wait.p99Us, r.latency.p50Us, r.latency.p99Us);
    if (floor) {
      std::fprintf(out, " %9.1f %9.1f\n", r.latency.p50Us - floor->latency.p50Us,
                   r.latency.p99Us - floor->latency.p99Us);
    } else {
      std::fprintf(out, "\n");
    }
  }
}

void writeOwnCsv(const std::string& path, const std::vector<OwnRow>& rows) {
  std::FILE* f = std::fopen(path.c_str(), "w");
  if (f == nullptr) throw std::runtime_error("cannot write " + path + ": " + std::strerror(errno));
  std::fprintf(f,
               "lane,dedup,strategy,changes,lost,copies,copies_per_change,changes_0_copies,changes_1_copy,"
               "changes_2_copies,changes_3plus_copies,mknod_p50_us,mknod_p99_us,wait_p50_us,wait_p90_us,wait_p99_us,"
               "p50_us,p90_us,p99_us,p999_us,max_us,"
               "added_p50_us,added_p99_us,added_wait_p50_us,added_wait_p99_us\n");
  const OwnRow* floor = ownFloor(rows);
  for (const OwnRow& r : rows) {
    const CopyCount& c = r.copies;
    const LatencySummary& l = r.latency;
    std::fprintf(f, "%s,%s,%s,%zu,%zu,%zu,%.3f,%zu,%zu,%zu,%zu,%.1f,%.1f,%.1f,%.1f,%.1f,%.1f,%.1f,%.1f,%.1f,%.1f,",
                 r.lane.c_str(), r.dedup.c_str(), r.strategy.c_str(), c.changes, l.lost, c.copies, c.perChange(),
                 c.withCopies[0], c.withCopies[1], c.withCopies[2], c.withCopies[3], c.create.p50Us, c.create.p99Us,
                 c.wait.p50Us, c.wait.p90Us, c.wait.p99Us, l.p50Us, l.p90Us, l.p99Us, l.p999Us, l.maxUs);
    if (floor) {
      std::fprintf(f, "%.1f,%.1f,%.1f,%.1f\n", l.p50Us - floor->latency.p50Us, l.p99Us - floor->latency.p99Us,
                   c.wait.p50Us - floor->copies.wait.p50Us, c.wait.p99Us - floor->copies.wait.p99Us);
    } else {
      std::fprintf(f, ",,,\n");
    }
  }
  if (std::fclose(f) != 0) throw std::runtime_error("cannot write " + path + ": " + std::strerror(errno));
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

// A tmpfs per lane when the export is on tmpfs anyway (the default) and we
// may mount; on a disk filesystem (--dir /var/tmp) the lanes stay on it, since
// that filesystem is what is being measured.
bool laneFilesystems(const Options& o) { return !o.sharedFs && ::geteuid() == 0 && fsType(o.baseDir) == "tmpfs"; }

void printMachine(const Options& o) {
  struct utsname u;
  ::uname(&u);
  std::printf("machine: %u cpus (%s), kernel %s %s\n", std::thread::hardware_concurrency(), cpuModel().c_str(),
              u.sysname, u.release);
  std::printf("export directory below %s (%s)%s\n", o.baseDir.c_str(), fsType(o.baseDir).c_str(),
              laneFilesystems(o) ? ", each lane's directory on its own tmpfs"
                                 : ", all lanes on one filesystem (fanotify agents see every lane's changes)");
  std::printf(
      "method: %zu timed + %zu warm-up creates per transport, blocks of %zu rotated per round, "
      "timeout %d ms, gap %d us\n",
      o.runner.events, o.runner.warmup, o.runner.block, o.runner.timeoutMs, o.runner.gapUs);
}

int run(const Options& o) {
  BenchScene scene(o.rnotifyd, o.baseDir);
  scene.setExtraSshOptions(o.sshOptions);
  if (!o.watcher.empty()) scene.setRnotifydArgs({"--watcher", o.watcher});
  const bool separate = laneFilesystems(o);
  scene.setSeparateFilesystems(separate);
  LatencyRunner runner(o.runner);
  if (wants(o, "inotify")) runner.add(std::make_unique<InotifySource>(scene.laneDir("inotify")));
  if (wants(o, "unix")) {
    std::string dir = scene.laneDir("unix");
    runner.add(std::make_unique<ConnectionSource>("unix", scene.connectUnix(), dir, dir));
  }
  if (wants(o, "tls")) {
    std::string dir = scene.laneDir("tls");
    runner.add(std::make_unique<ConnectionSource>("tls", scene.connectTls(), dir, dir));
  }
  OwnModes ownModes;
  if (wants(o, "inotify-pipe")) {
    std::string dir = scene.laneDir("inotify-pipe");
    runner.add(std::make_unique<InotifyAgentSource>("inotify-pipe",
                                                    std::vector<std::string>{selfPath(), "--inotify-agent", dir}, dir));
  }
  if (wants(o, "ssh") || wants(o, "ssh-agent") || wants(o, "ssh-inotify") || wantsOwn(o)) {
    if (std::string why = BenchScene::sshMissing(); !why.empty()) {
      std::printf("skipping ssh transports: %s\n", why.c_str());
    } else {
      scene.startSsh();
      // The client library reads the agent command from here (config.cc).
      ::setenv("RNOTIFY_AGENT", scene.agentCommand().c_str(), 1);
      if (wants(o, "ssh")) {
        std::string dir = scene.laneDir("ssh");
        runner.add(std::make_unique<CApiSource>("ssh", scene.mountPath("ssh"), dir));
      }
      for (const OwnLane& own : kOwnLanes) {
        if (!wants(o, own.name)) continue;
        scene.laneDir(own.name);
        // Watched and changed through the same mount: the local kernel sees
        // each create, and the server echoes it.
        std::string path = scene.mountPath(own.name);
        CApiSourceOptions options;
        options.dedup = own.dedup;
        options.localCreatesCount = true;
        auto source = std::make_unique<CApiSource>(own.name, path, path, options);
        ownModes[own.name] = {own.dedup, source.get()};
        LaneOptions lane;
        lane.countCopies = true;
        // Without de-duplication the server's copy follows the local one;
        // wait for it so that it does not land in the next change's timing.
        lane.settleCopies = std::string(own.dedup) == "off" ? 2 : 1;
        lane.settleMs = o.settleMs;
        lane.drainMs = o.drainMs;
        runner.add(std::move(source), lane);
      }
      if (wants(o, "ssh-inotify")) {
        std::string dir = scene.laneDir("ssh-inotify");
        runner.add(std::make_unique<InotifyAgentSource>("ssh-inotify",
                                                        scene.sshArgv({selfPath(), "--inotify-agent", dir}), dir));
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

  std::vector<OwnRow> own = ownRows(runner.copyCounts(), latency, ownModes);
  if (!own.empty()) {
    std::printf(
        "\nchanges made through the client's own mount: create events delivered per change (copies/c; how many "
        "changes had 0, 1, 2, 3+ copies), the mknodat call alone (mknod_p50; events are read after it returns), "
        "the wait from its return to the first copy (wait_*), and latency added over own-off (+p50, +p99; "
        "microseconds)\n");
    printOwnTable(stdout, own);
    for (const OwnRow& r : own) {
      if (r.dedup != "off" || r.source == nullptr) continue;
      // Which report comes first, and how long its copy takes: what echo
      // matching waits for when the local report comes first.
      std::printf(
          "%s: the first copy was the server's for %zu and this host's kernel's for %zu changes "
          "(warm-up included)",
          r.lane.c_str(), r.source->firstRemote(), r.source->firstLocal());
      if (r.copies.gap.events > 0) {
        std::printf("; second copy after the first: p50 %.1f us, p90 %.1f us, p99 %.1f us (%zu changes)",
                    r.copies.gap.p50Us, r.copies.gap.p90Us, r.copies.gap.p99Us, r.copies.gap.events);
      }
      std::printf("\n");
    }
    std::fflush(stdout);
  }

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
    if (!own.empty()) std::printf("(own-* lanes take no part in the burst)\n");
  }
  if (!o.csv.empty()) {
    writeCsv(o.csv, latency, streams, bursts);
    std::printf("\nwrote %s\n", o.csv.c_str());
  }
  if (!o.dedupCsv.empty() && !own.empty()) {
    writeOwnCsv(o.dedupCsv, own);
    std::printf("wrote %s\n", o.dedupCsv.c_str());
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
  if (argc == 3 && std::string(argv[1]) == "--inotify-agent") return runInotifyAgent(argv[2]);
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
  std::vector<std::string> known{"inotify", "unix", "tls", "ssh", "ssh-agent", "inotify-pipe", "ssh-inotify"};
  for (const OwnLane& own : kOwnLanes) known.push_back(own.name);
  app.add_option("--transports", o.transports,
                 "Any of inotify, unix, tls (TLS 1.3 on loopback, client certificate), ssh, ssh-agent, and own-off, "
                 "own-echo, own-state, own-origin, own-auto "
                 "(created through the client's own sshfs mount, RNOTIFY_DEDUP=off|echo|state|origin|auto); "
                 "inotify-pipe and ssh-inotify: the same job without rnotify, an agent that writes each created "
                 "name (directly, or over ssh as the ssh lanes)")
      ->delimiter(',')
      ->check(CLI::IsMember(known))
      ->capture_default_str();
  bool dedupLanes = false;
  app.add_flag("--dedup", dedupLanes, "Add the five own-* lanes to --transports (they are in the default set)");
  app.add_option("--dedup-csv", o.dedupCsv, "Write the own-* lanes' copies and added latency here as CSV")
      ->type_name("PATH");
  app.add_option("--settle-ms", o.settleMs, "own-off: wait at most this long for the server's copy (untimed)")
      ->capture_default_str();
  app.add_option("--drain-ms", o.drainMs,
                 "own-*: after each block, count late copies until none came for this long (untimed)")
      ->capture_default_str();
  app.add_flag("!--no-probes", o.probes, "Skip the byte-stream probes (pipe, ssh-pipe)");
  app.add_option("--csv", o.csv, "Write the summary here as CSV")->type_name("PATH");
  app.add_option("--samples", o.samples, "Write every sample here as CSV (transport,index,latency_ns)")
      ->type_name("PATH");
  app.add_option("--ssh-option", o.sshOptions,
                 "Extra ssh option for ssh-agent and ssh-pipe (repeatable), e.g. -oCiphers=aes128-gcm@openssh.com");
  app.add_option("--dir", o.baseDir, "Create the export directory below this directory")->capture_default_str();
  app.add_option("--rnotifyd", o.rnotifyd, "The rnotifyd binary to run")->capture_default_str();
  app.add_option("--watcher", o.watcher,
                 "rnotifyd --watcher for every rnotifyd started (default: rnotifyd's own, auto; the own-origin lane "
                 "needs fanotify)")
      ->check(CLI::IsMember({"auto", "inotify", "fanotify"}));
  app.add_flag("--shared-fs", o.sharedFs,
               "Keep all lanes on the --dir filesystem instead of a tmpfs each; with rnotifyd's fanotify backend "
               "every agent then wakes for every lane's changes");
  CLI11_PARSE(app, argc, argv);
  if (dedupLanes) {
    for (const OwnLane& own : kOwnLanes) {
      if (!wants(o, own.name)) o.transports.push_back(own.name);
    }
  }
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
