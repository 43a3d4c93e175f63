// rnotifywait's command line: inotifywait 3.22's options with its spelling,
// checks, messages and exit codes, plus rnotifywait's own (--json, -v,
// --local-only, --log-level). Parsing never prints or exits; it returns what
// to print and the exit code so that tests can check every error case.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace rnotify::wait {

struct RegexFilter {
  std::string pattern;
  bool ignoreCase = false;
  bool invert = false;  // --include: drop what does NOT match
};

struct Options {
  uint32_t events = 0;  // from -e; 0 means all events
  bool monitor = false;
  int quiet = 0;                // -q: 1, -qq: 2
  unsigned timeoutSeconds = 0;  // 0: wait forever (inotifywait stores it unsigned too)
  bool recursive = false;
  bool csv = false;
  bool daemon = false;
  bool syslog = false;
  bool noDereference = false;
  std::optional<std::string> format;  // with the newline already appended unless --no-newline
  std::optional<std::string> timefmt;
  std::optional<std::string> fromfile;
  std::optional<std::string> outfile;
  std::optional<RegexFilter> regex;
  std::vector<std::string> paths;  // operands, "@path" exclusions included, as given
  // rnotifywait's additions.
  bool json = false;
  bool verbose = false;
  bool localOnly = false;
  bool poll = false;  // --poll: RNOTIFY_POLL
  std::optional<std::string> logLevel;
};

struct ParseOutcome {
  std::optional<Options> options;  // set when the program should run
  int exitCode = 0;                // when options is empty
  std::string out;                 // for stdout (--help)
  std::string err;                 // for stderr: errors, or warnings when options is set
};

// argv[0] is the program name used in getopt-style messages.
ParseOutcome parseOptions(const std::vector<std::string>& argv);

// inotifywait's -t check; on failure returns the message it prints.
std::optional<std::string> parseTimeout(const std::string& text, unsigned* seconds);

}  // namespace rnotify::wait
