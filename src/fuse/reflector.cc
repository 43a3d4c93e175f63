#include "fuse/reflector.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/eventfd.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "common/log.h"
#include "event/event_names.h"
#include "mounts/mount_resolver.h"

namespace rnotify::fuse {
namespace {

using Clock = std::chrono::steady_clock;
// A MOVED_TO follows its MOVED_FROM at once in the server's stream; past this
// the move is taken as a move out of SOURCE (a delete).
constexpr auto kMovePairWait = std::chrono::milliseconds(50);
constexpr auto kSourceCheckInterval = std::chrono::seconds(1);
constexpr size_t kMaxClosedEarly = 4096;

std::string joinPath(const std::string& base, const std::string& rel, const std::string& name) {
  std::string out = base;
  if (!rel.empty()) out += "/" + rel;
  if (!name.empty()) out += "/" + name;
  return out;
}

}  // namespace

Reflector::Reflector(std::unique_ptr<Client> client, Paths paths, InodeTable& table, ReflectionGate& gate,
                     fuse_session* session)
    : client_(std::move(client)), paths_(std::move(paths)), table_(table), gate_(gate), session_(session) {
  wake_ = UniqueFd(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
}

Reflector::~Reflector() { stop(); }

void Reflector::start(std::function<void(const std::string&)> lost, std::function<void(const std::string&)> failed) {
  lost_ = std::move(lost);
  failed_ = std::move(failed);
  thread_ = std::thread([this] {
    // An exception must not end the process from this thread with the view
    // still mounted: it is told, and the view is unmounted in order.
    try {
      run();
    } catch (const std::exception& e) {
      client_.reset();
      finished_ = true;
      try {
        if (failed_) failed_(e.what());
      } catch (...) {
        // Out of memory again: the shutdown was asked for before the log.
      }
    }
  });
}

bool Reflector::stopWithin(std::chrono::milliseconds wait) {
  stopping_ = true;
  uint64_t one = 1;
  if (wake_ && ::write(wake_.get(), &one, sizeof one) < 0) log::debug("waking the reflector: {}", std::strerror(errno));
  auto until = Clock::now() + wait;
  while (thread_.joinable() && !finished_ && Clock::now() < until)
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  if (!thread_.joinable() || !finished_) return !thread_.joinable();
  thread_.join();
  return true;
}

void Reflector::detachSession() {
  std::lock_guard lock(sessionMutex_);
  session_ = nullptr;
}

void Reflector::notifyInode(fuse_ino_t ino, off_t offset, off_t length) {
  std::lock_guard lock(sessionMutex_);
  if (session_) fuse_lowlevel_notify_inval_inode(session_, ino, offset, length);
}

void Reflector::notifyEntry(fuse_ino_t parent, const std::string& name) {
  std::lock_guard lock(sessionMutex_);
  if (session_) fuse_lowlevel_notify_inval_entry(session_, parent, name.c_str(), name.size());
}

void Reflector::stop() {
  if (!stopWithin(std::chrono::milliseconds(0)) && thread_.joinable()) thread_.join();
}

void Reflector::run() {
  // Signals are for the session loop's thread; this one only reflects.
  sigset_t all;
  sigfillset(&all);
  pthread_sigmask(SIG_BLOCK, &all, nullptr);
  gate_.setReflector(::gettid());
  nextSourceCheck_ = Clock::now() + kSourceCheckInterval;
  while (!stopping_) {
    int timeoutMs =
        static_cast<int>(std::chrono::duration_cast<std::chrono::milliseconds>(kSourceCheckInterval).count());
    if (pendingMove_) {
      auto left = std::chrono::duration_cast<std::chrono::milliseconds>(pendingMove_->due - Clock::now()).count();
      timeoutMs = static_cast<int>(std::max<long>(0, left));
    }
    pollfd fds[2] = {{client_->fd(), POLLIN, 0}, {wake_.get(), POLLIN, 0}};
    int ready = ::poll(fds, 2, timeoutMs);
    if (ready < 0 && errno != EINTR) {
      log::error("waiting for events: {}", std::strerror(errno));
      break;
    }
    if (stopping_) break;
    // Drain what is queued; each event is reflected before the next is read.
    while (!stopping_) {
      ClientEvent event;
      auto got = client_->next(&event, 0);
      if (!got) {
        if (got.error().code == EINTR) continue;
        log::error("reading events from the client core: {}", got.error().message);
        break;
      }
      if (*got == 0) break;
      handle(event);
    }
    if (pendingMove_ && Clock::now() >= pendingMove_->due) {
      PendingMove move = std::move(*pendingMove_);
      pendingMove_.reset();
      reflectDelete(move.rel, move.event.name, move.event.mask & IN_ISDIR);
    }
    if (Clock::now() >= nextSourceCheck_) {
      nextSourceCheck_ = Clock::now() + kSourceCheckInterval;
      if (!checkSourceAlive()) break;
    }
  }
  client_.reset();  // ends the agent's ssh, in this thread that owned it
  finished_ = true;
}

bool Reflector::checkSourceAlive() {
  std::string why;
  struct stat st;
  if (::stat(paths_.source.c_str(), &st) != 0) {
    why = fmt::format("'{}' cannot be read any more ({})", paths_.source, std::strerror(errno));
  } else if (!paths_.allowLocal && MountResolver::fromProc().resolve(paths_.source).kind == MountKind::kLocal) {
    why = fmt::format("'{}' is no longer on a network mount (was it unmounted?)", paths_.source);
  }
  if (why.empty()) return true;
  if (lost_) lost_(why);
  return false;
}

bool Reflector::relativeDir(const ClientEvent& event, std::string* rel) const {
  const std::string& base = paths_.watchBase;
  if (event.path.compare(0, base.size(), base) != 0) return false;
  *rel = event.path.substr(base.size());
  while (!rel->empty() && rel->back() == '/') rel->pop_back();
  while (!rel->empty() && rel->front() == '/') rel->erase(0, 1);
  return true;
}

std::string Reflector::viewPath(const std::string& rel, const std::string& name) const {
  return joinPath(paths_.view, rel, name);
}

std::string Reflector::sourcePath(const std::string& rel, const std::string& name) const {
  return joinPath(paths_.source, rel, name);
}

void Reflector::handle(const ClientEvent& event) {
  if (event.mask & IN_Q_OVERFLOW) {
    // The client core re-reads and reports the differences after an
    // overflow; meanwhile the root's attributes and listing are refreshed.
    log::warn("the event stream overflowed; changes in between are replayed as the client core finds them");
    notifyInode(FUSE_ROOT_ID, 0, 0);
    return;
  }
  if (!(event.mask & IN_REMOTE)) {
    stats_.ignored++;
    return;
  }
  std::string rel;
  if (!relativeDir(event, &rel)) {
    log::debug("event outside SOURCE ignored: {} {}", event.path, event.name);
    return;
  }
  log::debug("remote event: {} '{}' '{}' cookie {}", eventNames(event.mask), rel, event.name, event.cookie);
  const bool isDir = event.mask & IN_ISDIR;
  if (pendingMove_) {
    PendingMove move = std::move(*pendingMove_);
    pendingMove_.reset();
    if ((event.mask & IN_MOVED_TO) && event.cookie == move.event.cookie) {
      reflectRename(move.rel, move.event.name, rel, event.name, isDir);
      return;
    }
    reflectDelete(move.rel, move.event.name, move.event.mask & IN_ISDIR);
  }
  if (event.name.empty()) {
    // Events on a directory itself come again, named, from its parent
    // (reflected there). Only the root's own end matters.
    if (rel.empty() && (event.mask & (IN_DELETE_SELF | IN_MOVE_SELF | IN_UNMOUNT)) && lost_) {
      lost_(fmt::format("'{}' was {} on the server", paths_.source,
                        (event.mask & IN_MOVE_SELF) ? "moved away" : "deleted or unmounted"));
      stopping_ = true;
    }
    return;
  }
  if (event.mask & IN_CREATE) reflectCreate(rel, event.name, isDir);
  if (event.mask & IN_MOVED_FROM) pendingMove_ = PendingMove{event, rel, Clock::now() + kMovePairWait};
  if (event.mask & IN_MOVED_TO) reflectCreate(rel, event.name, isDir);  // from outside SOURCE
  if (event.mask & IN_MODIFY) reflectModify(rel, event.name);
  if (event.mask & IN_ATTRIB) reflectAttrib(rel, event.name);
  if (event.mask & IN_CLOSE_WRITE) reflectCloseWrite(rel, event.name);
  if (event.mask & IN_DELETE) reflectDelete(rel, event.name, isDir);
}

void Reflector::count(int result, const char* call, const std::string& path) {
  stats_.reflected++;
  if (result == 0) return;
  stats_.failed++;
  log::debug("reflected {} '{}': {}", call, path, std::strerror(errno));
}

void Reflector::invalidateEntry(const std::string& rel, const std::string& name) {
  auto parent = table_.resolve(rel);
  if (!parent) return;  // the kernel holds nothing below an uncached directory
  notifyEntry(*parent, name);
  notifyInode(*parent, 0, 0);
}

int Reflector::retryPastNegative(const std::string& rel, const std::string& name, const std::function<int()>& call) {
  // The kernel usually holds the name positive (our lookups keep it), and the
  // call goes straight through. If a lookup by someone else left a negative
  // entry after SOURCE had moved on (or the kernel dropped the inode), ENOENT
  // comes from the kernel's cache: drop the entry and try once more.
  int r = call();  // -1 on failure (a descriptor, or 0, on success)
  if (r < 0 && errno == ENOENT) {
    invalidateName(rel, name);
    r = call();
  }
  return r;
}

void Reflector::invalidateName(const std::string& rel, const std::string& name) {
  // Harmless for a positive entry: the own lookup that follows returns the
  // same inode (InodeTable::lookupKnown), so watchers' marks stay valid.
  if (auto parent = table_.resolve(rel)) notifyEntry(*parent, name);
}

Reflector::GhostScope::GhostScope(Reflector& reflector, const std::string& rel, const std::string& name)
    : reflector_(reflector) {
  // A change to a file that the server has already removed again: the
  // kernel must still find something to open or touch.
  reflector_.gate_.expect(rel, name, ReflectionGate::Expect::kGhost, S_IFREG);
  // Only a negative entry is in the way; dropping a positive one would cost
  // every reflected write a lookup on SOURCE.
  auto parent = reflector_.table_.resolve(rel);
  if (parent && !reflector_.table_.child(*parent, name)) reflector_.invalidateName(rel, name);
}

Reflector::GhostScope::~GhostScope() { reflector_.gate_.clear(); }

void Reflector::invalidateInode(const std::string& rel, const std::string& name) {
  auto parent = table_.resolve(rel);
  if (!parent) return;
  if (auto child = table_.child(*parent, name)) notifyInode(*child, 0, 0);
}

void Reflector::reflectCreate(const std::string& rel, const std::string& name, bool isDir) {
  struct stat st;
  bool known = ::lstat(sourcePath(rel, name).c_str(), &st) == 0;
  mode_t type = isDir ? S_IFDIR : known ? (st.st_mode & S_IFMT) : S_IFREG;
  // The kernel may still hold a negative (or stale) entry: without this the
  // reflected mknod fails with EEXIST or is never sent.
  std::string path = viewPath(rel, name);
  gate_.expect(rel, name, ReflectionGate::Expect::kAbsent);
  invalidateEntry(rel, name);
  int r;
  if (type == S_IFDIR) {
    r = ::mkdir(path.c_str(), 0755);
  } else if (type == S_IFLNK) {
    char target[PATH_MAX + 1];
    ssize_t n = ::readlink(sourcePath(rel, name).c_str(), target, PATH_MAX);
    target[n > 0 ? n : 0] = '\0';
    r = ::symlink(n > 0 ? target : "?", path.c_str());
  } else {
    r = ::mknod(path.c_str(), S_IFREG | 0644, 0);
  }
  gate_.clear();
  count(r, "create", path);
}

void Reflector::reflectDelete(const std::string& rel, const std::string& name, bool isDir) {
  forgetClosedEarly(rel, name);
  std::string path = viewPath(rel, name);
  gate_.expect(rel, name, ReflectionGate::Expect::kGhost, isDir ? S_IFDIR : S_IFREG);
  int r = retryPastNegative(rel, name, [&] { return ::unlinkat(AT_FDCWD, path.c_str(), isDir ? AT_REMOVEDIR : 0); });
  gate_.clear();
  count(r, "delete", path);
  invalidateEntry(rel, name);
}

void Reflector::reflectRename(const std::string& fromRel, const std::string& fromName, const std::string& toRel,
                              const std::string& toName, bool isDir) {
  forgetClosedEarly(fromRel, fromName);
  forgetClosedEarly(toRel, toName);
  std::string from = viewPath(fromRel, fromName);
  std::string to = viewPath(toRel, toName);
  gate_.expect(fromRel, fromName, ReflectionGate::Expect::kGhost, isDir ? S_IFDIR : S_IFREG);
  gate_.expect(toRel, toName, ReflectionGate::Expect::kAbsent);
  invalidateEntry(toRel, toName);
  int r =
      retryPastNegative(fromRel, fromName, [&] { return ::renameat(AT_FDCWD, from.c_str(), AT_FDCWD, to.c_str()); });
  gate_.clear();
  count(r, "rename", from + " -> " + to);
  if (auto parent = table_.resolve(fromRel)) notifyInode(*parent, 0, 0);
  invalidateInode(toRel, toName);
}

void Reflector::reflectModify(const std::string& rel, const std::string& name) {
  invalidateInode(rel, name);
  std::string path = viewPath(rel, name);
  GhostScope ghost(*this, rel, name);
  // A negative entry left by another process's lookup would fail the open.
  UniqueFd fd(retryPastNegative(rel, name, [&] { return ::open(path.c_str(), O_WRONLY | O_CLOEXEC | O_NONBLOCK); }));
  if (!fd) return count(-1, "open for modify", path);
  // A truncate to the current size is a write of nothing: the kernel reports
  // IN_MODIFY, and our own setattr changes nothing on SOURCE.
  struct stat st;
  int r = ::fstat(fd.get(), &st) == 0 ? ::ftruncate(fd.get(), st.st_size) : -1;
  count(r, "modify", path);
  fd.reset();  // IN_CLOSE_WRITE
  if (closedEarly_.size() < kMaxClosedEarly) closedEarly_.insert(rel + "/" + name);
}

void Reflector::reflectCloseWrite(const std::string& rel, const std::string& name) {
  std::string path = viewPath(rel, name);
  if (closedEarly_.erase(rel + "/" + name) == 0) {
    GhostScope ghost(*this, rel, name);
    int fd = retryPastNegative(rel, name, [&] { return ::open(path.c_str(), O_WRONLY | O_CLOEXEC | O_NONBLOCK); });
    count(fd < 0 ? -1 : 0, "close-write", path);
    if (fd >= 0) ::close(fd);
  }
  invalidateInode(rel, name);
}

void Reflector::reflectAttrib(const std::string& rel, const std::string& name) {
  invalidateInode(rel, name);
  struct stat st;
  std::string path = viewPath(rel, name);
  if (::lstat(sourcePath(rel, name).c_str(), &st) != 0) {
    st = {};  // gone since: replay on a ghost, with the current time
    clock_gettime(CLOCK_REALTIME, &st.st_atim);
    st.st_mtim = st.st_atim;
  }
  GhostScope ghost(*this, rel, name);
  // Setting both times is what the kernel reports as IN_ATTRIB (utimes).
  struct timespec times[2] = {st.st_atim, st.st_mtim};
  count(retryPastNegative(rel, name, [&] { return ::utimensat(AT_FDCWD, path.c_str(), times, AT_SYMLINK_NOFOLLOW); }),
        "attrib", path);
}

void Reflector::forgetClosedEarly(const std::string& rel, const std::string& name) {
  closedEarly_.erase(rel + "/" + name);
}

}  // namespace rnotify::fuse
