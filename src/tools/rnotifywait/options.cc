// Parses rnotifywait's command line in two steps: scanGnuArgv() splits it like
// getopt_long() (inotifywait's parser) and yields the options in order, so
// that order-dependent behaviour (-h stops at once, the first bad -e or -t
// wins) and glibc's messages match; CLI11 then binds the values into fields.
// The checks after that copy inotifywait's parse_opts() in order and wording.
#include "tools/rnotifywait/options.h"

#include <fmt/core.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>

#include "common/log.h"
#include "event/event_names.h"
#include "tools/rnotifywait/gnu_argv_scanner.h"
#include "tools/rnotifywait/help_text.h"

namespace rnotify::wait {
namespace {

// Everything as CLI11 binds it, before inotifywait's combination checks.
struct RawOptions {
  int help = 0, monitor = 0, quiet = 0, recursive = 0, csv = 0, daemon = 0, syslog = 0;
  int noDereference = 0, filename = 0, noNewline = 0, ignoredBackend = 0;
  int json = 0, verbose = 0, localOnly = 0, poll = 0;
  std::vector<std::string> events, timeouts, formats, timefmts, fromfiles, outfiles;
  std::vector<std::string> exclude, excludei, include, includei, logLevels;
  std::vector<std::string> files;
};

void addValue(CLI::App& app, const std::string& names, std::vector<std::string>& into) {
  // Values arrive already split by the scanner; take each one verbatim, even
  // if it is empty or starts with '-'.
  app.add_option(names, into)
      ->expected(1)
      ->allow_extra_args(false)
      ->multi_option_policy(CLI::MultiOptionPolicy::TakeAll);
}

void defineOptions(CLI::App& app, RawOptions& raw) {
  app.set_help_flag();
  app.add_flag("-h,--help", raw.help);
  addValue(app, "-e,--event", raw.events);
  app.add_flag("-m,--monitor", raw.monitor);
  app.add_flag("-q,--quiet", raw.quiet);
  addValue(app, "-t,--timeout", raw.timeouts);
  app.add_flag("-f,--filename", raw.filename);  // removed in inotifywait; kept for its message
  app.add_flag("-r,--recursive", raw.recursive);
  // inotifywait accepts and, as built by Debian, ignores its fanotify switches.
  app.add_flag("-I,--inotify", raw.ignoredBackend);
  app.add_flag("-F,--fanotify", raw.ignoredBackend);
  app.add_flag("-S,--filesystem", raw.ignoredBackend);
  app.add_flag("-c,--csv", raw.csv);
  app.add_flag("-d,--daemon", raw.daemon);
  app.add_flag("-s,--syslog", raw.syslog);
  app.add_flag("-P,--no-dereference", raw.noDereference);
  addValue(app, "--format", raw.formats);
  app.add_flag("--no-newline", raw.noNewline);
  addValue(app, "--timefmt", raw.timefmts);
  addValue(app, "--fromfile", raw.fromfiles);
  addValue(app, "-o,--outfile", raw.outfiles);
  addValue(app, "--exclude", raw.exclude);
  addValue(app, "--excludei", raw.excludei);
  addValue(app, "--include", raw.include);
  addValue(app, "--includei", raw.includei);
  // rnotifywait's additions.
  app.add_flag("--json", raw.json);
  app.add_flag("-v,--verbose", raw.verbose);
  app.add_flag("--local-only", raw.localOnly);
  app.add_flag("--poll", raw.poll);
  addValue(app, "--log-level", raw.logLevels);
  app.add_option("files", raw.files);
}

std::vector<OptionSpec> specsOf(const CLI::App& app) {
  std::vector<OptionSpec> specs;
  for (const CLI::Option* opt : app.get_options()) {
    OptionSpec spec;
    if (!opt->get_lnames().empty()) spec.longName = opt->get_lnames().front();
    if (!opt->get_snames().empty()) spec.shortName = opt->get_snames().front()[0];
    if (spec.longName.empty() && spec.shortName == 0) continue;  // the positional
    spec.takesValue = opt->get_items_expected_min() > 0;
    specs.push_back(std::move(spec));
  }
  return specs;
}

ParseOutcome failure(std::string err) {
  ParseOutcome outcome;
  outcome.exitCode = 1;
  outcome.err = std::move(err);
  return outcome;
}

// The checks getopt_long()'s loop in inotifywait makes while it walks the
// options; the first failing one decides the message.
std::optional<ParseOutcome> checkInOrder(const std::vector<ScannedOption>& scanned) {
  int fromfiles = 0, outfiles = 0;
  for (const auto& [spec, value] : scanned) {
    const std::string& name = spec->longName;
    if (name == "help") {
      ParseOutcome help;
      help.exitCode = 1;  // inotifywait exits 1 after --help; scripts may rely on it
      help.out = helpText();
      return help;
    }
    if (name == "filename") {
      return failure(
          "The '--filename' option no longer exists.  The option it enabled in earlier\n"
          "versions of inotifywait is now turned on by default.\n");
    }
    if (name == "timeout") {
      unsigned seconds = 0;
      if (auto err = parseTimeout(*value, &seconds)) return failure(*err);
    }
    if (name == "event" && !eventsFromList(*value)) {
      return failure(
          fmt::format("'{}' is not a valid event!  Run with the '--help' option to see a list of events.\n", *value));
    }
    if (name == "fromfile" && ++fromfiles > 1) return failure("Multiple --fromfile options given.\n");
    if (name == "outfile" && ++outfiles > 1) return failure("Multiple --outfile options given.\n");
    log::Level level;
    if (name == "log-level" && !log::parseLevel(*value, &level)) {
      return failure(fmt::format("'{}' is not a valid log level; use debug, info, warn, error or off.\n", *value));
    }
  }
  return std::nullopt;
}

std::vector<std::string> canonicalArgs(const ScanResult& scan) {
  std::vector<std::string> args;
  for (const auto& [spec, value] : scan.options) {
    args.push_back(spec->longName.empty() ? std::string{'-', spec->shortName} : "--" + spec->longName);
    if (value) args.push_back(*value);
  }
  args.push_back("--");
  args.insert(args.end(), scan.operands.begin(), scan.operands.end());
  return args;
}

std::optional<std::string> last(const std::vector<std::string>& values) {
  if (values.empty()) return std::nullopt;
  return values.back();
}

// inotifywait's checks after its option loop, in its order and wording.
ParseOutcome combine(RawOptions& raw) {
  ParseOutcome outcome;
  Options opt;
  for (const auto& list : raw.events) opt.events |= eventsFromList(list).value_or(0);
  opt.monitor = raw.monitor || raw.daemon;
  opt.quiet = raw.quiet;
  if (!raw.timeouts.empty()) (void)parseTimeout(raw.timeouts.back(), &opt.timeoutSeconds);
  opt.recursive = raw.recursive > 0;
  opt.csv = raw.csv > 0;
  opt.daemon = raw.daemon > 0;
  opt.syslog = raw.syslog || raw.daemon;
  opt.noDereference = raw.noDereference > 0;
  opt.format = last(raw.formats);
  opt.timefmt = last(raw.timefmts);
  opt.fromfile = last(raw.fromfiles);
  opt.outfile = last(raw.outfiles);
  opt.paths = std::move(raw.files);
  opt.json = raw.json > 0;
  opt.verbose = raw.verbose > 0;
  opt.localOnly = raw.localOnly > 0;
  opt.poll = raw.poll > 0;
  opt.logLevel = last(raw.logLevels);

  if (opt.format && !raw.noNewline) *opt.format += '\n';
  auto exc = last(raw.exclude), exci = last(raw.excludei);
  auto inc = last(raw.include), inci = last(raw.includei);
  if (exc && exci) return failure("--exclude and --excludei cannot both be specified.\n");
  if (inc && inci) return failure("--include and --includei cannot both be specified.\n");
  if ((inc || inci) && (exc || exci)) return failure("include and exclude regexp cannot both be specified.\n");
  if (opt.format && opt.csv) return failure("-c and --format cannot both be specified.\n");
  if (!opt.format && raw.noNewline) return failure("--no-newline cannot be specified without --format.\n");
  if (!opt.format && opt.timefmt) return failure("--timefmt cannot be specified without --format.\n");
  if (opt.format && opt.format->find("%T") != std::string::npos && !opt.timefmt) {
    return failure("%T is in --format string, but --timefmt was not specified.\n");
  }
  if (opt.daemon && !opt.outfile) return failure("-o must be specified with -d.\n");
  if (opt.json && (opt.format || opt.csv)) return failure("--json cannot be combined with --format or -c.\n");
  if (raw.exclude.size() > 1) outcome.err += "--exclude: only the last option will be taken into consideration.\n";
  if (raw.excludei.size() > 1) outcome.err += "--excludei: only the last option will be taken into consideration.\n";

  if (exc) opt.regex = RegexFilter{*exc, false, false};
  if (exci) opt.regex = RegexFilter{*exci, true, false};
  if (inc) opt.regex = RegexFilter{*inc, false, true};
  if (inci) opt.regex = RegexFilter{*inci, true, true};
  outcome.options = std::move(opt);
  return outcome;
}

}  // namespace

std::optional<std::string> parseTimeout(const std::string& text, unsigned* seconds) {
  if (text.empty()) {
    return "The provided value is not a valid timeout value.\nPlease specify a long int value.\n";
  }
  char* end = nullptr;
  errno = 0;
  long value = std::strtol(text.c_str(), &end, 10);
  if (errno != 0) {
    return fmt::format("Something went wrong with the timeout value you provided.\n{}\n", std::strerror(errno));
  }
  if (*end != '\0') {
    return fmt::format("'{}' is not a valid timeout value.\nPlease specify a long int value.\n", text);
  }
  // Truncated to unsigned like inotifywait: "-t -1" waits (practically) forever.
  *seconds = static_cast<unsigned>(value);
  return std::nullopt;
}

ParseOutcome parseOptions(const std::vector<std::string>& argv) {
  RawOptions raw;
  CLI::App app{"rnotifywait"};
  defineOptions(app, raw);
  std::vector<OptionSpec> specs = specsOf(app);
  std::string program = argv.empty() ? "rnotifywait" : argv.front();
  std::vector<std::string> args(argv.begin() + (argv.empty() ? 0 : 1), argv.end());
  ScanResult scan = scanGnuArgv(specs, args, program);
  if (auto early = checkInOrder(scan.options)) return std::move(*early);
  if (!scan.error.empty()) return failure(scan.error);

  std::vector<std::string> canonical = canonicalArgs(scan);
  std::reverse(canonical.begin(), canonical.end());  // CLI11 consumes from the back
  try {
    app.parse(canonical);
  } catch (const CLI::ParseError& e) {
    // The scanner accepted it, so this is a bug in how the two agree.
    return failure(fmt::format("{}: internal error parsing options: {}\n", program, e.what()));
  }
  return combine(raw);
}

}  // namespace rnotify::wait
