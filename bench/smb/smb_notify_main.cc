// bench_smb_notify: how long after a change on an SMB server does an SmbNotify
// watch (SMB2 CHANGE_NOTIFY through libsmbclient) report it? Each sample is
// one file created directly in the exported directory on the server (one
// mknodat); the same change is awaited at once by raw inotify on that
// directory (the floor: the server's own kernel) and by the SmbNotify watch on
// the share, so both latencies come from the same change in the same run.
// The server is a throw-away smbd on 127.0.0.1 (tests/testbed/samba.h), so the
// figure is the protocol and library path, not a network. Needs root.
// Not a CTest test: a benchmark has no pass/fail.
#include <fcntl.h>
#include <poll.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <set>
#include <stdexcept>
#include <string>
#include <vector>

#include "common/unique_fd.h"
#include "latency_stats.h"
#include "samba.h"
#include "smb/smb_notify.h"

namespace {

using namespace rnotify;
using rnotify::bench::LatencySummary;

int64_t nowNs() {
  timespec ts{};
  ::clock_gettime(CLOCK_MONOTONIC, &ts);
  return int64_t{ts.tv_sec} * 1000000000 + ts.tv_nsec;
}

struct Options {
  size_t samples = 2000;
  size_t warmup = 100;
  size_t block = 100;  // files removed (untimed) after this many samples
  int timeoutMs = 5000;
};

// Reads inotify's CREATE names into `seen`.
void drainInotify(int fd, std::set<std::string>* seen) {
  alignas(struct inotify_event) char buffer[64 * 1024];
  ssize_t len = ::read(fd, buffer, sizeof buffer);
  for (char* at = buffer; len > 0 && at < buffer + len;) {
    auto* ev = reinterpret_cast<struct inotify_event*>(at);
    if ((ev->mask & IN_CREATE) && ev->len > 0) seen->insert(ev->name);
    at += sizeof(struct inotify_event) + ev->len;
  }
}

class Bench {
 public:
  explicit Bench(Options o) : o_(o) {
    exportFd_.reset(::open(samba_.exportDir().c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    inotify_.reset(::inotify_init1(IN_NONBLOCK | IN_CLOEXEC));
    if (!exportFd_ || !inotify_ || ::inotify_add_watch(inotify_.get(), samba_.exportDir().c_str(), IN_CREATE) < 0) {
      throw std::runtime_error("cannot watch " + samba_.exportDir() + ": " + std::strerror(errno));
    }
    auto w = SmbNotify::start(SmbLocation{"127.0.0.1", samba_.port(), testbed::Samba::kShare, ""},
                              SmbCredentials{testbed::Samba::kUser, samba_.password(), ""}, IN_CREATE, false);
    if (!w.ok()) throw std::runtime_error(w.error().message);
    smb_ = std::move(*w);
  }

  void run() {
    for (size_t i = 0; i < o_.warmup; ++i) sample(false);
    removeBlock();
    while (inotifyNs_.size() + lostInotify_ < o_.samples) {
      sample(true);
      if (created_.size() >= o_.block) {
        removeBlock();
        std::fputc('.', stderr);
      }
    }
    removeBlock();
    std::fputc('\n', stderr);
  }

  std::vector<LatencySummary> summaries() const {
    return {bench::summarize("inotify", inotifyNs_, lostInotify_), bench::summarize("smb2-notify", smbNs_, lostSmb_)};
  }
  size_t overflows() const { return overflows_; }

 private:
  // Returns whether the SMB watch reported the change.
  bool sample(bool timed, int timeoutMs = 0) {
    std::string name = "s" + std::to_string(next_++);
    const int64_t start = nowNs();
    if (::mknodat(exportFd_.get(), name.c_str(), S_IFREG | 0644, 0) != 0) {
      throw std::runtime_error("mknod " + name + ": " + std::strerror(errno));
    }
    const int64_t deadline = start + int64_t{timeoutMs > 0 ? timeoutMs : o_.timeoutMs} * 1000000;
    int64_t inotifyAt = 0, smbAt = 0;
    while ((inotifyAt == 0 || smbAt == 0) && nowNs() < deadline) {
      pollfd fds[2] = {{inotify_.get(), POLLIN, 0}, {smb_->fd(), POLLIN, 0}};
      int left = static_cast<int>((deadline - nowNs()) / 1000000) + 1;
      if (::poll(fds, 2, left) <= 0) continue;
      if (fds[0].revents != 0) {
        drainInotify(inotify_.get(), &inotifySeen_);
        if (inotifyAt == 0 && inotifySeen_.count(name) != 0) inotifyAt = nowNs();
      }
      if (fds[1].revents != 0) {
        for (const Event& e : smb_->take()) {
          if (e.mask & IN_Q_OVERFLOW) ++overflows_;
          if ((e.mask & IN_CREATE) && e.name == name && smbAt == 0) smbAt = nowNs();
        }
        if (smb_->failed()) throw std::runtime_error(smb_->error().message);
      }
    }
    created_.push_back(name);
    if (!timed) return smbAt != 0;
    if (inotifyAt != 0) {
      inotifyNs_.push_back(inotifyAt - start);
    } else {
      ++lostInotify_;
    }
    if (smbAt != 0) {
      smbNs_.push_back(smbAt - start);
    } else {
      ++lostSmb_;
    }
    return smbAt != 0;
  }

  // Untimed: remove the block's files. The server still sends their REMOVED
  // records (the completion filter for IN_CREATE covers all name changes), and
  // a hundred of them overflow libsmbclient's 1000-byte response: the watch
  // reports IN_Q_OVERFLOW and asks again. Untimed changes follow until one is
  // reported, so that every timed change finds a request pending.
  void removeBlock() {
    for (const auto& n : created_) ::unlinkat(exportFd_.get(), n.c_str(), 0);
    created_.clear();
    inotifySeen_.clear();
    for (int i = 0; i < 50 && !sample(false, 200); ++i) {
    }
  }

  Options o_;
  testbed::Samba samba_;
  UniqueFd exportFd_, inotify_;
  std::unique_ptr<SmbNotify> smb_;
  std::vector<std::string> created_;
  std::set<std::string> inotifySeen_;
  std::vector<int64_t> inotifyNs_, smbNs_;
  size_t lostInotify_ = 0, lostSmb_ = 0, overflows_ = 0;
  uint64_t next_ = 0;
};

}  // namespace

int main(int argc, char** argv) {
  Options o;
  CLI::App app{
      "bench_smb_notify: file created on an SMB server -> SmbNotify event latency, beside raw inotify on the "
      "exported directory (same change, same run). Starts a throw-away smbd on 127.0.0.1; needs root."};
  app.add_option("--samples", o.samples, "Timed changes")->capture_default_str();
  app.add_option("--warmup", o.warmup, "Untimed changes first")->capture_default_str();
  app.add_option("--block", o.block, "Files removed (untimed) after this many changes")->capture_default_str();
  app.add_option("--timeout-ms", o.timeoutMs, "A change not reported by then counts as lost")->capture_default_str();
  CLI11_PARSE(app, argc, argv);
  if (std::string why = testbed::Samba::missing(); !why.empty()) {
    std::fprintf(stderr, "bench_smb_notify: %s\n", why.c_str());
    return 2;
  }
  try {
    Bench bench(o);
    bench.run();
    bench::printLatencyTable(stdout, bench.summaries());
    std::printf("SMB2 overflows (STATUS_NOTIFY_ENUM_DIR, from the untimed removals between blocks): %zu\n",
                bench.overflows());
  } catch (const std::exception& e) {
    std::fprintf(stderr, "bench_smb_notify: %s\n", e.what());
    return 1;
  }
  return 0;
}
