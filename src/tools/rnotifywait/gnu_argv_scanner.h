// Splits a command line the way glibc's getopt_long() does, so that rnotifywait
// accepts exactly what inotifywait accepts: clustered short options ("-mrq",
// "-qq", "-t5"), "--name=value", unique abbreviations of long options
// ("--mon"), options after file names, and "--". It also reproduces glibc's
// error messages ("unrecognized option '--foo'", "option requires an argument
// -- 't'", "... is ambiguous; possibilities: ..."). CLI11, which binds the
// values, does none of these the same way, so this runs first.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace rnotify::wait {

struct OptionSpec {
  std::string longName;  // without "--"; may be empty
  char shortName = 0;    // 0 if none
  bool takesValue = false;
};

struct ScannedOption {
  const OptionSpec* spec = nullptr;
  std::optional<std::string> value;
};

struct ScanResult {
  std::vector<ScannedOption> options;  // in command-line order, up to the first error
  std::vector<std::string> operands;   // non-option arguments, in order
  std::string error;                   // getopt's message incl. newline; empty if none
};

// args excludes argv[0]; program is argv[0] as glibc prints it in messages.
ScanResult scanGnuArgv(const std::vector<OptionSpec>& specs, const std::vector<std::string>& args,
                       std::string_view program);

}  // namespace rnotify::wait
