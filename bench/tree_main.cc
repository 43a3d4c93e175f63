// bench_tree: a tree of a million directories (default; --dirs scales it
// down) on its own tmpfs, watched recursively by one rnotifyd with the
// inotify backend and then with the fanotify backend. Per backend: the time
// from the Watch request to its Reply (the watch is in force: inotify has
// added a watch to every directory, fanotify has marked the filesystem), the
// time until an event from the deepest, last directory arrives, the daemon's
// memory (VmRSS, VmHWM), and the kernel memory its watches cost: the daemon
// runs in its own memory cgroup, whose kmem counter charges the marks
// allocated on its behalf; the system-wide Slab difference is given beside
// it. fs.inotify.max_user_watches is raised for the run and restored after.
// docs/BENCHMARKS.md explains the method and the results.
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <optional>
#include <string>
#include <vector>

#include "burst.h"
#include "common/unique_fd.h"
#include "daemon_under_test.h"
#include "proto/messages.h"
#include "system_probe.h"
#include "temp_dir.h"

namespace {

using namespace rnotify::bench;

struct Options {
  uint64_t dirs = 1000000;
  std::vector<std::string> backends{"inotify", "fanotify"};
  bool sweep = true;
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
  uint64_t dirs = 0;
  double setupSeconds = 0;        // Watch sent -> Reply
  double firstEventMs = 0;        // create in the last directory -> its event (after the Reply)
  uint64_t rssKb = 0, hwmKb = 0;  // rnotifyd after the watch
  uint64_t rssIdleKb = 0;         // before the watch
  uint64_t cgroupBytes = 0, kmemBytes = 0, kmemPeakBytes = 0;
  int64_t slabDeltaKb = 0;  // system Slab after the watch minus before the daemon started
  double exitSeconds = 0;   // SIGTERM -> reaped (the kernel frees the watches)
  // The sweep: one file created in every directory, every event received.
  double sweepSeconds = 0;
  uint64_t sweepEvents = 0;
  uint64_t sweepRssKb = 0, sweepHwmKb = 0;
  std::string cgroupNote;
};

double since(BenchClock::time_point t) { return std::chrono::duration<double>(BenchClock::now() - t).count(); }

struct Tree {
  uint64_t dirs = 0;
  std::string last;                // the last directory made, relative to the root
  std::vector<std::string> paths;  // every directory, relative to the root
};

// top = ceil(sqrt(n)) directories, the rest spread below them: two levels,
// ~1,000 entries per directory for a million.
Tree makeTree(const std::string& root, uint64_t n) {
  Tree tree;
  uint64_t top = std::max<uint64_t>(1, static_cast<uint64_t>(std::ceil(std::sqrt(static_cast<double>(n)))));
  top = std::min(top, n);
  rnotify::UniqueFd rootFd(::open(root.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!rootFd) throw std::runtime_error("cannot open " + root + ": " + std::strerror(errno));
  uint64_t below = n - top;
  char name[32];
  for (uint64_t t = 0; t < top; ++t) {
    std::snprintf(name, sizeof name, "d%llu", static_cast<unsigned long long>(t));
    if (::mkdirat(rootFd.get(), name, 0755) != 0)
      throw std::runtime_error(std::string("mkdirat: ") + std::strerror(errno));
    ++tree.dirs;
    tree.last = name;
    tree.paths.push_back(name);
    rnotify::UniqueFd sub(::openat(rootFd.get(), name, O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    uint64_t children = below / top + (t < below % top ? 1 : 0);
    for (uint64_t c = 0; c < children; ++c) {
      char child[32];
      std::snprintf(child, sizeof child, "s%llu", static_cast<unsigned long long>(c));
      if (::mkdirat(sub.get(), child, 0755) != 0) {
        throw std::runtime_error(std::string("mkdirat: ") + std::strerror(errno));
      }
      ++tree.dirs;
      tree.last = std::string(name) + "/" + child;
      tree.paths.push_back(tree.last);
    }
  }
  return tree;
}

Row measure(const Options& o, const std::string& backend, const std::string& root, const Tree& tree,
            rnotify::testbed::TempDir& work) {
  Row row;
  row.backend = backend;
  row.dirs = tree.dirs;
  MemoryCgroup cgroup("rnotify-bench-tree-" + backend);
  if (!cgroup.available()) row.cgroupNote = cgroup.why();
  uint64_t slabBefore = systemSlabKb();
  auto daemon = std::make_unique<DaemonUnderTest>(DaemonOptions{
      o.rnotifyd, work / (backend + ".sock"), {root}, backend, {"--max-watches-per-client", "16"}, cgroup.procsPath()});
  auto connection = daemon->connect();
  if (auto m = procMemory(daemon->pid())) row.rssIdleKb = m->rssKb;
  uint64_t seen = 0;
  std::string lastName;
  connection->setEventsHandler([&](rnotify::Connection&, rnotify::proto::Events& events) {
    for (const rnotify::Event& e : events.events) {
      if (e.mask & IN_CREATE) {
        ++seen;
        lastName = e.dir + "/" + e.name;
      }
    }
  });
  auto start = BenchClock::now();
  watchOrThrow(*connection, root, IN_CREATE | IN_DELETE | IN_MOVED_FROM | IN_MOVED_TO, rnotify::proto::kWatchRecursive,
               "tree watch (" + backend + ")", 3600 * 1000);
  row.setupSeconds = since(start);
  std::printf("  watch in force after %.2f s\n", row.setupSeconds);
  std::fflush(stdout);

  std::string probe = root + "/" + tree.last + "/probe";
  auto created = BenchClock::now();
  if (::mknod(probe.c_str(), S_IFREG | 0644, 0) != 0)
    throw std::runtime_error("mknod " + probe + ": " + std::strerror(errno));
  auto deadline = created + std::chrono::seconds(60);
  while (seen == 0 && BenchClock::now() < deadline) {
    struct pollfd p = {connection->readFd(), POLLIN, 0};
    if (::poll(&p, 1, 100) > 0 && !connection->pump()) throw std::runtime_error(connection->failure().message);
  }
  if (seen == 0) throw std::runtime_error(backend + ": no event for " + probe + " within 60 s");
  row.firstEventMs = since(created) * 1000;
  ::unlink(probe.c_str());

  if (auto m = procMemory(daemon->pid())) {
    row.rssKb = m->rssKb;
    row.hwmKb = m->hwmKb;
  }
  row.cgroupBytes = cgroup.usageBytes();
  row.kmemBytes = cgroup.kmemBytes();
  row.kmemPeakBytes = cgroup.kmemPeakBytes();
  row.slabDeltaKb = static_cast<int64_t>(systemSlabKb()) - static_cast<int64_t>(slabBefore);
  if (o.sweep) {
    // Events from every directory: the fanotify backend then has resolved
    // and cached every directory's handle, its worst case for memory.
    auto sweepStart = BenchClock::now();
    uint64_t target = seen + tree.paths.size();
    auto pumpSome = [&](int ms) {
      struct pollfd p = {connection->readFd(), POLLIN, 0};
      if (::poll(&p, 1, ms) > 0 && !connection->pump()) throw std::runtime_error(connection->failure().message);
    };
    for (size_t i = 0; i < tree.paths.size(); ++i) {
      std::string file = root + "/" + tree.paths[i] + "/w-" + backend;
      if (::mknod(file.c_str(), S_IFREG | 0644, 0) != 0)
        throw std::runtime_error("mknod " + file + ": " + std::strerror(errno));
      if (i % 1024 == 0) pumpSome(0);
    }
    auto sweepDeadline = BenchClock::now() + std::chrono::seconds(300);
    while (seen < target && BenchClock::now() < sweepDeadline) pumpSome(100);
    row.sweepSeconds = since(sweepStart);
    row.sweepEvents = seen - (target - tree.paths.size());
    if (auto m = procMemory(daemon->pid())) {
      row.sweepRssKb = m->rssKb;
      row.sweepHwmKb = m->hwmKb;
    }
    std::printf("  sweep: %llu of %zu events in %.2f s\n", static_cast<unsigned long long>(row.sweepEvents),
                tree.paths.size(), row.sweepSeconds);
  }
  connection.reset();
  auto stop = BenchClock::now();
  daemon.reset();
  row.exitSeconds = since(stop);
  return row;
}

void printTable(const std::vector<Row>& rows) {
  std::printf(
      "\n| backend | directories | watch set-up s | first event ms | rnotifyd VmRSS MB | VmHWM MB | "
      "idle RSS MB | cgroup kmem MB | kmem peak MB | cgroup total MB | system Slab delta MB | "
      "kernel bytes per directory | exit s | sweep events | sweep s | VmRSS after sweep MB |\n");
  std::printf("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n");
  for (const Row& r : rows) {
    std::printf(
        "| %s | %llu | %.2f | %.1f | %.1f | %.1f | %.1f | %.1f | %.1f | %.1f | %.1f | %.0f | %.2f | %llu | %.2f | "
        "%.1f |\n",
        r.backend.c_str(), static_cast<unsigned long long>(r.dirs), r.setupSeconds, r.firstEventMs, r.rssKb / 1024.0,
        r.hwmKb / 1024.0, r.rssIdleKb / 1024.0, r.kmemBytes / 1048576.0, r.kmemPeakBytes / 1048576.0,
        r.cgroupBytes / 1048576.0, r.slabDeltaKb / 1024.0, r.dirs > 0 ? static_cast<double>(r.kmemBytes) / r.dirs : 0,
        r.exitSeconds, static_cast<unsigned long long>(r.sweepEvents), r.sweepSeconds, r.sweepRssKb / 1024.0);
    if (!r.cgroupNote.empty()) std::printf("(%s: %s)\n", r.backend.c_str(), r.cgroupNote.c_str());
  }
}

void writeCsv(const std::string& path, const std::vector<Row>& rows, double makeSeconds, const std::string& load) {
  FILE* f = std::fopen(path.c_str(), "w");
  if (f == nullptr) throw std::runtime_error("cannot write " + path);
  std::fprintf(f,
               "kind,backend,dirs,tree_make_s,setup_s,first_event_ms,rss_kb,hwm_kb,idle_rss_kb,cgroup_bytes,"
               "kmem_bytes,kmem_peak_bytes,slab_delta_kb,exit_s,sweep_events,sweep_s,sweep_rss_kb,sweep_hwm_kb,"
               "load_before\n");
  for (const Row& r : rows) {
    std::fprintf(f, "tree,%s,%llu,%.3f,%.4f,%.3f,%llu,%llu,%llu,%llu,%llu,%llu,%lld,%.3f,%llu,%.3f,%llu,%llu,%s\n",
                 r.backend.c_str(), static_cast<unsigned long long>(r.dirs), makeSeconds, r.setupSeconds,
                 r.firstEventMs, static_cast<unsigned long long>(r.rssKb), static_cast<unsigned long long>(r.hwmKb),
                 static_cast<unsigned long long>(r.rssIdleKb), static_cast<unsigned long long>(r.cgroupBytes),
                 static_cast<unsigned long long>(r.kmemBytes), static_cast<unsigned long long>(r.kmemPeakBytes),
                 static_cast<long long>(r.slabDeltaKb), r.exitSeconds, static_cast<unsigned long long>(r.sweepEvents),
                 r.sweepSeconds, static_cast<unsigned long long>(r.sweepRssKb),
                 static_cast<unsigned long long>(r.sweepHwmKb), load.c_str());
  }
  std::fclose(f);
}

}  // namespace

int main(int argc, char** argv) {
  ::signal(SIGPIPE, SIG_IGN);  // a daemon or tool that went away is an error to report, not a crash
  Options o;
  CLI::App app{
      "bench_tree: a tree of a million directories watched recursively by rnotifyd with the inotify and "
      "the fanotify backend: set-up time, daemon RSS, kernel memory. Needs root (tmpfs, sysctl, fanotify, "
      "memory cgroup)."};
  app.add_option("--dirs", o.dirs, "Directories in the tree")->capture_default_str();
  app.add_option("--backends", o.backends, "inotify, fanotify, auto")->delimiter(',')->capture_default_str();
  app.add_option("--sweep", o.sweep,
                 "After the set-up, create a file in every directory and wait for every event "
                 "(the fanotify backend then caches every directory)")
      ->capture_default_str();
  app.add_option("--dir", o.baseDir, "Base directory (the tree gets its own tmpfs below it)")->capture_default_str();
  app.add_option("--rnotifyd", o.rnotifyd, "rnotifyd binary")->capture_default_str();
  app.add_option("--csv", o.csv, "Write the results here");
  CLI11_PARSE(app, argc, argv);

  std::string load = loadAverage();
  std::vector<Row> rows;
  double makeSeconds = 0;
  try {
    std::optional<SysctlOverride> watches;
    uint64_t limit = std::stoull(readSysctl("fs/inotify/max_user_watches"));
    if (limit < o.dirs + 100000) watches.emplace("fs/inotify/max_user_watches", std::to_string(o.dirs + 100000));
    std::printf(
        "bench_tree: %llu directories; load before: %s; fs.inotify.max_user_watches %s -> %s (restored "
        "after); nproc = %ld\n",
        static_cast<unsigned long long>(o.dirs), load.c_str(), std::to_string(limit).c_str(),
        readSysctl("fs/inotify/max_user_watches").c_str(), ::sysconf(_SC_NPROCESSORS_ONLN));
    rnotify::testbed::TempDir work("rnotify-tree-", o.baseDir);
    std::string root = work.mkdir("tree");
    ScratchTmpfs fs(root);
    auto start = BenchClock::now();
    Tree tree = makeTree(root, o.dirs);
    makeSeconds = since(start);
    std::printf("made %llu directories in %.2f s\n", static_cast<unsigned long long>(tree.dirs), makeSeconds);
    for (const std::string& backend : o.backends) {
      std::printf("%s ...\n", backend.c_str());
      std::fflush(stdout);
      rows.push_back(measure(o, backend, root, tree, work));
    }
  } catch (const std::exception& e) {
    std::fprintf(stderr, "bench_tree: %s\n", e.what());
    return 1;
  }
  printTable(rows);
  std::printf("\nfs.inotify.max_user_watches restored to %s; load after: %s\n",
              readSysctl("fs/inotify/max_user_watches").c_str(), loadAverage().c_str());
  if (!o.csv.empty()) writeCsv(o.csv, rows, makeSeconds, load);
  return 0;
}
