// rnotifyd: the agent that runs where the files are. It watches what clients
// ask for and streams the events back. Started by ssh (--stdio, like
// sftp-server) or as a daemon listening on a unix socket or loopback TCP.
#include <signal.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <asio.hpp>
#include <climits>
#include <cstdio>
#include <functional>
#include <memory>
#include <optional>
#include <vector>

#include "common/log.h"
#include "server/agent_handoff.h"
#include "server/descriptor_limit.h"
#include "server/listener.h"
#include "server/server.h"
#include "server/tls_config.h"
#include "server/transport.h"

namespace {

// Exit codes, stable for scripts.
constexpr int kExitOk = 0;
constexpr int kExitFailure = 1;
constexpr int kExitUsage = 2;

struct Options {
  bool stdio = false;
  bool noDaemon = false;
  std::string agentDaemon;  // internal: the per-user daemon behind --stdio agents, on this socket
  int idleExitSeconds = 10;
  std::vector<std::string> passthrough;  // the options, for the daemon an agent starts
  std::vector<std::string> listen;
  std::vector<std::string> exports;
  std::string logLevel;
  std::string logFile;
  std::string watcher = "auto";
  rnotify::ServerLimits limits;
  rnotify::TlsOptions tls;
  bool maxClientsGiven = false;  // --max-clients was on the command line (else its default is fitted quietly)
};

// --stdio: hand the connection to this user's daemon, so that the watches
// outlive a broken ssh connection (see server/agent_handoff.h). Returns the
// exit code, or nothing when this process should serve the client itself.
std::optional<int> handOff(const Options& options) {
  using namespace rnotify;
  auto dir = agentRuntimeDir();
  std::string why;
  if (dir) {
    std::string socket = agentSocketPath(*dir, options.passthrough);
    char exe[PATH_MAX] = "";
    ssize_t n = ::readlink("/proc/self/exe", exe, sizeof exe - 1);
    std::vector<std::string> argv{std::string(exe, n > 0 ? static_cast<size_t>(n) : 0), "--agent-daemon", socket};
    argv.insert(argv.end(), options.passthrough.begin(), options.passthrough.end());
    if (options.logFile.empty()) {
      argv.push_back("--log-file");
      argv.push_back(socket.substr(0, socket.size() - 5) + ".log");
    }
    auto code = handOffToDaemon(socket, argv);
    if (code) return *code;
    why = code.error().message;
  } else {
    why = dir.error().message;
  }
  log::warn(
      "serving this connection alone, without its daemon ({}): a broken connection will make the client "
      "re-read its watched trees instead of resuming",
      why);
  return std::nullopt;
}

// Raises the descriptor limit and keeps --max-clients within it (see
// server/descriptor_limit.h): a default that does not fit is lowered, with a
// warning; a number the administrator asked for and that does not fit stops
// the start, since it cannot be honoured. False if rnotifyd cannot start.
bool fitDescriptors(const Options& options, rnotify::ServerLimits* limits) {
  using namespace rnotify;
  auto budget = fitClientsToDescriptors(limits->maxClients, options.maxClientsGiven);
  if (!budget) {
    log::error("cannot start: {}", budget.error().message);
    return false;
  }
  if (budget->fitted) {
    // Only a --listen daemon serves many clients; an ssh agent's stderr goes to
    // the client, which has nothing to do about it.
    const log::Level level = options.listen.empty() ? log::Level::kInfo : log::Level::kWarn;
    if (log::level() <= level) {
      log::write(level, fmt::format("the descriptor limit is {} (hard limit {}): serving at most {} clients, not {} "
                                    "(--max-clients; a client may hold {} descriptors, {} are kept for the daemon)",
                                    budget->limit, budget->hardLimit, budget->maxClients, limits->maxClients,
                                    kDescriptorsPerClient, kReservedDescriptors));
    }
  } else {
    log::info(
        "descriptor limit {} (hard limit {}): room for --max-clients {} ({} descriptors each, {} kept for the "
        "daemon)",
        budget->limit, budget->hardLimit, budget->maxClients, kDescriptorsPerClient, kReservedDescriptors);
  }
  limits->maxClients = budget->maxClients;
  return true;
}

int run(const Options& options) {
  using namespace rnotify;
  if (options.stdio && !options.noDaemon && options.listen.empty()) {
    if (auto code = handOff(options)) return *code;
  }
  ServerLimits limits = options.limits;
  if (!fitDescriptors(options, &limits)) return kExitFailure;
  std::vector<std::string> exportPaths = options.exports;
  if (exportPaths.empty()) exportPaths.push_back("/");  // --stdio only: the kernel's permissions confine the ssh user
  auto exports = ExportRoots::create(exportPaths);
  if (!exports) {
    log::error("{}", exports.error().message);
    return kExitFailure;
  }
  for (size_t i = 0; i < exports->roots().size(); ++i) {
    const std::string& name = exports->names()[i];
    log::debug("export {}{}", exports->roots()[i], name.empty() ? std::string(" (no name)") : " as '" + name + "'");
  }

  asio::io_context io(1);
  const WatcherKind kind = options.watcher == "inotify"    ? WatcherKind::kInotify
                           : options.watcher == "fanotify" ? WatcherKind::kFanotify
                                                           : WatcherKind::kAuto;
  auto server = Server::create(io, std::move(*exports), limits, kind);
  if (!server) {
    log::error("cannot start: {}", server.error().message);
    return kExitFailure;
  }
  log::info("watching with {}", (*server)->backendName());
  // A client can come back only to a server that outlives its connection.
  (*server)->setResumable(!options.listen.empty() || !options.agentDaemon.empty());
  std::unique_ptr<AgentAcceptor> agents;
  if (!options.agentDaemon.empty()) {
    auto acceptor = AgentAcceptor::start(io, **server, options.agentDaemon);
    if (!acceptor) {
      // A daemon started by a race with another agent: the other one serves.
      log::info("{}", acceptor.error().message);
      return acceptor.error().code == EEXIST ? kExitOk : kExitFailure;
    }
    agents = std::move(*acceptor);
    log::info("serving ssh agents at {} (pid {})", options.agentDaemon, ::getpid());
  }

  std::vector<std::unique_ptr<Listener>> listeners;
  for (const std::string& text : options.listen) {
    auto address = parseListenAddress(text);
    if (!address) {
      log::error("{}", address.error().message);
      return kExitUsage;
    }
    auto listener = Listener::start(io, **server, *address, options.tls);
    if (!listener) {
      log::error("{}", listener.error().message);
      return kExitFailure;
    }
    log::info("listening on {}", (*listener)->describe());
    listeners.push_back(std::move(*listener));
  }

  auto stop = [&] {
    for (auto& l : listeners) l->stop();
    if (agents) agents->stop();
    (*server)->shutdown();
  };
  // The agents' daemon leaves once it has served nobody for a while.
  asio::steady_timer idle(io);
  size_t acceptedBefore = 0;
  std::function<void()> checkIdle = [&] {
    idle.expires_after(std::chrono::seconds(options.idleExitSeconds));
    idle.async_wait([&](std::error_code ec) {
      if (ec) return;
      if ((*server)->sessionCount() == 0 && agents->accepted() == acceptedBefore) {
        log::info("no client for {} s; exiting", options.idleExitSeconds);
        stop();
        io.stop();  // nothing is left to flush; the signal handler would keep the loop alive
        return;
      }
      acceptedBefore = agents->accepted();
      checkIdle();
    });
  };
  if (agents) checkIdle();
  asio::signal_set signals(io, SIGINT, SIGTERM);
  signals.async_wait([&](std::error_code ec, int signal) {
    if (ec) return;
    log::info("signal {} received, shutting down", signal);
    idle.cancel();
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

int rnotifydMain(int argc, char** argv) {
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
  app.add_flag("--stdio", options.stdio,
               "Serve one client on stdin/stdout (for ssh); exits when it leaves. The watches live in a per-user "
               "daemon that this starts when needed, so that a client whose ssh connection broke can resume "
               "where it stopped (socket in $XDG_RUNTIME_DIR/rnotify or /tmp/rnotify-UID; "
               "RNOTIFY_RUNTIME_DIR overrides)");
  app.add_flag("--no-daemon", options.noDaemon,
               "With --stdio: serve in this process only (a broken connection then ends the watches; the "
               "client re-reads its trees when it reconnects)");
  app.add_option("--agent-daemon", options.agentDaemon, "Internal: the daemon behind --stdio agents")->group("");
  app.add_option("--idle-exit", options.idleExitSeconds,
                 "Seconds the daemon behind --stdio agents stays without clients before it exits")
      ->check(CLI::Range(1, 86400))
      ->capture_default_str();
  app.add_option("--listen", options.listen,
                 "Accept clients on unix:PATH, tls:ADDRESS:PORT (TLS 1.3; see --tls-*) or tcp:ADDRESS:PORT (plain, "
                 "unauthenticated: loopback addresses only unless --insecure-tcp)")
      ->type_name("ADDR");
  rnotify::addTlsOptions(app, options.tls);
  app.add_option("--export", options.exports,
                 "A directory clients may watch (repeatable); nothing outside the exports can be watched. "
                 "NAME=DIR names it as NFS and SMB clients know it (the NFS export path's first component, "
                 "the SMB share), so that their [[server]] entries need no remote_root; by default the "
                 "directory's own name. Default with --stdio only: / (the ssh user's own permissions apply)")
      ->type_name("[NAME=]DIR");
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
  app.add_option("--max-clients", options.limits.maxClients,
                 "Clients served at once (connections and sessions waiting for a comeback); more are refused")
      ->check(CLI::Range(1u, 1000000u))
      ->capture_default_str();
  // What one client or user can make the daemon hold (docs/SECURITY.md, Limits).
  app.add_option("--max-clients-per-user", options.limits.maxClientsPerUser,
                 "Connections one user (or one address, for unauthenticated TCP) may hold at once; more are "
                 "refused (EUSERS)")
      ->check(CLI::Range(1u, 1000000u))
      ->capture_default_str();
  app.add_option("--idle-unwatched-timeout", options.limits.idleUnwatchedTimeoutSeconds,
                 "Seconds a client may stay connected without holding any watch before it is closed "
                 "(ETIMEDOUT; 0: never). Clients with watches are never closed for being quiet")
      ->check(CLI::Range(0, 86400))
      ->capture_default_str();
  app.add_option("--max-parked-per-user", options.limits.maxParkedPerUser,
                 "Sessions of one user kept waiting for their client after a lost connection; past it that "
                 "user's oldest waiting session ends (its client re-reads its trees when it comes back)")
      ->check(CLI::Range(0u, 1000000u))
      ->capture_default_str();
  app.add_option("--max-parked", options.limits.maxParked,
                 "Sessions of all users kept waiting for their clients; past it a lost connection ends its "
                 "watches at once")
      ->check(CLI::Range(0u, 1000000u))
      ->capture_default_str();
  app.add_option("--journal-bytes-total", options.limits.journalBytesTotal,
                 "Bytes of events all clients' journals (see --journal-bytes) may hold together; past it a "
                 "client's oldest events go (a resume from before them re-reads that watch)")
      ->check(CLI::Range(size_t{0}, size_t{1} << 40))
      ->capture_default_str();
  app.add_option("--max-queued-snapshots", options.limits.maxQueuedSnapshots,
                 "Listing requests (resyncs) of one client waiting while another is listed; more get EBUSY")
      ->check(CLI::Range(0u, 65536u))
      ->capture_default_str();
  app.add_option("--max-snapshot-depth", options.limits.maxSnapshotDepth,
                 "Directory levels a listing enters (each is an open descriptor while it is listed); deeper "
                 "directories are left out and the answer says how many")
      ->check(CLI::Range(1u, 4096u))
      ->capture_default_str();
  app.add_option("--auth-failures", options.limits.authFailuresBeforeDelay,
                 "Failed token authentications from one address within a minute after which its further "
                 "attempts are refused (EAGAIN) for 1 s, then 2 s, 4 s ... up to 10 min (0: no throttling)")
      ->check(CLI::Range(0u, 1000000u))
      ->capture_default_str();
  app.add_option("--handshake-timeout", options.limits.handshakeTimeoutSeconds,
                 "Seconds a new connection has to complete the handshake")
      ->check(CLI::Range(1, 3600))
      ->capture_default_str();
  app.add_option("--frame-timeout", options.limits.frameTimeoutSeconds,
                 "Seconds a client has to finish sending a frame it has begun (against slow senders)")
      ->check(CLI::Range(1, 3600))
      ->capture_default_str();
  app.add_option("--idle-timeout", options.limits.idleTimeoutSeconds,
                 "Seconds without any frame from a client before it is dropped (0: never; rnotify clients "
                 "answer the server's pings only when the application reads events)")
      ->check(CLI::Range(0, 86400))
      ->capture_default_str();
  app.add_option("--keepalive-timeout", options.limits.keepaliveTimeoutSeconds,
                 "Seconds without any frame from a client that promised keepalives (rnotify clients ping every "
                 "2 s by default, 10 s at most) before its connection is taken as lost: its watches wait for it "
                 "as after a broken connection (0: never)")
      ->check(CLI::Range(0, 86400))
      ->capture_default_str();
  app.add_option("--journal-events", options.limits.journalRecords,
                 "Events kept per client until it acknowledges them, so that a client whose connection broke "
                 "gets what it missed when it comes back (0: none; it then re-reads its watched trees)")
      ->capture_default_str();
  app.add_option("--journal-bytes", options.limits.journalBytes, "The same bound in bytes")->capture_default_str();
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
  options.maxClientsGiven = app.count("--max-clients") > 0;
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
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a != "--stdio" && a != "--no-daemon") options.passthrough.push_back(a);
  }
  if (!options.agentDaemon.empty() && options.stdio) {
    std::fprintf(stderr, "rnotifyd: --agent-daemon is internal and excludes --stdio\n");
    return kExitUsage;
  }
  if (!options.stdio && options.listen.empty() && options.agentDaemon.empty()) {
    std::fprintf(stderr, "rnotifyd: nothing to serve: give --stdio or --listen ADDR (see --help)\n");
    return kExitUsage;
  }
  if (auto tls = rnotify::checkTlsOptions(options.tls, options.listen); !tls) {
    std::fprintf(stderr, "rnotifyd: %s\n", tls.error().message.c_str());
    return kExitUsage;
  }
  if (!options.listen.empty() && options.exports.empty()) {
    std::fprintf(stderr, "rnotifyd: --listen needs at least one --export DIR that clients may watch\n");
    return kExitUsage;
  }
  return run(options);
}

}  // namespace

int main(int argc, char** argv) {
  try {
    return rnotifydMain(argc, argv);
  } catch (const std::exception& e) {
    rnotify::log::error("fatal: {}", e.what());
  } catch (...) {
    rnotify::log::error("fatal: an unknown exception");
  }
  return kExitFailure;
}
