// The watcher backends stay inside a subscription's tree (issue 15): the
// owner of a directory in a recursive watch renames directories and puts
// symbolic links to a tree outside the watch (SECRET) in their place, for
// any component of a path and for the subscription's root itself, while the
// watcher lags behind. Nothing the watcher delivers may name anything in
// SECRET, and no kernel watch or mark may be left on it.
//
// SECRET mirrors the names the hostile side uses for its directories, so
// that a lookup by path through one of its links always finds a directory to
// watch there; everything in SECRET is named "secret...", nothing in the
// watched tree is. The ordered tests replay each attack in one fixed order
// (the watcher reads nothing until the swap is done: the lag made certain);
// the race lets a thread attack at random, seeded (RNOTIFY_TEST_SEED).
#include <fcntl.h>
#include <gtest/gtest.h>
#include <poll.h>
#include <sys/inotify.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iterator>
#include <random>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "common/unique_fd.h"
#include "watch/fanotify_watcher.h"
#include "watch/inotify_watcher.h"
#include "watch/pid_probe.h"

namespace rnotify {
namespace {

namespace fs = std::filesystem;

constexpr const char* kNames[] = {"n0", "n1", "n2"};
constexpr size_t kNameCount = std::size(kNames);
// As deep as any hostile path below a component swapped for a link.
constexpr int kSecretDepth = 3;

enum class Backend { kInotify, kInotifyPids, kFanotify };
struct Variant {
  Backend backend;
  bool rootFd;  // the caller opens the root (rnotifyd) or the backend opens the path (the client)
};

std::string variantName(const ::testing::TestParamInfo<Variant>& info) {
  const char* backend = info.param.backend == Backend::kInotify       ? "Inotify"
                        : info.param.backend == Backend::kInotifyPids ? "InotifyPids"
                                                                      : "Fanotify";
  return std::string(backend) + (info.param.rootFd ? "RootFd" : "Path");
}

bool mentionsSecret(std::string_view text) { return text.find("secret") != std::string_view::npos; }

// Keeps what the oracle needs, not every event: a race makes hundreds of thousands.
class Recorder : public EventSink {
 public:
  void onEvent(SubscriptionId sub, uint32_t mask, uint32_t /*cookie*/, std::string_view dir, std::string_view name,
               int /*pid*/) override {
    ++events;
    if (mentionsSecret(dir) || mentionsSecret(name)) {
      if (leaks.size() < 5) {
        char text[32];
        std::snprintf(text, sizeof text, " mask %08x sub %u", mask, sub);
        leaks.push_back(std::string(dir) + "|" + std::string(name) + text);
      }
      ++leakCount;
    }
    if (dir.empty() && name.rfind("barrier", 0) == 0) barriers.insert(std::string(name));
    if (mask & IN_CREATE) created.insert(std::string(dir) + "|" + std::string(name));
  }
  size_t events = 0;
  size_t leakCount = 0;
  std::vector<std::string> leaks;
  std::set<std::string> barriers;
  std::set<std::string> created;  // "dir|name"
};

size_t openDescriptors() {
  size_t n = 0;
  for (const auto& entry : fs::directory_iterator("/proc/self/fd")) n += entry.path().filename() != ".";
  return n;
}

class ConfinementTest : public ::testing::TestWithParam<Variant> {
 protected:
  void SetUp() override {
    if (::geteuid() != 0 && GetParam().backend != Backend::kInotify) {
      GTEST_SKIP() << "fanotify (the pid probe too) needs root";
    }
    char pattern[] = "/tmp/rnotify-confine-XXXXXX";
    ASSERT_NE(::mkdtemp(pattern), nullptr);
    base_ = pattern;
    watched_ = base_ + "/w";
    realRoot_ = watched_;
    secret_ = base_ + "/secret";
    fs::create_directory(watched_);
    makeSecret(secret_, 0);
    ::chmod(secret_.c_str(), 0700);
    switch (GetParam().backend) {
      case Backend::kInotify: {
        auto w = InotifyWatcher::create(sink_);
        ASSERT_TRUE(w.ok()) << w.error().message;
        watcher_ = std::move(*w);
        break;
      }
      case Backend::kInotifyPids: {
        auto probe = PidProbe::create();
        if (!probe.ok()) GTEST_SKIP() << probe.error().message;
        auto w = InotifyWatcher::create(sink_, std::move(*probe));
        ASSERT_TRUE(w.ok()) << w.error().message;
        watcher_ = std::move(*w);
        break;
      }
      case Backend::kFanotify: {
        auto w = FanotifyWatcher::create(sink_);
        if (!w.ok()) GTEST_SKIP() << w.error().message;
        watcher_ = std::move(*w);
        break;
      }
    }
  }
  void TearDown() override {
    watcher_.reset();
    rootFd_.reset();
    for (const std::string& mount : mounts_) ::umount2(mount.c_str(), MNT_DETACH);
    if (!base_.empty()) fs::remove_all(base_);  // does not follow the links
  }

  void makeSecret(const std::string& dir, int depth) {
    fs::create_directory(dir);
    std::ofstream(dir + "/secret-file").put('s');
    if (depth == kSecretDepth) return;
    for (const char* name : kNames) makeSecret(dir + "/" + name, depth + 1);
  }
  std::vector<std::string> secretDirectories() const {
    std::vector<std::string> dirs{secret_};
    for (const auto& entry : fs::recursive_directory_iterator(secret_)) {
      if (entry.is_directory() && !entry.is_symlink()) dirs.push_back(entry.path().string());
    }
    return dirs;
  }

  // The recursive subscription on the watched tree, as rnotifyd or the client makes it.
  void subscribe() {
    SubscribeOptions options;
    options.mask = IN_ALL_EVENTS & ~(IN_OPEN | IN_ACCESS | IN_CLOSE_NOWRITE);
    options.recursive = true;
    if (GetParam().rootFd) {
      rootFd_.reset(::open(watched_.c_str(), O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
      ASSERT_TRUE(rootFd_.valid()) << watched_ << ": " << std::strerror(errno);
      options.rootFd = rootFd_.get();
    }
    auto id = watcher_->subscribe(watched_, options);
    ASSERT_TRUE(id.ok()) << id.error().message;
    sub_ = *id;
  }

  void drainFor(std::chrono::milliseconds timeout) {
    struct pollfd p = {watcher_->fd(), POLLIN, 0};
    ::poll(&p, 1, static_cast<int>(timeout.count()));
    watcher_->drain();
  }
  // Every event of what happened before this call has been handed over: one
  // kernel queue, and the barrier's event is queued last (at most 10 s).
  void barrier() {
    const std::string name = "barrier" + std::to_string(++barriers_);
    std::ofstream(realRoot_ + "/" + name).put('b');
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    while (sink_.barriers.count(name) == 0) {
      ASSERT_LT(std::chrono::steady_clock::now(), deadline) << "the barrier's CREATE " << name << " never came";
      drainFor(std::chrono::milliseconds(100));
    }
  }

  // The oracle, after the attack: nothing delivered so far named SECRET;
  // no kernel watch or mark is on a directory of SECRET; and changes in
  // every directory of SECRET are not delivered either.
  void expectConfined(const std::string& context) {
    ASSERT_NO_FATAL_FAILURE(barrier());
    expectNoLeaks(context + ", during the attack");
    expectNoKernelWatchOnSecret(context);
    int n = 0;
    for (const std::string& dir : secretDirectories()) {
      std::ofstream(dir + "/secret-after" + std::to_string(n++)).put('s');
      fs::create_directory(dir + "/secret-dir-after" + std::to_string(n++));
    }
    ASSERT_NO_FATAL_FAILURE(barrier());
    expectNoLeaks(context + ", after it, for changes in SECRET");
  }
  void expectNoLeaks(const std::string& context) {
    std::string text;
    for (const std::string& leak : sink_.leaks) text += "  " + leak + "\n";
    EXPECT_EQ(sink_.leakCount, 0u) << context << ": expected no event naming anything in " << secret_ << ", got "
                                   << sink_.leakCount << " (of " << sink_.events << "), e.g.:\n"
                                   << text;
  }
  // Every inotify watch and fanotify inode mark of this process is listed in
  // /proc/self/fdinfo with its inode.
  void expectNoKernelWatchOnSecret(const std::string& context) {
    std::set<std::string> needles;
    for (const std::string& dir : secretDirectories()) {
      struct stat st;
      if (::lstat(dir.c_str(), &st) != 0) continue;
      char needle[40];
      std::snprintf(needle, sizeof needle, " ino:%lx ", static_cast<unsigned long>(st.st_ino));
      needles.insert(needle);
    }
    std::vector<std::string> found;
    for (const auto& entry : fs::directory_iterator("/proc/self/fdinfo")) {
      std::ifstream info(entry.path());
      for (std::string line; std::getline(info, line);) {
        if (line.rfind("inotify", 0) != 0 && line.rfind("fanotify", 0) != 0) continue;
        const size_t at = line.find(" ino:");
        if (at == std::string::npos) continue;
        const size_t end = line.find(' ', at + 1);
        if (needles.count(line.substr(at, end == std::string::npos ? end : end - at + 1)) != 0) found.push_back(line);
      }
    }
    std::string text;
    for (size_t i = 0; i < found.size() && i < 5; ++i) text += "  " + found[i].substr(0, 60) + "...\n";
    EXPECT_TRUE(found.empty()) << context << ": expected no kernel watch or mark on a directory of " << secret_
                               << ", found " << found.size() << ":\n"
                               << text;
  }

  // The hostile side's moves, in the watched tree (relative paths).
  void swapForLink(const std::string& relative, const std::string& away, const std::string& target) {
    fs::rename(realRoot_ + "/" + relative, realRoot_ + "/" + away);
    fs::create_directory_symlink(target, realRoot_ + "/" + relative);
  }
  void swapRootForLink(const std::string& target) {
    const std::string moved = base_ + "/w.moved" + std::to_string(++rootMoves_);
    fs::rename(realRoot_, moved);
    realRoot_ = moved;
    fs::create_directory_symlink(target, watched_);
  }

  std::string base_, watched_, realRoot_, secret_;
  Recorder sink_;
  std::unique_ptr<Watcher> watcher_;
  UniqueFd rootFd_;
  SubscriptionId sub_ = 0;
  int barriers_ = 0;
  int rootMoves_ = 0;
  std::vector<std::string> mounts_;
};

// mkdir x/p; mv x x2; ln -s SECRET x: the new p is "x/p" in the watcher's
// tree, and x now leads to SECRET.
TEST_P(ConfinementTest, AComponentSwappedForALinkLeadsNowhere) {
  fs::create_directory(watched_ + "/n0");
  ASSERT_NO_FATAL_FAILURE(subscribe());
  fs::create_directory(watched_ + "/n0/n1");
  swapForLink("n0", "m0", secret_);
  ASSERT_NO_FATAL_FAILURE(expectConfined("n0 swapped for a link"));
}

// The same two levels further down: every component of the path is a way out.
TEST_P(ConfinementTest, ADeepComponentSwappedForALinkLeadsNowhere) {
  fs::create_directories(watched_ + "/n0/n1/n2");
  ASSERT_NO_FATAL_FAILURE(subscribe());
  fs::create_directory(watched_ + "/n0/n1/n2/n0");
  std::ofstream(watched_ + "/n0/n1/n2/f").put('x');
  swapForLink("n0/n1", "n0/m1", secret_ + "/n0");
  ASSERT_NO_FATAL_FAILURE(expectConfined("n0/n1 swapped for a link"));
}

// mv W W.moved; ln -s SECRET W: every path below the root now leads to SECRET.
TEST_P(ConfinementTest, TheRootSwappedForALinkLeadsNowhere) {
  fs::create_directories(watched_ + "/n0/n1");
  ASSERT_NO_FATAL_FAILURE(subscribe());
  fs::create_directory(watched_ + "/n1");
  fs::create_directory(watched_ + "/n0/n1/n2");
  swapRootForLink(secret_);
  fs::create_directories(realRoot_ + "/n2/n0");
  ASSERT_NO_FATAL_FAILURE(expectConfined("the root swapped for a link"));
}

// The backend keeps no descriptor per directory, nor one on the root between
// calls (that would delay the root's DELETE_SELF until closed), and needs
// the caller's descriptor only during subscribe().
TEST_P(ConfinementTest, DescriptorsDoNotGrowWithTheTree) {
  ASSERT_NO_FATAL_FAILURE(subscribe());
  rootFd_.reset();
  const size_t before = openDescriptors();
  constexpr int kDirectories = 40;
  for (int i = 0; i < kDirectories; ++i) fs::create_directories(watched_ + "/d" + std::to_string(i) + "/e/f");
  ASSERT_NO_FATAL_FAILURE(barrier());
  std::ofstream(watched_ + "/d0/e/f/late").put('x');
  ASSERT_NO_FATAL_FAILURE(barrier());
  EXPECT_EQ(sink_.created.count("d0/e/f|late"), 1u) << "the new tree is watched";
  EXPECT_EQ(sink_.created.count("d" + std::to_string(kDirectories - 1) + "/e|f"), 1u);
  EXPECT_EQ(openDescriptors(), before) << "descriptors after " << kDirectories * 3 << " new directories";
}

// A tree beneath a caller's descriptor (rnotifyd: an export) ends at its
// mount; a local watch of the caller's own path spans mounts, as before.
TEST_P(ConfinementTest, AMountInTheTreeIsEnteredOnlyByALocalWatch) {
  if (GetParam().backend == Backend::kFanotify) GTEST_SKIP() << "a filesystem mark covers its own filesystem only";
  const std::string mount = watched_ + "/m";
  fs::create_directory(mount);
  if (::mount("tmpfs", mount.c_str(), "tmpfs", 0, "size=1m") != 0) GTEST_SKIP() << "cannot mount a tmpfs";
  mounts_.push_back(mount);
  fs::create_directory(mount + "/d");
  ASSERT_NO_FATAL_FAILURE(subscribe());
  std::ofstream(mount + "/d/f").put('x');
  fs::create_directory(mount + "/e");
  ASSERT_NO_FATAL_FAILURE(barrier());
  const size_t expected = GetParam().rootFd ? 0 : 1;
  EXPECT_EQ(sink_.created.count("m/d|f"), expected) << "a file in a directory on the mount";
  EXPECT_EQ(sink_.created.count("m|e"), expected) << "a directory on the mount's root";
}

// The hostile side at random, for a bounded time, while the watcher drains:
// bursts of new directories (so that the watcher lags), swaps of components
// and of the root for links into SECRET, links taken away again, and
// changes in SECRET.
class Hostile {
 public:
  Hostile(uint32_t seed, std::string base, std::string watched, std::string secret)
      : rng_(seed), base_(std::move(base)), watched_(std::move(watched)), secret_(std::move(secret)), root_(watched_) {}

  const std::string& root() const { return root_; }
  size_t operations() const { return operations_; }

  void run(std::chrono::milliseconds duration, const std::atomic<bool>& stop) {
    const auto deadline = std::chrono::steady_clock::now() + duration;
    while (!stop && std::chrono::steady_clock::now() < deadline) step();
    if (root_ != watched_) {  // the root back in its place, for the barrier
      fs::remove(watched_);
      fs::rename(root_, watched_);
      root_ = watched_;
    }
  }

 private:
  void step() {
    ++operations_;
    switch (pick(10)) {
      case 0:
      case 1:
      case 2:
        return burst();
      case 3:
      case 4:
        return swapComponent();
      case 5:
        return restoreComponent();
      case 6:
        return swapRoot();
      default:
        return writeSecret();
    }
  }
  size_t pick(size_t n) { return std::uniform_int_distribution<size_t>(0, n - 1)(rng_); }
  std::string randomPath(size_t maxDepth) {
    std::string path;
    const size_t depth = 1 + pick(maxDepth);
    for (size_t i = 0; i < depth; ++i) path += std::string(i ? "/" : "") + kNames[pick(kNameCount)];
    return path;
  }
  // Whether every component is a real directory: the hostile side never
  // writes through its own links (that would put its names into SECRET).
  bool plain(const std::string& relative) const {
    std::string at = root_;
    for (size_t start = 0; start <= relative.size();) {
      size_t slash = relative.find('/', start);
      if (slash == std::string::npos) slash = relative.size();
      at += "/" + relative.substr(start, slash - start);
      struct stat st;
      if (::lstat(at.c_str(), &st) != 0 || !S_ISDIR(st.st_mode)) return false;
      start = slash + 1;
    }
    return true;
  }
  void mkdirs(const std::string& relative) {
    std::string at = root_;
    for (size_t start = 0; start <= relative.size();) {
      size_t slash = relative.find('/', start);
      if (slash == std::string::npos) slash = relative.size();
      at += "/" + relative.substr(start, slash - start);
      struct stat st;
      if (::lstat(at.c_str(), &st) == 0) {
        if (!S_ISDIR(st.st_mode)) return;  // a link: not through it
      } else if (::mkdir(at.c_str(), 0755) != 0) {
        return;
      }
      start = slash + 1;
    }
  }
  void burst() {
    for (int i = 0; i < 16; ++i) mkdirs(randomPath(3));
  }
  void swapComponent() {
    const std::string relative = randomPath(2);
    if (!plain(relative)) return;
    const std::string away = relative + ".m" + std::to_string(operations_);
    if (::rename((root_ + "/" + relative).c_str(), (root_ + "/" + away).c_str()) != 0) return;
    if (::symlink(secret_.c_str(), (root_ + "/" + relative).c_str()) == 0) links_.push_back(relative);
  }
  void restoreComponent() {
    if (links_.empty()) return;
    const size_t i = pick(links_.size());
    ::unlink((root_ + "/" + links_[i]).c_str());
    links_.erase(links_.begin() + static_cast<long>(i));
  }
  void swapRoot() {
    if (root_ == watched_) {
      const std::string moved = base_ + "/w.moved" + std::to_string(operations_);
      if (::rename(watched_.c_str(), moved.c_str()) != 0) return;
      root_ = moved;
      ::symlink(secret_.c_str(), watched_.c_str());
    } else {
      ::unlink(watched_.c_str());
      if (::rename(root_.c_str(), watched_.c_str()) == 0) root_ = watched_;
    }
  }
  void writeSecret() {
    std::string dir = secret_;
    for (size_t depth = pick(kSecretDepth + 1); depth > 0; --depth) dir += std::string("/") + kNames[pick(kNameCount)];
    const std::string name = dir + "/secret-" + std::to_string(operations_);
    if (pick(4) == 0) {
      ::mkdir(name.c_str(), 0700);
    } else {
      std::ofstream(name).put('s');
    }
  }

  std::mt19937 rng_;
  std::string base_, watched_, secret_, root_;
  std::vector<std::string> links_;
  size_t operations_ = 0;
};

uint32_t testSeed() {
  if (const char* env = std::getenv("RNOTIFY_TEST_SEED")) return static_cast<uint32_t>(std::strtoul(env, nullptr, 10));
  return std::random_device{}();
}

std::chrono::milliseconds raceDuration() {
  const char* env = std::getenv("RNOTIFY_TEST_RACE_MS");
  return std::chrono::milliseconds(env != nullptr ? std::strtol(env, nullptr, 10) : 1000);
}

TEST_P(ConfinementTest, RandomSwapsWhileTheWatcherLagsLeakNothing) {
  const uint32_t seed = testSeed();
  std::printf("seed %u (RNOTIFY_TEST_SEED=%u to replay the hostile side's choices)\n", seed, seed);
  RecordProperty("seed", std::to_string(seed));
  SCOPED_TRACE("RNOTIFY_TEST_SEED=" + std::to_string(seed));
  fs::create_directories(watched_ + "/n0/n1");
  ASSERT_NO_FATAL_FAILURE(subscribe());

  Hostile hostile(seed, base_, watched_, secret_);
  std::atomic<bool> stop{false}, done{false};
  std::thread attacker([&] {
    hostile.run(raceDuration(), stop);
    done = true;
  });
  // Stop early once something leaked: the verdict is in.
  while (!done) {
    drainFor(std::chrono::milliseconds(20));
    if (sink_.leakCount != 0) stop = true;
  }
  attacker.join();
  std::printf("%zu hostile operations, %zu events delivered, %zu kernel watches\n", hostile.operations(), sink_.events,
              watcher_->kernelWatchCount());
  realRoot_ = hostile.root();
  ASSERT_NO_FATAL_FAILURE(expectConfined("after " + std::to_string(hostile.operations()) + " hostile operations"));
}

INSTANTIATE_TEST_SUITE_P(Backends, ConfinementTest,
                         ::testing::Values(Variant{Backend::kInotify, true}, Variant{Backend::kInotify, false},
                                           Variant{Backend::kInotifyPids, true}, Variant{Backend::kFanotify, true},
                                           Variant{Backend::kFanotify, false}),
                         variantName);

}  // namespace
}  // namespace rnotify
