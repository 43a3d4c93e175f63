// The pid probe (needs root; skipped otherwise): InotifyWatcher's events
// carry the process that made them, even when several processes act on one
// name in quick succession and fanotify merges their records, on ext4 and on
// tmpfs, in a recursive tree that grows; and the event stream stays exactly
// what plain inotify gives.
//
// The actors are child processes that act on command, so that their pids
// differ and their operations land in the queues back to back, unread.
#include "watch/pid_probe.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <poll.h>
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

#include "watch/inotify_watcher.h"

namespace rnotify {
namespace {

namespace fs = std::filesystem;

struct Seen {
  SubscriptionId sub;
  uint32_t mask;
  std::string dir;
  std::string name;
  int pid;
};

class Collector : public EventSink {
 public:
  void onEvent(SubscriptionId sub, uint32_t mask, uint32_t /*cookie*/, std::string_view dir, std::string_view name,
               int pid) override {
    events.push_back({sub, mask, std::string(dir), std::string(name), pid});
  }
  std::vector<Seen> events;
};

// A child process that performs one operation per command and acknowledges it.
class Actor {
 public:
  enum Op : char {
    kCreate = 'c',
    kAppend = 'a',
    kChmod = 'm',
    kUnlink = 'u',
    kMkdir = 'd',
    kChmodDir = 'D',
    kRmdir = 'r'
  };

  Actor() {
    int toChild[2], fromChild[2];
    if (::pipe2(toChild, O_CLOEXEC) != 0 || ::pipe2(fromChild, O_CLOEXEC) != 0) return;
    pid_ = ::fork();
    if (pid_ == 0) {
      ::close(toChild[1]);
      ::close(fromChild[0]);
      serve(toChild[0], fromChild[1]);
      ::_exit(0);
    }
    ::close(toChild[0]);
    ::close(fromChild[1]);
    commands_ = toChild[1];
    acks_ = fromChild[0];
  }
  ~Actor() {
    ::close(commands_);  // the child sees end of file and exits
    ::close(acks_);
    if (pid_ > 0) ::waitpid(pid_, nullptr, 0);
  }
  int pid() const { return pid_; }

  // Performs op on path and waits until it is done.
  bool run(Op op, const std::string& path) {
    std::string command = std::string(1, op) + path + '\n';
    if (::write(commands_, command.data(), command.size()) != static_cast<ssize_t>(command.size())) return false;
    char ack;
    return ::read(acks_, &ack, 1) == 1 && ack == 'y';
  }

 private:
  static void serve(int in, int out) {
    std::string line;
    char c;
    while (::read(in, &c, 1) == 1) {
      if (c != '\n') {
        line.push_back(c);
        continue;
      }
      const char op = line[0];
      const std::string path = line.substr(1);
      line.clear();
      bool ok = false;
      switch (op) {
        case kCreate:
        case kAppend: {
          int fd = ::open(path.c_str(), O_WRONLY | O_APPEND | (op == kCreate ? O_CREAT | O_EXCL : 0), 0644);
          ok = fd >= 0 && ::write(fd, "x", 1) == 1;
          if (fd >= 0) ::close(fd);
          break;
        }
        case kChmod:
          ok = ::chmod(path.c_str(), 0600) == 0;
          break;
        case kChmodDir:
          ok = ::chmod(path.c_str(), 0700) == 0;
          break;
        case kUnlink:
          ok = ::unlink(path.c_str()) == 0;
          break;
        case kMkdir:
          ok = ::mkdir(path.c_str(), 0755) == 0;
          break;
        case kRmdir:
          ok = ::rmdir(path.c_str()) == 0;
          break;
      }
      char ack = ok ? 'y' : 'n';
      if (::write(out, &ack, 1) != 1) return;
    }
  }

  pid_t pid_ = -1;
  int commands_ = -1;
  int acks_ = -1;
};

class PidProbeTest : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    if (::geteuid() != 0) GTEST_SKIP() << "the pid probe needs root";
    char pattern[] = "/tmp/rnotify-pids-XXXXXX";
    ASSERT_NE(::mkdtemp(pattern), nullptr);
    base_ = pattern;
    root_ = base_;
    if (GetParam() == "tmpfs") {
      root_ = base_ + "/tmpfs";
      fs::create_directories(root_);
      if (::mount("tmpfs", root_.c_str(), "tmpfs", 0, "size=16m") != 0) GTEST_SKIP() << "cannot mount a tmpfs";
      mounted_ = true;
    }
    watcher_ = makeWatcher(sink_, true);
    ASSERT_NE(watcher_, nullptr);
    EXPECT_EQ(watcher_->name(), "inotify+pids");
  }
  void TearDown() override {
    watcher_.reset();
    if (mounted_) ::umount2(root_.c_str(), MNT_DETACH);
    if (!base_.empty()) fs::remove_all(base_);
  }

  static std::unique_ptr<Watcher> makeWatcher(Collector& sink, bool withPids) {
    std::unique_ptr<PidProbe> probe;
    if (withPids) {
      auto created = PidProbe::create();
      EXPECT_TRUE(created.ok()) << created.error().message;
      if (!created.ok()) return nullptr;
      probe = std::move(*created);
    }
    auto w = InotifyWatcher::create(sink, std::move(probe));
    EXPECT_TRUE(w.ok()) << w.error().message;
    return w.ok() ? std::move(*w) : nullptr;
  }
  SubscriptionId subscribe(Watcher& watcher, const std::string& path, bool recursive) {
    SubscribeOptions options;
    options.mask = IN_ALL_EVENTS & ~(IN_OPEN | IN_ACCESS | IN_CLOSE_NOWRITE);
    options.recursive = recursive;
    auto id = watcher.subscribe(path, options);
    EXPECT_TRUE(id.ok()) << id.error().message;
    return id.ok() ? *id : 0;
  }
  SubscriptionId subscribe(const std::string& path, bool recursive) { return subscribe(*watcher_, path, recursive); }

  // Drains until pred holds, at most 5 s; on failure prints what came.
  void drainUntil(const std::function<bool()>& pred, const std::string& what) {
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
    while (!pred()) {
      if (std::chrono::steady_clock::now() > deadline)
        FAIL() << "timed out waiting for " << what << "; seen:\n" << seen();
      struct pollfd p = {watcher_->fd(), POLLIN, 0};
      ::poll(&p, 1, 100);
      watcher_->drain();
    }
  }
  std::string seen() const {
    std::string text;
    for (const Seen& e : sink_.events) {
      char mask[16];
      std::snprintf(mask, sizeof mask, "%08x", e.mask);
      text += std::to_string(e.sub) + " " + e.dir + "|" + e.name + " " + mask + " pid " + std::to_string(e.pid) + "\n";
    }
    return text;
  }
  // The events of sub on (dir, name), in order, as "MASKBIT:pid".
  std::vector<std::pair<uint32_t, int>> on(SubscriptionId sub, const std::string& dir, const std::string& name) const {
    std::vector<std::pair<uint32_t, int>> out;
    for (const Seen& e : sink_.events) {
      if (e.sub == sub && e.dir == dir && e.name == name) out.emplace_back(e.mask, e.pid);
    }
    return out;
  }
  size_t count(SubscriptionId sub, uint32_t mask, const std::string& dir, const std::string& name) const {
    size_t n = 0;
    for (const Seen& e : sink_.events) n += e.sub == sub && (e.mask & mask) == mask && e.dir == dir && e.name == name;
    return n;
  }

  std::string base_, root_;
  bool mounted_ = false;
  Collector sink_;
  std::unique_ptr<Watcher> watcher_;
};

using Events = std::vector<std::pair<uint32_t, int>>;

TEST_P(PidProbeTest, TwoProcessesOnOneNameEachGetTheirOwnEvents) {
  auto sub = subscribe(root_, true);
  EXPECT_TRUE(watcher_->reportsPids(sub));
  Actor one, two;
  const std::string f = root_ + "/f";
  // Nothing is read until all three are done: fanotify merges one's records.
  ASSERT_TRUE(one.run(Actor::kCreate, f));
  ASSERT_TRUE(two.run(Actor::kChmod, f));
  ASSERT_TRUE(one.run(Actor::kUnlink, f));
  drainUntil([&] { return count(sub, IN_DELETE, "", "f") == 1; }, "DELETE f");
  EXPECT_EQ(on(sub, "", "f"), (Events{{IN_CREATE, one.pid()},
                                      {IN_MODIFY, one.pid()},
                                      {IN_CLOSE_WRITE, one.pid()},
                                      {IN_ATTRIB, two.pid()},
                                      {IN_DELETE, one.pid()}}))
      << seen();
}

TEST_P(PidProbeTest, AlternatingProcessesKeepTheirPids) {
  auto sub = subscribe(root_, false);
  Actor one, two;
  const std::string f = root_ + "/f";
  ASSERT_TRUE(one.run(Actor::kCreate, f));
  for (int i = 0; i < 5; ++i) {
    ASSERT_TRUE(two.run(Actor::kChmod, f));
    ASSERT_TRUE(one.run(Actor::kAppend, f));
  }
  ASSERT_TRUE(two.run(Actor::kUnlink, f));
  drainUntil([&] { return count(sub, IN_DELETE, "", "f") == 1; }, "DELETE f");
  Events expected{{IN_CREATE, one.pid()}, {IN_MODIFY, one.pid()}, {IN_CLOSE_WRITE, one.pid()}};
  for (int i = 0; i < 5; ++i) {
    expected.insert(expected.end(), {{IN_ATTRIB, two.pid()}, {IN_MODIFY, one.pid()}, {IN_CLOSE_WRITE, one.pid()}});
  }
  expected.emplace_back(IN_DELETE, two.pid());
  EXPECT_EQ(on(sub, "", "f"), expected) << seen();
}

// One process's identical events that fanotify merged into one record, while
// inotify keeps them apart (other events in between): each still gets a pid.
TEST_P(PidProbeTest, MergedIdenticalEventsStillGetAPid) {
  auto sub = subscribe(root_, false);
  Actor one, two;
  ASSERT_TRUE(one.run(Actor::kCreate, root_ + "/f"));
  ASSERT_TRUE(two.run(Actor::kCreate, root_ + "/g"));
  for (int i = 0; i < 4; ++i) {
    ASSERT_TRUE(one.run(Actor::kChmod, root_ + "/f"));
    ASSERT_TRUE(two.run(Actor::kChmod, root_ + "/g"));
  }
  ASSERT_TRUE(one.run(Actor::kUnlink, root_ + "/f"));
  ASSERT_TRUE(two.run(Actor::kUnlink, root_ + "/g"));
  drainUntil([&] { return count(sub, IN_DELETE, "", "g") == 1; }, "DELETE g");
  EXPECT_EQ(count(sub, IN_ATTRIB, "", "f"), 4u) << seen();
  for (const Seen& e : sink_.events) {
    EXPECT_EQ(e.pid, e.name == "f" ? one.pid() : two.pid()) << seen();
  }
}

TEST_P(PidProbeTest, ARecursiveTreeWithANewSubdirectory) {
  fs::create_directories(root_ + "/a/b");
  auto sub = subscribe(root_, true);
  Actor one, two;
  ASSERT_TRUE(one.run(Actor::kCreate, root_ + "/a/b/f"));
  ASSERT_TRUE(two.run(Actor::kMkdir, root_ + "/a/n"));
  drainUntil([&] { return count(sub, IN_CREATE | IN_ISDIR, "a", "n") == 1; }, "CREATE a/n");
  ASSERT_TRUE(two.run(Actor::kCreate, root_ + "/a/n/g"));
  ASSERT_TRUE(one.run(Actor::kChmod, root_ + "/a/n/g"));
  ASSERT_TRUE(one.run(Actor::kChmodDir, root_ + "/a/n"));
  ASSERT_TRUE(two.run(Actor::kUnlink, root_ + "/a/n/g"));
  drainUntil([&] { return count(sub, IN_DELETE, "a/n", "g") == 1; }, "DELETE a/n/g");
  EXPECT_EQ(on(sub, "a/b", "f"), (Events{{IN_CREATE, one.pid()}, {IN_MODIFY, one.pid()}, {IN_CLOSE_WRITE, one.pid()}}));
  EXPECT_EQ(on(sub, "a/n", "g"), (Events{{IN_CREATE, two.pid()},
                                         {IN_MODIFY, two.pid()},
                                         {IN_CLOSE_WRITE, two.pid()},
                                         {IN_ATTRIB, one.pid()},
                                         {IN_DELETE, two.pid()}}))
      << seen();
  // The subdirectory's own ATTRIB comes on its parent's watch and on its own.
  EXPECT_EQ(on(sub, "a", "n"), (Events{{IN_CREATE | IN_ISDIR, two.pid()}, {IN_ATTRIB | IN_ISDIR, one.pid()}}))
      << seen();
  EXPECT_EQ(on(sub, "a/n", ""), (Events{{IN_ATTRIB | IN_ISDIR, one.pid()}})) << seen();
}

// fanotify is not asked for a directory's own IN_DELETE_SELF: a watched
// subdirectory's comes with the pid of whoever removed it (an smbd serving
// the client that made it, whose rmdir is then that client's own change).
TEST_P(PidProbeTest, ARemovedSubdirectorysOwnEndHasTheRemoversPid) {
  auto sub = subscribe(root_, true);
  Actor one, two;
  ASSERT_TRUE(one.run(Actor::kMkdir, root_ + "/n"));
  drainUntil([&] { return count(sub, IN_CREATE | IN_ISDIR, "", "n") == 1; }, "CREATE n");
  ASSERT_TRUE(one.run(Actor::kChmodDir, root_ + "/n"));  // its own watch is in place once this came on it
  drainUntil([&] { return count(sub, IN_ATTRIB | IN_ISDIR, "n", "") == 1; }, "ATTRIB of n");
  ASSERT_TRUE(two.run(Actor::kRmdir, root_ + "/n"));
  drainUntil([&] { return count(sub, IN_DELETE | IN_ISDIR, "", "n") == 1; }, "DELETE n");
  drainUntil([&] { return count(sub, IN_DELETE_SELF, "n", "") == 1; }, "DELETE_SELF of n");
  EXPECT_EQ(on(sub, "n", ""), (Events{{IN_ATTRIB | IN_ISDIR, one.pid()}, {IN_DELETE_SELF, two.pid()}})) << seen();
  EXPECT_EQ(on(sub, "", "n").back(), (std::pair<uint32_t, int>{IN_DELETE | IN_ISDIR, two.pid()})) << seen();
}

// The same with a descriptor open on the subdirectory (rnotifyd keeps some,
// for stat attachments): its IN_DELETE_SELF comes only when that is closed,
// after the parent's IN_DELETE, and by the closer. Still the remover's.
TEST_P(PidProbeTest, ARemovedSubdirectoryHeldOpenStillEndsWithTheRemoversPid) {
  auto sub = subscribe(root_, true);
  Actor one, two;
  ASSERT_TRUE(one.run(Actor::kMkdir, root_ + "/n"));
  drainUntil([&] { return count(sub, IN_CREATE | IN_ISDIR, "", "n") == 1; }, "CREATE n");
  ASSERT_TRUE(one.run(Actor::kChmodDir, root_ + "/n"));
  drainUntil([&] { return count(sub, IN_ATTRIB | IN_ISDIR, "n", "") == 1; }, "ATTRIB of n");
  const int held = ::open((root_ + "/n").c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC);
  ASSERT_GE(held, 0);
  ASSERT_TRUE(two.run(Actor::kRmdir, root_ + "/n"));
  drainUntil([&] { return count(sub, IN_DELETE | IN_ISDIR, "", "n") == 1; }, "DELETE n");
  EXPECT_EQ(count(sub, IN_DELETE_SELF, "n", ""), 0u) << "held back by the open descriptor";
  ::close(held);
  drainUntil([&] { return count(sub, IN_DELETE_SELF, "n", "") == 1; }, "DELETE_SELF of n");
  EXPECT_EQ(on(sub, "n", "").back(), (std::pair<uint32_t, int>{IN_DELETE_SELF, two.pid()})) << seen();
}

TEST_P(PidProbeTest, AWatchedFileGetsPids) {
  const std::string f = root_ + "/f";
  std::ofstream(f).put('x');
  auto sub = subscribe(f, false);
  EXPECT_TRUE(watcher_->reportsPids(sub));
  Actor one, two;
  ASSERT_TRUE(one.run(Actor::kAppend, f));
  ASSERT_TRUE(two.run(Actor::kChmod, f));
  drainUntil([&] { return count(sub, IN_ATTRIB, "", "") == 1; }, "ATTRIB");
  EXPECT_EQ(on(sub, "", ""), (Events{{IN_MODIFY, one.pid()}, {IN_CLOSE_WRITE, one.pid()}, {IN_ATTRIB, two.pid()}}))
      << seen();
}

// A subscription that does not need pids costs no marks; one that does,
// on the same directory, gets them from then on.
TEST_P(PidProbeTest, PidsOnlyForSubscriptionsThatWantThem) {
  SubscribeOptions options;
  options.mask = IN_CREATE | IN_ATTRIB;
  options.recursive = true;
  options.pids = false;
  auto without = watcher_->subscribe(root_, options);
  ASSERT_TRUE(without.ok()) << without.error().message;
  EXPECT_FALSE(watcher_->reportsPids(*without));
  Actor one;
  ASSERT_TRUE(one.run(Actor::kCreate, root_ + "/f"));
  drainUntil([&] { return count(*without, IN_CREATE, "", "f") == 1; }, "CREATE f");
  EXPECT_EQ(on(*without, "", "f"), (Events{{IN_CREATE, 0}}));

  options.pids = true;
  auto with = watcher_->subscribe(root_, options);
  ASSERT_TRUE(with.ok()) << with.error().message;
  EXPECT_TRUE(watcher_->reportsPids(*with));
  ASSERT_TRUE(one.run(Actor::kChmod, root_ + "/f"));
  drainUntil([&] { return count(*with, IN_ATTRIB, "", "f") == 1; }, "ATTRIB f");
  EXPECT_EQ(on(*with, "", "f"), (Events{{IN_ATTRIB, one.pid()}}));
  EXPECT_EQ(on(*without, "", "f"), (Events{{IN_CREATE, 0}, {IN_ATTRIB, one.pid()}}));

  watcher_->unsubscribe(*with);
  ASSERT_TRUE(one.run(Actor::kUnlink, root_ + "/f"));
  ASSERT_TRUE(one.run(Actor::kCreate, root_ + "/g"));
  drainUntil([&] { return count(*without, IN_CREATE, "", "g") == 1; }, "CREATE g");
  EXPECT_EQ(on(*without, "", "g"), (Events{{IN_CREATE, 0}}));
}

// The probe adds pids and nothing else: the same operations give plain
// inotify's stream, event for event.
TEST_P(PidProbeTest, TheStreamIsPlainInotifys) {
  Collector plainSink;
  auto plain = makeWatcher(plainSink, false);
  ASSERT_NE(plain, nullptr);
  EXPECT_EQ(plain->name(), "inotify");
  for (int i = 0; i < 3; ++i) fs::create_directory(root_ + "/d" + std::to_string(i));
  auto sub = subscribe(root_, true);
  auto plainSub = subscribe(*plain, root_, true);
  Actor one, two;
  for (int i = 0; i < 40; ++i) {
    std::string dir = root_ + "/d" + std::to_string(i % 3);
    std::string f = dir + "/f" + std::to_string(i % 4);
    (void)one.run(Actor::kCreate, f);
    (void)two.run(Actor::kChmod, f);
    (void)one.run(Actor::kAppend, f);
    if (i % 2 == 0) (void)two.run(Actor::kUnlink, f);
  }
  std::ofstream(root_ + "/end").put('x');
  drainUntil([&] { return count(sub, IN_CLOSE_WRITE, "", "end") == 1; }, "the end");
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
  auto plainDone = [&] {
    for (const Seen& e : plainSink.events) {
      if (e.name == "end" && (e.mask & IN_CLOSE_WRITE)) return true;
    }
    return false;
  };
  while (!plainDone() && std::chrono::steady_clock::now() < deadline) {
    struct pollfd p = {plain->fd(), POLLIN, 0};
    ::poll(&p, 1, 100);
    plain->drain();
  }
  ASSERT_TRUE(plainDone());
  ASSERT_EQ(sink_.events.size(), plainSink.events.size()) << seen();
  for (size_t i = 0; i < sink_.events.size(); ++i) {
    const Seen& a = sink_.events[i];
    const Seen& b = plainSink.events[i];
    EXPECT_EQ(a.mask, b.mask) << i;
    EXPECT_EQ(a.dir, b.dir) << i;
    EXPECT_EQ(a.name, b.name) << i;
    EXPECT_EQ(b.pid, 0);
    EXPECT_EQ(a.sub, sub);
    EXPECT_EQ(b.sub, plainSub);
    // One creates and writes, two changes modes and removes.
    const int expected = a.name == "end" ? ::getpid() : (a.mask & (IN_ATTRIB | IN_DELETE)) ? two.pid() : one.pid();
    EXPECT_EQ(a.pid, expected) << i << "\n" << seen();
  }
}

INSTANTIATE_TEST_SUITE_P(Filesystems, PidProbeTest, ::testing::Values("ext4", "tmpfs"),
                         [](const auto& info) { return info.param; });

// The table on its own: a record serves the oldest event of its name with its
// bit, and is gone once inotify's queue has been read empty.
TEST(PidProbeTable, RetiresRecordsOnceInotifyIsEmpty) {
  if (::geteuid() != 0) GTEST_SKIP() << "the pid probe needs root";
  char pattern[] = "/tmp/rnotify-pids-XXXXXX";
  ASSERT_NE(::mkdtemp(pattern), nullptr);
  const std::string dir = pattern;
  auto created = PidProbe::create();
  ASSERT_TRUE(created.ok()) << created.error().message;
  PidProbe& probe = **created;
  UniqueFd object(::open(dir.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC));
  ASSERT_TRUE(object.valid()) << dir;
  auto marking = probe.prepare(object.get(), IN_CREATE | IN_ATTRIB | IN_DELETE);
  ASSERT_TRUE(marking.ok()) << marking.error().message;
  constexpr int kWd = 7;
  probe.bind(kWd, std::move(*marking));
  EXPECT_TRUE(probe.covers(kWd));
  {
    Actor one, two;
    ASSERT_TRUE(one.run(Actor::kCreate, dir + "/f"));
    ASSERT_TRUE(two.run(Actor::kChmod, dir + "/f"));
    ASSERT_TRUE(one.run(Actor::kChmod, dir + "/f"));
    probe.beginRead();
    probe.drain();
    EXPECT_EQ(probe.recordCount(), 3u);
    EXPECT_EQ(probe.take(kWd, "f", IN_CREATE, -1), one.pid());
    EXPECT_EQ(probe.take(kWd, "f", IN_ATTRIB, -1), two.pid());
    EXPECT_EQ(probe.take(kWd, "f", IN_ATTRIB, -1), one.pid());
    // Asked again (fanotify merged it): the last record that had it.
    EXPECT_EQ(probe.take(kWd, "f", IN_ATTRIB, -1), one.pid());
    EXPECT_EQ(probe.take(kWd, "g", IN_ATTRIB, -1), 0);
  }
  probe.beginRead();
  probe.retire();
  EXPECT_EQ(probe.recordCount(), 0u);
  EXPECT_EQ(probe.take(kWd, "f", IN_ATTRIB, -1), 0);
  probe.forget(kWd, object.get());
  EXPECT_FALSE(probe.covers(kWd));
  fs::remove_all(dir);
}

// The fanotify marks this process holds on an inode, as /proc lists them.
size_t kernelMarksOn(ino_t inode) {
  char needle[64];
  std::snprintf(needle, sizeof needle, "fanotify ino:%lx ", static_cast<unsigned long>(inode));
  size_t marks = 0;
  for (const auto& entry : fs::directory_iterator("/proc/self/fdinfo")) {
    std::ifstream info(entry.path());
    for (std::string line; std::getline(info, line);) marks += line.rfind(needle, 0) == 0;
  }
  return marks;
}

// A directory that left the watched tree is found by its handle, so that
// its mark goes with its watch and its events stop coming.
TEST(PidProbeTable, AMovedDirectoryLosesItsMark) {
  if (::geteuid() != 0) GTEST_SKIP() << "the pid probe needs root";
  char pattern[] = "/tmp/rnotify-pids-XXXXXX";
  ASSERT_NE(::mkdtemp(pattern), nullptr);
  const std::string base = pattern;
  fs::create_directories(base + "/tree/d");
  auto created = PidProbe::create();
  ASSERT_TRUE(created.ok()) << created.error().message;
  PidProbe& probe = **created;
  // Another mark keeps the group (closing it would drop every mark anyway).
  for (auto [wd, dir] : {std::pair{3, "/tree/d"}, std::pair{4, "/tree"}}) {
    UniqueFd object(::open((base + dir).c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC));
    ASSERT_TRUE(object.valid()) << base + dir;
    auto marking = probe.prepare(object.get(), IN_CREATE | IN_ATTRIB);
    ASSERT_TRUE(marking.ok()) << marking.error().message;
    probe.bind(wd, std::move(*marking));
  }
  struct stat st;
  ASSERT_EQ(::stat((base + "/tree/d").c_str(), &st), 0);
  EXPECT_EQ(kernelMarksOn(st.st_ino), 2u);  // its entries and its inode events
  fs::rename(base + "/tree/d", base + "/elsewhere");
  // Out of the watcher's reach: no descriptor, found by its handle.
  probe.forget(3, -1);
  EXPECT_FALSE(probe.covers(3));
  EXPECT_TRUE(probe.covers(4));
  EXPECT_EQ(kernelMarksOn(st.st_ino), 0u);
  fs::remove_all(base);
}

}  // namespace
}  // namespace rnotify
