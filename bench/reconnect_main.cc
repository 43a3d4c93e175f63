// bench_reconnect: what an application feels while its server does not
// answer (issue 16). On client A's sshfs mount (loopback test bed, default
// options), through the C API in this process: the agent's connection dies
// and sshd's listener is stopped (SIGSTOP: new ssh connections are accepted
// by the kernel and then hear nothing; ssh gives up after its ConnectTimeout,
// 5 s, and the client tries again). Meanwhile the application polls
// rnotify_fd() and takes events with rnotify_next(rn, &ev, 0), while another
// thread writes a file through the mount every 250 ms (this host's change:
// the local kernel reports it at once). Reported: the duration of every
// rnotify_next(..., 0) call (p50, p99, max), and the delay from each local
// write to its event. Then the listener goes on and the time until the
// server's events flow again is reported.
//
// --scenario no-agent: nothing of rnotify on the server (RNOTIFY_AGENT names
// a program that is not there), a tree of 5,000 entries watched recursively
// with RNOTIFY_NONBLOCK. Inside rnotify_next(): the agent's failure, the
// start of the fallback (SFTP scans: ssh, the SFTP handshake, the first
// listing) and every scan after it, while this host writes every 250 ms and
// the server every 500 ms. Reported: the same call durations, the local
// delays, the server's changes seen, and when the scans had started.
//
// --scenario mount-scan: the same tree and writers, watched with RNOTIFY_POLL
// (scans of the mount, as on an NFS or SMB mount without a server): every
// scan statx's the tree's directories through sshfs, inside rnotify_next().
// Both hosts' changes come from the scans; sshfs's caches (20 s) delay the
// server's.
//
//   build/bench/bench_reconnect [--seconds 12] [--rounds 3] [--scenario black-hole|no-agent|mount-scan]
#include <poll.h>
#include <signal.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <map>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "common/read_file.h"
#include "process.h"
#include "rnotify/rnotify.h"
#include "sshfs_bed.h"
#include "temp_dir.h"

namespace {

using Clock = std::chrono::steady_clock;
using namespace rnotify::testbed;

std::vector<pid_t> ownSsh() {
  std::vector<pid_t> found;
  for (pid_t pid : descendantsOf(::getpid())) {
    auto comm = rnotify::readFile("/proc/" + std::to_string(pid) + "/comm");
    auto stat = rnotify::readProcStat(pid);
    if (comm.ok() && comm->rfind("ssh\n", 0) == 0 && stat && stat->state != 'Z') found.push_back(pid);
  }
  return found;
}

long percentile(std::vector<long> v, double p) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  return v[std::min(v.size() - 1, static_cast<size_t>(p * static_cast<double>(v.size())))];
}

struct Round {
  std::vector<long> nextUs;   // every rnotify_next(..., 0) call
  std::vector<long> localUs;  // local write -> its event
  int localWritten = 0;
  long backMs = -1;  // SIGCONT -> the server's events again
  int remoteWritten = 0, remoteSeen = 0;
  long startedMs = -1;  // no-agent: add_watch -> the source no longer "connecting"
};

// The application's side of both scenarios: rnotify_fd() polled, every
// event taken with rnotify_next(rn, &ev, 0) and each call timed, while
// another thread writes through the mount every 250 ms. `each` runs
// between polls (the scenario's own checks and writes). scansOnly: this
// host's changes are reported by scans too (RNOTIFY_POLL), as remote.
template <typename Each>
void application(rnotify_t* rn, SshfsBed& bed, double seconds, Round* out, bool scansOnly, Each&& each) {
  std::mutex mutex;
  std::map<std::string, Clock::time_point> written;
  std::atomic<bool> stop{false};
  std::thread writer([&] {
    for (int i = 0; !stop; ++i) {
      const std::string name = "local" + std::to_string(i);
      {
        std::lock_guard<std::mutex> lock(mutex);
        written[name] = Clock::now();
        ++out->localWritten;
      }
      writeFile(bed.a("a/" + name), "made here\n");
      std::this_thread::sleep_for(std::chrono::milliseconds(250));  // the actor's pace, not a synchronisation
    }
  });
  const auto until = Clock::now() + std::chrono::milliseconds(static_cast<long>(seconds * 1000));
  while (Clock::now() < until) {
    struct pollfd p = {rnotify_fd(rn), POLLIN, 0};
    ::poll(&p, 1, 20);
    each();
    for (;;) {
      rnotify_event ev;
      const auto before = Clock::now();
      const int r = rnotify_next(rn, &ev, 0);
      const auto after = Clock::now();
      out->nextUs.push_back(std::chrono::duration_cast<std::chrono::microseconds>(after - before).count());
      if (r != 1) break;
      if (!(ev.mask & IN_CREATE)) continue;
      if (std::string(ev.name).rfind("remote", 0) == 0) {
        out->remoteSeen += (ev.mask & IN_REMOTE) != 0;
        continue;
      }
      if ((ev.mask & IN_REMOTE) && !scansOnly) continue;
      std::lock_guard<std::mutex> lock(mutex);
      auto it = written.find(ev.name);
      if (it != written.end()) {
        out->localUs.push_back(std::chrono::duration_cast<std::chrono::microseconds>(after - it->second).count());
        written.erase(it);
      }
    }
  }
  stop = true;
  writer.join();
}

bool runNoAgentRound(double seconds, bool mountScan, Round* out) {
  const std::unique_ptr<SshfsBed> owned = clientBenchBed();
  SshfsBed& bed = *owned;
  ::setenv("RNOTIFY_AGENT", "/nonexistent/rnotifyd --stdio", 1);
  for (int d = 0; d < 100; ++d) {
    const std::string dir = bed.server("a/d" + std::to_string(d));
    std::filesystem::create_directory(dir);
    for (int f = 0; f < 49; ++f) writeFile(dir + "/f" + std::to_string(f), "x\n");
  }
  rnotify_t* rn = rnotify_init(RNOTIFY_CLOEXEC);
  if (rn == nullptr) return false;
  const auto added = Clock::now();
  const int wd = rnotify_add_watch(rn, bed.a("a").c_str(), IN_CREATE | IN_CLOSE_WRITE,
                                   RNOTIFY_NONBLOCK | RNOTIFY_RECURSIVE | (mountScan ? RNOTIFY_POLL : 0));
  if (wd <= 0) {
    std::fprintf(stderr, "watch: %s\n", rnotify_last_error(rn));
    rnotify_close(rn);
    return false;
  }
  auto nextRemote = Clock::now();
  application(rn, bed, seconds, out, mountScan, [&] {
    const std::string source = rnotify_watch_source(rn, wd);
    if (out->startedMs < 0 && source.rfind(RNOTIFY_SOURCE_CONNECTING, 0) != 0) {
      out->startedMs = std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - added).count();
      const char* expected = mountScan ? "scans of the mount" : "SFTP scans";
      if (source.find(expected) == std::string::npos) std::fprintf(stderr, "not %s: %s\n", expected, source.c_str());
    }
    if (out->startedMs >= 0 && Clock::now() >= nextRemote) {  // the server's changes, once they can be seen
      writeFile(
          bed.server("a/d" + std::to_string(out->remoteWritten % 100) + "/remote" + std::to_string(out->remoteWritten)),
          "x\n");
      ++out->remoteWritten;
      nextRemote = Clock::now() + std::chrono::milliseconds(500);
    }
  });
  // The last ones written need a scan or two.
  for (auto stop = Clock::now() + std::chrono::seconds(6);
       Clock::now() < stop && out->remoteSeen < out->remoteWritten;) {
    rnotify_event ev;
    if (rnotify_next(rn, &ev, 100) == 1 && (ev.mask & IN_REMOTE) && std::string(ev.name).rfind("remote", 0) == 0) {
      ++out->remoteSeen;
    }
  }
  rnotify_close(rn);
  return true;
}

bool runRound(double seconds, Round* out) {
  const std::unique_ptr<SshfsBed> owned = clientBenchBed();
  SshfsBed& bed = *owned;
  rnotify_t* rn = rnotify_init(RNOTIFY_CLOEXEC);
  if (rn == nullptr) return false;
  const int wd = rnotify_add_watch(rn, bed.a("a").c_str(), IN_CREATE | IN_CLOSE_WRITE, 0);
  if (wd <= 0) {
    std::fprintf(stderr, "watch: %s\n", rnotify_last_error(rn));
    rnotify_close(rn);
    return false;
  }
  auto take = [&](int timeoutMs, auto&& onEvent) {
    rnotify_event ev;
    while (rnotify_next(rn, &ev, timeoutMs) == 1) onEvent(ev);
  };
  writeFile(bed.server("a/first"), "x\n");
  bool ready = false;
  for (auto until = Clock::now() + std::chrono::seconds(10); !ready && Clock::now() < until;) {
    rnotify_event ev;
    if (rnotify_next(rn, &ev, 100) == 1) ready = (ev.mask & IN_REMOTE) != 0;
  }
  std::vector<pid_t> ssh = ownSsh();
  if (!ready || ssh.size() != 1) {
    std::fprintf(stderr, "no remote event or no single agent connection\n");
    rnotify_close(rn);
    return false;
  }
  const pid_t listener = bed.sshd().pid();
  ::kill(listener, SIGSTOP);
  ::kill(ssh[0], SIGKILL);

  // Another actor on this host writes every 250 ms, whatever the
  // application is doing.
  application(rn, bed, seconds, out, false, [] {});
  const auto resumed = Clock::now();
  ::kill(listener, SIGCONT);
  for (int i = 0; i < 60 && out->backMs < 0; ++i) {
    writeFile(bed.server("a/again" + std::to_string(i)), "x\n");
    for (auto stop = Clock::now() + std::chrono::seconds(1); Clock::now() < stop && out->backMs < 0;) {
      take(100, [&](const rnotify_event& ev) {
        if ((ev.mask & IN_REMOTE) && (ev.mask & IN_CREATE) && out->backMs < 0) {
          out->backMs = std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - resumed).count();
        }
      });
    }
  }
  rnotify_close(rn);
  return true;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"bench_reconnect: rnotify_next(..., 0) and local events while the server does not answer"};
  double seconds = 12;
  int rounds = 3;
  app.add_option("--seconds", seconds, "how long the server does not answer, per round")->check(CLI::Range(1.0, 300.0));
  app.add_option("--rounds", rounds, "rounds, each on a fresh test bed")->check(CLI::Range(1, 100));
  std::string scenario = "black-hole";
  app.add_option("--scenario", scenario,
                 "black-hole: the server stops answering; no-agent: rnotifyd is not installed, SFTP scans serve; "
                 "mount-scan: RNOTIFY_POLL, scans of the mount serve")
      ->check(CLI::IsMember({"black-hole", "no-agent", "mount-scan"}));
  CLI11_PARSE(app, argc, argv);
  if (auto why = SshfsBed::missing(); !why.empty()) {
    std::fprintf(stderr, "cannot run: %s\n", why.c_str());
    return 2;
  }
  Round all;
  for (int i = 0; i < rounds; ++i) {
    Round round;
    const bool scans = scenario != "black-hole";
    if (!(scans ? runNoAgentRound(seconds, scenario == "mount-scan", &round) : runRound(seconds, &round))) return 1;
    std::printf(
        "round %d: %zu calls, rnotify_next(...,0) p50 %ld us p99 %ld us max %ld us; local events %zu of %d, "
        "delay p50 %ld us max %ld us; ",
        i + 1, round.nextUs.size(), percentile(round.nextUs, 0.5), percentile(round.nextUs, 0.99),
        percentile(round.nextUs, 1.0), round.localUs.size(), round.localWritten, percentile(round.localUs, 0.5),
        percentile(round.localUs, 1.0));
    if (scans) {
      std::printf("%s serving %ld ms after the add; the server's changes seen %d of %d\n",
                  scenario == "no-agent" ? "SFTP scans" : "scans of the mount", round.startedMs, round.remoteSeen,
                  round.remoteWritten);
    } else {
      std::printf("server back %ld ms after it answered again\n", round.backMs);
    }
    all.nextUs.insert(all.nextUs.end(), round.nextUs.begin(), round.nextUs.end());
    all.localUs.insert(all.localUs.end(), round.localUs.begin(), round.localUs.end());
    all.localWritten += round.localWritten;
  }
  std::printf(
      "all: %zu calls, rnotify_next(...,0) p50 %ld us p99 %ld us max %ld us; local events %zu of %d, delay "
      "p50 %ld us p99 %ld us max %ld us\n",
      all.nextUs.size(), percentile(all.nextUs, 0.5), percentile(all.nextUs, 0.99), percentile(all.nextUs, 1.0),
      all.localUs.size(), all.localWritten, percentile(all.localUs, 0.5), percentile(all.localUs, 0.99),
      percentile(all.localUs, 1.0));
  return 0;
}
