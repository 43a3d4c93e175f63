// bench_throughput: a burst of creates and deletes (default 1,000,000
// events: 500,000 files created, then deleted) and how fast each consumer is
// told about it: raw inotify and raw fanotify read directly (the kernel's
// rate, the baseline), and one rnotify client through rnotifyd over a unix
// socket and over ssh stdio, with the inotify and with the fanotify backend.
// Every lane watches its own tmpfs, so no lane's watcher wakes for another's
// files; the lanes run one after the other in one run. Loss is counted:
// every event must arrive, or the overflows that announce the loss are
// reported.
//
// Two modes. live: the consumer reads while the producer runs; if it keeps
// up, its rate is the producer's (one thread's creates and deletes), which is
// what a real burst looks like. queued: the whole burst is made first while
// the consumer does not read (rnotifyd is stopped with SIGSTOP), with the
// kernel's max_queued_events raised to hold it; then the consumer is let go
// and its rate is its own: the most it can deliver. docs/BENCHMARKS.md
// explains the method and the results.
#include <signal.h>
#include <sys/inotify.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <cstdio>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "bench_scene.h"
#include "burst.h"
#include "counters.h"
#include "daemon_under_test.h"
#include "system_probe.h"
#include "temp_dir.h"

namespace {

using namespace rnotify::bench;

struct Options {
  uint64_t events = 1000000;
  std::vector<std::string> lanes{"none",          "inotify",     "fanotify",    "unix-inotify",
                                 "unix-fanotify", "ssh-inotify", "ssh-fanotify"};
  std::vector<std::string> modes{"live", "queued"};
  int rounds = 1;
  int idleMs = 10000;
  std::string baseDir = "/dev/shm";
  std::string csv;
#ifdef RNOTIFYD_PATH
  std::string rnotifyd = RNOTIFYD_PATH;
#else
  std::string rnotifyd;
#endif
};

struct Row {
  int round = 0;
  std::string mode;
  std::string lane;
  std::string what;
  BurstOutcome burst;
  std::optional<double> daemonCpu;  // seconds of rnotifyd CPU during the burst (unix lanes)
  double ratio = 0;                 // events/s over raw inotify's in the same round
};

// "unix-fanotify" -> {"unix", "fanotify"}
std::pair<std::string, std::string> splitLane(const std::string& lane) {
  size_t dash = lane.find('-');
  if (dash == std::string::npos) return {lane, ""};
  return {lane.substr(0, dash), lane.substr(dash + 1)};
}

// A counter that counts nothing: the producer alone, nobody watching.
class NoCounter final : public EventCounter {
 public:
  int fd() const override { return -1; }
  void pump() override {}
  bool complete(uint64_t) const override { return true; }
};

Row runLane(const Options& o, const std::string& lane, const std::string& mode, int round,
            rnotify::testbed::TempDir& work, std::unique_ptr<BenchScene>& scene) {
  Row row;
  row.round = round;
  row.mode = mode;
  row.lane = lane;
  auto [transport, backend] = splitLane(lane);
  BurstOptions burst;
  burst.files = o.events / 2;
  burst.idleMs = o.idleMs;
  burst.queueFirst = mode == "queued";
  std::string name = lane + "-" + mode + "-" + std::to_string(round);
  // Queued: the kernel must hold the whole burst (the limits apply when an
  // inotify or fanotify instance is created, so they are raised before).
  std::optional<SysctlOverride> inotifyQueue, fanotifyQueue;
  if (burst.queueFirst) {
    std::string room = std::to_string(o.events + 100000);
    inotifyQueue.emplace("fs/inotify/max_queued_events", room);
    fanotifyQueue.emplace("fs/fanotify/max_queued_events", room);
  }
  if (transport == "ssh") {
    if (!scene) {
      scene = std::make_unique<BenchScene>(o.rnotifyd, o.baseDir);
      scene->setSeparateFilesystems(true);
      scene->startSsh();
    }
    burst.dir = scene->laneDir(name);
    scene->setRnotifydArgs({"--watcher", backend});
    ConnectionCounter counter(scene->connectAgent(), burst.dir);
    row.what = "rnotify::Connection over ssh -T root@127.0.0.1 rnotifyd --stdio --watcher " + backend;
    row.burst = runBurst(burst, {&counter});
    return row;
  }
  burst.dir = work.mkdir(name);
  ScratchTmpfs fs(burst.dir);
  if (transport == "none") {
    NoCounter none;
    row.what = "the producer alone, nothing watching";
    row.burst = runBurst(burst, {&none});
  } else if (transport == "inotify") {
    RawInotifyCounter counter(burst.dir);
    row.what = "raw inotify (IN_CREATE|IN_DELETE on the directory), read(2) with a 64 KiB buffer";
    row.burst = runBurst(burst, {&counter});
  } else if (transport == "fanotify") {
    RawFanotifyCounter counter(burst.dir);
    row.what = "raw fanotify (FAN_REPORT_DFID_NAME, filesystem mark), read(2) with a 64 KiB buffer";
    row.burst = runBurst(burst, {&counter});
  } else if (transport == "unix") {
    DaemonUnderTest daemon({o.rnotifyd, work / (name + ".sock"), {burst.dir}, backend, {}, ""});
    ConnectionCounter counter(daemon.connect(), burst.dir);
    row.what = "rnotify::Connection over unix socket to rnotifyd --watcher " + backend;
    if (burst.queueFirst) {
      ::kill(daemon.pid(), SIGSTOP);
      burst.onProduced = [&] { ::kill(daemon.pid(), SIGCONT); };
    }
    auto before = cpuSeconds(daemon.pid());
    row.burst = runBurst(burst, {&counter});
    auto after = cpuSeconds(daemon.pid());
    if (before && after) row.daemonCpu = *after - *before;
    if (!row.burst.counters.front().complete) {
      // Say why: rnotifyd logs kernel overflows and clients it sheds.
      std::printf("  incomplete; rnotifyd said:\n%s\n", daemon.transcript().c_str());
    }
  } else {
    throw std::runtime_error("unknown lane '" + lane + "'");
  }
  return row;
}

void printTable(const std::vector<Row>& rows) {
  std::printf(
      "\n| round | mode | lane | events | received | overflows | complete | producer s | last event s | events/s | "
      "x raw inotify | lag ms | rnotifyd CPU s |\n");
  std::printf("|---:|---|---|---:|---:|---:|---|---:|---:|---:|---:|---:|---:|\n");
  for (const Row& r : rows) {
    const CounterOutcome& c = r.burst.counters.front();
    bool counted = r.lane != "none";
    double rate = counted ? eventsPerSecond(r.burst, c) : r.burst.producerRate();
    std::printf(
        "| %d | %s | %s | %llu | %s | %s | %s | %.2f | %s | %.0f | %s | %s | %s |\n", r.round, r.mode.c_str(),
        r.lane.c_str(), static_cast<unsigned long long>(2 * r.burst.files),
        counted ? std::to_string(c.counts.events()).c_str() : "-",
        counted ? std::to_string(c.counts.overflows).c_str() : "-", counted ? (c.complete ? "yes" : "NO") : "-",
        r.burst.totalSeconds, counted ? std::to_string(c.lastEventSeconds).c_str() : "-", rate,
        r.ratio > 0 ? std::to_string(r.ratio).substr(0, 4).c_str() : "-",
        counted ? std::to_string(static_cast<long>((c.lastEventSeconds - r.burst.totalSeconds) * 1000)).c_str() : "-",
        r.daemonCpu ? std::to_string(*r.daemonCpu).substr(0, 5).c_str() : "-");
  }
}

void writeCsv(const std::string& path, const std::vector<Row>& rows, const std::string& load) {
  FILE* f = std::fopen(path.c_str(), "w");
  if (f == nullptr) throw std::runtime_error("cannot write " + path);
  std::fprintf(f,
               "kind,round,mode,lane,events,creates,deletes,overflows,complete,create_s,producer_s,last_event_s,"
               "read_start_s,events_per_s,ratio_to_inotify,daemon_cpu_s,load_before\n");
  for (const Row& r : rows) {
    const CounterOutcome& c = r.burst.counters.front();
    bool counted = r.lane != "none";
    std::fprintf(f, "throughput,%d,%s,%s,%llu,%llu,%llu,%llu,%d,%.4f,%.4f,%.4f,%.4f,%.1f,%.4f,%s,%s\n", r.round,
                 r.mode.c_str(), r.lane.c_str(), static_cast<unsigned long long>(2 * r.burst.files),
                 static_cast<unsigned long long>(c.counts.creates), static_cast<unsigned long long>(c.counts.deletes),
                 static_cast<unsigned long long>(c.counts.overflows), c.complete ? 1 : 0, r.burst.createSeconds,
                 r.burst.totalSeconds, counted ? c.lastEventSeconds : r.burst.totalSeconds, r.burst.readStartSeconds,
                 counted ? eventsPerSecond(r.burst, c) : r.burst.producerRate(), r.ratio,
                 r.daemonCpu ? std::to_string(*r.daemonCpu).c_str() : "", load.c_str());
  }
  std::fclose(f);
}

}  // namespace

int main(int argc, char** argv) {
  ::signal(SIGPIPE, SIG_IGN);  // a daemon or tool that went away is an error to report, not a crash
  Options o;
  CLI::App app{
      "bench_throughput: a burst of creates+deletes, events/s delivered to one client through rnotifyd "
      "(unix socket, ssh stdio; inotify and fanotify backends) against raw inotify and fanotify in the "
      "same run. Needs root (tmpfs per lane, fanotify, sshd)."};
  app.add_option("--events", o.events, "Events per burst: half creates, half deletes")->capture_default_str();
  app.add_option("--lanes", o.lanes, "none, inotify, fanotify, unix-inotify, unix-fanotify, ssh-inotify, ssh-fanotify")
      ->delimiter(',')
      ->capture_default_str();
  app.add_option("--modes", o.modes, "live (read during the burst), queued (read after it)")
      ->delimiter(',')
      ->capture_default_str();
  app.add_option("--rounds", o.rounds, "Every lane this many times, interleaved")->capture_default_str();
  app.add_option("--idle-ms", o.idleMs, "Give up on a lane when nothing came for this long after the burst")
      ->capture_default_str();
  app.add_option("--dir", o.baseDir, "Base directory (each lane mounts its own tmpfs below it)")->capture_default_str();
  app.add_option("--rnotifyd", o.rnotifyd, "rnotifyd binary")->capture_default_str();
  app.add_option("--csv", o.csv, "Write the results here");
  CLI11_PARSE(app, argc, argv);
  if (o.events < 2) o.events = 2;

  std::string load = loadAverage();
  std::printf("bench_throughput: %llu events per burst (%llu files created, then deleted), %zu lanes, %d round(s)\n",
              static_cast<unsigned long long>(o.events), static_cast<unsigned long long>(o.events / 2), o.lanes.size(),
              o.rounds);
  std::printf("load before: %s; fs.inotify.max_queued_events = %s; nproc = %ld\n", load.c_str(),
              readSysctl("fs/inotify/max_queued_events").c_str(), ::sysconf(_SC_NPROCESSORS_ONLN));
  std::vector<Row> rows;
  try {
    rnotify::testbed::TempDir work("rnotify-throughput-", o.baseDir);
    std::unique_ptr<BenchScene> scene;
    for (int round = 1; round <= o.rounds; ++round) {
      for (const std::string& mode : o.modes) {
        size_t first = rows.size();
        for (size_t i = 0; i < o.lanes.size(); ++i) {
          // Rotate the order every round, so that drift spreads over the lanes.
          const std::string& lane = o.lanes[(i + round - 1) % o.lanes.size()];
          bool ssh = lane.rfind("ssh", 0) == 0;
          if (ssh && !BenchScene::sshMissing().empty()) {
            std::printf("%s: skipped, %s\n", lane.c_str(), BenchScene::sshMissing().c_str());
            continue;
          }
          // The agent is sshd's child: nothing here can stop it; and with
          // nobody reading, the producer alone is the live row.
          if (mode == "queued" && (ssh || lane == "none")) continue;
          std::printf("round %d, %s, %s ...\n", round, mode.c_str(), lane.c_str());
          std::fflush(stdout);
          rows.push_back(runLane(o, lane, mode, round, work, scene));
          std::printf("  %s\n", rows.back().what.c_str());
        }
        double floor = 0;
        for (size_t i = first; i < rows.size(); ++i) {
          if (rows[i].lane == "inotify") floor = eventsPerSecond(rows[i].burst, rows[i].burst.counters.front());
        }
        for (size_t i = first; i < rows.size(); ++i) {
          if (floor > 0 && rows[i].lane != "none") {
            rows[i].ratio = eventsPerSecond(rows[i].burst, rows[i].burst.counters.front()) / floor;
          }
        }
      }
    }
  } catch (const std::exception& e) {
    std::fprintf(stderr, "bench_throughput: %s\n", e.what());
    return 1;
  }
  printTable(rows);
  std::string after = loadAverage();
  std::printf("\nload after: %s\n", after.c_str());
  if (!o.csv.empty()) writeCsv(o.csv, rows, load);
  return 0;
}
