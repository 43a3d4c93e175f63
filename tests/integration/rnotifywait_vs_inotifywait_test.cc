// rnotifywait must be a drop-in replacement for inotifywait on a local
// directory: both run side by side with the same options on the same tree,
// the test performs one operation at a time, and after each one waits until
// both have printed the barrier event that follows it; then their outputs so
// far must be identical, line for line. Exit codes are compared too.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <algorithm>
#include <csignal>
#include <filesystem>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "process.h"
#include "product.h"
#include "temp_dir.h"

namespace rnotify::testbed {
namespace {

namespace fs = std::filesystem;
using std::chrono::seconds;

bool haveInotifywait() {
  return runCommand({"sh", "-c", "command -v inotifywait"}, Deadline::in(seconds(5))).exitCode == 0;
}

std::string skipReason() {
  if (!haveInotifywait()) return "inotifywait (inotify-tools) is not installed";
  return missingProduct();
}

std::string joined(const std::vector<std::string>& lines) {
  std::string out;
  for (const auto& l : lines) out += l + "\n";
  return out;
}

// The two programs, started with identical arguments in the same directory so
// that the watched path prints the same ("w/").
class SideBySide {
 public:
  SideBySide(const TempDir& dir, std::vector<std::string> args) {
    for (const auto& program : {std::string("inotifywait"), rnotifywaitPath()}) {
      ProcessOptions o;
      o.argv = {program};
      o.argv.insert(o.argv.end(), args.begin(), args.end());
      o.cwd = dir.path();
      o.env["RNOTIFY_LOG_LEVEL"] = std::nullopt;
      procs_.push_back(std::make_unique<Process>(o));
    }
  }

  ::testing::AssertionResult established() {
    for (auto& p : procs_) {
      if (!p->waitForLine(
              Stream::kStderr, [](const std::string& l) { return l == "Watches established."; },
              Deadline::in(seconds(10)))) {
        return ::testing::AssertionFailure() << "no \"Watches established.\" from " << p->commandLine() << "\n"
                                             << p->transcript();
      }
    }
    return ::testing::AssertionSuccess();
  }

  // Waits until both printed a line containing `marker` (and not `unless`),
  // then compares all lines so far.
  ::testing::AssertionResult sameOutputThrough(const std::string& marker, const std::string& step,
                                               const std::string& unless = "") {
    for (auto& p : procs_) {
      auto match = [&](const std::string& l) {
        return l.find(marker) != std::string::npos && (unless.empty() || l.find(unless) == std::string::npos);
      };
      if (!p->waitForLine(Stream::kStdout, match, Deadline::in(seconds(10)))) {
        return ::testing::AssertionFailure()
               << "after " << step << ": no line with '" << marker << "' from " << p->commandLine() << "\n"
               << p->transcript();
      }
    }
    auto a = procs_[0]->lines(Stream::kStdout), b = procs_[1]->lines(Stream::kStdout);
    if (a != b) {
      return ::testing::AssertionFailure() << "after " << step << " the outputs differ\n--- inotifywait:\n"
                                           << joined(a) << "--- rnotifywait:\n"
                                           << joined(b) << "--- rnotifywait stderr:\n"
                                           << joined(procs_[1]->lines(Stream::kStderr));
    }
    return ::testing::AssertionSuccess();
  }

  Process& inotifywait() { return *procs_[0]; }
  Process& rnotifywait() { return *procs_[1]; }

 private:
  std::vector<std::unique_ptr<Process>> procs_;
};

struct Step {
  std::string what;
  std::function<void(const TempDir&)> act;
};

void setXattr(const std::string& path) {
  if (::setxattr(path.c_str(), "user.rnotify", "1", 1, 0) != 0) throw std::runtime_error("setxattr " + path);
}

// Every operation the comparison covers, in order. Each step is followed by a
// barrier entry whose CREATE both programs must print before comparing.
std::vector<Step> operations() {
  return {
      {"create", [](const TempDir& d) { writeFile(d / "w/f", "hello\n"); }},
      {"write",
       [](const TempDir& d) {
         FILE* f = std::fopen((d / "w/f").c_str(), "a");
         std::fputs("more\n", f);
         std::fclose(f);
       }},
      {"chmod", [](const TempDir& d) { fs::permissions(d / "w/f", fs::perms::owner_read | fs::perms::owner_write); }},
      {"touch", [](const TempDir& d) { ::utimensat(AT_FDCWD, (d / "w/f").c_str(), nullptr, 0); }},
      {"setfattr", [](const TempDir& d) { setXattr(d / "w/f"); }},
      {"rename within", [](const TempDir& d) { fs::rename(d / "w/f", d / "w/g"); }},
      {"rename across", [](const TempDir& d) { fs::rename(d / "w/g", d / "w/sub/g"); }},
      {"mkdir", [](const TempDir& d) { fs::create_directory(d / "w/d"); }},
      {"create in new dir", [](const TempDir& d) { writeFile(d / "w/d/x", "x"); }},
      {"rename dir", [](const TempDir& d) { fs::rename(d / "w/d", d / "w/sub/d"); }},
      {"delete", [](const TempDir& d) { fs::remove(d / "w/sub/d/x"); }},
      {"rmdir", [](const TempDir& d) { fs::remove(d / "w/sub/d"); }},
      {"delete moved file", [](const TempDir& d) { fs::remove(d / "w/sub/g"); }},
  };
}

void compareRun(const std::vector<std::string>& options) {
  if (auto why = skipReason(); !why.empty()) GTEST_SKIP() << why;
  TempDir dir;
  dir.mkdir("w/sub");
  std::vector<std::string> args{"-m"};
  args.insert(args.end(), options.begin(), options.end());
  args.push_back("w");
  SideBySide both(dir, args);
  ASSERT_TRUE(both.established());
  int n = 0;
  for (const auto& step : operations()) {
    step.act(dir);
    std::string barrier = "barrier" + std::to_string(++n);
    // A symlink: exactly one event (CREATE), so the barrier is the last line.
    fs::create_symlink("nowhere", dir / ("w/" + barrier));
    ASSERT_TRUE(both.sameOutputThrough(barrier, step.what));
  }
  // Finally the watched directory itself goes away. Entry by entry, without
  // listing directories: a listing is an OPEN/ACCESS that the kernel may
  // coalesce with the previous identical event in one queue and not the other.
  for (int i = 1; i <= n; ++i) fs::remove(dir / ("w/barrier" + std::to_string(i)));
  fs::remove(dir / "w/sub");
  fs::remove(dir / "w");
  bool seesSelf = std::none_of(options.begin(), options.end(), [](const std::string& o) {
    return o.find(',') != std::string::npos && o.find("delete_self") == std::string::npos;
  });
  if (seesSelf) {
    EXPECT_TRUE(both.sameOutputThrough("DELETE_SELF", "deleting the watched directory", "sub"));
  }
}

TEST(RnotifywaitVsInotifywait, DefaultFormat) { compareRun({}); }
TEST(RnotifywaitVsInotifywait, CustomFormat) { compareRun({"--format", "%w|%f|%e|%:e"}); }
TEST(RnotifywaitVsInotifywait, Csv) { compareRun({"--csv"}); }
// Without the read-side events: with -r both programs list every directory
// they start to watch, and each would see the other one's listings in an
// order that depends on scheduling.
TEST(RnotifywaitVsInotifywait, Recursive) {
  compareRun({"-r", "-e", "modify,attrib,close_write,move,create,delete,delete_self,move_self"});
}
TEST(RnotifywaitVsInotifywait, SelectedEvents) { compareRun({"-e", "create,delete"}); }
TEST(RnotifywaitVsInotifywait, ExcludeRegex) { compareRun({"--exclude", "/g$"}); }

TEST(RnotifywaitVsInotifywait, TimeoutExitsTwo) {
  if (auto why = skipReason(); !why.empty()) GTEST_SKIP() << why;
  TempDir dir;
  dir.mkdir("w");
  SideBySide both(dir, {"-t", "1", "w"});
  EXPECT_EQ(both.inotifywait().waitExit(Deadline::in(seconds(10))), 2);
  EXPECT_EQ(both.rnotifywait().waitExit(Deadline::in(seconds(10))), 2);
}

TEST(RnotifywaitVsInotifywait, SingleEventExitsZeroWithTheSameLine) {
  if (auto why = skipReason(); !why.empty()) GTEST_SKIP() << why;
  TempDir dir;
  dir.mkdir("w");
  SideBySide both(dir, {"-e", "create", "w"});
  ASSERT_TRUE(both.established());
  writeFile(dir / "w/new", "");
  EXPECT_EQ(both.inotifywait().waitExit(Deadline::in(seconds(10))), 0);
  EXPECT_EQ(both.rnotifywait().waitExit(Deadline::in(seconds(10))), 0);
  EXPECT_EQ(both.inotifywait().lines(Stream::kStdout), both.rnotifywait().lines(Stream::kStdout));
}

TEST(RnotifywaitVsInotifywait, MissingPathSameMessageAndExitOne) {
  if (auto why = skipReason(); !why.empty()) GTEST_SKIP() << why;
  TempDir dir;
  SideBySide both(dir, {"missing"});
  for (Process* p : {&both.inotifywait(), &both.rnotifywait()}) {
    EXPECT_EQ(p->waitExit(Deadline::in(seconds(10))), 1);
    auto couldNot = [](const std::string& l) { return l.starts_with("Couldn't watch"); };
    EXPECT_TRUE(p->waitForLine(Stream::kStderr, couldNot, Deadline::in(seconds(5)))) << p->transcript();
  }
  EXPECT_EQ(both.inotifywait().lines(Stream::kStderr), both.rnotifywait().lines(Stream::kStderr));
}

TEST(RnotifywaitVsInotifywait, SigtermEndsMonitorTheSameWay) {
  if (auto why = skipReason(); !why.empty()) GTEST_SKIP() << why;
  TempDir dir;
  dir.mkdir("w");
  SideBySide both(dir, {"-m", "w"});
  ASSERT_TRUE(both.established());
  ::kill(both.inotifywait().pid(), SIGTERM);
  ::kill(both.rnotifywait().pid(), SIGTERM);
  auto a = both.inotifywait().waitExit(Deadline::in(seconds(10)));
  auto b = both.rnotifywait().waitExit(Deadline::in(seconds(10)));
  ASSERT_TRUE(a && b);
  EXPECT_EQ(*a, 128 + SIGTERM);
  EXPECT_EQ(*a, *b);
}

}  // namespace
}  // namespace rnotify::testbed
