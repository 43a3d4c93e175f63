// bench_poll: what one polling cycle costs on a 100,000-entry tree, rnotify's
// PollScanner against fswatch's poll monitor (`fswatch -m poll_monitor -r`)
// in the same run, on the same tree: the tree unchanged, and with 1 % of its
// entries changed before each cycle (writes, chmods, touches, creations,
// deletions, renames). CPU time (user + sys) per cycle, and system calls per
// cycle (PollScanner counts its own; fswatch's are counted by the kernel's
// syscall tracepoints through `perf stat`). Then the detection latency of
// PollScanner at the default interval: a file created at a random moment of
// an idle interval, to the scan that reports it.
//
// fswatch runs as a child at the same time as PollScanner (same window, same
// changes: the machine's load drifts); its CPU comes from /proc (schedstat,
// ns), its cycles from its sleeps (it scans, then sleeps `latency` seconds).
#include <fcntl.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <memory>
#include <random>
#include <sstream>
#include <string>
#include <thread>
#include <tuple>
#include <vector>

#include "common/proc_stat.h"
#include "poll/poll_scanner.h"

namespace {

using namespace std::chrono_literals;
using rnotify::PollScanner;
using Clock = std::chrono::steady_clock;

double seconds(Clock::duration d) { return std::chrono::duration<double>(d).count(); }

struct Tree {
  std::string root;
  std::vector<std::string> files;  // relative paths, for the mutations
  std::vector<std::string> dirs;
};

// 100 directories of 10 subdirectories of `perDir` files: 1,100 directories
// and 1,000 * perDir files.
Tree buildTree(const std::string& root, size_t entries) {
  Tree t{root, {}, {}};
  size_t perDir = std::max<size_t>(1, (entries - 1100) / 1000);
  std::filesystem::create_directories(root);
  for (int a = 0; a < 100; ++a) {
    std::string da = "d" + std::to_string(a);
    std::filesystem::create_directory(root + "/" + da);
    t.dirs.push_back(da);
    for (int b = 0; b < 10; ++b) {
      std::string db = da + "/s" + std::to_string(b);
      std::filesystem::create_directory(root + "/" + db);
      t.dirs.push_back(db);
      for (size_t f = 0; f < perDir; ++f) {
        std::string rel = db + "/file-" + std::to_string(f) + ".txt";
        int fd = ::open((root + "/" + rel).c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
        if (fd >= 0) {
          (void)!::write(fd, "x", 1);
          ::close(fd);
        }
        t.files.push_back(rel);
      }
    }
  }
  return t;
}

// `count` changes spread over the tree; the number of entries stays the same.
class Mutator {
 public:
  explicit Mutator(Tree* tree) : t_(tree), rng_(42) {}
  void apply(size_t count) {
    for (size_t i = 0; i < count; ++i) {
      std::string& rel = t_->files[rng_() % t_->files.size()];
      std::string path = t_->root + "/" + rel;
      switch (rng_() % 10) {
        case 0:
        case 1:
        case 2:
        case 3: {  // in-place write
          int fd = ::open(path.c_str(), O_WRONLY | O_APPEND | O_CLOEXEC);
          if (fd >= 0) {
            (void)!::write(fd, "y", 1);
            ::close(fd);
          }
          break;
        }
        case 4:
        case 5:
          ::chmod(path.c_str(), (rng_() % 2) ? 0600 : 0644);
          break;
        case 6: {
          struct timespec times[2] = {{0, UTIME_OMIT}, {0, UTIME_NOW}};
          ::utimensat(AT_FDCWD, path.c_str(), times, 0);
          break;
        }
        case 7:
        case 8: {  // rename into another directory
          std::string to = t_->dirs[rng_() % t_->dirs.size()] + "/m" + std::to_string(counter_++);
          if (::rename(path.c_str(), (t_->root + "/" + to).c_str()) == 0) rel = to;
          break;
        }
        default: {  // delete and create another
          ::unlink(path.c_str());
          std::string to = t_->dirs[rng_() % t_->dirs.size()] + "/n" + std::to_string(counter_++);
          int fd = ::open((t_->root + "/" + to).c_str(), O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
          if (fd >= 0) ::close(fd);
          rel = to;
        }
      }
    }
  }

 private:
  Tree* t_;
  std::mt19937 rng_;
  uint64_t counter_ = 0;
};

struct Cost {
  double cpu = 0, user = 0, sys = 0;  // seconds per cycle
  double syscalls = 0;                // per cycle
  double events = 0;                  // per cycle
  int cycles = 0;
};

double threadCpu() {
  struct timespec ts;
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return ts.tv_sec + ts.tv_nsec / 1e9;
}
std::pair<double, double> threadUserSys() {
  struct rusage ru;
  getrusage(RUSAGE_THREAD, &ru);
  return {ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6, ru.ru_stime.tv_sec + ru.ru_stime.tv_usec / 1e6};
}

// PollScanner: `cycles` scans `interval` apart (as a client would run them, so
// that directory mtimes age as they do in use), `changes` changes before each.
Cost measureScanner(Tree* tree, Mutator* mutator, int cycles, size_t changes, std::chrono::milliseconds interval,
                    int sweepScans) {
  PollScanner::Options options;
  options.sweepScans = sweepScans;
  PollScanner scanner(tree->root, options);
  if (!scanner.scan().ok()) throw std::runtime_error("scan failed");
  std::this_thread::sleep_for(options.mtimeGranularity + 100ms);  // the baseline's listings become trusted
  (void)scanner.scan();
  Cost c;
  auto before = scanner.counters();
  for (int i = 0; i < cycles; ++i) {
    std::this_thread::sleep_for(interval);
    mutator->apply(changes);
    double cpu0 = threadCpu();
    auto [u0, s0] = threadUserSys();
    auto events = scanner.scan();
    auto [u1, s1] = threadUserSys();
    c.cpu += threadCpu() - cpu0;
    c.user += u1 - u0;
    c.sys += s1 - s0;
    c.events += events.ok() ? events->size() : 0;
  }
  auto after = scanner.counters();
  double calls = static_cast<double>((after.fs.statx - before.fs.statx) + (after.fs.getdents - before.fs.getdents) +
                                     2 * (after.fs.open - before.fs.open));  // each open has its close
  c.cycles = cycles;
  c.cpu /= cycles;
  c.user /= cycles;
  c.sys /= cycles;
  c.events /= cycles;
  c.syscalls = calls / cycles;
  std::printf(
      "  rnotify: %zu entries known, %.1f MB state; per scan: %.0f dirs listed, %.0f not (%.0f of those swept)\n",
      scanner.entries(), scanner.memoryBytes() / 1e6, double(after.dirsListed - before.dirsListed) / cycles,
      double(after.dirsSkipped - before.dirsSkipped) / cycles, double(after.dirsSwept - before.dirsSwept) / cycles);
  return c;
}

// CPU of every thread of pid, in seconds: schedstat (ns); user/sys from stat (ticks).
double procCpu(pid_t pid) {
  double total = 0;
  for (const auto& task : std::filesystem::directory_iterator("/proc/" + std::to_string(pid) + "/task")) {
    std::ifstream in(task.path() / "schedstat");
    double ns = 0;
    if (in >> ns) total += ns / 1e9;
  }
  return total;
}
std::pair<double, double> procUserSys(pid_t pid) {
  auto stat = rnotify::readProcStat(pid);
  if (!stat) return {0, 0};
  double tick = static_cast<double>(sysconf(_SC_CLK_TCK));
  return {static_cast<double>(stat->utime) / tick, static_cast<double>(stat->stime) / tick};
}

pid_t spawn(const std::vector<std::string>& argv) {
  pid_t pid = fork();
  if (pid == 0) {
    int null = ::open("/dev/null", O_RDWR);
    dup2(null, 1);
    dup2(null, 2);
    std::vector<char*> args;
    for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
    args.push_back(nullptr);
    execvp(args[0], args.data());
    _exit(127);
  }
  return pid;
}

// Waits for the end of fswatch's current scan: its CPU time stops growing
// (it sleeps `latency` seconds between scans).
void waitIdle(pid_t pid) {
  double last = procCpu(pid);
  for (;;) {
    std::this_thread::sleep_for(50ms);
    double now = procCpu(pid);
    if (now - last < 0.0005) return;
    last = now;
  }
}
// fswatch's poll monitor running beside PollScanner on the same tree, over
// the same window (the machine's load drifts; measuring both at once keeps
// the ratio fair). Its system calls and its sleeps (one per cycle, so its
// cycle count) are counted by the kernel's syscall tracepoints through `perf
// stat` (strace would slow it tenfold).
class FswatchRun {
 public:
  FswatchRun(const std::string& root, int latency) : scratch_(root + ".perf") {
    pid_ = spawn({"fswatch", "-m", "poll_monitor", "-r", "-l", std::to_string(latency), root});
    std::this_thread::sleep_for(200ms);
    waitIdle(pid_);  // the initial scan is done
    perf_ = spawn({"perf", "stat", "-e", "raw_syscalls:sys_enter", "-e", "syscalls:sys_enter_clock_nanosleep", "-e",
                   "syscalls:sys_enter_nanosleep", "-x,", "-o", scratch_, "-p", std::to_string(pid_)});
    std::this_thread::sleep_for(300ms);
    cpu0_ = procCpu(pid_);
    std::tie(user0_, sys0_) = procUserSys(pid_);
  }
  Cost stop() {
    double cpu1 = procCpu(pid_);
    auto [user1, sys1] = procUserSys(pid_);
    kill(perf_, SIGINT);
    waitpid(perf_, nullptr, 0);
    kill(pid_, SIGTERM);
    waitpid(pid_, nullptr, 0);
    double calls = 0, sleeps = 0;
    std::ifstream in(scratch_);
    for (std::string line; std::getline(in, line);) {
      if (line.empty() || line[0] == '#' || line.find(',') == std::string::npos) continue;
      double n = std::atof(line.substr(0, line.find(',')).c_str());
      if (line.find("raw_syscalls:sys_enter") != std::string::npos) calls = n;
      if (line.find("nanosleep") != std::string::npos) sleeps += n;
    }
    std::filesystem::remove(scratch_);
    Cost c;
    c.cycles = static_cast<int>(sleeps);
    if (sleeps > 0) {
      c.cpu = (cpu1 - cpu0_) / sleeps;
      c.user = (user1 - user0_) / sleeps;
      c.sys = (sys1 - sys0_) / sleeps;
      c.syscalls = calls / sleeps;
    }
    return c;
  }

 private:
  std::string scratch_;
  pid_t pid_ = -1, perf_ = -1;
  double cpu0_ = 0, user0_ = 0, sys0_ = 0;
};

// Detection latency at the default settings: a file created at a random
// moment of an idle (default-length) interval, to the scan that reports it.
std::vector<double> detectionLatency(const Tree& tree, int samples) {
  PollScanner scanner(tree.root, PollScanner::Options{});
  (void)scanner.scan();
  std::mt19937 rng(7);
  std::vector<double> out;
  for (int i = 0; i < samples; ++i) {
    // Idle until the interval is back to the default.
    while (scanner.interval().current() < scanner.interval().settings().initial) {
      std::this_thread::sleep_until(scanner.deadline());
      (void)scanner.scan();
    }
    Clock::time_point lastEnd = Clock::now();
    std::this_thread::sleep_until(scanner.deadline());
    (void)scanner.scan();
    lastEnd = Clock::now();
    auto span = scanner.deadline() - lastEnd;
    auto at = lastEnd + std::chrono::duration_cast<Clock::duration>(span * (rng() % 1000) / 1000.0);
    std::this_thread::sleep_until(at);
    std::string name = "probe-" + std::to_string(i);
    Clock::time_point t0 = Clock::now();
    int fd = ::open((tree.root + "/d0/" + name).c_str(), O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
    ::close(fd);
    for (bool seen = false; !seen;) {
      std::this_thread::sleep_until(scanner.deadline());
      auto events = scanner.scan();
      for (const auto& e : *events) seen |= e.name == name;
      if (seen) out.push_back(seconds(Clock::now() - t0));
    }
  }
  return out;
}

void print(const char* what, const Cost& c) {
  std::printf("  %-42s cpu %8.2f ms/cycle (user %7.2f, sys %7.2f)  syscalls %9.0f/cycle  events %7.0f/cycle\n", what,
              c.cpu * 1e3, c.user * 1e3, c.sys * 1e3, c.syscalls, c.events);
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"Polling cost per cycle: rnotify's PollScanner vs fswatch's poll monitor"};
  std::string dir;
  size_t entries = 100000;
  int cycles = 10, latencySamples = 10;
  bool fswatch = true;
  app.add_option("--dir", dir, "where to build the tree (default: a new directory in $TMPDIR or /tmp)");
  app.add_option("--entries", entries, "entries in the tree (about)");
  app.add_option("--cycles", cycles, "cycles measured per case");
  app.add_option("--latency-samples", latencySamples, "detection latency samples");
  app.add_flag("!--no-fswatch", fswatch, "skip fswatch");
  CLI11_PARSE(app, argc, argv);
  std::setvbuf(stdout, nullptr, _IOLBF, 0);

  if (dir.empty()) {
    const char* tmp = std::getenv("TMPDIR");
    std::string base = std::string(tmp != nullptr ? tmp : "/tmp") + "/bench-poll-XXXXXX";
    if (mkdtemp(base.data()) == nullptr) return 1;
    dir = base;
  }
  Tree tree = buildTree(dir + "/tree", entries);
  std::printf("tree: %s, %zu files in %zu directories\n", tree.root.c_str(), tree.files.size(), tree.dirs.size());
  Mutator mutator(&tree);
  const size_t onePercent = (tree.files.size() + tree.dirs.size()) / 100;
  const int interval = 2;  // s, both tools

  Cost full[2], ours[2], fs[2];
  for (int changed = 0; changed < 2; ++changed) {
    size_t changes = changed ? onePercent : 0;
    std::unique_ptr<FswatchRun> run;
    if (fswatch) run = std::make_unique<FswatchRun>(tree.root, interval);
    full[changed] = measureScanner(&tree, &mutator, cycles, changes, std::chrono::seconds(interval), 1);
    ours[changed] = measureScanner(&tree, &mutator, cycles, changes, std::chrono::seconds(interval), 2);
    if (run) fs[changed] = run->stop();
    const char* what = changed ? "1 % changed" : "unchanged";
    print((std::string("rnotify, every file, ") + what).c_str(), full[changed]);
    print((std::string("rnotify, default (sweep 2), ") + what).c_str(), ours[changed]);
    if (run) {
      print((std::string("fswatch poll_monitor, ") + what).c_str(), fs[changed]);
      std::printf("  (fswatch: %d cycles in the same window)\n", fs[changed].cycles);
    }
  }
  if (fswatch) {
    std::printf("  ratio CPU, default: unchanged %.3f, 1 %% changed %.3f; every file: %.3f, %.3f\n",
                ours[0].cpu / fs[0].cpu, ours[1].cpu / fs[1].cpu, full[0].cpu / fs[0].cpu, full[1].cpu / fs[1].cpu);
    std::printf("  ratio syscalls, default: unchanged %.3f, 1 %% changed %.3f; every file: %.3f, %.3f\n",
                ours[0].syscalls / fs[0].syscalls, ours[1].syscalls / fs[1].syscalls, full[0].syscalls / fs[0].syscalls,
                full[1].syscalls / fs[1].syscalls);
  }
  std::vector<double> lat = detectionLatency(tree, latencySamples);
  std::sort(lat.begin(), lat.end());
  if (!lat.empty()) {
    double sum = 0;
    for (double l : lat) sum += l;
    std::printf("  detection latency at the default interval (%d samples): mean %.0f ms, median %.0f ms, max %.0f ms\n",
                static_cast<int>(lat.size()), sum / lat.size() * 1e3, lat[lat.size() / 2] * 1e3, lat.back() * 1e3);
  }
  std::filesystem::remove_all(dir);
  return 0;
}
