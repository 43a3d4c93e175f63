// rnotifywait's option parsing: inotifywait's behaviour and messages, checked
// against what inotifywait 3.22.6 prints, plus rnotifywait's own options.
#include "tools/rnotifywait/options.h"

#include <gtest/gtest.h>
#include <sys/inotify.h>

namespace rnotify::wait {
namespace {

ParseOutcome parse(std::vector<std::string> args) {
  args.insert(args.begin(), "inotifywait");
  return parseOptions(args);
}

Options ok(std::vector<std::string> args) {
  auto r = parse(std::move(args));
  EXPECT_TRUE(r.options) << r.err;
  return r.options.value_or(Options{});
}

std::string error(std::vector<std::string> args) {
  auto r = parse(std::move(args));
  EXPECT_FALSE(r.options);
  EXPECT_EQ(r.exitCode, 1);
  return r.err;
}

TEST(Options, Defaults) {
  Options o = ok({"dir"});
  EXPECT_EQ(o.events, 0u);
  EXPECT_FALSE(o.monitor);
  EXPECT_EQ(o.quiet, 0);
  EXPECT_EQ(o.timeoutSeconds, 0u);
  EXPECT_FALSE(o.format);
  EXPECT_EQ(o.paths, std::vector<std::string>{"dir"});
}

TEST(Options, InotifywaitSpellings) {
  Options o =
      ok({"-mrqq", "-e", "create", "--event=delete,moved_to", "-ecreate", "a", "@a/b", "-t", "5", "--csv", "-P", "-s"});
  EXPECT_TRUE(o.monitor);
  EXPECT_TRUE(o.recursive);
  EXPECT_EQ(o.quiet, 2);
  EXPECT_EQ(o.events, uint32_t(IN_CREATE | IN_DELETE | IN_MOVED_TO));
  EXPECT_EQ(o.timeoutSeconds, 5u);
  EXPECT_TRUE(o.csv);
  EXPECT_TRUE(o.noDereference);
  EXPECT_TRUE(o.syslog);
  EXPECT_EQ(o.paths, (std::vector<std::string>{"a", "@a/b"}));
}

TEST(Options, EventListQuirks) {
  EXPECT_EQ(ok({"-e", "create,", "d"}).events, 0u);
  EXPECT_EQ(ok({"-e", "", "-e", "close", "d"}).events, uint32_t(IN_CLOSE));
}

TEST(Options, FormatGetsNewlineUnlessNoNewline) {
  EXPECT_EQ(ok({"--format", "%w %f", "d"}).format, "%w %f\n");
  EXPECT_EQ(ok({"--format", "%w", "--format", "%f", "d"}).format, "%f\n");
  EXPECT_EQ(ok({"--format", "%w", "--no-newline", "d"}).format, "%w");
  EXPECT_EQ(ok({"--format", "%T", "--timefmt", "%s", "d"}).timefmt, "%s");
}

TEST(Options, LastTimeoutWinsAndIsUnsigned) {
  EXPECT_EQ(ok({"-t", "-1", "-t", "3", "d"}).timeoutSeconds, 3u);
  EXPECT_EQ(ok({"-t", "-1", "d"}).timeoutSeconds, 4294967295u);
  EXPECT_EQ(ok({"-t", "4294967296", "d"}).timeoutSeconds, 0u);
}

TEST(Options, DaemonImpliesMonitorAndSyslog) {
  Options o = ok({"-d", "-o", "log", "d"});
  EXPECT_TRUE(o.daemon);
  EXPECT_TRUE(o.monitor);
  EXPECT_TRUE(o.syslog);
  EXPECT_EQ(o.outfile, "log");
}

TEST(Options, Regexes) {
  EXPECT_EQ(ok({"--exclude", "a", "d"}).regex->pattern, "a");
  EXPECT_TRUE(ok({"--excludei", "a", "d"}).regex->ignoreCase);
  EXPECT_TRUE(ok({"--include", "a", "d"}).regex->invert);
  auto r = parse({"--exclude", "a", "--exclude", "b", "d"});
  ASSERT_TRUE(r.options);
  EXPECT_EQ(r.options->regex->pattern, "b");
  EXPECT_EQ(r.err, "--exclude: only the last option will be taken into consideration.\n");
}

TEST(Options, RnotifywaitAdditions) {
  Options o = ok({"--json", "-v", "--local-only", "--log-level", "debug", "d"});
  EXPECT_TRUE(o.json);
  EXPECT_TRUE(o.verbose);
  EXPECT_TRUE(o.localOnly);
  EXPECT_EQ(o.logLevel, "debug");
}

TEST(Options, HelpExitsOneAndWinsOverLaterErrors) {
  auto r = parse({"-h", "--bogus"});
  EXPECT_FALSE(r.options);
  EXPECT_EQ(r.exitCode, 1);
  EXPECT_NE(r.out.find("REMOTE"), std::string::npos);
  EXPECT_NE(r.out.find("--json"), std::string::npos);
  EXPECT_EQ(r.err, "");
}

TEST(Options, ErrorsWordedLikeInotifywait) {
  EXPECT_EQ(error({"--foo"}), "inotifywait: unrecognized option '--foo'\n");
  EXPECT_EQ(error({"-t"}), "inotifywait: option requires an argument -- 't'\n");
  EXPECT_EQ(error({"-f"}),
            "The '--filename' option no longer exists.  The option it enabled in earlier\n"
            "versions of inotifywait is now turned on by default.\n");
  EXPECT_EQ(error({"-t", "abc", "d"}), "'abc' is not a valid timeout value.\nPlease specify a long int value.\n");
  EXPECT_EQ(error({"-t", "", "d"}),
            "The provided value is not a valid timeout value.\nPlease specify a long int value.\n");
  EXPECT_EQ(error({"-t", "99999999999999999999", "d"}),
            "Something went wrong with the timeout value you provided.\nNumerical result out of range\n");
  EXPECT_EQ(error({"-e", "foo", "d"}),
            "'foo' is not a valid event!  Run with the '--help' option to see a list of events.\n");
  EXPECT_EQ(error({"-e", "remote", "d"}),
            "'remote' is not a valid event!  Run with the '--help' option to see a list of events.\n");
  EXPECT_EQ(error({"-c", "--format", "x", "d"}), "-c and --format cannot both be specified.\n");
  EXPECT_EQ(error({"--no-newline", "d"}), "--no-newline cannot be specified without --format.\n");
  EXPECT_EQ(error({"--timefmt", "x", "d"}), "--timefmt cannot be specified without --format.\n");
  EXPECT_EQ(error({"--format", "%%T", "d"}), "%T is in --format string, but --timefmt was not specified.\n");
  EXPECT_EQ(error({"-d", "d"}), "-o must be specified with -d.\n");
  EXPECT_EQ(error({"--exclude", "a", "--excludei", "b", "d"}), "--exclude and --excludei cannot both be specified.\n");
  EXPECT_EQ(error({"--include", "a", "--includei", "b", "d"}), "--include and --includei cannot both be specified.\n");
  EXPECT_EQ(error({"--include", "a", "--exclude", "b", "d"}), "include and exclude regexp cannot both be specified.\n");
  EXPECT_EQ(error({"-o", "a", "-o", "b", "d"}), "Multiple --outfile options given.\n");
  EXPECT_EQ(error({"--fromfile", "a", "--fromfile", "b", "d"}), "Multiple --fromfile options given.\n");
  EXPECT_EQ(error({"--json", "-c", "d"}), "--json cannot be combined with --format or -c.\n");
  EXPECT_NE(error({"--log-level", "loud", "d"}).find("'loud' is not a valid log level"), std::string::npos);
}

TEST(Options, FirstErrorInCommandLineOrderWins) {
  // inotifywait checks -e while getopt walks, before it meets --bogus.
  EXPECT_EQ(error({"-e", "foo", "--bogus"}),
            "'foo' is not a valid event!  Run with the '--help' option to see a list of events.\n");
  EXPECT_EQ(error({"--bogus", "-e", "foo"}), "inotifywait: unrecognized option '--bogus'\n");
}

TEST(Options, FanotifySwitchesAreAcceptedAndIgnored) {
  EXPECT_TRUE(parse({"-I", "-F", "-S", "--fanotify", "d"}).options);
}

}  // namespace
}  // namespace rnotify::wait
