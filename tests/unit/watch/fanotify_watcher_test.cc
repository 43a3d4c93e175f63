// What only the fanotify backend does, on real filesystem marks (needs root;
// skipped otherwise): marks asked for their own DELETE/MOVE only where needed,
// the acting pid, queue overflow, one mark per filesystem, FUSE refusing a
// filesystem mark, and the automatic choice, which watches with inotify and
// pids first (FUSE too). What every backend promises (paths, masks, renames
// with one cookie, the end of a watch) is in watcher_contract_test.cc.
//
// A filesystem mark sees the whole filesystem, including whatever else this
// machine does meanwhile, so "nothing else came" is checked with a barrier: a
// file created after the operations under test, whose event comes after
// theirs in the one fanotify queue.
#include "watch/fanotify_watcher.h"

#include <dirent.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <poll.h>
#include <sys/fanotify.h>
#include <sys/inotify.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <string>
#include <vector>

#include "watch/auto_watcher.h"
#include "watcher_fixture.h"

namespace rnotify {
namespace {

namespace fs = std::filesystem;

using watchtest::Seen;

class FanotifyWatcherTest : public watchtest::WatcherFixture {
 protected:
  void SetUp() override {
    if (::geteuid() != 0) GTEST_SKIP() << "fanotify filesystem marks need root";
    ASSERT_NO_FATAL_FAILURE(makeRoot("rnotify-fanotify-"));
    ASSERT_TRUE(use(makeFanotify()));
  }
  void TearDown() override {
    watcher_.reset();
    for (const std::string& mount : mounts_) ::umount2(mount.c_str(), MNT_DETACH);
    WatcherFixture::TearDown();
  }

  std::unique_ptr<Watcher> makeFanotify() {
    auto w = FanotifyWatcher::create(sink_);
    EXPECT_TRUE(w.ok()) << w.error().message;
    return w.ok() ? std::unique_ptr<Watcher>(std::move(*w)) : nullptr;
  }
  bool mountTmpfs(const std::string& path) {
    fs::create_directories(path);
    if (::mount("tmpfs", path.c_str(), "tmpfs", 0, "size=16m") != 0) return false;
    mounts_.push_back(path);
    return true;
  }

  std::vector<std::string> mounts_;
};

// The group's marks as the kernel lists them (/proc/self/fdinfo): masks of
// filesystem marks and of inode marks.
struct Marks {
  std::vector<uint64_t> filesystem, inode;
};
Marks marksOf(int fd) {
  Marks marks;
  std::ifstream in("/proc/self/fdinfo/" + std::to_string(fd));
  for (std::string line; std::getline(in, line);) {
    size_t at = line.find(" mask:");
    if (line.rfind("fanotify ", 0) != 0 || at == std::string::npos) continue;
    uint64_t mask = std::strtoull(line.c_str() + at + 6, nullptr, 16);
    if (line.find(" ino:") != std::string::npos) {
      marks.inode.push_back(mask);
    } else if (line.find("sdev:") != std::string::npos && line.find("mnt_id:") == std::string::npos) {
      marks.filesystem.push_back(mask);
    }
  }
  return marks;
}

TEST_F(FanotifyWatcherTest, OnlyRootsAndWatchedFilesAskForTheirOwnDeleteAndMove) {
  // On the filesystem mark, DELETE_SELF and MOVE_SELF would queue a second
  // event for every file deleted or moved anywhere on the filesystem.
  constexpr uint64_t kSelf = FAN_DELETE_SELF | FAN_MOVE_SELF;
  fs::create_directories(root_ + "/w/sub");
  touch(root_ + "/file");
  auto tree = subscribe(root_ + "/w", true);
  auto again = subscribe(root_ + "/w", false);
  auto file = subscribe(root_ + "/file", false);
  Marks marks = marksOf(watcher_->fd());
  ASSERT_EQ(marks.filesystem.size(), 1u);
  EXPECT_EQ(marks.filesystem[0] & kSelf, 0u) << std::hex << marks.filesystem[0];
  ASSERT_EQ(marks.inode.size(), 2u) << "one for the root (shared by two subscriptions), one for the file";
  for (uint64_t mask : marks.inode) EXPECT_EQ(mask & kSelf, kSelf) << std::hex << mask;
  watcher_->unsubscribe(tree);
  EXPECT_EQ(marksOf(watcher_->fd()).inode.size(), 2u);
  watcher_->unsubscribe(again);
  watcher_->unsubscribe(file);
  marks = marksOf(watcher_->fd());
  EXPECT_TRUE(marks.inode.empty());
  EXPECT_TRUE(marks.filesystem.empty());
}

TEST_F(FanotifyWatcherTest, PidIsTheActingProcess) {
  auto sub = subscribe(root_, false);
  pid_t child = ::fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    int fd = ::open((root_ + "/by-child").c_str(), O_CREAT | O_WRONLY | O_CLOEXEC, 0644);
    ::_exit(fd >= 0 ? 0 : 1);
  }
  int status = 0;
  ASSERT_EQ(::waitpid(child, &status, 0), child);
  ASSERT_EQ(status, 0);
  touch(root_ + "/by-us");
  drainUntil([&] { return count(sub, IN_CREATE, "", "by-us") == 1; }, "CREATE by-us");
  const Seen* theirs = find(sub, IN_CREATE, "", "by-child");
  ASSERT_TRUE(found(theirs)) << seen();
  EXPECT_EQ(theirs->pid, child);
  EXPECT_EQ(find(sub, IN_CREATE, "", "by-us")->pid, ::getpid());
}

TEST_F(FanotifyWatcherTest, QueueOverflowIsReportedToEverySubscription) {
  // The queue limit is read when a group is created: lower it for ours only.
  const char* limit = "/proc/sys/fs/fanotify/max_queued_events";
  std::string saved;
  if (!std::getline(std::ifstream(limit), saved)) GTEST_SKIP() << "no " << limit;
  std::ofstream(limit) << "16";
  auto small = makeFanotify();
  std::ofstream(limit) << saved;
  ASSERT_TRUE(use(std::move(small)));
  fs::create_directories(root_ + "/a");
  auto a = subscribe(root_ + "/a", true);
  auto b = subscribe(root_, false);
  for (int i = 0; i < 100; ++i) touch(root_ + "/a/f" + std::to_string(i));
  drainUntil([&] { return count(a, IN_Q_OVERFLOW, "", "") == 1 && count(b, IN_Q_OVERFLOW, "", "") == 1; },
             "IN_Q_OVERFLOW on both subscriptions");
  touch(root_ + "/a/after");
  drainUntil([&] { return count(a, IN_CREATE, "", "after") == 1; }, "events after the overflow");
}

TEST_F(FanotifyWatcherTest, MarksEachFilesystemOnce) {
  if (!mountTmpfs(root_ + "/tmpfs")) GTEST_SKIP() << "cannot mount a tmpfs";
  fs::create_directories(root_ + "/disk");
  auto onTmpfs = subscribe(root_ + "/tmpfs", true);
  auto onDisk = subscribe(root_ + "/disk", true);
  EXPECT_EQ(watcher_->kernelWatchCount(), 2u);
  fs::create_directories(root_ + "/tmpfs/x");
  touch(root_ + "/tmpfs/x/f");
  touch(root_ + "/disk/f");
  drainUntil([&] { return count(onTmpfs, IN_CREATE, "x", "f") == 1 && count(onDisk, IN_CREATE, "", "f") == 1; },
             "events on both filesystems");
  EXPECT_EQ(count(onDisk, IN_CREATE, "x", "f"), 0u);
}

// A FUSE filesystem, cheaply: sshfs talking straight to a local sftp-server.
class FuseMount {
 public:
  explicit FuseMount(const std::string& base) : dir_(base + "/fuse"), source_(base + "/fuse-source") {
    const char* server = "/usr/lib/openssh/sftp-server";
    if (::access("/usr/bin/sshfs", X_OK) != 0 || ::access(server, X_OK) != 0) return;
    fs::create_directories(dir_);
    fs::create_directories(source_);
    std::string script = base + "/sftp.sh";
    std::ofstream(script) << "#!/bin/sh\nexec " << server << "\n";
    fs::permissions(script, fs::perms::owner_all);
    std::string command = "sshfs -o ssh_command='" + script + "' x:'" + source_ + "' '" + dir_ + "'";
    mounted_ = std::system(command.c_str()) == 0;
  }
  ~FuseMount() {
    if (mounted_) std::system(("fusermount3 -u -z '" + dir_ + "'").c_str());
  }
  bool mounted() const { return mounted_; }
  const std::string& dir() const { return dir_; }

 private:
  std::string dir_, source_;
  bool mounted_ = false;
};

TEST_F(FanotifyWatcherTest, FuseRefusesAFilesystemMark) {
  FuseMount fuse(root_);
  if (!fuse.mounted()) GTEST_SKIP() << "sshfs or sftp-server missing";
  SubscribeOptions options;
  options.mask = IN_CREATE;
  auto refused = watcher_->subscribe(fuse.dir(), options);
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(refused.error().code, ENODEV) << refused.error().message;
}

TEST_F(FanotifyWatcherTest, AutoWatchesFuseAndDiskWithInotifyAndPids) {
  FuseMount fuse(root_);
  if (!fuse.mounted()) GTEST_SKIP() << "sshfs or sftp-server missing";
  auto automatic = AutoWatcher::create(sink_);
  ASSERT_TRUE(automatic.ok()) << automatic.error().message;
  ASSERT_TRUE(use(std::move(*automatic)));
  EXPECT_EQ(watcher_->name(), "inotify+pids");
  fs::create_directories(root_ + "/disk");
  auto onFuse = subscribe(fuse.dir(), true);
  auto onDisk = subscribe(root_ + "/disk", true);
  EXPECT_NE(onFuse, onDisk);
  EXPECT_EQ(watcher_->backendFor(onFuse), "inotify+pids");
  EXPECT_EQ(watcher_->backendFor(onDisk), "inotify+pids");
  EXPECT_TRUE(watcher_->reportsPids(onFuse));
  EXPECT_TRUE(watcher_->reportsPids(onDisk));
  touch(fuse.dir() + "/f");
  touch(root_ + "/disk/g");
  drainUntil([&] { return count(onFuse, IN_CREATE, "", "f") == 1 && count(onDisk, IN_CREATE, "", "g") == 1; },
             "events from both filesystems through one descriptor");
  EXPECT_EQ(find(onFuse, IN_CREATE, "", "f")->pid, ::getpid());
  EXPECT_EQ(find(onDisk, IN_CREATE, "", "g")->pid, ::getpid());
  watcher_->unsubscribe(onFuse);
  watcher_->unsubscribe(onDisk);
  EXPECT_EQ(watcher_->kernelWatchCount(), 0u);
}

TEST_F(FanotifyWatcherTest, AutoEndsASubscriptionOnceAndForgetsIt) {
  auto automatic = makeWatcher(WatcherKind::kAuto, sink_);
  ASSERT_TRUE(automatic.ok()) << automatic.error().message;
  ASSERT_TRUE(use(std::move(*automatic)));
  fs::create_directories(root_ + "/w");
  auto sub = subscribe(root_ + "/w", false);
  EXPECT_EQ(watcher_->backendFor(sub), "inotify+pids");
  fs::remove(root_ + "/w");
  drainUntil([&] { return count(sub, IN_IGNORED, "", "") == 1; }, "IGNORED");
  EXPECT_EQ(watcher_->backendFor(sub), "");
  EXPECT_EQ(watcher_->kernelWatchCount(), 0u);
}

}  // namespace
}  // namespace rnotify
