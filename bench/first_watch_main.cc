// bench_first_watch: how long the first watch on a server takes to return
// (issue 16), when the server answers and when it does not. On client A's
// sshfs mount (loopback test bed, default options). "Does not answer":
// sshd's listener is stopped (SIGSTOP): the agent's new ssh connection is
// accepted by the kernel and then hears nothing until ssh's ConnectTimeout
// (5 s); the sshfs mount's own session goes on. Lanes, each a fresh client:
//
//   inotify        inotify_add_watch on the mount without rnotify (the floor)
//   capi-wait      rnotify_add_watch(..., 0): waits for the connection
//   capi-nonblock  rnotify_add_watch(..., RNOTIFY_NONBLOCK); also the time
//                  until the server has taken the watch (IN_RESTORED)
//   shim           inotify_add_watch in a program under the shim, defaults
//                  (waits for the server's first answer, lock released)
//   shim-nowait    the same with RNOTIFY_PRELOAD_WAIT_MS=0
//
// The program of the inotify and shim lanes is this binary (--add-helper
// DIR): it times its own inotify_add_watch and prints the microseconds.
//
//   build/bench/bench_first_watch [--rounds 3]
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/inotify.h>
#include <sys/wait.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <map>
#include <string>
#include <vector>

#include "common/unique_fd.h"
#include "product.h"
#include "rnotify/rnotify.h"
#include "sshfs_bed.h"

extern char** environ;

namespace {

using Clock = std::chrono::steady_clock;
using namespace rnotify::testbed;

long microsSince(Clock::time_point t) {
  return std::chrono::duration_cast<std::chrono::microseconds>(Clock::now() - t).count();
}

int runAddHelper(const char* dir) {
  int fd = ::inotify_init1(IN_CLOEXEC);
  const auto before = Clock::now();
  const int wd = fd < 0 ? -1 : ::inotify_add_watch(fd, dir, IN_CREATE);
  const long us = microsSince(before);
  if (wd < 0) {
    std::fprintf(stderr, "add-helper: cannot watch %s: %s\n", dir, std::strerror(errno));
    return 1;
  }
  std::printf("%ld\n", us);
  std::fflush(stdout);
  ::_exit(0);  // the measured call is all; no tear-down of the shim's connection
}

// Runs this binary as --add-helper DIR with the extra environment; its
// microseconds, or -1.
long helperAdd(const std::string& self, const std::string& dir, const std::vector<std::string>& extraEnv) {
  std::vector<std::string> env;
  for (char** e = environ; *e != nullptr; ++e) {
    if (std::strncmp(*e, "LD_PRELOAD=", 11) != 0) env.push_back(*e);
  }
  env.insert(env.end(), extraEnv.begin(), extraEnv.end());
  std::vector<char*> envp;
  for (auto& e : env) envp.push_back(e.data());
  envp.push_back(nullptr);
  std::string program = self, flag = "--add-helper", where = dir;
  std::vector<char*> argv = {program.data(), flag.data(), where.data(), nullptr};
  int fds[2];
  if (::pipe2(fds, O_CLOEXEC) != 0) return -1;
  rnotify::UniqueFd readEnd(fds[0]), writeEnd(fds[1]);
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_adddup2(&actions, writeEnd.get(), STDOUT_FILENO);
  pid_t pid = -1;
  const int rc = ::posix_spawn(&pid, self.c_str(), &actions, nullptr, argv.data(), envp.data());
  posix_spawn_file_actions_destroy(&actions);
  if (rc != 0) return -1;
  writeEnd.reset();
  std::string out;
  char buffer[256];
  for (ssize_t n; (n = ::read(readEnd.get(), buffer, sizeof buffer)) > 0;) out.append(buffer, static_cast<size_t>(n));
  int status = 0;
  ::waitpid(pid, &status, 0);
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0 || out.empty()) return -1;
  return std::atol(out.c_str());
}

struct CapiResult {
  long addUs = -1;
  long takenUs = -1;  // add -> IN_RESTORED (nonblocking), -1 if not within the wait
};

CapiResult capiAdd(const std::string& dir, unsigned flags, int waitForTakenMs) {
  CapiResult result;
  rnotify_t* rn = rnotify_init(RNOTIFY_CLOEXEC);
  if (rn == nullptr) return result;
  const auto before = Clock::now();
  const int wd = rnotify_add_watch(rn, dir.c_str(), IN_CREATE, flags);
  result.addUs = wd > 0 ? microsSince(before) : -1;
  if (wd <= 0) std::fprintf(stderr, "watch: %s\n", rnotify_last_error(rn));
  for (auto until = Clock::now() + std::chrono::milliseconds(waitForTakenMs); wd > 0 && Clock::now() < until;) {
    rnotify_event ev;
    if (rnotify_next(rn, &ev, 20) == 1 && (ev.mask & IN_RESTORED)) {
      result.takenUs = microsSince(before);
      break;
    }
  }
  rnotify_close(rn);
  return result;
}

using Samples = std::map<std::string, std::vector<long>>;

bool runRound(const std::string& self, Samples* answers, Samples* silent) {
  const std::unique_ptr<SshfsBed> owned = clientBenchBed();
  SshfsBed& bed = *owned;
  const std::string dir = bed.a("a");
  // The floor is inotify's, not the mount's first lookup of the directory.
  if (!std::filesystem::is_directory(dir)) return false;
  const std::string preload = "LD_PRELOAD=" + std::string(PRELOAD_LIBRARY_PATH);
  const std::string agent = "RNOTIFY_AGENT=" + agentCommand();
  for (Samples* lanes : {answers, silent}) {
    const bool stopped = lanes == silent;
    if (stopped) ::kill(bed.sshd().pid(), SIGSTOP);
    (*lanes)["inotify"].push_back(helperAdd(self, dir, {}));
    (*lanes)["capi-wait"].push_back(capiAdd(dir, 0, 0).addUs);
    CapiResult nonblocking = capiAdd(dir, RNOTIFY_NONBLOCK, stopped ? 0 : 20000);
    (*lanes)["capi-nonblock"].push_back(nonblocking.addUs);
    if (!stopped) (*lanes)["capi-nonblock: taken"].push_back(nonblocking.takenUs);
    (*lanes)["shim"].push_back(helperAdd(self, dir, {preload, agent}));
    (*lanes)["shim-nowait"].push_back(helperAdd(self, dir, {preload, agent, "RNOTIFY_PRELOAD_WAIT_MS=0"}));
    if (stopped) ::kill(bed.sshd().pid(), SIGCONT);
  }
  return true;
}

std::string summary(std::vector<long> v) {
  if (std::find(v.begin(), v.end(), -1) != v.end()) return "failed";
  std::sort(v.begin(), v.end());
  char text[96];
  std::snprintf(text, sizeof text, "median %.2f ms, max %.2f ms", v[v.size() / 2] / 1000.0, v.back() / 1000.0);
  return text;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc == 3 && std::string(argv[1]) == "--add-helper") return runAddHelper(argv[2]);
  CLI::App app{"bench_first_watch: how long the first watch on a server takes, answering or not"};
  int rounds = 3;
  app.add_option("--rounds", rounds, "rounds, each on a fresh test bed")->check(CLI::Range(1, 100));
  CLI11_PARSE(app, argc, argv);
  if (auto why = SshfsBed::missing(); !why.empty()) {
    std::fprintf(stderr, "cannot run: %s\n", why.c_str());
    return 2;
  }
  const std::string self = std::filesystem::read_symlink("/proc/self/exe");
  Samples answers, silent;
  for (int i = 0; i < rounds; ++i) {
    if (!runRound(self, &answers, &silent)) return 1;
  }
  bool failed = false;
  for (const auto& [title, lanes] :
       {std::pair{"the server answers", &answers}, {"the server does not answer", &silent}}) {
    std::printf("%s (%d rounds):\n", title, rounds);
    for (const char* lane : {"inotify", "capi-wait", "capi-nonblock", "capi-nonblock: taken", "shim", "shim-nowait"}) {
      auto it = lanes->find(lane);
      if (it == lanes->end()) continue;
      const std::string text = summary(it->second);
      failed |= text == "failed";
      std::printf("  %-22s %s\n", lane, text.c_str());
    }
  }
  return failed ? 1 : 0;
}
