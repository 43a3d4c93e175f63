// A silent partition: the server's side of the agent connection freezes
// (its sshd session and rnotifyd stopped with SIGSTOP: no FIN, no RST, the
// kernel still ACKs). Nothing on the wire says the connection is dead; only
// silence does. The client pings every keepalive_ms (2 s) when it has sent
// nothing, and takes a connection from which nothing arrived for three
// intervals as lost: it says so, connects again (a new ssh session, a new
// agent) and re-reads what it missed. Before keepalives, only ssh's own
// ServerAlive (15 s x 3) noticed, after about 45 s.
#include <gtest/gtest.h>
#include <signal.h>

#include <chrono>
#include <iostream>

#include "common/read_file.h"
#include "process.h"
#include "product.h"
#include "sshfs_bed.h"
#include "temp_dir.h"
#include "watcher.h"

namespace rnotify::testbed {
namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

// The agent (rnotifyd) below sshd's listener and every process between them
// (the session's sshd processes, a shell): what freezing the connection's
// server side means.
std::vector<pid_t> agentChain(pid_t listener) {
  std::vector<pid_t> chain;
  for (pid_t pid : descendantsOf(listener)) {
    auto comm = rnotify::readFile("/proc/" + std::to_string(pid) + "/comm");
    if (!comm.ok() || comm->rfind("rnotifyd", 0) != 0) continue;
    for (pid_t p = pid; p > 1 && p != listener;) {
      chain.push_back(p);
      auto stat = readProcStat(p);
      if (!stat) break;
      p = stat->ppid;
    }
  }
  return chain;
}

class Frozen {
 public:
  explicit Frozen(std::vector<pid_t> pids) : pids_(std::move(pids)) {
    for (pid_t pid : pids_) ::kill(pid, SIGSTOP);
  }
  ~Frozen() {
    for (pid_t pid : pids_) ::kill(pid, SIGKILL);  // the listener reaps them
  }

 private:
  std::vector<pid_t> pids_;
};

TEST(Liveness, AFrozenServerIsNoticedBySilenceAndTheWatchIsRestored) {
  if (auto why = SshfsBed::missing(); !why.empty()) GTEST_SKIP() << why;
  if (auto why = missingProduct(); !why.empty()) GTEST_SKIP() << why;
  SshfsBed bed;
  Watcher a(bed.watchA({}));
  ASSERT_TRUE(a.established()) << bed.transcript();
  writeFile(bed.server("before"), "x\n");
  ASSERT_TRUE(a.expectSequence({{"CLOSE_WRITE,REMOTE", "before"}}));

  const std::vector<pid_t> chain = agentChain(bed.sshd().pid());
  ASSERT_FALSE(chain.empty()) << "no agent below sshd " << bed.sshd().pid();
  const auto frozenAt = Clock::now();
  Frozen frozen(chain);
  writeFile(bed.server("during"), "made while the agent was frozen\n");

  // Noticed and restored within 15 s (6 s of silence, then a new ssh
  // session); ssh's ServerAlive alone would take ~45 s.
  const auto deadline = Deadline::in(15s);
  auto lost = a.process().waitForLine(
      Stream::kStderr,
      [](const std::string& l) { return l.find("not even the answer to a ping") != std::string::npos; }, deadline);
  ASSERT_TRUE(lost) << "the silent connection was not declared lost within 15 s\n" << a.transcript();
  const double noticed = std::chrono::duration<double>(Clock::now() - frozenAt).count();
  EXPECT_TRUE(a.expectSequence({{"REMOTE", "during"}}, std::chrono::duration_cast<Clock::duration>(15s)))
      << "what was made during the freeze was not told after the reconnection\n"
      << a.transcript();
  const double restored = std::chrono::duration<double>(Clock::now() - frozenAt).count();
  std::cerr << "frozen server: declared lost after " << noticed << " s, 'during' reported after " << restored << " s\n";
  // And the watch is served again, live.
  writeFile(bed.server("after"), "x\n");
  EXPECT_TRUE(a.expectSequence({{"CLOSE_WRITE,REMOTE", "after"}})) << a.transcript();
}

}  // namespace
}  // namespace rnotify::testbed
