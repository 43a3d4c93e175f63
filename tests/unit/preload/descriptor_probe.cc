// descriptor_probe: runs one inotify scenario in a directory and prints what
// every call returned. The test runs it with and without the shim
// (LD_PRELOAD) and compares the transcripts: real inotify is the oracle.
// Plain C library calls only; nothing of rnotify is linked in.
//
//   descriptor_probe SCENARIO DIR
//
// Waits are bounded (poll with a timeout): a missing event prints
// "timeout", it never hangs the test.
#include <dirent.h>
#include <fcntl.h>
#include <poll.h>
#include <sys/epoll.h>
#include <sys/inotify.h>
#include <sys/ioctl.h>
#include <sys/select.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <map>
#include <string>
#include <thread>
#include <vector>

namespace {

constexpr int kWaitMs = 5000;
std::string gDir;
std::string gSelf;

std::string errnoName(int e) {
  switch (e) {
    case EAGAIN:
      return "EAGAIN";
    case EINVAL:
      return "EINVAL";
    case EEXIST:
      return "EEXIST";
    case EBADF:
      return "EBADF";
    case ENOENT:
      return "ENOENT";
    case EINTR:
      return "EINTR";
    case ENOTDIR:
      return "ENOTDIR";
    default:
      return "errno " + std::to_string(e);
  }
}

void say(const std::string& line) {
  std::printf("%s\n", line.c_str());
  std::fflush(stdout);
}

std::string result(long r) { return r < 0 ? "-1 " + errnoName(errno) : std::to_string(r); }

std::string path(const std::string& rel) { return gDir + "/" + rel; }

void touch(const std::string& rel) {
  int fd = ::open(path(rel).c_str(), O_CREAT | O_WRONLY | O_CLOEXEC, 0644);
  if (fd >= 0) ::close(fd);
}

std::string fionread(int fd) {
  int bytes = -1;
  long r = ::ioctl(fd, FIONREAD, &bytes);
  return result(r) + " bytes=" + std::to_string(bytes);
}

bool waitReadable(int fd, int ms = kWaitMs) {
  pollfd p{fd, POLLIN, 0};
  return ::poll(&p, 1, ms) == 1;
}

std::string maskText(uint32_t mask) {
  static const std::pair<uint32_t, const char*> kNames[] = {{IN_ACCESS, "ACCESS"},
                                                            {IN_MODIFY, "MODIFY"},
                                                            {IN_ATTRIB, "ATTRIB"},
                                                            {IN_CLOSE_WRITE, "CLOSE_WRITE"},
                                                            {IN_CLOSE_NOWRITE, "CLOSE_NOWRITE"},
                                                            {IN_OPEN, "OPEN"},
                                                            {IN_MOVED_FROM, "MOVED_FROM"},
                                                            {IN_MOVED_TO, "MOVED_TO"},
                                                            {IN_CREATE, "CREATE"},
                                                            {IN_DELETE, "DELETE"},
                                                            {IN_DELETE_SELF, "DELETE_SELF"},
                                                            {IN_MOVE_SELF, "MOVE_SELF"},
                                                            {IN_UNMOUNT, "UNMOUNT"},
                                                            {IN_Q_OVERFLOW, "Q_OVERFLOW"},
                                                            {IN_IGNORED, "IGNORED"},
                                                            {IN_ISDIR, "ISDIR"}};
  std::string out;
  for (auto [bit, name] : kNames) {
    if (mask & bit) out += std::string(out.empty() ? "" : ",") + name;
    mask &= ~bit;
  }
  if (mask != 0) out += (out.empty() ? "" : ",") + std::to_string(mask);
  return out;
}

// Prints each record of a read: wd, mask, whether a cookie is set, name, and
// the record's length (the padding must be the kernel's).
void printRecords(const char* buf, ssize_t n) {
  for (ssize_t at = 0; at < n;) {
    const auto* e = reinterpret_cast<const inotify_event*>(buf + at);
    say("  event wd=" + std::to_string(e->wd) + " " + maskText(e->mask) + (e->cookie ? " cookie" : "") + " name='" +
        (e->len ? e->name : "") + "' len=" + std::to_string(e->len));
    at += static_cast<ssize_t>(sizeof(inotify_event) + e->len);
  }
}

// Reads (waiting up to kWaitMs each time) until `count` events came.
void readEvents(int fd, int count) {
  alignas(inotify_event) char buf[4096];
  int seen = 0;
  while (seen < count) {
    if (!waitReadable(fd)) {
      say("  timeout after " + std::to_string(seen) + " events");
      return;
    }
    ssize_t n = ::read(fd, buf, sizeof buf);
    if (n < 0) {
      if (errno == EAGAIN) continue;
      say("  read " + result(n));
      return;
    }
    printRecords(buf, n);
    for (ssize_t at = 0; at < n; ++seen) at += sizeof(inotify_event) + reinterpret_cast<inotify_event*>(buf + at)->len;
  }
}

int threads() {
  int n = 0;
  if (DIR* d = ::opendir("/proc/self/task")) {
    while (dirent* e = ::readdir(d)) n += e->d_name[0] != '.';
    ::closedir(d);
  }
  return n;
}

int openFds() {
  int n = 0;
  if (DIR* d = ::opendir("/proc/self/fd")) {
    while (dirent* e = ::readdir(d)) n += e->d_name[0] != '.';
    ::closedir(d);
  }
  return n - 1;  // the listing's own
}

// --- scenarios ------------------------------------------------------------

void smallBuffer() {
  int fd = inotify_init1(IN_NONBLOCK);
  say("add " + result(inotify_add_watch(fd, gDir.c_str(), IN_CREATE)));
  touch("a-name-of-twenty-one");
  say("readable " + std::to_string(waitReadable(fd)));
  say("FIONREAD " + fionread(fd));
  alignas(inotify_event) char buf[256];
  say("read 0 " + result(::read(fd, buf, 0)));
  say("read 15 " + result(::read(fd, buf, 15)));
  say("read 16 " + result(::read(fd, buf, 16)));
  say("read 47 " + result(::read(fd, buf, 47)));
  ssize_t n = ::read(fd, buf, 48);
  say("read 48 " + result(n));
  printRecords(buf, n);
  say("read again " + result(::read(fd, buf, sizeof buf)));
  say("FIONREAD " + fionread(fd));
  ::close(fd);
}

// Waits until FIONREAD shows at least `bytes` (a shim may deliver a batch
// record by record); bounded.
void waitBytes(int fd, int bytes) {
  for (int waited = 0; waited < kWaitMs; waited += 5) {
    int ready = 0;
    if (::ioctl(fd, FIONREAD, &ready) == 0 && ready >= bytes) return;
    ::poll(nullptr, 0, 5);
  }
}

void severalRecords() {
  int fd = inotify_init1(IN_NONBLOCK);
  inotify_add_watch(fd, gDir.c_str(), IN_CREATE);
  touch("one");
  touch("two");
  touch("three");
  waitBytes(fd, 96);
  // Three records of 32 bytes; a 70-byte buffer takes two, never a part.
  alignas(inotify_event) char buf[256];
  ssize_t n = ::read(fd, buf, 70);
  say("read 70 " + result(n));
  printRecords(buf, n);
  n = ::read(fd, buf, 70);
  say("read 70 " + result(n));
  printRecords(buf, n);
  // readv: each iovec is read on its own, as the kernel does for inotify.
  struct iovec small[2] = {{buf, 10}, {buf + 10, 100}};
  touch("four");
  waitReadable(fd);
  say("readv 10+100 " + result(::readv(fd, small, 2)));
  struct iovec fits[2] = {{buf, 32}, {buf + 32, 100}};
  n = ::readv(fd, fits, 2);
  say("readv 32+100 " + result(n));
  printRecords(buf, n);
  ::close(fd);
}

void nonblocking() {
  int fd = inotify_init1(0);
  inotify_add_watch(fd, gDir.c_str(), IN_CREATE | IN_DELETE);
  say("flags nonblock=" + std::to_string((::fcntl(fd, F_GETFL) & O_NONBLOCK) != 0));
  ::fcntl(fd, F_SETFL, ::fcntl(fd, F_GETFL) | O_NONBLOCK);
  say("flags nonblock=" + std::to_string((::fcntl(fd, F_GETFL) & O_NONBLOCK) != 0));
  char buf[256];
  say("read empty " + result(::read(fd, buf, sizeof buf)));
  ::fcntl(fd, F_SETFL, ::fcntl(fd, F_GETFL) & ~O_NONBLOCK);
  // Blocking: the read waits for the create another thread makes.
  std::thread maker([] { touch("made-later"); });
  ssize_t n = ::read(fd, buf, sizeof buf);
  maker.join();
  say("blocking read " + result(n));
  printRecords(buf, n);
  int cloexec = ::fcntl(fd, F_GETFD) & FD_CLOEXEC;
  say("cloexec=" + std::to_string(cloexec != 0));
  ::close(fd);
  int fd2 = inotify_init1(IN_CLOEXEC | IN_NONBLOCK);
  say("init1(CLOEXEC|NONBLOCK) cloexec=" + std::to_string((::fcntl(fd2, F_GETFD) & FD_CLOEXEC) != 0) +
      " nonblock=" + std::to_string((::fcntl(fd2, F_GETFL) & O_NONBLOCK) != 0));
  ::close(fd2);
  say("init1(bad flag) " + result(inotify_init1(0x1)));
}

void readiness() {
  int fd = inotify_init1(IN_NONBLOCK);
  inotify_add_watch(fd, gDir.c_str(), IN_CREATE);
  int ep = ::epoll_create1(EPOLL_CLOEXEC);
  epoll_event ev{};
  ev.events = EPOLLIN;
  ev.data.fd = fd;
  ::epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev);
  epoll_event out[4];
  pollfd p{fd, POLLIN, 0};
  fd_set set;
  timeval zero{0, 0};
  auto selectNow = [&] {
    FD_ZERO(&set);
    FD_SET(fd, &set);
    return ::select(fd + 1, &set, nullptr, nullptr, &zero);
  };
  // Each call in its own statement: the operands of + are unsequenced.
  auto state = [&](const std::string& when, int epollTimeout) {
    int e = ::epoll_wait(ep, out, 4, epollTimeout);
    std::string line = when + ": epoll " + result(e);
    if (e > 0) line += " in=" + std::to_string((out[0].events & EPOLLIN) != 0);
    int pr = ::poll(&p, 1, 0);
    line += " poll " + result(pr) + " in=" + std::to_string((p.revents & POLLIN) != 0);
    int sr = selectNow();
    say(line + " select " + result(sr));
  };
  state("before", 0);
  touch("x");
  state("after create", kWaitMs);
  char buf[256];
  ssize_t n = ::read(fd, buf, sizeof buf);
  printRecords(buf, n);
  state("after read", 0);
  // Edge-triggered: one wake-up per arrival.
  epoll_event et{};
  et.events = EPOLLIN | EPOLLET;
  et.data.fd = fd;
  ::epoll_ctl(ep, EPOLL_CTL_MOD, fd, &et);
  touch("y");
  int first = ::epoll_wait(ep, out, 4, kWaitMs);
  int again = ::epoll_wait(ep, out, 4, 0);
  say("edge: first " + result(first) + " again " + result(again));
  n = ::read(fd, buf, sizeof buf);
  printRecords(buf, n);
  ::close(ep);
  ::close(fd);
}

void sameWd() {
  int fd = inotify_init1(IN_NONBLOCK);
  ::mkdir(path("sub").c_str(), 0755);
  ::mkdir(path("other").c_str(), 0755);
  int a = inotify_add_watch(fd, path("sub").c_str(), IN_CREATE);
  int b = inotify_add_watch(fd, path("sub").c_str(), IN_DELETE);
  int c = inotify_add_watch(fd, path("sub/.").c_str(), IN_CREATE);
  int d = inotify_add_watch(fd, path("other").c_str(), IN_CREATE);
  ::symlink("sub", path("link").c_str());
  int e = inotify_add_watch(fd, path("link").c_str(), IN_CREATE);
  say("wds " + result(a) + " " + result(b) + " " + result(c) + " " + result(d) + " " + result(e));
  say("missing " + result(inotify_add_watch(fd, path("nope").c_str(), IN_CREATE)));
  say("onlydir on a file " +
      result((touch("file"), inotify_add_watch(fd, path("file").c_str(), IN_CREATE | IN_ONLYDIR))));
  say("no events " + result(inotify_add_watch(fd, path("sub").c_str(), 0)));
  say("bad fd " + result(inotify_add_watch(-1, path("sub").c_str(), IN_CREATE)));
  // The last mask without IN_MASK_ADD replaced the others: only CREATE.
  touch("sub/f");
  ::unlink(path("sub/f").c_str());
  touch("sub/g");
  readEvents(fd, 2);
  ::close(fd);
}

void maskAddAndCreate() {
  int fd = inotify_init1(IN_NONBLOCK);
  int a = inotify_add_watch(fd, gDir.c_str(), IN_CREATE);
  int b = inotify_add_watch(fd, gDir.c_str(), IN_DELETE | IN_MASK_ADD);
  say("mask_add " + result(a) + " " + result(b));
  touch("f");
  ::unlink(path("f").c_str());
  readEvents(fd, 2);
  say("mask_create existing " + result(inotify_add_watch(fd, gDir.c_str(), IN_CREATE | IN_MASK_CREATE)));
  say("mask_create+mask_add " + result(inotify_add_watch(fd, gDir.c_str(), IN_CREATE | IN_MASK_CREATE | IN_MASK_ADD)));
  ::mkdir(path("fresh").c_str(), 0755);
  say("mask_create new " + result(inotify_add_watch(fd, path("fresh").c_str(), IN_CREATE | IN_MASK_CREATE)));
  readEvents(fd, 1);  // CREATE,ISDIR fresh
  touch("fresh/x");
  readEvents(fd, 1);
  ::close(fd);
}

void removeWatch() {
  int fd = inotify_init1(IN_NONBLOCK);
  ::mkdir(path("gone").c_str(), 0755);
  int a = inotify_add_watch(fd, gDir.c_str(), IN_CREATE);
  int b = inotify_add_watch(fd, path("gone").c_str(), IN_CREATE | IN_DELETE_SELF);
  say("rm " + result(inotify_rm_watch(fd, a)));
  readEvents(fd, 1);
  say("rm again " + result(inotify_rm_watch(fd, a)));
  say("rm unknown " + result(inotify_rm_watch(fd, 999)));
  touch("after-rm");
  ::rmdir(path("gone").c_str());
  readEvents(fd, 2);  // DELETE_SELF, IGNORED on b
  say("rm ended " + result(inotify_rm_watch(fd, b)));
  char buf[256];
  say("nothing left " + result(::read(fd, buf, sizeof buf)));
  ::close(fd);
}

void oneshot() {
  int fd = inotify_init1(IN_NONBLOCK);
  inotify_add_watch(fd, gDir.c_str(), IN_CREATE | IN_ONESHOT);
  touch("first");
  readEvents(fd, 2);  // CREATE, IGNORED
  touch("second");
  char buf[256];
  pollfd p{fd, POLLIN, 0};
  std::string polled = result(::poll(&p, 1, 200));
  say("after oneshot poll " + polled + " read " + result(::read(fd, buf, sizeof buf)));
  ::close(fd);
}

void dupAndClose() {
  int fd = inotify_init1(IN_NONBLOCK);
  inotify_add_watch(fd, gDir.c_str(), IN_CREATE);
  int copy = ::dup(fd);
  int high = ::fcntl(fd, F_DUPFD_CLOEXEC, 100);
  int to = ::dup2(fd, 50);
  touch("seen-through-dups");
  waitReadable(copy);
  say("FIONREAD on dup " + fionread(copy));
  say("close original " + result(::close(fd)));
  char buf[256];
  ssize_t n = ::read(high, buf, sizeof buf);
  say("read through F_DUPFD " + result(n));
  printRecords(buf, n);
  say("read dup2 copy " + result(::read(to, buf, sizeof buf)));
  say("add watch through dup " + result(inotify_add_watch(copy, gDir.c_str(), IN_DELETE | IN_MASK_ADD)));
  ::unlink(path("seen-through-dups").c_str());
  waitReadable(to);
  n = ::read(to, buf, sizeof buf);
  printRecords(buf, n);
  // dup2 onto a shim descriptor replaces it: it reads /dev/null now.
  int null = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
  say("dup2 over " + result(::dup2(null, to) == to));
  say("read replaced " + result(::read(to, buf, sizeof buf)));
  ::close(copy);
  ::close(high);
  ::close(to);
  // A closed number reused by another file reads that file.
  int fd2 = inotify_init1(0);
  ::close(fd2);
  say("read closed " + result(::read(fd2, buf, sizeof buf)));
  std::vector<int> opened;
  for (int i = 0; i < 8 && (opened.empty() || opened.back() != fd2); ++i) {
    opened.push_back(::open("/dev/null", O_RDONLY | O_CLOEXEC));
  }
  say("number reused " + std::to_string(opened.back() == fd2) + " read " + result(::read(fd2, buf, sizeof buf)));
  for (int o : opened) ::close(o);
  ::close(null);
}

// The child of a fork: creates its own inotify descriptor and reads an
// event from it, and (when `inherited`) reads one from the parent's.
void forkAndExec() {
  int fd = inotify_init1(0);  // no CLOEXEC: the exec'd child inherits it
  inotify_add_watch(fd, gDir.c_str(), IN_CREATE);
  touch("before-fork");
  readEvents(fd, 1);
  pid_t child = ::fork();
  if (child == 0) {
    int own = inotify_init1(IN_NONBLOCK);
    ::mkdir(path("child").c_str(), 0755);
    inotify_add_watch(own, path("child").c_str(), IN_CREATE);
    touch("child/made-by-child");
    readEvents(own, 1);
    pollfd p{fd, POLLIN, 0};
    std::string polled = result(::poll(&p, 1, 0) >= 0);
    say("child: inherited descriptor polls " + polled + " closes " + result(::close(fd)));
    std::fflush(stdout);
    ::execl(gSelf.c_str(), gSelf.c_str(), "exec-child", gDir.c_str(), nullptr);
    _exit(127);
  }
  int status = 0;
  ::waitpid(child, &status, 0);
  say("child exited " + std::to_string(WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status)));
  touch("after-fork");
  readEvents(fd, 3);  // the directories of the child and of the exec, and this file
  ::close(fd);
}

void execChild() {
  // In a fresh image (LD_PRELOAD inherited): inotify works from scratch.
  int fd = inotify_init1(IN_NONBLOCK);
  ::mkdir(path("exec").c_str(), 0755);
  inotify_add_watch(fd, path("exec").c_str(), IN_CREATE);
  touch("exec/made-after-exec");
  readEvents(fd, 1);
  ::close(fd);
  std::exit(7);
}

void inheritedRead() {
  // A forked child reading the parent's descriptor: both share one queue.
  int fd = inotify_init1(IN_NONBLOCK);
  inotify_add_watch(fd, gDir.c_str(), IN_CREATE);
  pid_t child = ::fork();
  if (child == 0) {
    touch("for-the-child");
    readEvents(fd, 1);
    _exit(0);
  }
  int status = 0;
  ::waitpid(child, &status, 0);
  say("child exited " + std::to_string(WEXITSTATUS(status)));
  ::close(fd);
}

void resources() {
  // Nothing opened or started before inotify is used, and nothing beyond
  // the descriptor for local watches.
  say("before: fds " + std::to_string(openFds()) + " threads " + std::to_string(threads()));
  char buf[16];
  int null = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
  ::read(null, buf, sizeof buf);
  ::close(null);
  say("after other calls: fds " + std::to_string(openFds()) + " threads " + std::to_string(threads()));
  int fd = inotify_init1(IN_NONBLOCK);
  inotify_add_watch(fd, gDir.c_str(), IN_CREATE);
  say("local watch: threads " + std::to_string(threads()));
  ::close(fd);
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 3) {
    std::fprintf(stderr, "usage: descriptor_probe SCENARIO DIR\n");
    return 2;
  }
  gSelf = argv[0];
  gDir = argv[2];
  static const std::map<std::string, std::function<void()>> kScenarios = {
      {"small-buffer", smallBuffer}, {"several-records", severalRecords},
      {"nonblocking", nonblocking},  {"readiness", readiness},
      {"same-wd", sameWd},           {"mask-add-create", maskAddAndCreate},
      {"remove-watch", removeWatch}, {"oneshot", oneshot},
      {"dup-close", dupAndClose},    {"fork-exec", forkAndExec},
      {"exec-child", execChild},     {"inherited-read", inheritedRead},
      {"resources", resources}};
  auto it = kScenarios.find(argv[1]);
  if (it == kScenarios.end()) {
    std::fprintf(stderr, "unknown scenario %s\n", argv[1]);
    return 2;
  }
  it->second();
  return 0;
}
