// rnotifyd: the agent that runs where the files are. It watches what clients
// ask for and streams the events back. Started by ssh (--stdio, like
// sftp-server) or as a daemon listening on a unix socket or loopback TCP.
#include <signal.h>

#include <CLI/CLI.hpp>
#include <asio.hpp>
#include <cstdio>
#include <memory>
#include <vector>

#include "common/log.h"
#include "server/listener.h"
#include "server/server.h"
#include "server/transport.h"

namespace {

// Exit codes, stable for scripts.
constexpr int kExitOk = 0;
constexpr int kExitFailure = 1;
constexpr int kExitUsage = 2;

struct Options {
  bool stdio = false;
  std::vector<std::string> listen;
  std::vector<std::string> exports;
  std::string logLevel;
  std::string logFile;
  std::string watcher = "auto";
  rnotify::ServerLimits limits;
};

int run(const Options& options) {
  using namespace rnotify;
  std::vector<std::string> exportPaths = options.exports;
  if (exportPaths.empty()) exportPaths.push_back("/");  // --stdio only: the kernel's permissions confine the ssh user
  auto exports = ExportRoots::create(exportPaths);
  if (!exports) {
    log::error("{}", exports.error().message);
    return kExitFailure;
  }

  asio::io_context io(1);
  const WatcherKind kind = options.watcher == "inotify"    ? WatcherKind::kInotify
                           : options.watcher == "fanotify" ? WatcherKind::kFanotify
                                                           : WatcherKind::kAuto;
  auto server = Server::create(io, std::move(*exports), options.limits, kind);
  if (!server) {
    log::error("cannot start: {}", server.error().message);
    return kExitFailure;
  }
  log::info("watching with {}", (*server)->backendName());
  // A client can come back only to a server that outlives its connection.
  (*server)->setResumable(!options.listen.empty());

  std::vector<std::unique_ptr<Listener>> listeners;
  for (const std::string& text : options.listen) {
    auto address = parseListenAddress(text);
    if (!address) {
      log::error("{}", address.error().message);
      return kExitUsage;
    }
    auto listener = Listener::start(io, **server, *address);
    if (!listener) {
      log::error("{}", listener.error().message);
      return kExitFailure;
    }
    log::info("listening on {}", (*listener)->describe());
    listeners.push_back(std::move(*listener));
  }

  auto stop = [&] {
    for (auto& l : listeners) l->stop();
    (*server)->shutdown();
  };
  asio::signal_set signals(io, SIGINT, SIGTERM);
  signals.async_wait([&](std::error_code ec, int signal) {
    if (ec) return;
    log::info("signal {} received, shutting down", signal);
    stop();
    signals.cancel();
  });

  if (options.stdio) {
    (*server)->onIdle([&] {
      if (listeners.empty()) {
        stop();
        signals.cancel();
      }
    });
    (*server)->adopt(std::make_unique<StdioTransport>(io));
  }
  io.run();
  return kExitOk;
}

}  // namespace

int main(int argc, char** argv) {
  ::signal(SIGPIPE, SIG_IGN);
  rnotify::log::setProgram("rnotifyd");
  Options options;
  CLI::App app{
      "rnotifyd: watches directories on this host on behalf of rnotify clients and streams the\n"
      "changes back, so that watches on network mounts (sshfs, NFS, SMB) see what other hosts do.\n\n"
      "Usually nobody starts it by hand: rnotify clients run 'ssh HOST rnotifyd --stdio' for an\n"
      "sshfs mount, the way sshfs runs sftp-server. As a shared daemon, run for example\n"
      "  rnotifyd --listen unix:/run/rnotifyd.sock --export /srv/share\n\n"
      "Exit status: 0 after a clean shutdown (SIGINT, SIGTERM, or the --stdio client left),\n"
      "1 on a runtime error (cannot listen, cannot watch), 2 on a usage error.",
      "rnotifyd"};
  app.set_version_flag("--version", "rnotifyd " RNOTIFY_VERSION);
  app.add_flag("--stdio", options.stdio, "Serve one client on stdin/stdout (for ssh); exits when it leaves");
  app.add_option("--listen", options.listen,
                 "Accept clients on unix:PATH or tcp:ADDRESS:PORT (loopback only until TLS)")
      ->type_name("ADDR");
  app.add_option("--export", options.exports,
                 "A directory clients may watch (repeatable); nothing outside the exports can be watched. "
                 "Default with --stdio only: / (the ssh user's own permissions apply)")
      ->type_name("DIR");
  app.add_option("--watcher", options.watcher,
                 "Watching backend: auto (default: inotify, exact order; as root also a fanotify mark on the same "
                 "directories that tells which process made each change, for clients that ask; fanotify filesystem "
                 "marks only where the inotify watch limit is reached), inotify (no attribution), or fanotify "
                 "(root only; one mark per filesystem, merges a process's unread events on one entry)")
      ->check(CLI::IsMember({"auto", "inotify", "fanotify"}))
      ->type_name("BACKEND");
  app.add_option("--log-level", options.logLevel, "debug, info, warn (default) or error; also RNOTIFY_LOG_LEVEL")
      ->type_name("LEVEL");
  app.add_option("--log-file", options.logFile, "Append logs to this file instead of stderr")->type_name("PATH");
  app.add_option("--max-watches-per-client", options.limits.maxWatchesPerClient, "Watch requests one client may hold")
      ->capture_default_str();
  app.add_option("--max-frame", options.limits.maxFrame, "Largest protocol frame accepted, in bytes")
      ->check(CLI::Range(rnotify::proto::kMinMaxFrame, 64u << 20))
      ->capture_default_str();
  app.add_option("--max-queued-bytes", options.limits.maxQueuedBytesPerClient,
                 "Bytes queued for a client that does not read before its events are dropped; it is then told "
                 "which watches lost events (Q_OVERFLOW) and re-reads them")
      ->check(CLI::Range(size_t{64} << 10, size_t{1} << 34))
      ->capture_default_str();
  app.add_option("--journal-events", options.limits.journalRecords,
                 "Events kept per client until it acknowledges them, so that a client whose connection broke "
                 "gets what it missed when it comes back (0: none; it then re-reads its watched trees)")
      ->capture_default_str();
  app.add_option("--journal-bytes", options.limits.journalBytes, "The same bound in bytes")
      ->capture_default_str();
  app.add_option("--resume-grace", options.limits.resumeGraceSeconds,
                 "Seconds the watches of a lost client connection are kept, waiting for it to come back")
      ->check(CLI::Range(0, 86400))
      ->capture_default_str();
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    int code = app.exit(e);
    return code == 0 ? kExitOk : kExitUsage;
  }
  if (!options.logLevel.empty()) {
    rnotify::log::Level level;
    if (!rnotify::log::parseLevel(options.logLevel, &level)) {
      std::fprintf(stderr, "rnotifyd: unknown log level '%s' (use debug, info, warn, error)\n",
                   options.logLevel.c_str());
      return kExitUsage;
    }
    rnotify::log::setLevel(level);
  }
  if (!options.logFile.empty() && !rnotify::log::setFile(options.logFile)) {
    std::fprintf(stderr, "rnotifyd: cannot open log file '%s'\n", options.logFile.c_str());
    return kExitUsage;
  }
  if (!options.stdio && options.listen.empty()) {
    std::fprintf(stderr, "rnotifyd: nothing to serve: give --stdio or --listen ADDR (see --help)\n");
    return kExitUsage;
  }
  if (!options.listen.empty() && options.exports.empty()) {
    std::fprintf(stderr, "rnotifyd: --listen needs at least one --export DIR that clients may watch\n");
    return kExitUsage;
  }
  try {
    return run(options);
  } catch (const std::exception& e) {
    rnotify::log::error("fatal: {}", e.what());
    return kExitFailure;
  }
}
