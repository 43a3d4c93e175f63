// findSshfsTarget against fake /proc trees: directories PID/{cmdline,comm,stat,
// cwd,fd/N} built in a temp dir, shaped like what the real sshfs 3.7 mounts
// showed (see sshfs_fixtures.h): the ssh process is an orphan (ppid 1), linked
// to sshfs only by a socketpair.
#include <gtest/gtest.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <map>

#include "mounts/sshfs_target.h"
#include "sshfs_fixtures.h"

namespace rnotify {
namespace {

namespace fs = std::filesystem;

struct FakeProcess {
  int pid;
  int ppid;
  unsigned long long startTime;
  std::string comm;
  std::vector<std::string> argv;
  std::vector<uint64_t> sockets;
  std::string cwd = "/";
};

class FakeProc {
 public:
  FakeProc() {
    std::string pattern = (fs::temp_directory_path() / "rnotify-fakeproc.XXXXXX").string();
    root_ = ::mkdtemp(pattern.data());
  }
  ~FakeProc() {
    std::error_code ignored;
    fs::remove_all(root_, ignored);
  }
  const std::string& root() const { return root_; }

  void add(const FakeProcess& p) {
    fs::path dir = fs::path(root_) / std::to_string(p.pid);
    fs::create_directories(dir / "fd");
    std::string cmdline;
    for (const std::string& a : p.argv) cmdline += a + '\0';
    write(dir / "cmdline", cmdline);
    write(dir / "comm", p.comm + "\n");
    // Same layout as the kernel's, including a comm with a space and ')'.
    write(dir / "stat", std::to_string(p.pid) + " (" + p.comm + ") S " + std::to_string(p.ppid) +
                            " 4575 2901 0 -1 4194304 504 0 0 0 10 0 0 0 20 0 1 0 " + std::to_string(p.startTime) +
                            " 11894784 2021\n");
    fs::create_symlink(p.cwd, dir / "cwd");
    int fd = 3;
    fs::create_symlink("/dev/null", dir / "fd" / "0");
    for (uint64_t inode : p.sockets) {
      fs::create_symlink("socket:[" + std::to_string(inode) + "]", dir / "fd" / std::to_string(fd++));
    }
  }

 private:
  static void write(const fs::path& path, const std::string& text) { std::ofstream(path, std::ios::binary) << text; }
  std::string root_;
};

MountInfo sshfsMount() {
  MountInfo m;
  m.mountPoint = "/tmp/mr-sshd.MMtw/mnt point";
  m.root = "/";
  m.fsType = "fuse.sshfs";
  m.source = "root@127.0.0.1:/tmp/mr-sshd.MMtw/remote";
  return m;
}

// The real pair: sshfs daemon 4682 holds socket 9252, orphaned ssh 4579 holds 9253.
FakeProcess realSshfs() { return {4682, 1, 29871, "sshfs", fixtures::kSshfsArgv, {9252}}; }
FakeProcess realSsh() { return {4579, 1, 29835, "ssh", fixtures::kSshArgv, {9253, 10244}}; }

SocketPeerLookup peers(std::map<uint64_t, uint64_t> table) {
  return [table](uint64_t inode) -> std::optional<uint64_t> {
    auto it = table.find(inode);
    if (it == table.end()) return std::nullopt;
    return it->second;
  };
}

TEST(FindSshfsTarget, SocketPairIdentifiesTheSshProcess) {
  FakeProc proc;
  proc.add(realSshfs());
  proc.add(realSsh());
  // Same destination and options but another connection, started closer in time:
  // only the socket tells them apart.
  FakeProcess decoy{4690, 1, 29870, "ssh", fixtures::kSshArgv, {7777}};
  decoy.argv[4] = "-oPort=22417";
  decoy.argv.insert(decoy.argv.begin() + 1, "-oServerAliveInterval=99");
  proc.add(decoy);
  Result<SshTarget> target = findSshfsTarget(sshfsMount(), proc.root(), peers({{9252, 9253}}));
  ASSERT_TRUE(target.ok()) << target.error().message;
  EXPECT_TRUE(target->fromProcess);
  EXPECT_EQ(target->destination, "root@127.0.0.1");
  EXPECT_EQ(target->remoteDir, "/tmp/mr-sshd.MMtw/remote");
  EXPECT_EQ(target->sshOptions, fixtures::kSshOptions);

  // Without socket information the closest start time wins: the decoy.
  Result<SshTarget> guessed = findSshfsTarget(sshfsMount(), proc.root(), nullptr);
  ASSERT_TRUE(guessed.ok());
  EXPECT_EQ(guessed->sshOptions.front(), "-oServerAliveInterval=99");
}

TEST(FindSshfsTarget, OrphanSshMatchedByDestinationAndOptions) {
  FakeProc proc;
  proc.add(realSshfs());
  proc.add(realSsh());
  // Same host through another port: not this mount's connection.
  FakeProcess otherPort{4600, 1, 29870, "ssh", fixtures::kSshArgv, {}};
  otherPort.argv[4] = "-oPort=22";
  proc.add(otherPort);
  // An interactive ssh to the same host: not sshfs-shaped.
  proc.add({4601, 2901, 29871, "ssh", {"ssh", "root@127.0.0.1"}, {}});
  Result<SshTarget> target = findSshfsTarget(sshfsMount(), proc.root());
  ASSERT_TRUE(target.ok()) << target.error().message;
  EXPECT_TRUE(target->fromProcess);
  EXPECT_EQ(target->sshOptions, fixtures::kSshOptions);
}

TEST(FindSshfsTarget, ChildSshOfForegroundSshfs) {
  FakeProc proc;
  MountInfo mount = sshfsMount();
  mount.mountPoint = "/tmp/mr-sshd.MMtw/mnt2";
  mount.source = "127.0.0.1:";
  proc.add({4796, 2901, 30000, "sshfs", fixtures::kSshfsForegroundArgv, {10443}});
  // A child with a custom program name and options sshfs would not derive.
  proc.add({4799, 4796, 30001, "ssh", {"/opt/bin/ssh", "-oPort=2200", "-s", "--", "127.0.0.1", "sftp"}, {}});
  Result<SshTarget> target = findSshfsTarget(mount, proc.root());
  ASSERT_TRUE(target.ok()) << target.error().message;
  EXPECT_TRUE(target->fromProcess);
  EXPECT_EQ(target->sshProgram, "/opt/bin/ssh");
  EXPECT_EQ(target->sshOptions, (std::vector<std::string>{"-oPort=2200"}));
  EXPECT_EQ(target->remoteDir, "");
  EXPECT_EQ(serverPath(*target, "sub"), "sub");
}

TEST(FindSshfsTarget, SeveralSshfsForOneSourcePickedByMountPoint) {
  FakeProc proc;
  MountInfo mount = sshfsMount();
  mount.mountPoint = "/home/u/work";
  mount.source = "u@nas:/data";
  proc.add({100, 1, 500, "sshfs", {"sshfs", "-p", "2201", "u@nas:/data", "/home/u/other"}, {1000}});
  proc.add({101, 1, 501, "sshfs", {"sshfs", "-p", "2202", "u@nas:/data/", "work"}, {1001}, "/home/u"});
  proc.add(
      {200, 1, 499, "ssh", {"ssh", "-oClearAllForwardings=yes", "-oPort=2201", "-s", "--", "u@nas", "sftp"}, {2000}});
  proc.add(
      {201, 1, 500, "ssh", {"ssh", "-oClearAllForwardings=yes", "-oPort=2202", "-s", "--", "u@nas", "sftp"}, {2001}});
  Result<SshTarget> target = findSshfsTarget(mount, proc.root());
  ASSERT_TRUE(target.ok()) << target.error().message;
  EXPECT_EQ(target->sshOptions, (std::vector<std::string>{"-oClearAllForwardings=yes", "-oPort=2202"}));
  EXPECT_EQ(target->remoteDir, "/data");
}

TEST(FindSshfsTarget, NoSshProcessFallsBackToSshfsOptions) {
  FakeProc proc;
  proc.add(realSshfs());  // e.g. -o directport: no ssh at all
  Result<SshTarget> target = findSshfsTarget(sshfsMount(), proc.root());
  ASSERT_TRUE(target.ok()) << target.error().message;
  EXPECT_FALSE(target->fromProcess);
  EXPECT_EQ(target->destination, "root@127.0.0.1");
  EXPECT_EQ(target->sshOptions[0], "-oPort=22417");
  EXPECT_EQ(target->sshOptions.size(), 5u);
}

TEST(FindSshfsTarget, NoSshfsProcessUsesTheSourceAlone) {
  FakeProc proc;
  proc.add(realSsh());  // an ssh, but no sshfs to tie it to this mount
  Result<SshTarget> target = findSshfsTarget(sshfsMount(), proc.root());
  ASSERT_TRUE(target.ok()) << target.error().message;
  EXPECT_FALSE(target->fromProcess);
  EXPECT_EQ(target->destination, "root@127.0.0.1");
  EXPECT_TRUE(target->sshOptions.empty());
  EXPECT_EQ(target->sshProgram, "ssh");
}

TEST(FindSshfsTarget, UnparsableSourceIsAnError) {
  FakeProc proc;
  MountInfo mount = sshfsMount();
  mount.source = "nocolon";
  Result<SshTarget> target = findSshfsTarget(mount, proc.root());
  ASSERT_FALSE(target.ok());
  EXPECT_NE(target.error().message.find("nocolon"), std::string::npos);
}

TEST(FindSshfsTarget, MissingProcRootIsNotAnError) {
  Result<SshTarget> target = findSshfsTarget(sshfsMount(), "/nonexistent/proc");
  ASSERT_TRUE(target.ok());
  EXPECT_FALSE(target->fromProcess);
}

uint64_t inodeOf(int fd) {
  struct stat st {};
  ::fstat(fd, &st);
  return st.st_ino;
}

// The real kernel lookup, on a socketpair like the one sshfs gives ssh.
TEST(UnixSocketPeer, FindsTheOtherEndOfASocketpair) {
  int fds[2];
  ASSERT_EQ(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds), 0);
  std::optional<uint64_t> peer = unixSocketPeer(inodeOf(fds[0]));
  std::optional<uint64_t> back = unixSocketPeer(inodeOf(fds[1]));
  uint64_t a = inodeOf(fds[0]), b = inodeOf(fds[1]);
  ::close(fds[0]);
  ::close(fds[1]);
  if (!peer) GTEST_SKIP() << "NETLINK_SOCK_DIAG for AF_UNIX is unavailable here (unix_diag module?)";
  EXPECT_EQ(*peer, b);
  EXPECT_EQ(back, a);
  EXPECT_EQ(unixSocketPeer(1), std::nullopt);
}

}  // namespace
}  // namespace rnotify
