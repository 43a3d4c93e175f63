// rnotifywait: inotifywait for network filesystems. Parses the command line,
// runs one WaitSession and, when SIGINT/SIGTERM ended it, dies by that signal
// after cleaning up (agents stopped, connections closed), so that the caller
// sees the same status as with inotifywait, which simply dies.
#include <csignal>
#include <cstdio>
#include <string>
#include <vector>

#include "tools/rnotifywait/options.h"
#include "tools/rnotifywait/wait_session.h"

int main(int argc, char** argv) {
  using namespace rnotify::wait;
  std::vector<std::string> args(argv, argv + argc);
  ParseOutcome parsed = parseOptions(args);
  std::fputs(parsed.out.c_str(), stdout);
  std::fputs(parsed.err.c_str(), stderr);
  if (!parsed.options) return parsed.exitCode;

  installSignalHandlers();
  int code;
  {
    WaitSession session(std::move(*parsed.options));
    code = session.run();
  }
  std::fflush(stdout);
  if (int sig = pendingSignal(); sig != 0) {
    std::signal(sig, SIG_DFL);
    std::raise(sig);
  }
  return code;
}
