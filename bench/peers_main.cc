// bench_peers: rnotify beside the tools people would otherwise use, on the
// same workload in one run. Latency: the LatencyRunner's create -> event
// timing (latency_runner.h) for raw inotify (the floor), rnotify through
// rnotifyd (unix socket with the inotify and the fanotify backend; ssh stdio)
// and the peers: inotifywait, fswatch's inotify monitor, watchman, and
// fswatch's poll monitor (about a second per change, so it gets a few samples
// of its own). Throughput: a burst of creates and deletes (burst.h) that each
// of them watches in turn, with the count of what it reported. Every lane has
// its own tmpfs. docs/BENCHMARKS.md explains the method and the results.
#include <signal.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include "bench_scene.h"
#include "burst.h"
#include "connection_source.h"
#include "counters.h"
#include "daemon_under_test.h"
#include "inotify_source.h"
#include "latency_runner.h"
#include "peer_tools.h"
#include "system_probe.h"
#include "temp_dir.h"

namespace {

using namespace rnotify::bench;

struct Options {
  RunnerOptions runner;
  size_t pollEvents = 10;
  uint64_t burstEvents = 1000000;
  double burstMaxSeconds = 120;
  int burstIdleMs = 30000;
  std::vector<std::string> lanes{"inotify",
                                 "rnotify-unix-inotify",
                                 "rnotify-unix-fanotify",
                                 "rnotify-ssh-inotify",
                                 "rnotify-ssh-fanotify",
                                 "inotifywait",
                                 "fswatch-inotify",
                                 "watchman",
                                 "fswatch-poll"};
  std::string baseDir = "/dev/shm";
  std::string csv;
  std::string burstCsv;
  std::string samples;
#ifdef RNOTIFYD_PATH
  std::string rnotifyd = RNOTIFYD_PATH;
#else
  std::string rnotifyd;
#endif
};

std::optional<PeerKind> peerKind(const std::string& lane) {
  if (lane == "inotifywait") return PeerKind::kInotifywait;
  if (lane == "fswatch-inotify") return PeerKind::kFswatchInotify;
  if (lane == "fswatch-poll") return PeerKind::kFswatchPoll;
  if (lane == "watchman") return PeerKind::kWatchman;
  return std::nullopt;
}

// What a lane runs on: its own tmpfs, and the daemon or scene behind it.
class LaneWorld {
 public:
  LaneWorld(const Options& o, rnotify::testbed::TempDir& work) : o_(o), work_(work) {}

  std::string freshDir(const std::string& name) {
    std::string dir = work_.mkdir(name);
    mounts_.push_back(std::make_unique<ScratchTmpfs>(dir));
    return dir;
  }

  std::unique_ptr<rnotify::Connection> unixClient(const std::string& backend, const std::string& dir) {
    daemons_.push_back(std::make_unique<DaemonUnderTest>(
        DaemonOptions{o_.rnotifyd, work_ / ("d" + std::to_string(daemons_.size()) + ".sock"), {dir}, backend, {}, ""}));
    return daemons_.back()->connect();
  }

  // The agent over ssh, as the client library starts it.
  std::unique_ptr<rnotify::Connection> sshClient(std::string* dir, const std::string& name,
                                                 const std::string& backend) {
    if (!scene_) {
      scene_ = std::make_unique<BenchScene>(o_.rnotifyd, o_.baseDir);
      scene_->setSeparateFilesystems(true);
      scene_->startSsh();
    }
    scene_->setRnotifydArgs({"--watcher", backend});
    *dir = scene_->laneDir(name);
    return scene_->connectAgent();
  }

 private:
  const Options& o_;
  rnotify::testbed::TempDir& work_;
  std::unique_ptr<BenchScene> scene_;
  std::vector<std::unique_ptr<DaemonUnderTest>> daemons_;
  std::vector<std::unique_ptr<ScratchTmpfs>> mounts_;
};

std::unique_ptr<EventSource> latencySource(const std::string& lane, LaneWorld& world, const std::string& work) {
  if (auto kind = peerKind(lane)) {
    std::string dir = world.freshDir("lat-" + lane);
    return std::make_unique<PeerTool>(*kind, dir, work, false);
  }
  if (lane == "inotify") return std::make_unique<InotifySource>(world.freshDir("lat-inotify"));
  if (lane.rfind("rnotify-ssh-", 0) == 0) {
    std::string dir;
    auto client = world.sshClient(&dir, "lat-" + lane, lane.substr(std::string("rnotify-ssh-").size()));
    return std::make_unique<ConnectionSource>(lane, std::move(client), dir, dir);
  }
  std::string backend = lane == "rnotify-unix-fanotify" ? "fanotify" : "inotify";
  std::string dir = world.freshDir("lat-" + lane);
  return std::make_unique<ConnectionSource>(lane, world.unixClient(backend, dir), dir, dir);
}

struct BurstRow {
  std::string lane;
  BurstOutcome outcome;
  std::string note;  // a tool that exited during the burst
};

BurstRow burstLane(const Options& o, const std::string& lane, rnotify::testbed::TempDir& work) {
  LaneWorld world(o, work);
  BurstOptions burst;
  burst.files = o.burstEvents / 2;
  burst.maxSeconds = o.burstMaxSeconds;
  burst.idleMs = o.burstIdleMs;
  std::unique_ptr<EventCounter> counter;
  PeerTool* peer = nullptr;
  if (auto kind = peerKind(lane)) {
    burst.dir = world.freshDir("burst-" + lane);
    auto tool = std::make_unique<PeerTool>(*kind, burst.dir, work.path(), true);
    peer = tool.get();
    counter = std::move(tool);
  } else if (lane == "inotify") {
    burst.dir = world.freshDir("burst-inotify");
    counter = std::make_unique<RawInotifyCounter>(burst.dir);
  } else if (lane.rfind("rnotify-ssh-", 0) == 0) {
    auto client = world.sshClient(&burst.dir, "burst-" + lane, lane.substr(std::string("rnotify-ssh-").size()));
    counter = std::make_unique<ConnectionCounter>(std::move(client), burst.dir);
  } else {
    burst.dir = world.freshDir("burst-" + lane);
    counter = std::make_unique<ConnectionCounter>(
        world.unixClient(lane == "rnotify-unix-fanotify" ? "fanotify" : "inotify", burst.dir), burst.dir);
  }
  BurstRow row{lane, runBurst(burst, {counter.get()}), ""};
  if (peer != nullptr) row.note = peer->ended();
  return row;
}

// Watchman reports the state of files when they settle, not every event (a
// file created and deleted between two reports is one entry that no longer
// exists); so every lane is also given the time until it had reported every
// file's final state, and the event rate that time stands for.
double fullReportRate(const BurstRow& r) {
  const CounterOutcome& c = r.outcome.counters.front();
  double span = c.lastEventSeconds - r.outcome.readStartSeconds;
  return c.complete && span > 0 ? 2.0 * r.outcome.files / span : 0;
}

void printBurstTable(const std::vector<BurstRow>& rows) {
  std::printf(
      "\n| lane | events | creates reported | deletes reported | overflows | complete | producer s | "
      "last report s | events/s (reported) | events/s (full report) | x raw inotify | note |\n"
      "|---|---:|---:|---:|---:|---|---:|---:|---:|---:|---:|---|\n");
  double floor = 0;
  for (const BurstRow& r : rows) {
    if (r.lane == "inotify") floor = fullReportRate(r);
  }
  for (const BurstRow& r : rows) {
    const CounterOutcome& c = r.outcome.counters.front();
    double rate = eventsPerSecond(r.outcome, c);
    std::printf("| %s | %llu | %llu | %llu | %llu | %s | %.2f | %.2f | %.0f | %.0f | %.2f | %s |\n", r.lane.c_str(),
                static_cast<unsigned long long>(2 * r.outcome.files), static_cast<unsigned long long>(c.counts.creates),
                static_cast<unsigned long long>(c.counts.deletes), static_cast<unsigned long long>(c.counts.overflows),
                c.complete ? "yes" : "NO", r.outcome.totalSeconds, c.lastEventSeconds, rate, fullReportRate(r),
                floor > 0 ? fullReportRate(r) / floor : 0, r.note.c_str());
  }
}

void writeBurstCsv(const std::string& path, const std::vector<BurstRow>& rows, const std::string& load) {
  FILE* f = std::fopen(path.c_str(), "w");
  if (f == nullptr) throw std::runtime_error("cannot write " + path);
  std::fprintf(f,
               "kind,lane,events,creates,deletes,overflows,complete,producer_s,last_event_s,events_per_s,"
               "full_report_events_per_s,load_before,note\n");
  for (const BurstRow& r : rows) {
    const CounterOutcome& c = r.outcome.counters.front();
    std::string note = r.note;
    std::replace(note.begin(), note.end(), ',', ';');
    std::replace(note.begin(), note.end(), '"', '\'');
    std::fprintf(f, "burst,%s,%llu,%llu,%llu,%llu,%d,%.4f,%.4f,%.1f,%.1f,%s,\"%s\"\n", r.lane.c_str(),
                 static_cast<unsigned long long>(2 * r.outcome.files),
                 static_cast<unsigned long long>(c.counts.creates), static_cast<unsigned long long>(c.counts.deletes),
                 static_cast<unsigned long long>(c.counts.overflows), c.complete ? 1 : 0, r.outcome.totalSeconds,
                 c.lastEventSeconds, eventsPerSecond(r.outcome, c), fullReportRate(r), load.c_str(), note.c_str());
  }
  std::fclose(f);
}

}  // namespace

int main(int argc, char** argv) {
  ::signal(SIGPIPE, SIG_IGN);  // a daemon or tool that went away is an error to report, not a crash
  Options o;
  o.runner.events = 10000;
  CLI::App app{
      "bench_peers: latency and burst throughput of rnotify beside inotifywait, fswatch (inotify and poll "
      "monitors) and watchman, on the same workload in one run. Needs root (tmpfs per lane, fanotify, sshd)."};
  app.add_option("--events", o.runner.events, "Timed latency events per lane")->capture_default_str();
  app.add_option("--warmup", o.runner.warmup, "Untimed events per lane first")->capture_default_str();
  app.add_option("--block", o.runner.block, "Events per turn")->capture_default_str();
  app.add_option("--poll-events", o.pollEvents, "Timed events for fswatch-poll (about 1 s each)")
      ->capture_default_str();
  app.add_option("--burst-events", o.burstEvents, "Events per burst (half creates, half deletes); 0: no burst")
      ->capture_default_str();
  app.add_option("--burst-max-seconds", o.burstMaxSeconds, "Stop waiting for a lane's reports after this long")
      ->capture_default_str();
  app.add_option("--burst-idle-ms", o.burstIdleMs,
                 "After the burst, stop waiting for a lane when it reported nothing for this long")
      ->capture_default_str();
  app.add_option("--lanes", o.lanes, "Lanes")->delimiter(',')->capture_default_str();
  app.add_option("--dir", o.baseDir, "Base directory (each lane mounts its own tmpfs below it)")->capture_default_str();
  app.add_option("--rnotifyd", o.rnotifyd, "rnotifyd binary")->capture_default_str();
  app.add_option("--csv", o.csv, "Latency summaries (CSV)");
  app.add_option("--burst-csv", o.burstCsv, "Burst results (CSV)");
  app.add_option("--samples", o.samples, "Every latency sample (CSV: transport,index,latency_ns)");
  CLI11_PARSE(app, argc, argv);

  std::string load = loadAverage();
  std::printf("bench_peers: load before: %s; nproc = %ld\n", load.c_str(), ::sysconf(_SC_NPROCESSORS_ONLN));
  std::vector<LatencySummary> latency;
  std::vector<BurstRow> bursts;
  try {
    rnotify::testbed::TempDir work("rnotify-peers-", o.baseDir);
    std::vector<std::string> lanes;
    for (const std::string& lane : o.lanes) {
      auto kind = peerKind(lane);
      if (kind && !peerMissing(*kind).empty()) {
        std::printf("%s: skipped, %s\n", lane.c_str(), peerMissing(*kind).c_str());
        continue;
      }
      if (lane.rfind("rnotify-ssh-", 0) == 0 && !BenchScene::sshMissing().empty()) {
        std::printf("%s: skipped, %s\n", lane.c_str(), BenchScene::sshMissing().c_str());
        continue;
      }
      lanes.push_back(lane);
    }
    {
      LaneWorld world(o, work);
      LatencyRunner fast(o.runner);
      RunnerOptions pollOptions = o.runner;
      pollOptions.events = o.pollEvents;
      pollOptions.warmup = 2;
      pollOptions.block = std::max<size_t>(1, o.pollEvents);
      LatencyRunner slow(pollOptions);
      bool anySlow = false;
      for (const std::string& lane : lanes) {
        auto source = latencySource(lane, world, work.path());
        std::printf("%-22s %s\n", lane.c_str(), source->description().c_str());
        if (lane == "fswatch-poll") {
          slow.add(std::move(source));
          anySlow = true;
        } else {
          fast.add(std::move(source));
        }
      }
      std::printf("latency: %zu events per lane (fswatch-poll: %zu) ", o.runner.events, o.pollEvents);
      std::fflush(stdout);
      fast.run(stdout);
      if (anySlow) slow.run(stdout);
      std::printf("\n");
      latency = fast.summaries();
      if (anySlow) {
        for (auto& s : slow.summaries()) latency.push_back(s);
      }
      if (!o.samples.empty()) {
        fast.writeSamples(o.samples);
        if (anySlow) {  // one file: the slow runner's rows after the fast one's, without its header
          slow.writeSamples(o.samples + ".tmp");
          std::string rows = rnotify::testbed::readFile(o.samples + ".tmp");
          ::unlink((o.samples + ".tmp").c_str());
          FILE* f = std::fopen(o.samples.c_str(), "a");
          if (f == nullptr) throw std::runtime_error("cannot append to " + o.samples);
          std::fputs(rows.substr(rows.find('\n') + 1).c_str(), f);
          std::fclose(f);
        }
      }
    }
    if (o.burstEvents > 0) {
      for (const std::string& lane : lanes) {
        std::printf("burst of %llu events, %s ...\n", static_cast<unsigned long long>(o.burstEvents), lane.c_str());
        std::fflush(stdout);
        bursts.push_back(burstLane(o, lane, work));
      }
    }
  } catch (const std::exception& e) {
    std::fprintf(stderr, "bench_peers: %s\n", e.what());
    return 1;
  }
  std::printf("\nLatency, create -> event (us):\n");
  printLatencyTable(stdout, latency);
  if (!bursts.empty()) {
    std::printf("\nBurst of creates+deletes:\n");
    printBurstTable(bursts);
  }
  std::printf("\nload after: %s\n", loadAverage().c_str());
  if (!o.csv.empty()) writeCsv(o.csv, latency, {}, {});
  if (!o.burstCsv.empty()) writeBurstCsv(o.burstCsv, bursts, load);
  return 0;
}
