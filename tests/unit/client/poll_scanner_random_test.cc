// PollScanner under random changes: between two scans, a few random
// operations (create, write, chmod, touch, rename of files and directories,
// unlink, mkdir, rm -r); the events of the second scan, applied in order to
// the listing taken before (read here with readdir + lstat), must give the
// listing taken after, entry for entry and field for field. Each step of the
// replay must also be possible at that point (a CREATE of a name that is
// free, in a directory that exists; a DELETE of a directory already empty; a
// MOVED_TO right after its MOVED_FROM, with the same cookie and inode).
#include <dirent.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <iostream>
#include <map>
#include <random>
#include <string>
#include <vector>

#include "poll/poll_scanner.h"
#include "temp_dir.h"

namespace rnotify {
namespace {

using testbed::TempDir;
using Listing = std::map<std::string, EventStat>;  // "a/b" -> lstat

void walk(const std::string& root, const std::string& rel, Listing* out) {
  std::string path = rel.empty() ? root : root + "/" + rel;
  DIR* d = ::opendir(path.c_str());
  ASSERT_NE(d, nullptr) << path;
  std::vector<std::string> names;
  while (dirent* e = ::readdir(d)) {
    std::string name = e->d_name;
    if (name != "." && name != "..") names.push_back(name);
  }
  ::closedir(d);
  for (const std::string& name : names) {
    std::string child = rel.empty() ? name : rel + "/" + name;
    struct stat st;
    ASSERT_EQ(::lstat((root + "/" + child).c_str(), &st), 0) << child;
    (*out)[child] = eventStatOf(st);
    if (S_ISDIR(st.st_mode)) walk(root, child, out);
  }
}

Listing listing(const std::string& root) {
  Listing out;
  walk(root, "", &out);
  return out;
}

std::string parentOf(const std::string& path) {
  size_t slash = path.rfind('/');
  return slash == std::string::npos ? "" : path.substr(0, slash);
}

bool hasChildren(const Listing& l, const std::string& path) {
  auto it = l.upper_bound(path + "/");
  return it != l.end() && it->first.compare(0, path.size() + 1, path + "/") == 0;
}

// Applies the events to `model`; a failure names the event.
void replay(const std::vector<Event>& events, Listing* model) {
  for (size_t i = 0; i < events.size(); ++i) {
    const Event& e = events[i];
    std::string path = e.dir.empty() ? e.name : e.dir + "/" + e.name;
    std::string where = "event " + std::to_string(i) + " on " + path;
    ASSERT_TRUE(e.mask & IN_POLLED) << where;
    ASSERT_FALSE(e.name.empty()) << where;
    std::string parent = parentOf(path);
    bool parentOk = parent.empty() || (model->count(parent) && S_ISDIR(model->at(parent).mode));
    if (e.mask & IN_CREATE) {
      ASSERT_TRUE(parentOk) << where;
      ASSERT_EQ(model->count(path), 0u) << where;
      ASSERT_TRUE(e.hasStat) << where;
      ASSERT_EQ(bool(e.mask & IN_ISDIR), S_ISDIR(e.stat.mode)) << where;
      (*model)[path] = e.stat;
    } else if (e.mask & IN_DELETE) {
      ASSERT_EQ(model->count(path), 1u) << where;
      ASSERT_EQ(bool(e.mask & IN_ISDIR), S_ISDIR(model->at(path).mode)) << where;
      ASSERT_FALSE(hasChildren(*model, path)) << where << ": not empty";
      model->erase(path);
    } else if (e.mask & IN_MOVED_FROM) {
      ASSERT_LT(i + 1, events.size()) << where;
      const Event& to = events[i + 1];
      ASSERT_TRUE(to.mask & IN_MOVED_TO) << where;
      ASSERT_EQ(to.cookie, e.cookie) << where;
      ASSERT_NE(e.cookie, 0u) << where;
      ASSERT_EQ(model->count(path), 1u) << where;
      std::string target = to.dir.empty() ? to.name : to.dir + "/" + to.name;
      std::string targetParent = parentOf(target);
      ASSERT_TRUE(targetParent.empty() || model->count(targetParent)) << where << " -> " << target;
      ASSERT_TRUE(to.hasStat) << where;
      ASSERT_EQ(to.stat.ino, model->at(path).ino) << where << ": another inode";
      if (model->count(target)) {
        ASSERT_FALSE(hasChildren(*model, target)) << where << " -> " << target;
      }
      model->erase(target);
      Listing moved;
      for (auto it = model->begin(); it != model->end();) {
        if (it->first == path || it->first.compare(0, path.size() + 1, path + "/") == 0) {
          moved[target + it->first.substr(path.size())] = it->second;
          it = model->erase(it);
        } else {
          ++it;
        }
      }
      moved[target] = to.stat;
      model->merge(moved);
      ++i;
    } else if (e.mask & (IN_MODIFY | IN_ATTRIB)) {
      ASSERT_EQ(model->count(path), 1u) << where;
      ASSERT_TRUE(e.hasStat) << where;
      EventStat& known = model->at(path);
      if (e.mask & IN_MODIFY) {
        ASSERT_TRUE(known.size != e.stat.size || known.mtimeSec != e.stat.mtimeSec ||
                    known.mtimeNsec != e.stat.mtimeNsec)
            << where << ": MODIFY without a change";
      }
      known = e.stat;
    } else {
      FAIL() << where << ": unexpected mask " << std::hex << e.mask;
    }
  }
}

// Random operations on the tree under `root`, chosen among its entries.
class Mutator {
 public:
  Mutator(std::string root, uint32_t seed) : root_(std::move(root)), rng_(seed) {}

  std::string apply() {
    Listing now = listing(root_);
    std::vector<std::string> files, dirs{""};
    for (const auto& [path, st] : now) (S_ISDIR(st.mode) ? dirs : files).push_back(path);
    auto pick = [&](const std::vector<std::string>& v) { return v[rng_() % v.size()]; };
    auto fresh = [&](const std::string& dir, const char* prefix) {
      std::string name = prefix + std::to_string(rng_() % 12);
      return dir.empty() ? name : dir + "/" + name;
    };
    auto abs = [&](const std::string& rel) { return rel.empty() ? root_ : root_ + "/" + rel; };
    std::error_code ec;
    switch (rng_() % 10) {
      case 0:
      case 1: {
        std::string p = fresh(pick(dirs), "f");
        if (!now.count(p)) testbed::writeFile(abs(p), std::string(rng_() % 64, 'x'));
        return "create " + p;
      }
      case 2: {
        if (files.empty()) return "-";
        std::string p = pick(files);
        int fd = ::open(abs(p).c_str(), O_WRONLY | (rng_() % 2 ? O_APPEND : O_TRUNC));
        if (fd >= 0) {
          std::string data(1 + rng_() % 16, 'y');
          (void)!::write(fd, data.data(), data.size());
          ::close(fd);
        }
        return "write " + p;
      }
      case 3: {
        if (now.empty()) return "-";
        std::string p = pick(rng_() % 2 && !files.empty() ? files : dirs);
        if (p.empty()) return "-";
        ::chmod(abs(p).c_str(), (rng_() % 2) ? 0700 : 0755);
        return "chmod " + p;
      }
      case 4: {
        if (files.empty()) return "-";
        std::string p = pick(files);
        struct timespec times[2] = {{0, UTIME_OMIT}, {1000000000 + static_cast<time_t>(rng_() % 1000), 0}};
        ::utimensat(AT_FDCWD, abs(p).c_str(), times, AT_SYMLINK_NOFOLLOW);
        return "touch " + p;
      }
      case 5:
      case 6: {
        bool dir = rng_() % 3 == 0 && dirs.size() > 1;
        std::string from = pick(dir ? dirs : files.empty() ? dirs : files);
        if (from.empty()) return "-";
        std::string to = fresh(pick(dirs), dir ? "d" : "f");
        std::filesystem::rename(abs(from), abs(to), ec);  // fails into itself, onto a full directory
        return "rename " + from + " " + to + (ec ? " (failed)" : "");
      }
      case 7: {
        if (files.empty()) return "-";
        std::string p = pick(files);
        std::filesystem::remove(abs(p), ec);
        return "unlink " + p;
      }
      case 8: {
        std::string p = fresh(pick(dirs), "d");
        std::filesystem::create_directory(abs(p), ec);
        return "mkdir " + p;
      }
      default: {
        std::string p = pick(dirs);
        if (p.empty() || rng_() % 2) return "-";
        std::filesystem::remove_all(abs(p), ec);
        return "rm -r " + p;
      }
    }
  }

 private:
  std::string root_;
  std::mt19937 rng_;
};

// Whether this kernel gives a directory a new mtime for a change made right
// after its mtime was read (fine-grained timestamps, Linux >= 6.13 on ext4,
// tmpfs, xfs, btrfs). Without it, trusting an mtime at once is racy by design.
bool fineGrainedTimestamps(const std::string& dir) {
  for (int i = 0; i < 200; ++i) {
    testbed::writeFile(dir + "/probe" + std::to_string(i), "");
    struct stat a, b;
    ::stat(dir.c_str(), &a);
    testbed::writeFile(dir + "/probe" + std::to_string(i) + "b", "");
    ::stat(dir.c_str(), &b);
    if (a.st_mtim.tv_sec == b.st_mtim.tv_sec && a.st_mtim.tv_nsec == b.st_mtim.tv_nsec) return false;
  }
  return true;
}

// A directory's size and mtime follow its entries; no event reports them.
std::map<std::string, std::string> comparable(const Listing& l) {
  std::map<std::string, std::string> out;
  for (const auto& [path, st] : l) {
    bool dir = S_ISDIR(st.mode);
    out[path] = "ino " + std::to_string(st.ino) + " mode " + std::to_string(st.mode) + " uid " +
                std::to_string(st.uid) + " gid " + std::to_string(st.gid) +
                (dir ? ""
                     : " size " + std::to_string(st.size) + " mtime " + std::to_string(st.mtimeSec) + "." +
                           std::to_string(st.mtimeNsec));
  }
  return out;
}

void runRandom(PollScanner::Options options, uint32_t seed, int rounds) {
  TempDir tmp;
  std::string root = tmp.mkdir("root");
  Mutator mutator(root, seed);
  for (int i = 0; i < 20; ++i) mutator.apply();
  PollScanner scanner(root, options);
  ASSERT_TRUE(scanner.scan().ok());
  Listing before = listing(root);
  size_t events = 0, moves = 0;
  for (int round = 0; round < rounds; ++round) {
    std::string ops;
    int n = static_cast<int>((seed + static_cast<uint32_t>(round)) % 7);  // 0..6 operations, none at times
    for (int i = 0; i < n; ++i) ops += mutator.apply() + "; ";
    // Files of quiet directories are checked every sweepScans scans: after
    // that many, everything must have been seen.
    std::vector<Event> result;
    for (int i = 0; i < std::max(options.sweepScans, 1); ++i) {
      auto scanned = scanner.scan();
      ASSERT_TRUE(scanned.ok()) << scanned.error().message;
      for (Event& e : *scanned) result.push_back(std::move(e));
    }
    Listing after = listing(root);
    Listing model = before;
    SCOPED_TRACE("seed " + std::to_string(seed) + ", round " + std::to_string(round) + ": " + ops);
    replay(result, &model);
    ASSERT_EQ(comparable(model), comparable(after));
    if (n == 0) {
      ASSERT_TRUE(result.empty());
    }
    ASSERT_EQ(scanner.entries(), after.size());
    events += result.size();
    for (const Event& e : result) moves += (e.mask & IN_MOVED_TO) != 0;
    before = std::move(after);
  }
  EXPECT_GT(moves, 0u) << "no rename was detected at all";
  ::testing::Test::RecordProperty("events", static_cast<int>(events));
}

uint32_t seed() {
  const char* env = std::getenv("RNOTIFY_POLL_SEED");
  return env != nullptr ? static_cast<uint32_t>(std::strtoul(env, nullptr, 10)) : std::random_device{}();
}

TEST(PollScannerRandom, EventsReplayToTheNewListing) {
  uint32_t s = seed();
  std::cout << "seed " << s << " (RNOTIFY_POLL_SEED to repeat)\n";
  runRandom(PollScanner::Options{}, s, 200);
}

TEST(PollScannerRandom, EventsReplayWhenEveryFileIsCheckedAtEveryScan) {
  PollScanner::Options o;
  o.sweepScans = 1;
  uint32_t s = seed();
  std::cout << "seed " << s << " (RNOTIFY_POLL_SEED to repeat)\n";
  runRandom(o, s, 200);
}

TEST(PollScannerRandom, EventsReplayWhenUnchangedDirectoriesAreSkipped) {
  TempDir probe;
  if (!fineGrainedTimestamps(probe.path())) GTEST_SKIP() << "coarse timestamps on " << probe.path();
  PollScanner::Options o;
  o.mtimeGranularity = std::chrono::milliseconds(0);
  o.sweepScans = 3;
  o.hotScans = 0;  // files checked in turns only
  uint32_t s = seed();
  std::cout << "seed " << s << " (RNOTIFY_POLL_SEED to repeat)\n";
  runRandom(o, s, 200);
}

// A scan cut into slices of one directory, and the tree changed between
// slices: a change in a directory the scan has passed comes with the next
// scan. Each round's events, and then a quiet scan's, must still replay step
// by step, and give the listing once the tree is quiet.
TEST(PollScannerRandom, EventsReplayWhenTheTreeChangesBetweenSlices) {
  const uint32_t s = seed();
  std::cout << "seed " << s << " (RNOTIFY_POLL_SEED to repeat)\n";
  TempDir tmp;
  std::string root = tmp.mkdir("root");
  for (int d = 0; d < 8; ++d) {
    for (int e = 0; e < 2; ++e) tmp.mkdir("root/d" + std::to_string(d) + "/e" + std::to_string(e));
  }
  Mutator mutator(root, s);
  for (int i = 0; i < 40; ++i) mutator.apply();
  PollScanner::Options o;
  o.sweepScans = 1;
  o.slice = PollScanner::Clock::duration::zero();  // one directory per call
  PollScanner scanner(root, o);
  std::mt19937 rng(s);
  size_t slices = 0, scans = 0;
  // Whole scans, slice by slice, calling `between` after each slice that
  // leaves the scan under way.
  auto scanAll = [&](auto&& between, std::vector<Event>* into) {
    do {
      auto scanned = scanner.scan();
      ASSERT_TRUE(scanned.ok()) << scanned.error().message;
      for (Event& e : *scanned) into->push_back(std::move(e));
      ++slices;
      if (scanner.scanning()) {
        EXPECT_LE(scanner.deadline(), PollScanner::Clock::now()) << "a scan under way is due";
        between();
      }
    } while (scanner.scanning());
    ++scans;
  };
  std::vector<Event> none;
  scanAll([] {}, &none);
  ASSERT_TRUE(none.empty());
  Listing before = listing(root);
  for (int round = 0; round < 60; ++round) {
    std::string ops;
    std::vector<Event> result;
    scanAll(
        [&] {
          if (rng() % 3 == 0) ops += mutator.apply() + "; ";
        },
        &result);
    scanAll([] {}, &result);  // quiet: what the first one passed by
    Listing after = listing(root);
    SCOPED_TRACE("seed " + std::to_string(s) + ", round " + std::to_string(round) + ": " + ops);
    Listing model = before;
    replay(result, &model);
    ASSERT_EQ(comparable(model), comparable(after));
    ASSERT_EQ(scanner.entries(), after.size());
    before = std::move(after);
  }
  EXPECT_GT(slices, 2 * scans) << "the scans were not cut into slices";
}

}  // namespace
}  // namespace rnotify
