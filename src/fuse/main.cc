// rnotify-fuse: a live view of a network mount. It mounts a FUSE filesystem
// that passes every operation through to SOURCE, subscribes to the server's
// events for SOURCE through the client core, and replays each remote change on
// the view so that every program watching the view with inotify or fanotify
// (static and Go binaries included) gets the kernel's own events.
//
// Threads: the main thread runs libfuse's multithreaded session loop (its
// workers run the handlers); the reflector thread owns the client core and
// makes the reflected system calls. Reflecting needs the multithreaded loop:
// the reflected call's request is served by a worker while the reflector
// waits in the system call.
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <atomic>
#include <climits>
#include <cstdlib>
#include <exception>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "client/client.h"
#include "common/log.h"
#include "event/event.h"
#include "fuse/exit_codes.h"
#include "fuse/help_text.h"
#include "fuse/inode_table.h"
#include "fuse/passthrough.h"
#include "fuse/reflection_gate.h"
#include "fuse/reflector.h"
#include "fuse/source_check.h"
#include "fuse/startup.h"
#include "mounts/mount_resolver.h"

namespace {

using namespace rnotify;
using namespace rnotify::fuse;

struct Options {
  std::string source;
  std::string mountPoint;
  bool foreground = false;
  std::vector<std::string> fuseOptions;
  std::string logLevel;
  std::string logFile;
  double cacheTimeout = 1.0;
  unsigned maxThreads = 10;
  bool allowLocal = false;
};

// What the remote side must report; read-side events are never reflected.
constexpr uint32_t kSubscribedMask = IN_CREATE | IN_DELETE | IN_MOVED_FROM | IN_MOVED_TO | IN_MODIFY | IN_CLOSE_WRITE |
                                     IN_ATTRIB | IN_DELETE_SELF | IN_MOVE_SELF;

std::string canonical(const std::string& path) {
  char real[PATH_MAX];
  return ::realpath(path.c_str(), real) ? std::string(real) : std::string();
}

bool below(const std::string& path, const std::string& dir) {
  return path == dir || (path.size() > dir.size() && path.compare(0, dir.size(), dir) == 0 && path[dir.size()] == '/');
}

// 0 or an exit code, after saying what is wrong with SOURCE or MOUNTPOINT.
int checkPaths(Options& options) {
  std::string source = canonical(options.source);
  struct stat st;
  if (source.empty() || ::stat(source.c_str(), &st) != 0) {
    log::error("SOURCE '{}' cannot be opened: {}", options.source, std::strerror(errno));
    return kExitBadSource;
  }
  if (!S_ISDIR(st.st_mode)) {
    log::error("SOURCE '{}' is not a directory; give the directory whose changes you want to see", options.source);
    return kExitBadSource;
  }
  ResolvedPath resolved = MountResolver::fromProc().resolve(source);
  if (resolved.kind == MountKind::kLocal && !options.allowLocal) {
    log::error(
        "SOURCE '{}' is on a local filesystem ({} on {}), not a network mount: programs already get its "
        "events from the kernel. Give a directory on an sshfs, NFS or SMB mount.",
        options.source, resolved.mount.fsType.empty() ? "?" : resolved.mount.fsType,
        resolved.mount.mountPoint.empty() ? "/" : resolved.mount.mountPoint);
    return kExitBadSource;
  }
  std::string mountPoint = canonical(options.mountPoint);
  if (mountPoint.empty() || ::stat(mountPoint.c_str(), &st) != 0 || !S_ISDIR(st.st_mode)) {
    log::error("MOUNTPOINT '{}' is not an existing directory; create it first (mkdir -p '{}')", options.mountPoint,
               options.mountPoint);
    return kExitMountFailed;
  }
  if (below(mountPoint, source) || below(source, mountPoint)) {
    log::error("MOUNTPOINT '{}' and SOURCE '{}' must not contain each other", mountPoint, source);
    return kExitUsage;
  }
  log::info("SOURCE '{}' is a {} mount ({} on {})", source, mountKindName(resolved.kind), resolved.mount.source,
            resolved.mount.mountPoint);
  if (resolved.kind == MountKind::kSshfs && sshfsCachesListings(resolved.mount.mountPoint).value_or(false)) {
    log::warn(
        "sshfs on '{}' runs with its directory cache: listings and attributes seen through the view may lag "
        "the events by up to 20 s. Mount it with -o dir_cache=no (see rnotify-fuse --help, NOTES)",
        resolved.mount.mountPoint);
  }
  options.source = source;
  options.mountPoint = mountPoint;
  return 0;
}

// The libfuse mount options: the user's, plus ours.
std::string mountOptions(const Options& options) {
  // default_permissions: the kernel checks access against the mode bits, so
  // that allow_other does not open the daemon's rights to every user.
  std::string out = "default_permissions,subtype=rnotify";
  if (options.source.find(',') == std::string::npos) out += ",fsname=" + options.source;
  for (const std::string& o : options.fuseOptions) out += "," + o;
  return out;
}

std::atomic<int> gExitCode{kExitOk};

// Shutdown requests: a byte from the signal handler ('S'), the reflector when
// SOURCE is lost ('S') or the main thread when the session loop ended by
// itself ('E'). Never closed, so that a late signal cannot write into a
// descriptor reused by another open.
int gShutdownPipe[2] = {-1, -1};

void requestShutdown(char why) {
  int saved = errno;
  if (::write(gShutdownPipe[1], &why, 1) < 0) {
    // Full (repeated signals) or not there: a request is already pending.
  }
  errno = saved;
}

void onShutdownSignal(int) { requestShutdown('S'); }

// Our handlers instead of fuse_set_signal_handlers(), whose SIGTERM ends the
// session loop at once: the reflector must be stopped first, while the
// workers still serve its system calls on the view, and before the session
// is unmounted (which closes /dev/fuse under its invalidations).
bool installSignalHandlers() {
  if (gShutdownPipe[0] < 0 && ::pipe2(gShutdownPipe, O_CLOEXEC | O_NONBLOCK) != 0) return false;
  // The reading end blocks; the writing end never does.
  int flags = ::fcntl(gShutdownPipe[0], F_GETFL);
  if (flags < 0 || ::fcntl(gShutdownPipe[0], F_SETFL, flags & ~O_NONBLOCK) != 0) return false;
  struct sigaction sa {};
  sa.sa_handler = onShutdownSignal;
  sigemptyset(&sa.sa_mask);
  for (int sig : {SIGTERM, SIGINT, SIGHUP}) {
    if (::sigaction(sig, &sa, nullptr) != 0) return false;
  }
  sa.sa_handler = SIG_IGN;
  return ::sigaction(SIGPIPE, &sa, nullptr) == 0;
}

void restoreSignalHandlers() {
  struct sigaction sa {};
  sa.sa_handler = SIG_DFL;
  sigemptyset(&sa.sa_mask);
  for (int sig : {SIGTERM, SIGINT, SIGHUP, SIGPIPE}) ::sigaction(sig, &sa, nullptr);
}

// The shutdown thread: on a request, stops the reflector (the loop still
// serves), then ends the session loop. Returns at once if the loop ended by
// itself, or if it does while the reflector is being stopped (the main
// thread then stops it, see serve()).
void coordinateShutdown(Reflector& reflector, fuse_session* session, pthread_t loopThread,
                        const std::atomic<bool>& loopDone) {
  sigset_t all;
  sigfillset(&all);
  pthread_sigmask(SIG_BLOCK, &all, nullptr);
  char why = 0;
  while (::read(gShutdownPipe[0], &why, 1) < 0 && errno == EINTR) {
  }
  if (why != 'S') return;
  log::info("stopping: the reflector first, then the session loop");
  while (!reflector.stopWithin(std::chrono::milliseconds(100))) {
    if (loopDone) return;
  }
  fuse_session_exit(session);
  // The loop's thread waits in sem_wait(), which a signal interrupts; repeat
  // in case it arrived just before the wait began.
  while (!loopDone) {
    // SIGTERM has a handler here (onShutdownSignal): it interrupts, it ends nothing.
    pthread_kill(loopThread, SIGTERM);  // NOLINT(bugprone-bad-signal-to-kill-thread)
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
}

int serve(Options& options, Startup& startup) {
  UniqueFd rootFd(::open(options.source.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC));
  struct stat rootStat;
  if (!rootFd || ::fstat(rootFd.get(), &rootStat) != 0) {
    log::error("cannot open SOURCE '{}': {}", options.source, std::strerror(errno));
    return kExitBadSource;
  }

  auto client = Client::create();
  if (!client) {
    log::error("cannot start the client core: {}", client.error().message);
    return kExitSubscribeFailed;
  }
  auto wd = (*client)->addWatch(options.source, kSubscribedMask, RNOTIFY_RECURSIVE);
  if (!wd) {
    log::error("cannot subscribe to changes of '{}': {}", options.source, wd.error().message);
    return kExitSubscribeFailed;
  }
  log::info("events for '{}' come from: {}", options.source, (*client)->watchSource(*wd));

  InodeTable table(std::move(rootFd), rootStat);
  ReflectionGate gate;
  View view{&table, &gate, options.cacheTimeout};
  fuse_lowlevel_ops ops = passthroughOperations();

  std::string fuseOpts = mountOptions(options);
  std::vector<std::string> argStrings{"rnotify-fuse", "-o", fuseOpts};
  if (log::level() == log::Level::kDebug && std::getenv("RNOTIFY_FUSE_DEBUG")) argStrings.push_back("-d");
  std::vector<char*> argv;
  argv.reserve(argStrings.size());
  for (auto& s : argStrings) argv.push_back(s.data());
  fuse_args args = FUSE_ARGS_INIT(static_cast<int>(argv.size()), argv.data());
  fuse_session* session = fuse_session_new(&args, &ops, sizeof ops, &view);
  fuse_opt_free_args(&args);  // what libfuse copied into args while parsing
  if (session == nullptr) {
    log::error("invalid FUSE options '{}' (see --help for -o)", fuseOpts);
    return kExitUsage;
  }
  if (!installSignalHandlers() || fuse_session_mount(session, options.mountPoint.c_str()) != 0) {
    log::error("cannot mount the view on '{}' (is it already a mount point, or is /dev/fuse missing?)",
               options.mountPoint);
    restoreSignalHandlers();
    fuse_session_destroy(session);
    return kExitMountFailed;
  }

  Reflector::Paths paths{options.source, options.mountPoint, options.source + "/", options.allowLocal};
  Reflector reflector(std::move(*client), paths, table, gate, session);
  reflector.start(
      [](const std::string& why) {
        log::error("{}; unmounting the view", why);
        gExitCode = kExitSourceLost;
        requestShutdown('S');
      },
      [](const std::string& what) {
        gExitCode = kExitInternal;  // first: logging allocates, and may fail
        requestShutdown('S');
        log::error("reflecting events failed: {}; unmounting the view", what);
      });
  std::atomic<bool> loopDone{false};
  std::thread shutdown(coordinateShutdown, std::ref(reflector), session, pthread_self(), std::cref(loopDone));
  // Whatever ends this scope (an exception included) lets the coordinator go
  // and joins it: a joinable thread destroyed would end the process at once.
  struct JoinCoordinator {
    std::thread& thread;
    std::atomic<bool>& done;
    ~JoinCoordinator() {
      done = true;
      requestShutdown('E');
      if (thread.joinable()) thread.join();
    }
  };
  std::exception_ptr failure;  // rethrown once the view is taken down as usual
  {
    JoinCoordinator join{shutdown, loopDone};
    try {
      log::info("view of '{}' mounted on '{}'", options.source, options.mountPoint);
      startup.done(kExitOk);

      fuse_loop_config* loop = fuse_loop_cfg_create();
      fuse_loop_cfg_set_max_threads(loop, options.maxThreads);
      fuse_loop_cfg_set_clone_fd(loop, 0);
      int loopResult = fuse_session_loop_mt(session, loop);
      fuse_loop_cfg_destroy(loop);
      if (loopResult != 0 && gExitCode == kExitOk) log::debug("session loop ended with {}", loopResult);
    } catch (...) {
      failure = std::current_exception();
    }
  }

  // Normally the reflector has stopped already. If the loop ended by itself
  // (the view unmounted from outside, a device error), it may still be
  // inside a system call on the view that no worker will serve: unmounting
  // aborts it, and detaching first keeps its invalidations off the
  // descriptor that the unmount closes.
  if (!reflector.stopWithin(std::chrono::milliseconds(1000))) {
    reflector.detachSession();
    fuse_session_unmount(session);
    reflector.stop();
  } else {
    fuse_session_unmount(session);
  }
  const ReflectorStats& stats = reflector.stats();
  log::info("view unmounted; {} reflected system calls ({} failed), {} local events ignored", stats.reflected.load(),
            stats.failed.load(), stats.ignored.load());
  restoreSignalHandlers();
  fuse_session_destroy(session);
  if (failure) std::rethrow_exception(failure);
  return gExitCode;
}

int fuseMain(int argc, char** argv) {
  log::setProgram("rnotify-fuse");
  Options options;
  CLI::App app{helpDescription(), "rnotify-fuse"};
  app.footer(helpFooter());
  app.set_version_flag("--version", "rnotify-fuse " RNOTIFY_VERSION);
  app.add_option("SOURCE", options.source, "Directory on a network mount (sshfs, NFS, SMB) to view")->required();
  app.add_option("MOUNTPOINT", options.mountPoint, "Empty directory where the view appears")->required();
  app.add_flag("-f,--foreground", options.foreground,
               "Stay in the foreground (default: go to the background once the view is ready)");
  app.add_option("-o", options.fuseOptions,
                 "FUSE mount option, repeatable or comma-separated: allow_other, allow_root, ro, ...")
      ->delimiter(',')
      ->type_name("OPT[,OPT...]");
  app.add_option("--cache-timeout", options.cacheTimeout,
                 "Seconds the kernel may trust names and attributes (remote changes invalidate them at once)")
      ->check(CLI::Range(0.0, 3600.0));
  app.add_option("--threads", options.maxThreads, "Most FUSE worker threads")->check(CLI::Range(2, 256));
  app.add_option("--log-level", options.logLevel, "debug, info, warn (default), error or off")
      ->check(CLI::IsMember({"debug", "info", "warn", "warning", "error", "off"}));
  app.add_option("--log-file", options.logFile, "Append log lines to this file (in the background, stderr is closed)");
  app.add_flag("--allow-local", options.allowLocal,
               "Accept a SOURCE on a local filesystem (for tests and benchmarks; no remote events exist there)");
  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForVersion& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    app.exit(e);
    return kExitUsage;
  }
  if (!options.logLevel.empty()) {
    log::Level level;
    if (log::parseLevel(options.logLevel, &level)) log::setLevel(level);
  } else if (!std::getenv("RNOTIFY_LOG_LEVEL")) {
    log::setLevel(log::Level::kWarn);
  }
  if (!options.logFile.empty() && !log::setFile(options.logFile)) {
    log::error("cannot open the log file '{}': {}", options.logFile, std::strerror(errno));
    return kExitUsage;
  }
  if (int code = checkPaths(options); code != 0) return code;
  Startup startup(options.foreground);
  startup.detach();
  int code = kExitInternal;
  try {
    code = serve(options, startup);
  } catch (const std::exception& e) {
    // While the view is set up, the waiting parent is told 6; after that,
    // serve() has taken the view down first, and 6 is the exit code.
    log::error("fatal: {}", e.what());
  }
  startup.done(code);
  return code;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    return fuseMain(argc, argv);
  } catch (const std::exception& e) {
    log::error("fatal: {}", e.what());
  } catch (...) {
    log::error("fatal: an unknown exception");
  }
  return kExitInternal;
}
