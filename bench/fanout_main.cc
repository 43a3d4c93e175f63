// bench_fanout: one rnotifyd (unix socket), 1, 10 and 100 clients subscribed
// to the same directory, and a burst of creates and deletes in it: how many
// deliveries per second the daemon makes in total, and how much CPU it spends
// on them (utime + stime from /proc/PID/stat, before and after the burst).
// The baseline in the same run: as many raw inotify instances on the same
// directory, read by this process (the kernel's own fan-out). The clients are
// FrameCounters (counters.h): they count every record's mask without
// building strings, so that 100 of them in one thread measure the daemon,
// not this process. docs/BENCHMARKS.md explains the method and the results.
#include <signal.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <cstdio>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "burst.h"
#include "counters.h"
#include "daemon_under_test.h"
#include "system_probe.h"
#include "temp_dir.h"

namespace {

using namespace rnotify::bench;

struct Options {
  uint64_t events = 200000;
  std::vector<int> clients{1, 10, 100};
  std::vector<std::string> backends{"raw-inotify", "inotify", "fanotify"};
  int idleMs = 10000;
  uint64_t maxQueuedEvents = 0;  // 0: leave fs.inotify/fanotify.max_queued_events as they are
  std::string queueInForce;      // fs.inotify.max_queued_events during the run
  std::string baseDir = "/dev/shm";
  std::string csv;
#ifdef RNOTIFYD_PATH
  std::string rnotifyd = RNOTIFYD_PATH;
#else
  std::string rnotifyd;
#endif
};

struct Row {
  std::string backend;
  int clients = 0;
  BurstOutcome burst;
  uint64_t deliveries = 0;
  uint64_t overflows = 0;
  int completeClients = 0;
  double seconds = 0;  // first create -> last delivery to any client
  std::optional<double> daemonCpu;
  uint64_t daemonRssKb = 0;
  double rate() const { return seconds > 0 ? deliveries / seconds : 0; }
};

Row runCase(const Options& o, const std::string& backend, int clients, rnotify::testbed::TempDir& work) {
  Row row;
  row.backend = backend;
  row.clients = clients;
  std::string name = backend + "-" + std::to_string(clients);
  BurstOptions burst;
  burst.files = o.events / 2;
  burst.idleMs = o.idleMs;
  burst.dir = work.mkdir(name);
  ScratchTmpfs fs(burst.dir);
  std::vector<std::unique_ptr<EventCounter>> counters;
  std::unique_ptr<DaemonUnderTest> daemon;
  if (backend == "raw-inotify") {
    for (int i = 0; i < clients; ++i) counters.push_back(std::make_unique<RawInotifyCounter>(burst.dir));
  } else {
    daemon = std::make_unique<DaemonUnderTest>(
        DaemonOptions{o.rnotifyd, work / (name + ".sock"), {burst.dir}, backend, {}, ""});
    for (int i = 0; i < clients; ++i) counters.push_back(std::make_unique<FrameCounter>(daemon->connect(), burst.dir));
  }
  std::vector<EventCounter*> raw;
  for (auto& c : counters) raw.push_back(c.get());
  std::optional<double> before = daemon ? cpuSeconds(daemon->pid()) : std::nullopt;
  row.burst = runBurst(burst, raw);
  if (daemon) {
    auto after = cpuSeconds(daemon->pid());
    if (before && after) row.daemonCpu = *after - *before;
    if (auto memory = procMemory(daemon->pid())) row.daemonRssKb = memory->rssKb;
  }
  for (const CounterOutcome& c : row.burst.counters) {
    row.deliveries += c.counts.events();
    row.overflows += c.counts.overflows;
    row.completeClients += c.complete ? 1 : 0;
    row.seconds = std::max(row.seconds, c.lastEventSeconds);
  }
  if (daemon && row.completeClients < clients) {
    // Say why: rnotifyd logs kernel overflows and clients it sheds.
    std::string log = daemon->transcript();
    if (log.size() > 2000) log = "..." + log.substr(log.size() - 2000);
    std::printf("  incomplete; rnotifyd said:\n%s\n", log.c_str());
  }
  return row;
}

void printTable(const Options& o, const std::vector<Row>& rows) {
  std::printf(
      "\n| backend | clients | deliveries expected | delivered | overflows | clients complete | seconds | "
      "deliveries/s | producer events/s | rnotifyd CPU s | CPU %% of one core | CPU us per delivery | "
      "rnotifyd RSS MB |\n");
  std::printf("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n");
  for (const Row& r : rows) {
    uint64_t expected = static_cast<uint64_t>(r.clients) * (o.events / 2) * 2;
    std::string cpu = "-", percent = "-", perDelivery = "-", rss = "-";
    if (r.daemonCpu) {
      char b[64];
      std::snprintf(b, sizeof b, "%.2f", *r.daemonCpu);
      cpu = b;
      std::snprintf(b, sizeof b, "%.0f", r.seconds > 0 ? 100 * *r.daemonCpu / r.seconds : 0);
      percent = b;
      std::snprintf(b, sizeof b, "%.2f", r.deliveries > 0 ? 1e6 * *r.daemonCpu / r.deliveries : 0);
      perDelivery = b;
      std::snprintf(b, sizeof b, "%.1f", r.daemonRssKb / 1024.0);
      rss = b;
    }
    std::printf("| %s | %d | %llu | %llu | %llu | %d / %d | %.2f | %.0f | %.0f | %s | %s | %s | %s |\n",
                r.backend.c_str(), r.clients, static_cast<unsigned long long>(expected),
                static_cast<unsigned long long>(r.deliveries), static_cast<unsigned long long>(r.overflows),
                r.completeClients, r.clients, r.seconds, r.rate(), r.burst.producerRate(), cpu.c_str(), percent.c_str(),
                perDelivery.c_str(), rss.c_str());
  }
}

void writeCsv(const std::string& path, const Options& o, const std::vector<Row>& rows, const std::string& load) {
  FILE* f = std::fopen(path.c_str(), "w");
  if (f == nullptr) throw std::runtime_error("cannot write " + path);
  std::fprintf(f,
               "kind,backend,clients,events,deliveries_expected,deliveries,overflows,clients_complete,seconds,"
               "deliveries_per_s,producer_s,daemon_cpu_s,daemon_rss_kb,max_queued_events,load_before\n");
  for (const Row& r : rows) {
    std::fprintf(f, "fanout,%s,%d,%llu,%llu,%llu,%llu,%d,%.4f,%.1f,%.4f,%s,%llu,%s,%s\n", r.backend.c_str(), r.clients,
                 static_cast<unsigned long long>(o.events / 2 * 2),
                 static_cast<unsigned long long>(static_cast<uint64_t>(r.clients) * (o.events / 2) * 2),
                 static_cast<unsigned long long>(r.deliveries), static_cast<unsigned long long>(r.overflows),
                 r.completeClients, r.seconds, r.rate(), r.burst.totalSeconds,
                 r.daemonCpu ? std::to_string(*r.daemonCpu).c_str() : "",
                 static_cast<unsigned long long>(r.daemonRssKb), o.queueInForce.c_str(), load.c_str());
  }
  std::fclose(f);
}

}  // namespace

int main(int argc, char** argv) {
  ::signal(SIGPIPE, SIG_IGN);  // a daemon or tool that went away is an error to report, not a crash
  Options o;
  CLI::App app{
      "bench_fanout: 1, 10, 100 clients of one rnotifyd (unix socket) on the same directory during a burst "
      "of creates+deletes: deliveries/s and the daemon's CPU, against as many raw inotify readers. Needs "
      "root (tmpfs per case, fanotify)."};
  app.add_option("--events", o.events, "Events per burst (half creates, half deletes); every client gets all")
      ->capture_default_str();
  app.add_option("--clients", o.clients, "Client counts")->delimiter(',')->capture_default_str();
  app.add_option("--backends", o.backends, "raw-inotify (baseline), inotify, fanotify")
      ->delimiter(',')
      ->capture_default_str();
  app.add_option("--max-queued-events", o.maxQueuedEvents,
                 "Set fs.inotify.max_queued_events and fs.fanotify.max_queued_events for the run (restored after); "
                 "0: leave them")
      ->capture_default_str();
  app.add_option("--idle-ms", o.idleMs, "Give up when nothing came for this long after the burst")
      ->capture_default_str();
  app.add_option("--dir", o.baseDir, "Base directory (each case mounts its own tmpfs below it)")->capture_default_str();
  app.add_option("--rnotifyd", o.rnotifyd, "rnotifyd binary")->capture_default_str();
  app.add_option("--csv", o.csv, "Write the results here");
  CLI11_PARSE(app, argc, argv);

  std::string load = loadAverage();
  std::printf("bench_fanout: %llu events per burst; load before: %s; nproc = %ld\n",
              static_cast<unsigned long long>(o.events), load.c_str(), ::sysconf(_SC_NPROCESSORS_ONLN));
  std::vector<Row> rows;
  try {
    int most = 0;
    for (int c : o.clients) most = std::max(most, c);
    // Every raw reader and every daemon is an inotify instance of root's.
    std::optional<SysctlOverride> instances;
    if (std::stoi(readSysctl("fs/inotify/max_user_instances")) < most + 64) {
      instances.emplace("fs/inotify/max_user_instances", std::to_string(most + 64));
    }
    std::optional<SysctlOverride> inotifyQueue, fanotifyQueue;
    if (o.maxQueuedEvents > 0) {
      inotifyQueue.emplace("fs/inotify/max_queued_events", std::to_string(o.maxQueuedEvents));
      fanotifyQueue.emplace("fs/fanotify/max_queued_events", std::to_string(o.maxQueuedEvents));
    }
    o.queueInForce = readSysctl("fs/inotify/max_queued_events");
    std::printf("fs.inotify.max_queued_events = %s, fs.fanotify.max_queued_events = %s\n",
                readSysctl("fs/inotify/max_queued_events").c_str(),
                readSysctl("fs/fanotify/max_queued_events").c_str());
    rnotify::testbed::TempDir work("rnotify-fanout-", o.baseDir);
    for (int clients : o.clients) {
      for (const std::string& backend : o.backends) {
        std::printf("%s, %d client(s) ...\n", backend.c_str(), clients);
        std::fflush(stdout);
        rows.push_back(runCase(o, backend, clients, work));
      }
    }
  } catch (const std::exception& e) {
    std::fprintf(stderr, "bench_fanout: %s\n", e.what());
    return 1;
  }
  printTable(o, rows);
  std::printf("\nload after: %s\n", loadAverage().c_str());
  if (!o.csv.empty()) writeCsv(o.csv, o, rows, load);
  return 0;
}
