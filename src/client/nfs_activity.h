// NfsActivity: whether this host may have an operation on an NFS mount whose
// local report is still to come. The NFS client makes a change on the server
// first and reports it to local watches only when the reply is back, so the
// server's copy (through rnotifyd) can arrive before the local report, and
// echo matching would deliver this host's own change as another's. Dedup
// holds a server report for its twin when busy() says so (dedup.h).
//
// The NFS client's counters for the mount, in /proc/self/mountstats: per
// operation, how many completed; per transport, requests sent and replies
// received. busy() is true when, since the watch's previous look, an
// operation that changes something (WRITE, OPEN, SETATTR, CREATE, REMOVE,
// RENAME, LINK, ...) completed, or a request was sent and more are
// unanswered than ever before (a retransmitted request leaves one counted
// as unanswered for good); and for `window` after a look that saw that (the look made for one
// batch of reports may count the operation of the next batch's). Each look
// becomes the next one's baseline. A look costs one read of mountstats, made
// once per batch of server reports, not per event.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>

namespace rnotify {

class NfsActivity {
 public:
  explicit NfsActivity(std::string mountstats = "/proc/self/mountstats") : path_(std::move(mountstats)) {}

  struct Counters {
    uint64_t sends = 0;    // RPC requests sent on the mount's transport
    uint64_t recvs = 0;    // replies received
    uint64_t changes = 0;  // completed operations that change something
  };
  // The counters of the NFS mount at mountPoint (as in /proc/self/mountinfo,
  // unescaped) in a mountstats text; nullopt when it is not listed.
  static std::optional<Counters> parse(std::string_view text, std::string_view mountPoint);

  // A look for watch wd on its mount. Unknown (not an NFS mount, mountstats
  // unreadable): false, so that nothing waits.
  using Clock = std::chrono::steady_clock;
  bool busy(int wd, const std::string& mountPoint, Clock::time_point now, Clock::duration window);
  // The same with counters read already (read(): one look at a mount serves
  // all its watches in a batch of reports).
  bool busy(int wd, const std::optional<Counters>& counters, Clock::time_point now, Clock::duration window);
  std::optional<Counters> read(const std::string& mountPoint) const;
  // The first look, when the watch gets its server: its baseline.
  void start(int wd, const std::string& mountPoint) { busy(wd, mountPoint, Clock::time_point{}, {}); }
  void forget(int wd) { last_.erase(wd); }

 private:
  struct Look {
    Counters counters;
    Clock::time_point sawActivity;  // the last look that found the host busy
    uint64_t leastUnanswered = 0;   // the least sends - recvs seen
  };
  std::string path_;
  std::unordered_map<int, Look> last_;
};

}  // namespace rnotify
