// The hostile client of the adversarial run: requests as nobody, every
// frame that comes back judged (adversary_actors.h).
#include <sys/inotify.h>

#include <chrono>
#include <filesystem>
#include <map>
#include <optional>

#include "adversary_actors.h"

namespace rnotify::adversary {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

std::vector<std::string> forbiddenPaths(const Scene& s) {
  const std::string secretName = fs::path(s.secret).filename();
  return {s.secret,
          s.secret + "/decoy/d0",
          s.secret + "/zz9",
          s.outside + "/d0",
          s.outside + "/zz9",
          s.base,
          s.base + "/zz9",
          s.rootOnly + "/d0",
          s.rootOnly + "/zz9",
          s.exportDir + "/../" + secretName + "/decoy",
          s.exportDir + "/../zz9",
          s.hostile + "/zl/d0",
          s.hostile + "/zl/zz9",
          "/",
          "/etc",
          "/root",
          "/root/zz9",
          "/zz9",
          "/proc/self/root" + s.secret + "/decoy",
          "/proc/self/root/zz9"};
}

namespace {

class HostileClient {
 public:
  HostileClient(const Scene& scene, Shared& shared, uint64_t seed, uint64_t ratePerSecond)
      : scene_(scene),
        shared_(shared),
        oracle_(scene),
        rng_(seed ^ 0xc11e47),
        forbidden_(forbiddenPaths(scene)),
        rate_(ratePerSecond) {}

  int run() {
    const auto start = Clock::now();
    while (!shared_.stop) {
      if (!client_ && !connect()) return 2;
      auto due = start + std::chrono::microseconds(rate_ ? issued_ * 1000000 / rate_ : 0);
      while (pending_.size() < 4 && !shared_.stop && Clock::now() >= due) {
        issue();
        ++issued_;
        due = start + std::chrono::microseconds(rate_ ? issued_ * 1000000 / rate_ : 0);
      }
      if (!client_->pump(1, [&](proto::Message& m) { onFrame(m); })) {
        ++shared_.reconnects;
        client_.reset();
        pending_.clear();
        watches_.clear();
      }
    }
    return 0;
  }

 private:
  enum Kind { kWatch, kForbidden, kOdd, kSnapshot, kUnwatch };
  struct Pending {
    Kind kind;
    std::string path;
    std::string note;
    uint32_t watch = 0;  // of a Snapshot
  };

  bool connect() {
    auto c = RawClient::connect(scene_.socket, proto::kCapStat | proto::kCapResync | proto::kCapExports, 10000);
    if (!c) return false;
    client_.emplace(std::move(*c));
    return true;
  }

  void request(Kind kind, proto::Message message, const std::string& path, const std::string& note) {
    uint32_t id = client_->send(message);
    pending_[id] = Pending{kind, path, note, 0};
    if (auto* snapshot = std::get_if<proto::Snapshot>(&message)) pending_[id].watch = snapshot->watchId;
    ++shared_.requests;
    noteOp(shared_, "client", "request " + std::to_string(id) + " " + scene_.brief(note));
  }

  void watch(Kind kind, const std::string& path) {
    proto::Watch w;
    w.mask = IN_ALL_EVENTS;
    w.flags = (pick(rng_, 2) ? uint32_t{proto::kWatchRecursive} : 0u) |
              (pick(rng_, 2) ? uint32_t{proto::kWatchStat} : 0u) |
              (pick(rng_, 2) ? uint32_t{proto::kWatchExportPath} : 0u);
    w.path = path;
    request(kind, w, path, "watch '" + path + "' flags " + std::to_string(w.flags));
  }

  std::string oddPath() {
    // The export as an NFS or SMB client names it (by its directory's name),
    // for the Watch flag exportPath.
    const std::string named = "/" + scene_.exportDir.substr(scene_.exportDir.rfind('/') + 1);
    switch (pick(rng_, 7)) {
      case 5:
        return named + randomBelow(rng_, scene_.hostile, 3).substr(scene_.exportDir.size());
      case 6:
        return named + randomBelow(rng_, scene_.hostile, 2).substr(scene_.exportDir.size()) + "/../../../rootonly/d0";
      case 0: {
        std::string p = scene_.hostile;
        while (p.size() < 3900) p += "/d0/..";
        return p + "/d1";
      }
      case 1:
        return "/proc/self/root" + randomBelow(rng_, scene_.hostile, 2);
      case 2:
        return randomBelow(rng_, scene_.hostile, 2) + "/../../../rootonly/d0";
      case 3:
        return scene_.exportDir + "//mid/./H/" + nobodyName(rng_, "do") + "/";
      default:
        return randomBelow(rng_, scene_.hostile, 3) + "/" + nobodyName(rng_, "dfo") + "/zz9";
    }
  }

  void issue() {
    size_t roll = pick(rng_, 100);
    if (watches_.size() >= 40 || (roll < 8 && !watches_.empty())) {
      uint32_t id = watches_[pick(rng_, watches_.size())];
      std::erase(watches_, id);
      request(kUnwatch, proto::Unwatch{0, id}, "", "unwatch " + std::to_string(id));
    } else if (roll < 35 && !watches_.empty()) {
      uint32_t id = watches_[pick(rng_, watches_.size())];
      request(kSnapshot, proto::Snapshot{0, id}, "", "snapshot " + std::to_string(id));
    } else if (roll < 55 && attack("forbidden")) {
      watch(kForbidden, forbidden_[pick(rng_, forbidden_.size())]);
    } else if (roll < 70) {
      watch(kOdd, oddPath());
    } else {
      watch(kWatch, pick(rng_, 10) == 0 ? scene_.exportDir : randomBelow(rng_, scene_.hostile, 3));
    }
  }

  void fail(Failure kind, const std::string& why, const std::string& frame) {
    recordFailure(shared_, kind, why + "\n  frame: " + frame);
  }

  void judgeEvent(const Event& e) {
    ++shared_.events;
    auto frame = [&] { return describe(e) + ", on the watch granted for " + scene_.brief(granted_[e.watch]); };
    if (std::string why = oracle_.checkEvent(e); !why.empty()) fail(kLeakedName, why, frame());
    if (e.hasStat) {
      if (std::string why = oracle_.checkStat(e.stat); !why.empty()) fail(kLeakedStat, why, frame());
    }
    if ((e.mask & IN_IGNORED) && e.dir.empty()) std::erase(watches_, e.watch);
  }

  void judgeReply(const proto::Reply& r, std::string frame) {
    auto it = pending_.find(r.requestId);
    if (it == pending_.end()) return;
    Pending p = std::move(it->second);
    pending_.erase(it);
    if (auto bad = oracle_.checkText(r.message, p.path)) fail(bad->first, bad->second, frame);
    if (p.kind == kSnapshot) frame += ", snapshot of the watch granted for " + scene_.brief(granted_[p.watch]);
    if (p.kind == kSnapshot || p.kind == kUnwatch) return;
    if (r.status == 0) {
      ++shared_.grantedWatches;
      watches_.push_back(r.watchId);
      granted_[r.watchId] = p.note;
      const std::string& e = scene_.exportDir;
      if (r.message != e && r.message.compare(0, e.size() + 1, e + "/") != 0) {
        fail(kNamedOutside, "a granted watch resolved outside the export (asked '" + p.path + "')", frame);
      }
    }
    if (p.kind != kForbidden) return;
    if (r.status == 0) {
      fail(kNamedOutside, "a watch on the forbidden path '" + p.path + "' was granted", frame);
      return;
    }
    std::string normal = r.message;
    for (size_t at; (at = normal.find(p.path)) != std::string::npos;) normal.replace(at, p.path.size(), "<P>");
    if (!firstForbidden_) {
      firstForbidden_ = std::make_pair(r.status, normal);
      firstForbiddenPath_ = p.path;
    } else if (firstForbidden_->first != r.status || firstForbidden_->second != normal) {
      fail(kExistenceOracle,
           "'" + firstForbiddenPath_ + "' was refused with status " + std::to_string(firstForbidden_->first) +
               " and '" + firstForbidden_->second + "', but '" + p.path + "' with status " + std::to_string(r.status) +
               " and '" + normal + "'",
           frame);
    }
  }

  void onFrame(proto::Message& m) {
    ++shared_.frames;
    if (auto* events = std::get_if<proto::Events>(&m)) {
      for (const Event& e : events->events) judgeEvent(e);
    } else if (auto* entries = std::get_if<proto::Entries>(&m)) {
      for (const proto::TreeEntry& e : entries->entries) {
        ++shared_.events;
        auto frame = [&] {
          auto it = pending_.find(entries->requestId);
          return "entry '" + e.dir + "' '" + e.name + "' ino " + std::to_string(e.stat.ino) + " size " +
                 std::to_string(e.stat.size) + ", snapshot of the watch granted for " +
                 (it == pending_.end() ? std::string("?") : scene_.brief(granted_[it->second.watch]));
        };
        if (std::string why = oracle_.checkEntry(e); !why.empty()) fail(kLeakedName, why, frame());
        if (std::string why = oracle_.checkStat(e.stat); !why.empty()) fail(kLeakedStat, why, frame());
      }
    } else if (auto* reply = std::get_if<proto::Reply>(&m)) {
      judgeReply(*reply, describe(m));
    } else if (auto* fatal = std::get_if<proto::Fatal>(&m)) {
      if (auto bad = oracle_.checkText(fatal->message, "")) fail(bad->first, bad->second, describe(m));
    }
  }

  const Scene& scene_;
  Shared& shared_;
  Oracle oracle_;
  std::mt19937_64 rng_;
  std::vector<std::string> forbidden_;
  std::optional<RawClient> client_;
  std::map<uint32_t, Pending> pending_;
  std::vector<uint32_t> watches_;
  std::map<uint32_t, std::string> granted_;  // what each watch was asked for, for failure reports
  std::optional<std::pair<int, std::string>> firstForbidden_;
  std::string firstForbiddenPath_;
  uint64_t rate_;
  uint64_t issued_ = 0;
};

}  // namespace

int runHostileClient(const Scene& scene, Shared& shared, uint64_t seed, uint64_t ratePerSecond) {
  if (!becomeNobody()) return 1;
  return HostileClient(scene, shared, seed, ratePerSecond).run();
}

}  // namespace rnotify::adversary
