// The adversary's test bed (issue 15): a root rnotifyd exporting one
// directory of a scratch tree, secret trees inside and outside that export,
// a hostile protocol client that runs as nobody, and the oracle that judges
// every frame that client receives.
//
// Everything secret carries kMarker in its name, or is a regular file of at
// least kSecretSize bytes (nobody only ever writes small files), or is a
// directory whose inode was recorded when the tree was made. Names nobody may
// see are its own (a letter and digits, see isNobodyName) and the few the
// export shows it (mid, alt, lnk, rootonly, H). Whatever else arrives came
// from somewhere nobody may not look.
#pragma once

#include <sys/types.h>

#include <atomic>
#include <cstdint>
#include <functional>
#include <optional>
#include <random>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "common/result.h"
#include "common/unique_fd.h"
#include "proto/codec.h"
#include "transport/agent_process.h"

namespace rnotify::adversary {

inline constexpr uid_t kNobody = 65534;
inline constexpr const char* kMarker = "ZQSECRET";
inline constexpr uint64_t kSecretSize = 10000;  // bytes of a new secret file; nobody's files stay below 200

// True for a name nobody makes (a lowercase letter, then digits) or that
// the export shows it.
bool isNobodyName(const std::string& name);

// The scratch tree, made as root; removed (with the daemon stopped) when it goes.
//   base/                       0755 root   the daemon's socket and log
//   base/export/                0755 root   E, the only export
//   E/mid/                      0711 root   searchable, not listable; root's marker files
//   E/mid/H/                    0755 nobody the hostile user's playground
//   E/mid/H/zl -> S/decoy       a link nobody "made", for the forbidden paths
//   E/alt/ (0711) E/alt/H/ (0700 root)     what E/mid/H becomes when root swaps mid
//   E/lnk -> S/decoyroot        swapped with mid the same way
//   E/rootonly/                 0700 root   R: a root-only tree inside the export
//   base/ZQSECRETs/             0700 root   S: decoy/, decoyroot/H/, locked/ (0700)/open (0755)/, jail/
//   base/ZQSECRETo/             0755 root   O: outside the export, but readable by anyone
// Every decoy directory has d0..d3 (with p in decoy) and f0..f3 of kSecretSize bytes,
// so that a daemon that follows a path nobody swapped finds the names it expects there.
class Scene {
 public:
  Scene() = default;
  Scene(Scene&&) = default;
  Scene& operator=(Scene&&) = default;
  ~Scene();
  static Result<Scene> make();

  // Starts rnotifyd as root on base/s.sock, exporting E; the socket is chmod 0777.
  Status startDaemon();
  // The daemon still runs (not reaped).
  bool daemonAlive();
  std::string daemonLogTail(size_t bytes) const;
  // text with every mention of base shortened to "B", for the operation log.
  std::string brief(std::string text) const;

  std::string base, exportDir, mid, alt, lnk, hostile, rootOnly, secret, outside;
  std::string socket;
  std::set<uint64_t> secretDirInos;  // every directory nobody may not see (S, O, R, alt/H, base, /)

 private:
  // Removes base when it goes; a moved-from one removes nothing.
  struct Remover {
    std::string path;
    Remover() = default;
    Remover(Remover&& other) noexcept : path(std::exchange(other.path, {})) {}
    Remover& operator=(Remover&& other) noexcept {
      std::swap(path, other.path);
      return *this;
    }
    ~Remover();
  };
  Remover remover_;  // declared before daemon_: the daemon stops first
  AgentProcess daemon_;
};

// Shared between the forked actors (MAP_SHARED): the operation counter, the
// ring of the last operations, and the first failure of each kind.
struct Shared {
  static constexpr size_t kRing = 64;
  static constexpr size_t kKinds = 4;  // Failure
  std::atomic<uint64_t> ops{0};
  std::atomic<uint64_t> requests{0};
  std::atomic<uint64_t> frames{0};
  std::atomic<uint64_t> reconnects{0};
  std::atomic<uint64_t> events{0};  // events and entries judged
  std::atomic<uint64_t> grantedWatches{0};
  std::atomic<bool> stop{false};
  std::atomic<uint64_t> ringNext{0};
  char ring[kRing][128];
  std::atomic<int> failed[kKinds];
  char failure[kKinds][8192];
};

enum Failure { kLeakedName = 0, kLeakedStat, kNamedOutside, kExistenceOracle };
const char* failureName(int kind);

// One anonymous shared mapping holding Shared, unmapped when it goes.
class SharedRegion {
 public:
  SharedRegion();
  ~SharedRegion();
  SharedRegion(const SharedRegion&) = delete;
  SharedRegion& operator=(const SharedRegion&) = delete;
  Shared* operator->() const { return shared_; }
  Shared& operator*() const { return *shared_; }

 private:
  Shared* shared_ = nullptr;
};

// Counts an operation and puts its description into the ring.
void noteOp(Shared& shared, const char* actor, const std::string& what);
// The ring's last `count` entries, oldest first.
std::string lastOps(const Shared& shared, size_t count);
// Records the first failure of its kind (later ones of that kind are dropped):
// what was wrong, and the last 50 operations at that moment.
void recordFailure(Shared& shared, Failure kind, const std::string& what);

// Drops to nobody for good (setgroups, setresgid, setresuid).
bool becomeNobody();

// Judges what the hostile client receives. Empty string: nothing wrong.
class Oracle {
 public:
  explicit Oracle(const Scene& scene) : scene_(scene) {}
  std::string checkEvent(const Event& event) const;
  std::string checkEntry(const proto::TreeEntry& entry) const;
  // Failure kind and reason, for an error text or a Reply's resolved path;
  // `requested` (the client's own words) may appear in it.
  std::optional<std::pair<Failure, std::string>> checkText(const std::string& text, const std::string& requested) const;
  std::string checkStat(const EventStat& stat) const;

 private:
  std::string checkPath(const std::string& dir, const std::string& name) const;
  const Scene& scene_;
};

// A protocol client without the conveniences of Connection, so that every
// frame the server sends is seen: connect, Hello, then frames as they come.
class RawClient {
 public:
  using FrameHandler = std::function<void(proto::Message&)>;
  static Result<RawClient> connect(const std::string& socket, uint64_t capabilities, int timeoutMs);
  // Sends a request, giving it the next request id; returns that id.
  uint32_t send(proto::Message message);
  // Handles whatever arrives within timeoutMs (0: only what is there now).
  // False once the connection ended.
  bool pump(int timeoutMs, const FrameHandler& onFrame);
  const proto::Welcome& welcome() const { return welcome_; }

 private:
  UniqueFd fd_;
  proto::FrameReader reader_;
  proto::Welcome welcome_;
  uint32_t nextRequest_ = 1;
};

// Describes a frame for a failure report (bounded).
std::string describe(const proto::Message& message);
std::string describe(const Event& event);

// The seed: RNOTIFY_ADVERSARY_SEED, else a random one.
uint64_t seedFromEnvironment();
uint64_t numberFromEnvironment(const char* name, uint64_t fallback);

}  // namespace rnotify::adversary
