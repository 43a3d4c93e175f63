// bench_restart: what an application feels while its server restarts and
// the client makes its watches again (issue 16). On client A's sshfs mount
// (loopback test bed, default options), through the C API in this process:
// --watches directories of --files files each are watched; the server's
// rnotifyd (the per-user daemon behind the --stdio agent) is killed, so the
// connection ends and the next one cannot resume the session: every watch
// is made again on the server and re-read (a listing of its directory,
// compared with what the client knew). Meanwhile the application polls
// rnotify_fd() (20 ms at most) and takes events with rnotify_next(rn, &ev, 0);
// the server writes a file into every directory every 100 ms. Reported: the
// duration of every rnotify_next(..., 0) call (p50, p99, max) from the kill
// until every watch has reported a server-side change again, and that time.
//
//   build/bench/bench_restart [--watches 8] [--files 5000] [--rounds 3]
#include <poll.h>
#include <signal.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <set>
#include <string>
#include <vector>

#include "product.h"
#include "rnotify/rnotify.h"
#include "sshfs_bed.h"
#include "temp_dir.h"

namespace {

using Clock = std::chrono::steady_clock;
using namespace rnotify::testbed;
namespace fs = std::filesystem;

long percentile(std::vector<long> v, double p) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  return v[std::min(v.size() - 1, static_cast<size_t>(p * static_cast<double>(v.size())))];
}

struct Round {
  std::vector<long> nextUs;  // every rnotify_next(..., 0) call
  long backMs = -1;          // the kill -> every watch's server events again
};

bool runRound(int watches, int files, Round* out) {
  const std::unique_ptr<SshfsBed> owned = clientBenchBed();
  SshfsBed& bed = *owned;
  for (int w = 0; w < watches; ++w) {
    const std::string dir = "d" + std::to_string(w);
    fs::create_directory(bed.server(dir));
    for (int f = 0; f < files; ++f) writeFile(bed.server(dir + "/f" + std::to_string(f)), "");
  }
  rnotify_t* rn = rnotify_init(RNOTIFY_CLOEXEC);
  if (rn == nullptr) return false;
  std::vector<int> wds;
  for (int w = 0; w < watches; ++w) {
    const int wd = rnotify_add_watch(rn, bed.a("d" + std::to_string(w)).c_str(), IN_CREATE | IN_CLOSE_WRITE, 0);
    if (wd <= 0) {
      std::fprintf(stderr, "watch: %s\n", rnotify_last_error(rn));
      rnotify_close(rn);
      return false;
    }
    wds.push_back(wd);
  }
  // Every watch served by the server before the restart.
  std::set<int> serving;
  for (int w = 0; w < watches; ++w) writeFile(bed.server("d" + std::to_string(w) + "/first"), "x\n");
  for (auto until = Clock::now() + std::chrono::seconds(30); serving.size() < wds.size() && Clock::now() < until;) {
    rnotify_event ev;
    if (rnotify_next(rn, &ev, 100) == 1 && (ev.mask & IN_REMOTE) && (ev.mask & IN_CREATE)) serving.insert(ev.wd);
  }
  std::vector<pid_t> daemons = bed.sshd().agentDaemons();
  if (serving.size() != wds.size() || daemons.size() != 1) {
    std::fprintf(stderr, "not every watch served, or not one agent daemon (%zu)\n", daemons.size());
    rnotify_close(rn);
    return false;
  }
  ::kill(daemons[0], SIGKILL);
  const auto killed = Clock::now();
  std::set<int> back;
  auto nextWrite = killed;
  for (int i = 0; back.size() < wds.size() && Clock::now() < killed + std::chrono::seconds(60);) {
    if (Clock::now() >= nextWrite) {
      for (int w = 0; w < watches; ++w) {
        writeFile(bed.server("d" + std::to_string(w) + "/again" + std::to_string(i)), "x\n");
      }
      ++i;
      nextWrite += std::chrono::milliseconds(100);
    }
    struct pollfd p = {rnotify_fd(rn), POLLIN, 0};
    ::poll(&p, 1, 20);
    for (;;) {
      rnotify_event ev;
      const auto before = Clock::now();
      const int r = rnotify_next(rn, &ev, 0);
      out->nextUs.push_back(std::chrono::duration_cast<std::chrono::microseconds>(Clock::now() - before).count());
      if (r != 1) break;
      if ((ev.mask & IN_REMOTE) && (ev.mask & IN_CREATE) && std::string(ev.name).rfind("again", 0) == 0) {
        back.insert(ev.wd);
      }
    }
  }
  if (back.size() == wds.size()) {
    out->backMs = std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - killed).count();
  }
  rnotify_close(rn);
  return true;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"bench_restart: rnotify_next(..., 0) while the server restarts and the watches are made again"};
  int watches = 8;
  int files = 5000;
  int rounds = 3;
  app.add_option("--watches", watches, "directories watched")->check(CLI::Range(1, 64));
  app.add_option("--files", files, "files in each")->check(CLI::Range(0, 200000));
  app.add_option("--rounds", rounds, "rounds, each on a fresh test bed")->check(CLI::Range(1, 100));
  CLI11_PARSE(app, argc, argv);
  if (auto why = SshfsBed::missing(); !why.empty()) {
    std::fprintf(stderr, "cannot run: %s\n", why.c_str());
    return 2;
  }
  std::vector<long> all;
  for (int i = 0; i < rounds; ++i) {
    Round round;
    if (!runRound(watches, files, &round)) return 1;
    std::printf(
        "round %d: %zu calls, rnotify_next(...,0) p50 %ld us p99 %ld us max %ld us; every watch back after %ld ms\n",
        i + 1, round.nextUs.size(), percentile(round.nextUs, 0.5), percentile(round.nextUs, 0.99),
        percentile(round.nextUs, 1.0), round.backMs);
    all.insert(all.end(), round.nextUs.begin(), round.nextUs.end());
  }
  std::printf("all: %zu calls, rnotify_next(...,0) p50 %ld us p99 %ld us max %ld us\n", all.size(),
              percentile(all, 0.5), percentile(all, 0.99), percentile(all, 1.0));
  return 0;
}
