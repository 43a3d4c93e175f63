#include "poll/poll_scanner.h"

#include <fcntl.h>
#include <sys/inotify.h>
#include <sys/stat.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <unordered_set>

#include "common/log.h"
#include "poll/poll_diff.h"

namespace rnotify {

// A directory's known entries, sorted by name. The names live in one arena
// (NUL-terminated, ready for statx) so that an entry costs 64 bytes plus its
// name, and a directory's whole listing is one allocation.
struct PollScanner::Dir {
  std::string names;
  std::vector<Entry> entries;
  int64_t listedMtimeNs = 0;     // the directory's mtime when it was last listed
  Clock::time_point mtimeSince;  // when that mtime was first seen
  Clock::time_point listedAt;    // when the last listing started
  uint32_t phase = 0;            // which of the sweepScans scans checks the files
  bool listed = false;
  const char* nameOf(const Entry& e) const;
};

struct PollScanner::Entry {
  PollStat st;
  uint32_t nameOffset = 0;   // into the owning Dir's names
  uint32_t hotUntil = 0;     // statx'd at every scan before this scan number
  std::unique_ptr<Dir> dir;  // a directory the scan descends into
};

const char* PollScanner::Dir::nameOf(const Entry& e) const { return names.data() + e.nameOffset; }

// What one scan found: the structural part (entries gone and entries new,
// with their subtrees) goes through pollDiff, which pairs renames and orders
// the steps; in-place changes are reported directly.
struct PollScanner::Cycle {
  bool report = false;  // false while taking the baseline
  Clock::time_point start;
  std::vector<PollItem> gone, found;
  std::vector<Event> changed;
};

namespace {

std::string join(const std::string& dir, const char* name) {
  std::string path;
  path.reserve(dir.size() + 1 + std::strlen(name));
  path.append(dir);
  if (!path.empty()) path.push_back('/');
  path.append(name);
  return path;
}

bool isDir(const PollStat& st) { return S_ISDIR(st.mode); }

Event polled(uint32_t mask, const std::string& dir, const char* name, const PollStat& st) {
  Event ev;
  ev.mask = mask | IN_POLLED | (isDir(st) ? uint32_t{IN_ISDIR} : 0u);
  ev.dir = dir;
  ev.name = name;
  ev.hasStat = true;
  ev.stat = eventStatOf(st);
  return ev;
}

}  // namespace

PollScanner::PollScanner(std::string root, Options options)
    : root_(std::move(root)), options_(options), fs_(options.sync), interval_(options.interval) {}

PollScanner::~PollScanner() = default;

bool PollScanner::needsListing(const Dir& dir, const PollStat& self) const {
  if (!dir.listed || self.mtimeNs != dir.listedMtimeNs) return true;
  // Unchanged mtime: trusted once a listing started a granularity after the
  // mtime was first seen, since every change stamped with it came before.
  return dir.listedAt < dir.mtimeSince + options_.mtimeGranularity;
}

bool PollScanner::hot(const Entry& e) const { return e.hotUntil > counters_.scans; }

bool PollScanner::same(const Entry& known, const PollStat& now) const {
  if ((known.st.mode & S_IFMT) != (now.mode & S_IFMT)) return false;
  return !options_.stableInodes || (known.st.ino == now.ino && known.st.btime == now.btime);
}

void PollScanner::update(Entry& known, const PollStat& now, const std::string& path, const char* name, Cycle& c) {
  if (c.report) {
    const PollStat& was = known.st;
    bool modified = !isDir(now) && (was.size != now.size || was.mtimeNs != now.mtimeNs);
    bool attrib = (was.mode & 07777) != (now.mode & 07777) || was.uid != now.uid || was.gid != now.gid;
    // A directory's ctime moves with its entries; a file's only with itself.
    if (!attrib && !modified && !isDir(now) && was.ctimeNs != now.ctimeNs) attrib = true;
    if (modified) c.changed.push_back(polled(IN_MODIFY, path, name, now));
    if (attrib) c.changed.push_back(polled(IN_ATTRIB, path, name, now));
    if (modified || attrib) known.hotUntil = static_cast<uint32_t>(counters_.scans + options_.hotScans);
  }
  known.st = now;
}

void PollScanner::removed(const Entry& gone, const std::string& path, const char* name, Cycle& c) {
  if (!c.report) return;
  std::string below = join(path, name);
  c.gone.push_back(PollItem{below, gone.st});
  if (!gone.dir) return;
  for (const Entry& e : gone.dir->entries) removed(e, below, gone.dir->nameOf(e), c);
}

void PollScanner::added(const PollStat& st, const std::string& path, const char* name, Cycle& c) {
  if (!c.report) return;
  c.found.push_back(PollItem{join(path, name), st});
}

void PollScanner::relist(int fd, Dir& dir, const std::string& path, bool files, Cycle& c) {
  std::string names;
  std::vector<uint64_t> inos;
  if (int err = fs_.list(fd, &names, &inos); err != 0) {
    log::debug("poll: cannot list '{}/{}': {}", root_, path, std::strerror(err));
    return;  // keep what was known
  }
  ++counters_.dirsListed;
  std::vector<std::pair<uint32_t, uint64_t>> order;  // name offset, d_ino
  for (size_t at = 0, k = 0; at < names.size(); at += std::strlen(names.data() + at) + 1, ++k) {
    order.emplace_back(static_cast<uint32_t>(at), inos[k]);
  }
  std::sort(order.begin(), order.end(), [&](const auto& a, const auto& b) {
    return std::strcmp(names.data() + a.first, names.data() + b.first) < 0;
  });

  Dir next;
  next.names.reserve(names.size());
  next.entries.reserve(order.size());
  auto keep = [&](const char* name, Entry&& e) {
    e.nameOffset = static_cast<uint32_t>(next.names.size());
    next.names.append(name, std::strlen(name) + 1);
    next.entries.push_back(std::move(e));
  };
  auto fresh = [&](const char* name, const PollStat& st) {
    Entry e;
    e.st = st;
    if (c.report) e.hotUntil = static_cast<uint32_t>(counters_.scans + options_.hotScans);
    if (isDir(st) && options_.recursive) e.dir = std::make_unique<Dir>();
    added(st, path, name, c);
    keep(name, std::move(e));
  };
  size_t i = 0, j = 0;
  while (i < dir.entries.size() || j < order.size()) {
    const char* oldName = i < dir.entries.size() ? dir.nameOf(dir.entries[i]) : nullptr;
    const char* newName = j < order.size() ? names.data() + order[j].first : nullptr;
    int cmp = oldName == nullptr ? 1 : newName == nullptr ? -1 : std::strcmp(oldName, newName);
    if (cmp < 0) {  // gone
      removed(dir.entries[i], path, oldName, c);
      ++i;
      continue;
    }
    if (cmp == 0 && !files && !isDir(dir.entries[i].st) && !hot(dir.entries[i]) && options_.stableInodes &&
        order[j].second == dir.entries[i].st.ino) {
      keep(oldName, std::move(dir.entries[i]));  // the same inode, not due for a check
      ++i;
      ++j;
      continue;
    }
    PollStat st;
    int err = fs_.stat(fd, newName, cmp == 0 && isDir(dir.entries[i].st), &st);
    if (cmp > 0) {  // new
      if (err == 0) fresh(newName, st);
      ++j;
      continue;
    }
    Entry& known = dir.entries[i];
    if (err == ENOENT) {
      removed(known, path, oldName, c);
    } else if (err != 0) {
      keep(oldName, std::move(known));
    } else if (same(known, st)) {
      update(known, st, path, oldName, c);
      keep(oldName, std::move(known));
    } else {
      removed(known, path, oldName, c);
      fresh(newName, st);
    }
    ++i;
    ++j;
  }
  dir.names = std::move(next.names);
  dir.entries = std::move(next.entries);
}

void PollScanner::restat(int fd, Dir& dir, const std::string& path, bool files, Cycle& c) {
  ++counters_.dirsSkipped;
  counters_.dirsSwept += files;
  size_t kept = 0;
  for (size_t i = 0; i < dir.entries.size(); ++i) {
    Entry& known = dir.entries[i];
    if (!files && !isDir(known.st) && !hot(known)) {
      if (kept != i) dir.entries[kept] = std::move(known);
      ++kept;
      continue;
    }
    const char* name = dir.nameOf(known);
    PollStat st;
    int err = fs_.stat(fd, name, isDir(known.st), &st);
    if (err == ENOENT) {  // removed after the directory's statx: listed again next time
      removed(known, path, name, c);
      continue;
    }
    if (err == 0 && !same(known, st)) {
      removed(known, path, name, c);
      known.st = st;
      known.dir = isDir(st) && options_.recursive ? std::make_unique<Dir>() : nullptr;
      added(st, path, name, c);
    } else if (err == 0) {
      update(known, st, path, name, c);
    }
    if (kept != i) dir.entries[kept] = std::move(known);
    ++kept;
  }
  dir.entries.resize(kept);
}

void PollScanner::scanDir(int parentFd, const char* name, const PollStat& self, Dir& dir, const std::string& path,
                          Cycle& c) {
  bool list = needsListing(dir, self);
  if (!dir.listed) dir.phase = nextPhase_++;
  const int sweep = std::max(options_.sweepScans, 1);
  bool files = (dir.phase + counters_.scans) % sweep == 0;
  bool some =
      std::any_of(dir.entries.begin(), dir.entries.end(), [&](const Entry& e) { return isDir(e.st) || hot(e); });
  if (!list && !files && !some) {  // nothing below to statx this time
    ++counters_.dirsSkipped;
    return;
  }
  int err = 0;
  UniqueFd fd = fs_.openDir(parentFd, name, list, &err);
  if (!fd) {
    // Gone or replaced since its statx (the parent's next scan sees that),
    // or not readable: keep what was known.
    log::debug("poll: cannot open '{}/{}': {}", root_, path, std::strerror(err));
    return;
  }
  if (list) {
    // Read after the open, so not before the statx that gave self.mtimeNs.
    Clock::time_point now = Clock::now();
    bool changed = !dir.listed || self.mtimeNs != dir.listedMtimeNs;
    relist(fd.get(), dir, path, files, c);
    if (changed) dir.mtimeSince = now;
    dir.listedMtimeNs = self.mtimeNs;
    dir.listedAt = now;
    dir.listed = true;
  } else {
    restat(fd.get(), dir, path, files, c);
  }
  for (Entry& e : dir.entries) {
    if (e.dir) scanDir(fd.get(), dir.nameOf(e), e.st, *e.dir, join(path, dir.nameOf(e)), c);
  }
}

Result<std::vector<Event>> PollScanner::scan() {
  Cycle c;
  c.start = Clock::now();
  c.report = baseline_;
  ++counters_.scans;
  auto finish = [&](bool changed) {
    Clock::time_point end = Clock::now();
    interval_.onScan(end, end - c.start, changed);
  };
  if (ended_) {
    finish(false);
    return std::vector<Event>{};
  }
  PollStat st;
  int err = fs_.stat(AT_FDCWD, root_.c_str(), true, &st);
  if (err == 0 && !isDir(st)) err = ENOTDIR;
  if (err == 0 && baseline_ && options_.stableInodes && st.ino != rootEntry_->st.ino) err = ENOENT;  // replaced
  if (err != 0 && (!baseline_ || (err != ENOENT && err != ENOTDIR))) {
    finish(false);
    return Error::fromErrno(err, "poll: statx '" + root_ + "'");
  }
  if (err != 0) {  // the watched directory is gone: so is everything in it
    for (const Entry& e : rootEntry_->dir->entries) removed(e, "", rootEntry_->dir->nameOf(e), c);
    std::vector<Event> out = events(c);
    Event self;
    self.mask = IN_DELETE_SELF | IN_POLLED;
    out.push_back(self);
    self.mask = IN_IGNORED | IN_POLLED;
    out.push_back(self);
    ended_ = true;
    rootEntry_.reset();
    finish(true);
    return out;
  }
  if (!rootEntry_) {
    rootEntry_ = std::make_unique<Entry>();
    rootEntry_->dir = std::make_unique<Dir>();
  }
  if (c.report) update(*rootEntry_, st, "", "", c);  // the root's own ATTRIB: dir "", name ""
  rootEntry_->st = st;
  scanDir(AT_FDCWD, root_.c_str(), st, *rootEntry_->dir, "", c);
  baseline_ = true;
  std::vector<Event> out = events(c);
  finish(!out.empty());
  return out;
}

std::vector<Event> PollScanner::events(Cycle& c) {
  std::vector<Event> out;
  if (!c.gone.empty() || !c.found.empty()) {
    std::unordered_set<std::string> found;
    for (const PollItem& f : c.found) found.insert(f.path);
    auto unchangedDir = [&](const std::string& path) {
      const Entry* e = find(path);
      return e != nullptr && isDir(e->st) && found.count(path) == 0;
    };
    out = pollDiff(c.gone, c.found, unchangedDir, &nextCookie_);
  }
  for (Event& ev : c.changed) out.push_back(std::move(ev));
  return out;
}

const PollScanner::Entry* PollScanner::find(const std::string& path) const {
  const Entry* e = rootEntry_.get();
  for (size_t at = 0; e != nullptr && at < path.size();) {
    size_t slash = path.find('/', at);
    if (slash == std::string::npos) slash = path.size();
    std::string name = path.substr(at, slash - at);
    at = slash + 1;
    if (!e->dir) return nullptr;
    const Dir& d = *e->dir;
    auto it = std::lower_bound(d.entries.begin(), d.entries.end(), name, [&](const Entry& x, const std::string& n) {
      return std::strcmp(d.nameOf(x), n.c_str()) < 0;
    });
    e = (it != d.entries.end() && name == d.nameOf(*it)) ? &*it : nullptr;
  }
  return e;
}

std::vector<const PollScanner::Dir*> PollScanner::allDirs() const {
  std::vector<const Dir*> out;
  if (rootEntry_ && rootEntry_->dir) out.push_back(rootEntry_->dir.get());
  for (size_t i = 0; i < out.size(); ++i) {
    for (const Entry& e : out[i]->entries) {
      if (e.dir) out.push_back(e.dir.get());
    }
  }
  return out;
}

size_t PollScanner::entries() const {
  size_t n = 0;
  for (const Dir* d : allDirs()) n += d->entries.size();
  return n;
}

size_t PollScanner::memoryBytes() const {
  size_t bytes = 0;
  for (const Dir* d : allDirs()) bytes += sizeof(Dir) + d->names.capacity() + d->entries.capacity() * sizeof(Entry);
  return bytes;
}

}  // namespace rnotify
