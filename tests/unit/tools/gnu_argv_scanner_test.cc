// getopt_long()-compatible scanning: clusters, abbreviations, glibc messages.
#include "tools/rnotifywait/gnu_argv_scanner.h"

#include <gtest/gtest.h>

namespace rnotify::wait {
namespace {

const std::vector<OptionSpec> kSpecs{
    {"monitor", 'm', false}, {"quiet", 'q', false}, {"timeout", 't', true},
    {"exclude", 0, true},    {"excludei", 0, true}, {"event", 'e', true},
};

std::string names(const ScanResult& r) {
  std::string out;
  for (const auto& o : r.options) {
    out += o.spec->longName;
    if (o.value) out += "=" + *o.value;
    out += ' ';
  }
  return out;
}

TEST(GnuArgvScanner, ClustersAndValues) {
  auto r = scanGnuArgv(kSpecs, {"-mqq", "-t5", "-e", "create", "dir", "--timeout=0"}, "prog");
  EXPECT_EQ(r.error, "");
  EXPECT_EQ(names(r), "monitor quiet quiet timeout=5 event=create timeout=0 ");
  EXPECT_EQ(r.operands, std::vector<std::string>{"dir"});
}

TEST(GnuArgvScanner, ValuesMayLookLikeOptions) {
  auto r = scanGnuArgv(kSpecs, {"-t", "-5", "--exclude", "--x", "-e", ""}, "prog");
  EXPECT_EQ(r.error, "");
  EXPECT_EQ(names(r), "timeout=-5 exclude=--x event= ");
}

TEST(GnuArgvScanner, AbbreviationsAndExactMatch) {
  auto r = scanGnuArgv(kSpecs, {"--mon", "--exclude", "a"}, "prog");
  EXPECT_EQ(r.error, "");
  EXPECT_EQ(names(r), "monitor exclude=a ");  // exact "exclude" beats prefix of "excludei"
}

TEST(GnuArgvScanner, DoubleDashAndLoneDash) {
  auto r = scanGnuArgv(kSpecs, {"-", "--", "-m", "--x"}, "prog");
  EXPECT_EQ(r.error, "");
  EXPECT_EQ(r.operands, (std::vector<std::string>{"-", "-m", "--x"}));
}

TEST(GnuArgvScanner, GlibcMessages) {
  EXPECT_EQ(scanGnuArgv(kSpecs, {"--foo"}, "iw").error, "iw: unrecognized option '--foo'\n");
  EXPECT_EQ(scanGnuArgv(kSpecs, {"-x"}, "iw").error, "iw: invalid option -- 'x'\n");
  EXPECT_EQ(scanGnuArgv(kSpecs, {"-t"}, "iw").error, "iw: option requires an argument -- 't'\n");
  EXPECT_EQ(scanGnuArgv(kSpecs, {"--timeout"}, "iw").error, "iw: option '--timeout' requires an argument\n");
  EXPECT_EQ(scanGnuArgv(kSpecs, {"--mon=1"}, "iw").error, "iw: option '--monitor' doesn't allow an argument\n");
  EXPECT_EQ(scanGnuArgv(kSpecs, {"--ex", "a"}, "iw").error,
            "iw: option '--ex' is ambiguous; possibilities: '--exclude' '--excludei'\n");
}

TEST(GnuArgvScanner, StopsAtFirstErrorKeepingEarlierOptions) {
  auto r = scanGnuArgv(kSpecs, {"-m", "--foo", "-q"}, "iw");
  EXPECT_EQ(names(r), "monitor ");
  EXPECT_FALSE(r.error.empty());
}

}  // namespace
}  // namespace rnotify::wait
