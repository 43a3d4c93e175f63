// The shim's inotify descriptor against the real one: descriptor_probe runs
// each scenario (small buffers, several records, non-blocking reads,
// readiness for epoll/poll/select, FIONREAD, watch numbering, IN_MASK_ADD and
// IN_MASK_CREATE, removal, IN_ONESHOT, dup/close, fork and exec) on a local
// directory three times: without the shim (the oracle), with the shim
// (local watches stay with the kernel), and with the shim serving every
// watch through the client core (RNOTIFY_PRELOAD_ROUTE=client: the path
// that network mounts take, here without a server). Every transcript must
// equal the oracle's, line for line.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "process.h"
#include "temp_dir.h"

namespace rnotify::testbed {
namespace {

using std::chrono::seconds;

enum class Mode { kPlain, kShim, kShimClientRoute };

const char* modeName(Mode mode) {
  switch (mode) {
    case Mode::kPlain:
      return "without the shim";
    case Mode::kShim:
      return "with the shim";
    case Mode::kShimClientRoute:
      return "with the shim, served by the client core";
  }
  return "";
}

struct ProbeRun {
  std::optional<int> exit;
  std::vector<std::string> lines;
  std::string transcript;
};

ProbeRun probe(const std::string& scenario, Mode mode) {
  TempDir dir("rnotify-preload-");
  ProcessOptions o;
  o.argv = {PRELOAD_PROBE_PATH, scenario, dir.path()};
  o.env["RNOTIFY_LOG_LEVEL"] = std::nullopt;
  o.env["LD_PRELOAD"] = std::nullopt;
  if (mode != Mode::kPlain) o.env["LD_PRELOAD"] = PRELOAD_LIBRARY_PATH;
  if (mode == Mode::kShimClientRoute) o.env["RNOTIFY_PRELOAD_ROUTE"] = "client";
  Process p(o);
  ProbeRun run;
  run.exit = p.waitExit(Deadline::in(seconds(30)));
  p.terminate();  // reaped already, or killed at the deadline; then reads the output to its end
  run.lines = p.lines(Stream::kStdout);
  run.transcript = p.transcript();
  return run;
}

std::string joined(const std::vector<std::string>& lines) {
  std::string out;
  for (const auto& l : lines) out += "  " + l + "\n";
  return out;
}

::testing::AssertionResult sameAsKernel(const std::string& scenario, Mode mode) {
  ProbeRun oracle = probe(scenario, Mode::kPlain);
  if (oracle.exit != 0) {
    return ::testing::AssertionFailure() << scenario << " failed without the shim:\n" << oracle.transcript;
  }
  ProbeRun shim = probe(scenario, mode);
  if (shim.exit != oracle.exit || shim.lines != oracle.lines) {
    return ::testing::AssertionFailure() << scenario << " " << modeName(mode)
                                         << " differs from real inotify\n--- real inotify:\n"
                                         << joined(oracle.lines) << "--- " << modeName(mode) << " (exit "
                                         << (shim.exit ? std::to_string(*shim.exit) : "none: killed at the deadline")
                                         << "):\n"
                                         << shim.transcript;
  }
  return ::testing::AssertionSuccess();
}

class DescriptorSemantics : public ::testing::TestWithParam<std::string> {};

TEST_P(DescriptorSemantics, WithTheShimAsWithTheKernel) { EXPECT_TRUE(sameAsKernel(GetParam(), Mode::kShim)); }

TEST_P(DescriptorSemantics, ServedByTheClientCoreAsWithTheKernel) {
  EXPECT_TRUE(sameAsKernel(GetParam(), Mode::kShimClientRoute));
}

INSTANTIATE_TEST_SUITE_P(Scenarios, DescriptorSemantics,
                         ::testing::Values("small-buffer", "several-records", "nonblocking", "readiness", "same-wd",
                                           "mask-add-create", "remove-watch", "oneshot", "dup-close", "fork-exec"),
                         [](const auto& info) {
                           std::string name;
                           for (char c : info.param) name += c == '-' ? '_' : c;
                           return name;
                         });

// Local watches: no thread, and nothing opened before inotify is used.
TEST(DescriptorResources, NoThreadForLocalWatchesAndNothingBeforeInotify) {
  EXPECT_TRUE(sameAsKernel("resources", Mode::kShim));
}

// A forked child that reads its parent's descriptor shares the queue with
// it, as with the kernel's (watches on local filesystems).
TEST(DescriptorFork, ChildReadsTheInheritedDescriptor) { EXPECT_TRUE(sameAsKernel("inherited-read", Mode::kShim)); }

// Served by the client core, the events belong to the parent's thread: the
// child's inherited copy stays quiet, but nothing hangs and the child exits.
TEST(DescriptorFork, ChildOfAClientServedDescriptorNeverHangs) {
  ProbeRun run = probe("inherited-read", Mode::kShimClientRoute);
  ASSERT_EQ(run.exit, 0) << run.transcript;
  ASSERT_FALSE(run.lines.empty()) << run.transcript;
  EXPECT_EQ(run.lines.back(), "child exited 0") << run.transcript;
}

}  // namespace
}  // namespace rnotify::testbed
