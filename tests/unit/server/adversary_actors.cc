#include "adversary_actors.h"

#include <fcntl.h>
#include <poll.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <map>
#include <optional>
#include <thread>

namespace rnotify::adversary {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

size_t pick(std::mt19937_64& rng, size_t n) { return static_cast<size_t>(rng() % n); }

// RNOTIFY_ADVERSARY_ATTACKS: the attacks of a run, a comma-separated list of
// links (nobody swaps its directories for links), swaps (root swaps E/mid),
// take (root takes nobody's directories away), modes (chmod/ACLs of E and
// mid), forbidden (requests for forbidden paths); default "all". "none" is
// the control run: root only changes its secrets, and the oracle must then
// find nothing against any daemon.
bool attack(const std::string& name) {
  static const std::string chosen = [] {
    const char* v = std::getenv("RNOTIFY_ADVERSARY_ATTACKS");
    return "," + std::string(v && *v ? v : "all") + ",";
  }();
  return chosen == ",all," || chosen.find("," + name + ",") != std::string::npos;
}

// "d2", "o0", ...: nobody's names.
std::string nobodyName(std::mt19937_64& rng, const char* letters) {
  const size_t kinds = std::char_traits<char>::length(letters);
  return std::string(1, letters[pick(rng, kinds)]) + std::to_string(pick(rng, 3));
}

// A directory path below root made of nobody's names, 0..maxDepth deep.
std::string randomBelow(std::mt19937_64& rng, const std::string& root, size_t maxDepth) {
  // Shallow paths mostly, so that most operations find their parent.
  size_t depth = pick(rng, maxDepth + 1);
  if (depth > 0 && pick(rng, 2) == 0) --depth;
  std::string path = root;
  for (; depth > 0; --depth) path += "/" + nobodyName(rng, "ddo");
  return path;
}

namespace {

// Keeps an actor at ratePerSecond operations.
class Pacer {
 public:
  explicit Pacer(uint64_t ratePerSecond) : rate_(ratePerSecond) {}
  void done(uint64_t ops) {
    done_ += ops;
    if (rate_ == 0) return;
    auto due = start_ + std::chrono::microseconds(done_ * 1000000 / rate_);
    if (due > Clock::now()) std::this_thread::sleep_until(due);
  }

 private:
  uint64_t rate_;
  uint64_t done_ = 0;
  Clock::time_point start_ = Clock::now();
};

// system.posix_acl_access: the owner rwx, nobody nothing, everyone else `others`.
std::string aclDenyingNobody(uint16_t others) {
  struct Entry {
    uint16_t tag, perm;
    uint32_t id;
  };
  const Entry entries[] = {
      {0x01, 7, ~0u}, {0x02, 0, kNobody}, {0x04, others, ~0u}, {0x10, others, ~0u}, {0x20, others, ~0u}};
  std::string value(4, '\0');
  value[0] = 2;  // POSIX_ACL_XATTR_VERSION, little-endian
  value.append(reinterpret_cast<const char*>(entries), sizeof entries);
  return value;
}

}  // namespace

// ---------------------------------------------------------------- nobody's mutator

int runNobodyMutator(const Scene& s, Shared& shared, uint64_t seed, uint64_t ratePerSecond) {
  if (!becomeNobody()) return 1;
  std::mt19937_64 rng(seed ^ 0x40b0d1);
  Pacer pacer(ratePerSecond);
  const std::string targets[] = {s.secret + "/decoy",
                                 s.secret + "/decoy/d0",
                                 s.rootOnly,
                                 s.rootOnly + "/d1",
                                 s.outside,
                                 "/",
                                 "..",
                                 "../..",
                                 "../../..",
                                 s.base,
                                 s.alt + "/H",
                                 s.secret + "/locked/open",
                                 "/proc/self/root" + s.secret + "/decoy"};
  auto op = [&](bool ok, const std::string& what) {
    noteOp(shared, "nobody", s.brief(what) + (ok ? "" : " (failed)"));
    pacer.done(1);
  };
  while (!shared.stop) {
    const std::string dir = randomBelow(rng, s.hostile, 3);
    const std::string d = dir + "/" + nobodyName(rng, "d"), f = dir + "/" + nobodyName(rng, "f");
    const std::string o = dir + "/" + nobodyName(rng, "o");
    const std::string target = targets[pick(rng, std::size(targets))];
    size_t roll = pick(rng, 100);
    if (roll < 22) {
      op(::mkdir(d.c_str(), 0755) == 0, "mkdir " + d);
    } else if (roll < 30) {
      op(::rmdir(d.c_str()) == 0, "rmdir " + d);
    } else if (roll < 48) {
      int fd = ::open(f.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_NOFOLLOW | O_CLOEXEC, 0644);
      if (fd >= 0) {
        struct stat st;
        if (::fstat(fd, &st) == 0 && st.st_size < 150) (void)!::write(fd, "nobody\n", 7);
        ::close(fd);
      }
      op(fd >= 0, "write " + f);
    } else if (roll < 56) {
      op(::unlink(f.c_str()) == 0, "unlink " + f);
    } else if (roll < 66) {
      const std::string to = randomBelow(rng, s.hostile, 3) + "/" + nobodyName(rng, "dfo");
      const std::string& from = pick(rng, 2) ? d : o;
      op(::rename(from.c_str(), to.c_str()) == 0, "rename " + from + " " + to);
    } else if (roll < 84 && !attack("links")) {
      op(::mkdir(d.c_str(), 0755) == 0, "mkdir " + d);
    } else if (roll < 76) {
      // A component of watched paths becomes a link out: mv d o; ln -s target d.
      op(::rename(d.c_str(), o.c_str()) == 0, "rename " + d + " " + o);
      op(::symlink(target.c_str(), d.c_str()) == 0, "symlink " + target + " " + d);
    } else if (roll < 84) {
      // Issue 15, class 1: mkdir d/p; mv d o; ln -s target d, while the daemon is behind.
      const std::string p = d + "/" + nobodyName(rng, "d");
      op(::mkdir(p.c_str(), 0755) == 0, "mkdir " + p);
      op(::rename(d.c_str(), o.c_str()) == 0, "rename " + d + " " + o);
      op(::symlink(target.c_str(), d.c_str()) == 0, "symlink " + target + " " + d);
    } else if (roll < 92) {
      struct stat st;
      if (::lstat(d.c_str(), &st) == 0 && S_ISLNK(st.st_mode)) op(::unlink(d.c_str()) == 0, "unlink " + d);
      op(::rename(o.c_str(), d.c_str()) == 0, "rename " + o + " " + d);
    } else if (roll < 96) {
      std::error_code ec;
      fs::remove_all(o, ec);
      op(!ec, "rm -r " + o);
    } else {
      // A burst, so that the daemon falls behind.
      for (int i = 0; i < 40 && !shared.stop; ++i) {
        const std::string g = dir + "/g" + std::to_string(i);
        op(::mkdir(g.c_str(), 0755) == 0, "mkdir " + g);
      }
      for (int i = 0; i < 40 && !shared.stop; ++i) {
        const std::string g = dir + "/g" + std::to_string(i);
        op(::rmdir(g.c_str()) == 0, "rmdir " + g);
      }
    }
  }
  return 0;
}

// ---------------------------------------------------------------- root's mutator

RootMutator::RootMutator(const Scene& s, uint64_t seed) : scene_(s), rng_(seed ^ 0x2007) {
  auto open = [](const std::string& path) {
    return UniqueFd(::open(path.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
  };
  exportFd_ = open(s.exportDir);
  hostileFd_ = open(s.hostile);
  for (const std::string& root : {s.secret + "/decoy", s.secret + "/decoyroot/H", s.secret + "/locked/open", s.outside,
                                  s.rootOnly, s.alt + "/H"}) {
    secretDirs_.push_back(open(root));
    for (int i = 0; i < 4; ++i) secretDirs_.push_back(open(root + "/d" + std::to_string(i)));
  }
  secretDirs_.push_back(open(s.secret + "/decoy/p"));
  secretDirs_.push_back(open(s.mid));
  for (const std::string& jail : {s.secret + "/jail", s.secret + "/locked/open", s.outside, s.rootOnly}) {
    jails_.push_back(open(jail));
  }
}

void RootMutator::step(Shared& shared) {
  size_t roll = pick(rng_, 100);
  if (roll >= 70 && roll < 82 && attack("modes")) {
    ancestorMode(shared);
  } else if (roll >= 82 && roll < 90 && attack("swaps")) {
    swapMid(shared);
  } else if (roll >= 90 && attack("take")) {
    confiscate(shared);
  } else {
    secretFile(shared);
  }
}

void RootMutator::secretFile(Shared& shared) {
  const bool fromTaken = !taken_.empty() && pick(rng_, 3) == 0;
  int dirFd = fromTaken ? taken_[pick(rng_, taken_.size())].get() : secretDirs_[pick(rng_, secretDirs_.size())].get();
  const std::string name = std::string(kMarker) + std::to_string(pick(rng_, 8));
  if (pick(rng_, 4) == 0) {
    const std::string to = std::string(kMarker) + std::to_string(pick(rng_, 8));
    bool ok = ::renameat(dirFd, name.c_str(), dirFd, to.c_str()) == 0;
    noteOp(shared, "root", "rename secret " + name + " " + to + (ok ? "" : " (failed)"));
    return;
  }
  int fd = ::openat(dirFd, name.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_NOFOLLOW | O_CLOEXEC, 0600);
  if (fd >= 0) {
    struct stat st;
    size_t bytes = ::fstat(fd, &st) == 0 && st.st_size == 0 ? kSecretSize : 100;
    (void)!::write(fd, std::string(bytes, 'x').data(), bytes);
    ::close(fd);
  }
  noteOp(shared, "root",
         "append secret " + name + (fromTaken ? " in a taken directory" : "") + (fd >= 0 ? "" : " (failed)"));
}

void RootMutator::ancestorMode(Shared& shared) {
  const bool onExport = pick(rng_, 3) == 0;
  const std::string path = onExport ? scene_.exportDir : scene_.mid;
  const int variant = static_cast<int>(pick(rng_, 4));
  ::removexattr(path.c_str(), "system.posix_acl_access");
  if (variant == 3) {
    std::string acl = aclDenyingNobody(onExport ? 5 : 1);
    bool ok = ::setxattr(path.c_str(), "system.posix_acl_access", acl.data(), acl.size(), 0) == 0;
    noteOp(shared, "root", "setfacl u:nobody:--- " + scene_.brief(path) + (ok ? "" : " (failed)"));
    return;
  }
  const mode_t modes[2][3] = {{0711, 0700, 0701}, {0755, 0711, 0755}};
  mode_t mode = modes[onExport][variant];
  ::chmod(path.c_str(), mode);
  char text[16];
  std::snprintf(text, sizeof text, "%o", mode);
  noteOp(shared, "root", std::string("chmod ") + text + " " + scene_.brief(path));
}

void RootMutator::swapMid(Shared& shared) {
  // E/mid trades places with its root-only twin, or with a link out of the
  // export; the next swap puts it back.
  int with = swapped_ != 0 ? swapped_ : 1 + static_cast<int>(pick(rng_, 2));
  const char* other = with == 1 ? "alt" : "lnk";
  bool ok = ::renameat2(exportFd_.get(), "mid", exportFd_.get(), other, RENAME_EXCHANGE) == 0;
  if (ok) swapped_ = swapped_ != 0 ? 0 : with;
  noteOp(shared, "root",
         std::string(swapped_ ? "exchange mid " : "exchange back mid ") + other + (ok ? "" : " (failed)"));
}

void RootMutator::confiscate(Shared& shared) {
  // One of nobody's directories (never H itself), reached through
  // descriptors so that nobody's links cannot redirect root.
  UniqueFd parent(::dup(hostileFd_.get()));
  std::string name, where = "H";
  for (size_t depth = 1 + pick(rng_, 3); depth > 0; --depth) {
    std::string next = nobodyName(rng_, "ddo");
    if (depth > 1) {
      UniqueFd child(::openat(parent.get(), next.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
      if (!child) break;
      parent = std::move(child);
    }
    name = next;
    where += "/" + next;
  }
  UniqueFd dir(::openat(parent.get(), name.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
  if (!dir) {
    noteOp(shared, "root", "take " + where + " (not there)");
    return;
  }
  const size_t variant = pick(rng_, 4);
  std::string what;
  if (variant == 0) {
    (void)!::fchown(dir.get(), 0, 0);
    (void)!::fchmod(dir.get(), 0700);
    what = "chown root, chmod 700 ";
  } else if (variant == 1) {
    (void)!::fchown(dir.get(), 0, 0);
    std::string acl = aclDenyingNobody(5);
    what = "chown root, setfacl u:nobody:--- ";
    if (::fsetxattr(dir.get(), "system.posix_acl_access", acl.data(), acl.size(), 0) != 0) {
      (void)!::fchmod(dir.get(), 0700);  // no ACLs here: the secrets must still be secret
      what = "chown root, chmod 700 (no ACL support) ";
    }
  } else {
    const std::string to = "c" + std::to_string(++counter_);
    int jail = jails_[pick(rng_, jails_.size())].get();
    if (::renameat(parent.get(), name.c_str(), jail, to.c_str()) != 0) {
      noteOp(shared, "root", "move " + where + " out (failed)");
      return;
    }
    // What moved may not be what was opened (nobody renames too): keep that.
    dir.reset(::openat(jail, to.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
    what = "move out of the export as " + to + ": ";
  }
  noteOp(shared, "root", "take " + what + where);
  if (!dir) return;
  if (taken_.size() >= 48) taken_.erase(taken_.begin());
  taken_.push_back(std::move(dir));
}

void RootMutator::restore() {
  if (swapped_ != 0) {
    ::renameat2(exportFd_.get(), "mid", exportFd_.get(), swapped_ == 1 ? "alt" : "lnk", RENAME_EXCHANGE);
    swapped_ = 0;
  }
  for (const std::string& path : {scene_.exportDir, scene_.mid}) ::removexattr(path.c_str(), "system.posix_acl_access");
  ::chmod(scene_.exportDir.c_str(), 0755);
  ::chmod(scene_.mid.c_str(), 0711);
}

}  // namespace rnotify::adversary
