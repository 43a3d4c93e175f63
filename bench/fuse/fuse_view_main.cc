// bench_fuse_view (issue 9): what the rnotify-fuse view costs against the
// plain sshfs mount under it, and how fast it turns remote changes into
// kernel events, in one run on this machine:
//
//   data      sequential write, then read, of one large file (1 GiB by
//             default) through the mount and through the view; page cache
//             of the file dropped before each read (posix_fadvise)
//   meta      create, stat, readdir and unlink of 10,000 files through each
//   latency   one mknodat on the server -> the create event read from plain
//             inotify on the view (a program on the view), beside raw
//             inotify on a server-side directory (the floor); lanes take
//             turns in blocks, each lane made quiet before its block, files
//             removed only at the end
//   burst     files created on the server as fast as one thread can, create
//             events counted on the view (reflected events per second),
//             beside the floor
//
// The scene is bench_latency's (bench/bench_scene.h): an export below --dir,
// sshd on 127.0.0.1, an sshfs mount with default options; rnotify-fuse -f
// mounts the view over that mount. Mount and view take turns in rounds whose
// order alternates, and each figure is the median over the rounds. Results
// go to stdout as markdown tables. Needs root. Not a CTest test.
#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <memory>
#include <set>
#include <sstream>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "bench_scene.h"
#include "c_api_source.h"
#include "deadline.h"
#include "inotify_source.h"
#include "latency_runner.h"
#include "latency_stats.h"
#include "mount_table.h"
#include "process.h"
#include "system_probe.h"
#include "temp_dir.h"
#include "view_source.h"

namespace {

using namespace rnotify;
using namespace rnotify::bench;
using Clock = std::chrono::steady_clock;

double secondsSince(Clock::time_point start) { return std::chrono::duration<double>(Clock::now() - start).count(); }

[[noreturn]] void fail(const std::string& what) { throw std::runtime_error(what + ": " + std::strerror(errno)); }

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v.empty() ? 0 : v[v.size() / 2];
}

// The view: `rnotify-fuse -f SOURCE VIEW`, ready when VIEW is in mountinfo;
// SIGTERM unmounts it.
class View {
 public:
  View(const std::string& binary, const std::string& source, const std::string& mountPoint, const std::string& agent,
       bool debugLog)
      : path_(mountPoint) {
    testbed::ProcessOptions o;
    o.argv = {binary, "-f", source, mountPoint};
    o.env = {{"RNOTIFY_AGENT", agent}};
    if (debugLog) o.env["RNOTIFY_LOG_LEVEL"] = "debug";
    process_ = std::make_unique<testbed::Process>(std::move(o));
    bool up = testbed::waitUntil(testbed::Deadline::in(std::chrono::seconds(30)),
                                 [&] { return testbed::findMount(path_) || !process_->running(); });
    if (!up || !testbed::findMount(path_)) {
      throw std::runtime_error("rnotify-fuse did not mount " + path_ + "\n" + process_->transcript());
    }
  }
  ~View() {
    process_->signal(SIGTERM);
    if (!process_->waitExit(testbed::Deadline::in(std::chrono::seconds(10))) || testbed::findMount(path_)) {
      std::fprintf(stderr, "warning: rnotify-fuse did not unmount on SIGTERM; fusermount3 -u -z\n");
      testbed::runCommand({"fusermount3", "-u", "-z", path_}, testbed::Deadline::in(std::chrono::seconds(10)));
    }
    process_->terminate();
  }
  const std::string& path() const { return path_; }
  std::string operator/(const std::string& rel) const { return path_ + "/" + rel; }
  bool running() { return process_->running(); }
  std::string transcript() const { return process_->transcript(); }

 private:
  std::string path_;
  std::unique_ptr<testbed::Process> process_;
};

// --- data -------------------------------------------------------------------

double writeFile(const std::string& path, size_t bytes, size_t blockBytes) {
  std::vector<char> block(blockBytes);
  for (size_t i = 0; i < blockBytes; ++i) block[i] = static_cast<char>('a' + i % 23);
  auto start = Clock::now();
  int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) fail("open " + path);
  for (size_t done = 0; done < bytes;) {
    ssize_t n = ::write(fd, block.data(), std::min(blockBytes, bytes - done));
    if (n <= 0) fail("write " + path);
    done += static_cast<size_t>(n);
  }
  if (::close(fd) != 0) fail("close " + path);  // FUSE flushes here
  return secondsSince(start);
}

double readFile(const std::string& path, size_t bytes, size_t blockBytes) {
  std::vector<char> block(blockBytes);
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) fail("open " + path);
  ::posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED);  // no page cache: every byte through the mount
  auto start = Clock::now();
  size_t done = 0;
  for (;;) {
    ssize_t n = ::read(fd, block.data(), blockBytes);
    if (n < 0) fail("read " + path);
    if (n == 0) break;
    done += static_cast<size_t>(n);
  }
  ::close(fd);
  double s = secondsSince(start);
  if (done != bytes)
    throw std::runtime_error("read " + std::to_string(done) + " of " + std::to_string(bytes) + " bytes of " + path);
  return s;
}

// --- metadata ---------------------------------------------------------------

struct MetaTimes {
  double create = 0, stat = 0, readdir = 0, unlink = 0;  // seconds for all files (readdir: all passes)
};

MetaTimes metadataRound(const std::string& dir, size_t files, size_t readdirPasses) {
  if (::mkdir(dir.c_str(), 0755) != 0) fail("mkdir " + dir);
  std::vector<std::string> names;
  names.reserve(files);
  for (size_t i = 0; i < files; ++i) names.push_back(dir + "/f" + std::to_string(i));
  MetaTimes t;
  auto start = Clock::now();
  for (const std::string& name : names) {
    int fd = ::open(name.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
    if (fd < 0) fail("create " + name);
    ::close(fd);
  }
  t.create = secondsSince(start);
  start = Clock::now();
  struct stat st;
  for (const std::string& name : names) {
    if (::stat(name.c_str(), &st) != 0) fail("stat " + name);
  }
  t.stat = secondsSince(start);
  start = Clock::now();
  for (size_t pass = 0; pass < readdirPasses; ++pass) {
    DIR* d = ::opendir(dir.c_str());
    if (d == nullptr) fail("opendir " + dir);
    size_t entries = 0;
    while (::readdir(d) != nullptr) ++entries;
    ::closedir(d);
    if (entries != files + 2) {
      throw std::runtime_error("readdir " + dir + " listed " + std::to_string(entries) + " entries, expected " +
                               std::to_string(files + 2));
    }
  }
  t.readdir = secondsSince(start);
  start = Clock::now();
  for (const std::string& name : names) {
    if (::unlink(name.c_str()) != 0) fail("unlink " + name);
  }
  t.unlink = secondsSince(start);
  ::rmdir(dir.c_str());
  return t;
}

// --- latency -------------------------------------------------------------------

// One lane of the latency part: a file created on the server with one
// mknodat, timed until the lane reads its create event. Unlike
// LatencyRunner, files are removed only at the end, and a lane is first made
// quiet (settle) before each of its blocks: the view reflects removals too,
// one at a time, and those would queue ahead of the timed creates.
struct TimedLane {
  explicit TimedLane(EventSource& s) : source(s) {
    dir = ::open(source.changeDir().c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dir < 0) fail("open " + source.changeDir());
  }
  ~TimedLane() {
    if (dir >= 0) ::close(dir);
  }
  TimedLane(const TimedLane&) = delete;
  TimedLane(TimedLane&& other) noexcept
      : source(other.source),
        dir(std::exchange(other.dir, -1)),
        samples(std::move(other.samples)),
        lost(other.lost),
        next(other.next),
        created(std::move(other.created)) {}

  // Creates one file; waits for its event. The sample is kept when the
  // prefix is "t".
  void timeOne(int timeoutMs, const char* prefix) {
    std::string name = prefix + std::to_string(next++);
    auto start = Clock::now();
    if (::mknodat(dir, name.c_str(), S_IFREG | 0644, 0) != 0) fail("create " + source.changeDir() + "/" + name);
    created.push_back(name);
    for (;;) {
      auto got = source.nextCreate(timeoutMs);
      if (!got) {
        ++lost;
        return;
      }
      if (*got == name) break;
    }
    if (std::string(prefix) == "t") {
      samples.push_back(std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now() - start).count());
    }
  }

  // Creates a marker and reads until its event came: everything before it
  // has been delivered. Returns the seconds it took.
  double settle() {
    auto start = Clock::now();
    std::string name = "quiet" + std::to_string(next++);
    if (::mknodat(dir, name.c_str(), S_IFREG | 0644, 0) != 0) fail("create " + source.changeDir() + "/" + name);
    created.push_back(name);
    while (secondsSince(start) < 300) {
      auto got = source.nextCreate(1000);
      if (got && *got == name) break;
    }
    return secondsSince(start);
  }

  void removeCreated() {
    for (const std::string& name : created) ::unlinkat(dir, name.c_str(), 0);
    created.clear();
  }

  EventSource& source;
  int dir = -1;
  std::vector<int64_t> samples;
  size_t lost = 0;
  uint64_t next = 0;
  std::vector<std::string> created;
};

// --- the run ----------------------------------------------------------------

struct Options {
  std::set<std::string> parts{"data", "meta", "burst", "latency"};
  size_t dataMib = 1024;
  size_t blockKib = 1024;
  size_t files = 10000;
  size_t readdirPasses = 5;
  size_t rounds = 3;
  size_t burst = 10000;
  int burstIdleMs = 10000;
  bool sshLane = false;
  std::string viewLog;
  RunnerOptions runner;
  std::string baseDir = "/dev/shm";
#ifdef RNOTIFYD_PATH
  std::string rnotifyd = RNOTIFYD_PATH;
#else
  std::string rnotifyd;
#endif
#ifdef RNOTIFY_FUSE_PATH
  std::string fuse = RNOTIFY_FUSE_PATH;
#else
  std::string fuse;
#endif
};

std::string overhead(double plain, double view, bool higherIsBetter) {
  if (plain <= 0 || view <= 0) return "-";
  double pct = higherIsBetter ? (plain - view) / plain * 100 : (view - plain) / plain * 100;
  char buffer[32];
  std::snprintf(buffer, sizeof buffer, "%+.1f %%", pct);
  return buffer;
}

int run(const Options& o) {
  if (::geteuid() != 0) throw std::runtime_error("needs root (sshd, sshfs and FUSE mounts)");
  if (o.fuse.empty() || ::access(o.fuse.c_str(), X_OK) != 0) {
    throw std::runtime_error("rnotify-fuse is not executable at '" + o.fuse + "': build it or pass --fuse");
  }
  if (std::string why = BenchScene::sshMissing(); !why.empty()) throw std::runtime_error(why);
  BenchScene scene(o.rnotifyd, o.baseDir);
  scene.setSeparateFilesystems(onTmpfs(o.baseDir));
  for (const char* lane : {"data-plain", "data-view", "meta-plain", "meta-view", "inotify", "view", "ssh"}) {
    scene.laneDir(lane);
  }
  scene.startSsh();
  ::setenv("RNOTIFY_AGENT", scene.agentCommand().c_str(), 1);
  std::string mount = scene.mountPath("");
  while (mount.size() > 1 && mount.back() == '/') mount.pop_back();
  testbed::TempDir viewRoot("rnotify-bench-view-", o.baseDir);
  std::string viewPoint = viewRoot.mkdir("view");
  View view(o.fuse, mount, viewPoint, scene.agentCommand(), !o.viewLog.empty());

  std::printf("# bench_fuse_view\n\nexport %s (%s), sshfs mount %s (default options), view %s\n",
              scene.exportDir().c_str(), onTmpfs(o.baseDir) ? "tmpfs, one per lane" : "not tmpfs", mount.c_str(),
              viewPoint.c_str());
  std::fflush(stdout);

  if (o.parts.count("data")) {
    const size_t bytes = o.dataMib << 20, block = o.blockKib << 10;
    std::vector<double> write[2], read[2];  // [0] plain, [1] view
    const std::string files[2] = {mount + "/data-plain/big", view / "data-view/big"};
    for (size_t r = 0; r < o.rounds; ++r) {
      for (int k = 0; k < 2; ++k) {
        int lane = (k + static_cast<int>(r)) % 2;
        write[lane].push_back(writeFile(files[lane], bytes, block));
        std::fprintf(stderr, ".");
      }
      for (int k = 0; k < 2; ++k) {
        int lane = (k + static_cast<int>(r)) % 2;
        read[lane].push_back(readFile(files[lane], bytes, block));
        std::fprintf(stderr, ".");
      }
    }
    for (const auto& f : files) ::unlink(f.c_str());
    double mib = static_cast<double>(o.dataMib);
    double wp = mib / median(write[0]), wv = mib / median(write[1]);
    double rp = mib / median(read[0]), rv = mib / median(read[1]);
    std::printf("\n## Sequential data, %zu MiB in %zu KiB blocks (median of %zu rounds)\n\n", o.dataMib, o.blockKib,
                o.rounds);
    std::printf("| operation | sshfs MiB/s | view MiB/s | view overhead |\n|---|---:|---:|---:|\n");
    std::printf("| write | %.1f | %.1f | %s |\n", wp, wv, overhead(wp, wv, true).c_str());
    std::printf("| read | %.1f | %.1f | %s |\n", rp, rv, overhead(rp, rv, true).c_str());
    std::fflush(stdout);
  }

  if (o.parts.count("meta")) {
    std::vector<MetaTimes> times[2];
    const std::string dirs[2] = {mount + "/meta-plain", view / "meta-view"};
    for (size_t r = 0; r < o.rounds; ++r) {
      for (int k = 0; k < 2; ++k) {
        int lane = (k + static_cast<int>(r)) % 2;
        times[lane].push_back(metadataRound(dirs[lane] + "/r" + std::to_string(r), o.files, o.readdirPasses));
        std::fprintf(stderr, ".");
      }
    }
    auto pick = [&](int lane, double MetaTimes::*field) {
      std::vector<double> v;
      for (const MetaTimes& t : times[lane]) v.push_back(t.*field);
      return median(v);
    };
    std::printf("\n## Metadata, %zu files (median of %zu rounds; readdir: %zu full listings)\n\n", o.files, o.rounds,
                o.readdirPasses);
    std::printf("| operation | sshfs µs/op | view µs/op | view overhead |\n|---|---:|---:|---:|\n");
    const std::pair<const char*, double MetaTimes::*> rows[] = {{"create", &MetaTimes::create},
                                                                {"stat", &MetaTimes::stat},
                                                                {"readdir (per entry)", &MetaTimes::readdir},
                                                                {"unlink", &MetaTimes::unlink}};
    for (const auto& [label, field] : rows) {
      double ops =
          static_cast<double>(o.files) * (field == &MetaTimes::readdir ? static_cast<double>(o.readdirPasses) : 1.0);
      double p = pick(0, field) / ops * 1e6, v = pick(1, field) / ops * 1e6;
      std::printf("| %s | %.2f | %.2f | %s |\n", label, p, v, overhead(p, v, false).c_str());
    }
    std::fflush(stdout);
  }

  if (o.parts.count("burst") || o.parts.count("latency")) {
    // The floor watches a directory outside the export, so that the view
    // does not reflect its files: rnotify-fuse subscribes to all of SOURCE
    // and reflects one change at a time, so another directory's traffic
    // would queue ahead of the view lane's (--ssh-lane shows that effect).
    testbed::TempDir floorDir("rnotify-bench-floor-", o.baseDir);
    std::vector<std::unique_ptr<EventSource>> sources;
    sources.push_back(std::make_unique<InotifySource>(floorDir.path()));
    sources.push_back(std::make_unique<ViewSource>("view", view / "view", scene.exportDir() + "/view"));
    if (o.sshLane) {
      sources.push_back(std::make_unique<CApiSource>("ssh", scene.mountPath("ssh"), scene.exportDir() + "/ssh"));
    }
    EventSource& viewSource = *sources[1];
    std::printf("\nlanes:\n");
    for (const auto& source : sources) std::printf("- %s: %s\n", source->name().c_str(), source->description().c_str());
    if (o.parts.count("latency")) {
      std::vector<TimedLane> lanes;
      for (const auto& source : sources) lanes.emplace_back(*source);
      for (TimedLane& lane : lanes) {
        for (size_t i = 0; i < o.runner.warmup; ++i) lane.timeOne(o.runner.timeoutMs, "w");
      }
      for (TimedLane& lane : lanes) lane.samples.clear(), lane.lost = 0;
      const size_t blocks = (o.runner.events + o.runner.block - 1) / o.runner.block;
      double settleMax = 0;
      for (size_t b = 0; b < blocks; ++b) {
        for (size_t k = 0; k < lanes.size(); ++k) {
          TimedLane& lane = lanes[(k + b) % lanes.size()];
          settleMax = std::max(settleMax, lane.settle());
          size_t n = std::min(o.runner.block, o.runner.events - b * o.runner.block);
          for (size_t i = 0; i < n; ++i) lane.timeOne(o.runner.timeoutMs, "t");
          std::fprintf(stderr, ".");
        }
      }
      std::printf(
          "\n## Create on the server -> event read (µs; %zu timed + %zu warm-up per lane, blocks of %zu, "
          "each lane quiet before its block: longest wait %.2f s)\n\n",
          o.runner.events, o.runner.warmup, o.runner.block, settleMax);
      std::printf(
          "| lane | events | lost | p50 | p90 | p99 | p99.9 | max |\n|---|---:|---:|---:|---:|---:|---:|---:|\n");
      for (TimedLane& lane : lanes) {
        LatencySummary s = summarize(lane.source.name(), lane.samples, lane.lost);
        std::printf("| %s | %zu | %zu | %.1f | %.1f | %.1f | %.1f | %.1f |\n", s.transport.c_str(), s.events, s.lost,
                    s.p50Us, s.p90Us, s.p99Us, s.p999Us, s.maxUs);
      }
      std::fflush(stdout);
      for (TimedLane& lane : lanes) lane.removeCreated();
    }
    if (o.parts.count("burst")) {
      // After the latency part's removals the view may still be reflecting
      // deletes: wait until it is quiet.
      TimedLane quiet(viewSource);
      double settled = quiet.settle();
      std::printf("\nthe view was quiet %.1f s after the latency part\n", settled);
      LatencyRunner runner(o.runner);
      for (auto& source : sources) runner.add(std::move(source));
      auto bursts = runner.bursts(o.burst, o.burstIdleMs);
      quiet.removeCreated();
      std::printf("\n## Burst: %zu files created on the server by one thread\n\n", o.burst);
      std::printf(
          "| lane | received | overflows | create s | last event s | events/s |\n|---|---:|---:|---:|---:|---:|\n");
      for (const BurstResult& b : bursts) {
        std::printf("| %s | %zu | %zu | %.3f | %.3f | %.0f |\n", b.transport.c_str(), b.received, b.overflows,
                    b.createSeconds, b.deliverSeconds, b.eventsPerSecond());
      }
      std::fflush(stdout);
    }
  }
  if (!o.viewLog.empty()) {
    std::ofstream log(o.viewLog);
    log << view.transcript();
    std::printf("\nrnotify-fuse's output (debug): %s\n", o.viewLog.c_str());
  }
  if (!view.running()) {
    std::fprintf(stderr, "rnotify-fuse ended during the run:\n%s\n", view.transcript().c_str());
    return 1;
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  ::signal(SIGPIPE, SIG_IGN);
  Options o;
  o.runner.events = 5000;
  o.runner.warmup = 300;
  std::string parts = "data,meta,burst,latency";
  CLI::App app{
      "bench_fuse_view: the rnotify-fuse view against the plain sshfs mount (data, metadata, reflected "
      "events per second, remote change -> event latency)",
      "bench_fuse_view"};
  app.add_option("--parts", parts, "Which parts to run, comma-separated: data,meta,burst,latency")
      ->capture_default_str();
  app.add_option("--data-mib", o.dataMib, "Size of the sequential read/write file in MiB")->capture_default_str();
  app.add_option("--block-kib", o.blockKib, "read/write block size in KiB")->capture_default_str();
  app.add_option("--files", o.files, "Files for create/stat/readdir/unlink")->capture_default_str();
  app.add_option("--readdir-passes", o.readdirPasses, "Full listings of the directory per round")
      ->capture_default_str();
  app.add_option("--rounds", o.rounds, "Rounds of data and metadata (median reported)")->capture_default_str();
  app.add_option("--burst", o.burst, "Files in the burst (0: no burst)")->capture_default_str();
  app.add_option("--burst-idle-ms", o.burstIdleMs, "A burst lane ends when no event came for this long")
      ->capture_default_str();
  app.add_flag("--ssh-lane", o.sshLane,
               "Add the C API on the sshfs mount as a lane (its files are in the export: the view reflects them too)");
  app.add_option("--view-log", o.viewLog, "Run rnotify-fuse with debug logging and write its output here")
      ->type_name("PATH");
  app.add_option("--events", o.runner.events, "Timed latency events per lane")->capture_default_str();
  app.add_option("--warmup", o.runner.warmup, "Untimed latency events per lane first")->capture_default_str();
  app.add_option("--block", o.runner.block, "Latency events per turn")->capture_default_str();
  app.add_option("--timeout-ms", o.runner.timeoutMs, "A latency event not seen by then counts as lost")
      ->capture_default_str();
  app.add_option("--dir", o.baseDir, "Create the export (and the view's mount point) below this directory")
      ->capture_default_str();
  app.add_option("--rnotifyd", o.rnotifyd, "The rnotifyd binary (agent on the server)")->capture_default_str();
  app.add_option("--fuse", o.fuse, "The rnotify-fuse binary")->capture_default_str();
  CLI11_PARSE(app, argc, argv);
  o.parts.clear();
  std::stringstream in(parts);
  for (std::string part; std::getline(in, part, ',');) {
    if (part != "data" && part != "meta" && part != "burst" && part != "latency") {
      std::fprintf(stderr, "bench_fuse_view: unknown part '%s'\n", part.c_str());
      return 2;
    }
    o.parts.insert(part);
  }
  if (o.burst == 0) o.parts.erase("burst");
  try {
    return run(o);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "bench_fuse_view: %s\n", e.what());
    return 1;
  }
}
