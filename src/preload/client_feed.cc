#include "preload/client_feed.h"

#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <sys/eventfd.h>

#include <cerrno>
#include <cstring>
#include <string_view>

#include "common/log.h"

namespace rnotify::preload {
namespace {

// initial-exec: the library is loaded at start-up (LD_PRELOAD), and the
// check sits on inotify_init1's path.
__attribute__((tls_model("initial-exec"))) thread_local bool tInsideCore = false;

// Marks the calls into the client core on this thread.
class CoreCall {
 public:
  CoreCall() : outer_(tInsideCore) { tInsideCore = true; }
  ~CoreCall() { tInsideCore = outer_; }
  CoreCall(const CoreCall&) = delete;
  CoreCall& operator=(const CoreCall&) = delete;

 private:
  bool outer_;
};

}  // namespace

bool insideClientCore() { return tInsideCore; }

std::unique_ptr<ClientFeed> ClientFeed::start(std::mutex& lock, Deliver deliver, std::string* why) {
  UniqueFd stop(::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC));
  if (!stop) {
    *why = std::string("eventfd: ") + std::strerror(errno);
    return nullptr;
  }
  rnotify_t* handle = nullptr;
  {
    CoreCall call;
    handle = rnotify_init(RNOTIFY_CLOEXEC);
  }
  if (handle == nullptr) {
    *why = std::string("cannot start the rnotify client: ") + std::strerror(errno);
    return nullptr;
  }
  std::unique_ptr<ClientFeed> feed(new ClientFeed(lock, std::move(deliver), handle, std::move(stop)));
  // The thread must never take the program's signals: they belong to the
  // program's own threads, whose handlers may not expect ours.
  sigset_t all, old;
  ::sigfillset(&all);
  ::pthread_sigmask(SIG_SETMASK, &all, &old);
  try {
    feed->thread_ = std::thread([f = feed.get()] { f->run(); });
  } catch (...) {
    ::pthread_sigmask(SIG_SETMASK, &old, nullptr);
    *why = "cannot start the event thread";
    CoreCall call;
    rnotify_close(handle);
    feed->handle_ = nullptr;
    return nullptr;
  }
  ::pthread_sigmask(SIG_SETMASK, &old, nullptr);
  ::pthread_setname_np(feed->thread_.native_handle(), "rnotify-feed");
  return feed;
}

ClientFeed::ClientFeed(std::mutex& lock, Deliver deliver, rnotify_t* handle, UniqueFd stop)
    : lock_(lock), deliver_(std::move(deliver)), handle_(handle), stop_(std::move(stop)) {}

ClientFeed::~ClientFeed() {
  if (thread_.joinable()) {
    uint64_t one = 1;
    [[maybe_unused]] ssize_t n = ::write(stop_.get(), &one, sizeof one);
    thread_.join();
  }
  if (handle_ != nullptr) {
    CoreCall call;
    rnotify_close(handle_);
  }
}

void ClientFeed::abandon() {
  // std::thread's destructor would terminate on a joinable thread; the
  // thread does not exist in this process, so its handle is simply dropped.
  if (thread_.joinable()) new (&thread_) std::thread();
  handle_ = nullptr;
  stop_.release();
}

int ClientFeed::addWatch(const char* path, uint32_t mask, unsigned flags, std::string* why) {
  CoreCall call;
  int wd = rnotify_add_watch(handle_, path, mask, flags);
  if (wd < 0) {
    int code = errno;
    *why = rnotify_last_error(handle_);
    errno = code;
  }
  return wd;
}

void ClientFeed::removeWatch(int clientWd) {
  CoreCall call;
  rnotify_rm_watch(handle_, clientWd);
}

const char* ClientFeed::watchSource(int clientWd) const { return rnotify_watch_source(handle_, clientWd); }

bool ClientFeed::waitForServer(std::unique_lock<std::mutex>& held, int clientWd, std::chrono::milliseconds bound) {
  constexpr std::string_view kConnecting = RNOTIFY_SOURCE_CONNECTING;
  auto settled = [&] {
    if (stopped_) return true;
    const char* source = watchSource(clientWd);
    return source == nullptr || std::string_view(source).rfind(kConnecting, 0) != 0;
  };
  return ran_.wait_for(held, bound, settled);
}

void ClientFeed::run() {
  runCore();
  // Nobody runs the core from now on: a watch waiting for its server would
  // wait in vain.
  {
    std::lock_guard guard(lock_);
    stopped_ = true;
  }
  ran_.notify_all();
}

void ClientFeed::runCore() {
  CoreCall call;  // this thread runs nothing else
  pollfd fds[2] = {{rnotify_fd(handle_), POLLIN, 0}, {stop_.get(), POLLIN, 0}};
  int failures = 0;
  for (;;) {
    if (::poll(fds, 2, -1) < 0 && errno != EINTR) return;
    if (fds[1].revents != 0) return;
    std::lock_guard guard(lock_);
    rnotify_event event;
    for (;;) {
      int got = rnotify_next(handle_, &event, 0);
      if (got == 1) {
        failures = 0;
        deliver_(event);
        continue;
      }
      if (got < 0 && errno != EINTR && ++failures == 100) {
        // A core that keeps failing would keep this thread spinning; the
        // program keeps its local events.
        log::write(log::Level::kError, std::string("the rnotify client keeps failing; remote events stop here: ") +
                                           rnotify_last_error(handle_));
        return;
      }
      break;
    }
    ran_.notify_all();
  }
}

}  // namespace rnotify::preload
