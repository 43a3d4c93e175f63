// ssh and sshfs command-line handling: what the agent's ssh inherits from the
// mount's ssh, checked on command lines recorded from real sshfs mounts.
#include "mounts/sshfs_target.h"

#include <gtest/gtest.h>

#include <algorithm>

#include "sshfs_fixtures.h"

namespace rnotify {
namespace {

using Argv = std::vector<std::string>;

// The agent's ssh prefers AES-GCM unless the mount chose ciphers (latency; see BENCHMARKS.md).
constexpr const char* kCiphers = "-oCiphers=^aes128-gcm@openssh.com,aes256-gcm@openssh.com";
// ...and notices a dead network path by itself.
constexpr const char* kAlive = "-oServerAliveInterval=15";
constexpr const char* kAliveCount = "-oServerAliveCountMax=3";
constexpr const char* kConnectTimeout = "-oConnectTimeout=5";

TEST(ParseSshArgv, ObservedSshfsCommandLine) {
  Result<SshTarget> target = parseSshArgv(fixtures::kSshArgv);
  ASSERT_TRUE(target.ok()) << target.error().message;
  EXPECT_EQ(target->sshProgram, "ssh");
  EXPECT_EQ(target->destination, "root@127.0.0.1");
  EXPECT_EQ(target->sshOptions, fixtures::kSshOptions);  // -s and "sftp" dropped
}

TEST(ParseSshArgv, CombinedFlagsAndAttachedArguments) {
  Result<SshTarget> target =
      parseSshArgv({"/usr/bin/ssh", "-xa", "-p2222", "-vp", "22", "-F", "my_config", "-oPort=22", "-4C", "host"});
  ASSERT_TRUE(target.ok()) << target.error().message;
  EXPECT_EQ(target->sshProgram, "/usr/bin/ssh");
  EXPECT_EQ(target->sshOptions,
            (Argv{"-x", "-a", "-p2222", "-v", "-p", "22", "-F", "my_config", "-oPort=22", "-4", "-C"}));
  EXPECT_EQ(target->destination, "host");
}

TEST(ParseSshArgv, DropsSessionShapingOptions) {
  Result<SshTarget> target = parseSshArgv({"ssh",
                                           "-NfT",
                                           "-t",
                                           "-n",
                                           "-W",
                                           "h:22",
                                           "-O",
                                           "check",
                                           "-s",
                                           "-oRemoteCommand=ls",
                                           "-o",
                                           "requesttty yes",
                                           "-oSessionType=none",
                                           "-oStdinNull=yes",
                                           "-o",
                                           "ForkAfterAuthentication=yes",
                                           "-oIdentityFile=k",
                                           "user@h",
                                           "ls",
                                           "-l"});
  ASSERT_TRUE(target.ok()) << target.error().message;
  EXPECT_EQ(target->sshOptions, (Argv{"-oIdentityFile=k"}));
  EXPECT_EQ(target->destination, "user@h");
}

TEST(ParseSshArgv, DestinationAfterDoubleDash) {
  Result<SshTarget> target = parseSshArgv({"ssh", "-J", "jump", "--", "-weird-host"});
  ASSERT_TRUE(target.ok());
  EXPECT_EQ(target->destination, "-weird-host");
  EXPECT_EQ(target->sshOptions, (Argv{"-J", "jump"}));
}

TEST(ParseSshArgv, Errors) {
  EXPECT_FALSE(parseSshArgv({}).ok());
  Result<SshTarget> noHost = parseSshArgv({"ssh", "-x", "--"});
  ASSERT_FALSE(noHost.ok());
  EXPECT_NE(noHost.error().message.find("no destination"), std::string::npos);
  Result<SshTarget> missing = parseSshArgv({"ssh", "-p"});
  ASSERT_FALSE(missing.ok());
  EXPECT_NE(missing.error().message.find("-p"), std::string::npos);
}

TEST(ParseSshfsSource, Forms) {
  auto check = [](std::string_view source, const char* destination, const char* dir) {
    Result<SshTarget> t = parseSshfsSource(source);
    ASSERT_TRUE(t.ok()) << source << ": " << t.error().message;
    EXPECT_EQ(t->destination, destination) << source;
    EXPECT_EQ(t->remoteDir, dir) << source;
    EXPECT_FALSE(t->fromProcess);
    EXPECT_TRUE(t->sshOptions.empty());
  };
  check("root@127.0.0.1:/tmp/mr-sshd.MMtw/remote", "root@127.0.0.1", "/tmp/mr-sshd.MMtw/remote");
  check("127.0.0.1:", "127.0.0.1", "");
  check("host:projects/x", "host", "projects/x");
  check("user@[::1]:/srv", "user@::1", "/srv");
  check("sshfs#alice@nas:/data/", "alice@nas", "/data");
  check("host:/", "host", "/");
  check("host:dir with space", "host", "dir with space");
  EXPECT_FALSE(parseSshfsSource("no-colon").ok());
  EXPECT_FALSE(parseSshfsSource(":dir").ok());
  EXPECT_FALSE(parseSshfsSource("[::1:dir").ok());
}

TEST(ApplySshfsArgv, DerivesWhatSshfsPassesToSsh) {
  SshTarget target;
  applySshfsArgv(fixtures::kSshfsArgv, &target);
  // Exactly the options sshfs put on the observed ssh command line.
  EXPECT_EQ(target.sshOptions,
            (Argv{"-oPort=22417", "-F/tmp/mr-sshd.MMtw/ssh_config", "-oIdentityFile=/tmp/mr-sshd.MMtw/user_key",
                  "-oStrictHostKeyChecking=no", "-oUserKnownHostsFile=/dev/null"}));
}

TEST(ApplySshfsArgv, SshCommandCompressionAndFuseOptionsIgnored) {
  SshTarget target;
  applySshfsArgv({"sshfs", "-C", "-oreconnect,ServerAliveInterval=15,allow_other", "-o",
                  "ssh_command=/opt/ssh -v,proxyjump=bastion,IdentityFile=a\\,b", "h:", "/mnt"},
                 &target);
  EXPECT_EQ(target.sshProgram, "/opt/ssh");
  EXPECT_EQ(target.sshOptions,
            (Argv{"-v", "-oCompression=yes", "-oServerAliveInterval=15", "-oproxyjump=bastion", "-oIdentityFile=a,b"}));
}

TEST(AgentArgv, ObservedTargetGetsBatchModeAndCommand) {
  Result<SshTarget> target = parseSshArgv(fixtures::kSshArgv);
  ASSERT_TRUE(target.ok());
  EXPECT_EQ(agentArgv(*target, "rnotifyd --stdio"), (Argv{"ssh",
                                                          "-oPort=22417",
                                                          "-F/tmp/mr-sshd.MMtw/ssh_config",
                                                          "-oIdentityFile=/tmp/mr-sshd.MMtw/user_key",
                                                          "-oStrictHostKeyChecking=no",
                                                          "-oUserKnownHostsFile=/dev/null",
                                                          "-2",
                                                          "-T",
                                                          "-oBatchMode=yes",
                                                          "-oClearAllForwardings=yes",
                                                          "-x",
                                                          "-a",
                                                          kCiphers,
                                                          kAlive,
                                                          kAliveCount,
                                                          kConnectTimeout,
                                                          "root@127.0.0.1",
                                                          "--",
                                                          "rnotifyd",
                                                          "--stdio"}));
}

TEST(AgentArgv, TheMountsOwnCipherChoiceIsKept) {
  for (Argv options : {Argv{"-c", "aes256-ctr"}, Argv{"-caes256-ctr"}, Argv{"-oCiphers=aes256-ctr"},
                       Argv{"-o", "Ciphers aes256-ctr"}}) {
    SshTarget target;
    target.destination = "h";
    target.sshOptions = options;
    Argv argv = agentArgv(target, "rnotifyd --stdio");
    EXPECT_EQ(std::count(argv.begin(), argv.end(), std::string(kCiphers)), 0) << options[0];
  }
}

TEST(AgentArgv, TheMountsOwnKeepaliveIsKept) {
  SshTarget target;
  target.destination = "h";
  target.sshOptions = {"-oServerAliveInterval=60", "-o", "ServerAliveCountMax 10"};
  Argv argv = agentArgv(target, "rnotifyd --stdio");
  EXPECT_EQ(std::count(argv.begin(), argv.end(), std::string(kAlive)), 0);
  EXPECT_EQ(std::count(argv.begin(), argv.end(), std::string(kAliveCount)), 0);
  EXPECT_EQ(std::count(argv.begin(), argv.end(), std::string("-oServerAliveInterval=60")), 1);
}

TEST(AgentArgv, TheMountsOwnConnectTimeoutIsKept) {
  SshTarget target;
  target.destination = "h";
  target.sshOptions = {"-oConnectTimeout=30"};
  Argv argv = agentArgv(target, "rnotifyd --stdio");
  EXPECT_EQ(std::count(argv.begin(), argv.end(), std::string(kConnectTimeout)), 0);
}

TEST(AgentArgv, UserBatchModeCannotReenablePrompts) {
  SshTarget target;
  target.destination = "h";
  target.sshOptions = {"-o", "BatchMode=no", "-obatchmode no", "-F", "cfg", "-X"};
  EXPECT_EQ(agentArgv(target, "  /opt/rnotifyd   --stdio "),
            (Argv{"ssh", "-F", "cfg", "-X", "-T", "-oBatchMode=yes", "-oClearAllForwardings=yes", "-x", "-a", kCiphers,
                  kAlive, kAliveCount, kConnectTimeout, "h", "--", "/opt/rnotifyd", "--stdio"}));
}

TEST(ServerPath, JoinsRemoteDirAndRelative) {
  auto path = [](const char* dir, const char* rel) {
    SshTarget t;
    t.remoteDir = dir;
    return serverPath(t, rel);
  };
  EXPECT_EQ(path("", ""), ".");
  EXPECT_EQ(path("", "a/b"), "a/b");
  EXPECT_EQ(path("dir", "a/b"), "dir/a/b");
  EXPECT_EQ(path("/srv/x", ""), "/srv/x");
  EXPECT_EQ(path("/", "a"), "/a");
  EXPECT_EQ(path("dir/", "a"), "dir/a");
}

}  // namespace
}  // namespace rnotify
