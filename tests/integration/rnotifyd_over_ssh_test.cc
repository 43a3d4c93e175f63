// The agent path of an sshfs watch without the client: what rnotifywait does
// for a mount (`ssh <the mount's options> HOST rnotifyd --stdio`), by hand,
// from client A's host. Pins down the bed's part of the contract: the ssh
// config the mount uses also logs in for the agent, and the agent runs.
#include <gtest/gtest.h>
#include <unistd.h>

#include "mount_table.h"
#include "product.h"
#include "sshfs_bed.h"

namespace rnotify::testbed {
namespace {

using std::chrono::seconds;

class RnotifydOverSsh : public ::testing::Test {
 protected:
  void SetUp() override {
    if (auto why = SshfsBed::missing(); !why.empty()) GTEST_SKIP() << why;
    if (rnotifydPath().empty() || ::access(rnotifydPath().c_str(), X_OK) != 0) {
      GTEST_SKIP() << "rnotifyd is not built (ninja rnotifyd)";
    }
    SshfsBedOptions o;
    o.withMountB = false;
    bed_ = std::make_unique<SshfsBed>(o);
  }

  // ssh from A's host to the server A's mount uses.
  CommandResult sshFromA(const std::string& remoteCommand) {
    std::string host = findMount(bed_->mountA().path())->source;
    host = host.substr(0, host.rfind(':'));
    std::vector<std::string> argv{"ssh", "-F", bed_->sshd().clientConfig(), host, remoteCommand};
    return runCommand(argv, Deadline::in(seconds(20)), bed_->netnsA());
  }

  std::unique_ptr<SshfsBed> bed_;
};

TEST_F(RnotifydOverSsh, AgentStartsAndLeavesWhenItsClientDoes) {
  // stdin is /dev/null: the client "leaves" at once, and --stdio then exits 0.
  CommandResult r = sshFromA(agentCommand());
  EXPECT_EQ(r.exitCode, 0) << r.describe({"ssh", "...", agentCommand()}) << bed_->transcript();
}

TEST_F(RnotifydOverSsh, MissingAgentIsExitStatus127) {
  // What the client sees on a server without rnotifyd, and must explain.
  CommandResult r = sshFromA("/nonexistent/rnotifyd --stdio");
  EXPECT_EQ(r.exitCode, 127) << r.describe({"ssh", "...", "/nonexistent/rnotifyd --stdio"});
}

}  // namespace
}  // namespace rnotify::testbed
