// Implements getopt_long()-compatible scanning; see gnu_argv_scanner.h.
#include "tools/rnotifywait/gnu_argv_scanner.h"

#include <fmt/core.h>

namespace rnotify::wait {
namespace {

class Scanner {
 public:
  Scanner(const std::vector<OptionSpec>& specs, const std::vector<std::string>& args, std::string_view program)
      : specs_(specs), args_(args), program_(program) {}

  ScanResult run() {
    for (i_ = 0; i_ < args_.size() && result_.error.empty(); ++i_) {
      const std::string& arg = args_[i_];
      if (arg == "--") {
        result_.operands.insert(result_.operands.end(), std::next(args_.begin(), static_cast<std::ptrdiff_t>(i_ + 1)),
                                args_.end());
        break;
      }
      if (arg.size() > 2 && arg.starts_with("--")) {
        scanLong(std::string_view(arg).substr(2));
      } else if (arg.size() > 1 && arg[0] == '-') {
        scanShortCluster(std::string_view(arg).substr(1));
      } else {
        result_.operands.push_back(arg);
      }
    }
    return std::move(result_);
  }

 private:
  void fail(std::string message) { result_.error = fmt::format("{}: {}\n", program_, message); }

  // The next argument as an option's value, if there is one.
  std::optional<std::string> takeNextArg() {
    if (i_ + 1 >= args_.size()) return std::nullopt;
    return args_[++i_];
  }

  void scanLong(std::string_view body) {
    size_t eq = body.find('=');
    std::string_view name = body.substr(0, eq);
    const OptionSpec* found = nullptr;
    std::vector<const OptionSpec*> prefixMatches;
    for (const auto& spec : specs_) {
      if (spec.longName.empty()) continue;
      if (spec.longName == name) {
        found = &spec;
        break;
      }
      if (spec.longName.starts_with(name)) prefixMatches.push_back(&spec);
    }
    if (!found && prefixMatches.size() == 1) found = prefixMatches.front();
    if (!found && prefixMatches.size() > 1) {
      std::string message = fmt::format("option '--{}' is ambiguous; possibilities:", body);
      for (const auto* spec : prefixMatches) message += fmt::format(" '--{}'", spec->longName);
      fail(message);
      return;
    }
    if (!found) {
      fail(fmt::format("unrecognized option '--{}'", body));
      return;
    }
    ScannedOption option{found, std::nullopt};
    if (eq != std::string_view::npos) {
      if (!found->takesValue) {
        fail(fmt::format("option '--{}' doesn't allow an argument", found->longName));
        return;
      }
      option.value = std::string(body.substr(eq + 1));
    } else if (found->takesValue) {
      option.value = takeNextArg();
      if (!option.value) {
        fail(fmt::format("option '--{}' requires an argument", found->longName));
        return;
      }
    }
    result_.options.push_back(std::move(option));
  }

  void scanShortCluster(std::string_view cluster) {
    for (size_t k = 0; k < cluster.size(); ++k) {
      char c = cluster[k];
      const OptionSpec* found = nullptr;
      for (const auto& spec : specs_) {
        if (spec.shortName == c) found = &spec;
      }
      if (!found) {
        fail(fmt::format("invalid option -- '{}'", c));
        return;
      }
      ScannedOption option{found, std::nullopt};
      if (found->takesValue) {
        // The rest of the cluster is the value ("-t5"), else the next argument.
        if (k + 1 < cluster.size()) {
          option.value = std::string(cluster.substr(k + 1));
        } else {
          option.value = takeNextArg();
          if (!option.value) {
            fail(fmt::format("option requires an argument -- '{}'", c));
            return;
          }
        }
        result_.options.push_back(std::move(option));
        return;
      }
      result_.options.push_back(std::move(option));
    }
  }

  const std::vector<OptionSpec>& specs_;
  const std::vector<std::string>& args_;
  std::string_view program_;
  size_t i_ = 0;
  ScanResult result_;
};

}  // namespace

ScanResult scanGnuArgv(const std::vector<OptionSpec>& specs, const std::vector<std::string>& args,
                       std::string_view program) {
  return Scanner(specs, args, program).run();
}

}  // namespace rnotify::wait
