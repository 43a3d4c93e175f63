// AcceptBackoff: what a listener does when accept() fails.
//
// accept() fails for the whole listener when the process or the system is
// out of descriptors (EMFILE, ENFILE) or of memory (ENOBUFS, ENOMEM). The
// connection stays in the backlog, so the socket stays readable: retrying at
// once spins (a core busy, a log line per attempt) and serves nobody. So a
// listener stops accepting and tries again after a delay, 10 ms doubling up
// to 1 s and back to 10 ms after an accept succeeds, and the episode is
// logged once when it starts (with the descriptors open and the limit) and
// once when it ends (how many connections were refused or waited).
//
// Waiting alone would leave the clients in the backlog hanging without an
// answer until descriptors come back, perhaps for hours (idle clients hold
// them). So, out of descriptors, the listener uses the classic spare
// descriptor: it keeps one descriptor open for nothing; then it closes it,
// accepts a pending connection into the freed slot, sends it a Fatal that
// says why (the client reports "too many clients" instead of timing out),
// closes it and opens the spare again. Each pending connection costs a few
// system calls once, not a busy loop; the delay still applies between rounds.
// Per-connection errors (a client that reset its connection before it was
// accepted: ECONNABORTED, EPROTO, ...) are retried at once.
#pragma once

#include <asio.hpp>
#include <chrono>
#include <functional>
#include <string>
#include <system_error>

#include "common/unique_fd.h"

namespace rnotify {

class AcceptBackoff {
 public:
  // what: the listener, for logs ("unix:/run/rnotifyd.sock").
  AcceptBackoff(asio::io_context& io, std::string what);

  // accept() on listenFd failed with ec (not operation_aborted): calls
  // acceptAgain now or after the delay.
  void failed(std::error_code ec, int listenFd, std::function<void()> acceptAgain);
  // An accept succeeded: ends an episode.
  void succeeded();
  // The listener stops: no retry is called after this.
  void cancel();
  void setDescription(std::string what) { what_ = std::move(what); }

  static constexpr std::chrono::milliseconds kFirstDelay{10};
  static constexpr std::chrono::milliseconds kMaxDelay{1000};

 private:
  // Closes the spare descriptor and refuses the pending connections through
  // the freed slot; returns how many.
  size_t refusePending(int listenFd);
  void startEpisode(std::error_code ec);

  asio::steady_timer timer_;
  std::string what_;
  UniqueFd spare_;
  bool inEpisode_ = false;
  std::chrono::milliseconds delay_ = kFirstDelay;
  std::chrono::steady_clock::time_point episodeStart_;
  size_t refused_ = 0;   // connections refused through the spare descriptor, this episode
  size_t deferred_ = 0;  // accepts put off by the delay, this episode
};

}  // namespace rnotify
