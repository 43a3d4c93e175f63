#include "poll/poll_scanner.h"

#include <fcntl.h>
#include <sys/inotify.h>
#include <sys/stat.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <unordered_set>
#include <utility>

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

// A directory's new listing, sorted by name, being compared with what was
// known: old entries [0, i) and new names [0, j) are done, their result in
// `next`.
struct PollScanner::Relisting {
  std::string names;
  std::vector<std::pair<uint32_t, uint64_t>> order;  // name offset, d_ino
  Dir next;
  size_t i = 0, j = 0;
  Clock::time_point listedAt;
  int64_t mtimeNs = 0;
  bool changed = false;
};

// A directory visited in this scan, open, and how far through its entries
// the scan has gone down. Its entries do not change while it is here: only
// the visit of a directory rewrites that directory's own list.
struct PollScanner::Frame {
  Dir* dir = nullptr;
  UniqueFd fd;
  std::string path;
  size_t next = 0;     // the next entry to go down into
  bool files = false;  // every file statx'd at this visit (sweepScans)
  // Its own entries first: compared with a new listing, or re-stat'd
  // (entries [kept, at) are moved out while that is under way).
  std::unique_ptr<Relisting> relisting;
  bool restating = false;
  size_t at = 0, kept = 0;
};

// What one scan found: the structural part (entries gone and entries new,
// with their subtrees) goes through pollDiff, which pairs renames and orders
// the steps; in-place changes are reported directly.
struct PollScanner::Cycle {
  bool report = false;       // false while taking the baseline
  Clock::duration worked{};  // the slices' time, not the waits between them
  std::vector<PollItem> gone, found;
  std::vector<Event> changed;
  std::vector<Frame> stack;  // directories whose subdirectories are next
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

// Whether the call's slice is used up. At least one unit of work (a
// directory opened, an entry statx'd) is done per call.
struct PollScanner::Slice {
  Clock::time_point began;
  Clock::duration length;
  bool worked = false;
  bool over() const { return worked && Clock::now() - began >= length; }
};

bool PollScanner::relist(Frame& f, Cycle& c, Slice& slice) {
  Dir& dir = *f.dir;
  Relisting& r = *f.relisting;
  Dir& next = r.next;
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
    added(st, f.path, name, c);
    keep(name, std::move(e));
  };
  size_t& i = r.i;
  size_t& j = r.j;
  while (i < dir.entries.size() || j < r.order.size()) {
    const char* oldName = i < dir.entries.size() ? dir.nameOf(dir.entries[i]) : nullptr;
    const char* newName = j < r.order.size() ? r.names.data() + r.order[j].first : nullptr;
    int cmp = oldName == nullptr ? 1 : newName == nullptr ? -1 : std::strcmp(oldName, newName);
    if (cmp < 0) {  // gone
      removed(dir.entries[i], f.path, oldName, c);
      ++i;
      continue;
    }
    if (cmp == 0 && !f.files && !isDir(dir.entries[i].st) && !hot(dir.entries[i]) && options_.stableInodes &&
        r.order[j].second == dir.entries[i].st.ino) {
      keep(oldName, std::move(dir.entries[i]));  // the same inode, not due for a check
      ++i;
      ++j;
      continue;
    }
    if (slice.over()) return false;
    slice.worked = true;
    PollStat st;
    int err = fs_.stat(f.fd.get(), newName, cmp == 0 && isDir(dir.entries[i].st), &st);
    if (cmp > 0) {  // new
      if (err == 0) fresh(newName, st);
      ++j;
      continue;
    }
    Entry& known = dir.entries[i];
    if (err == ENOENT) {
      removed(known, f.path, oldName, c);
    } else if (err != 0) {
      keep(oldName, std::move(known));
    } else if (same(known, st)) {
      update(known, st, f.path, oldName, c);
      keep(oldName, std::move(known));
    } else {
      removed(known, f.path, oldName, c);
      fresh(newName, st);
    }
    ++i;
    ++j;
  }
  dir.names = std::move(next.names);
  dir.entries = std::move(next.entries);
  if (r.changed) dir.mtimeSince = r.listedAt;
  dir.listedMtimeNs = r.mtimeNs;
  dir.listedAt = r.listedAt;
  dir.listed = true;
  f.relisting.reset();
  return true;
}

bool PollScanner::restat(Frame& f, Cycle& c, Slice& slice) {
  Dir& dir = *f.dir;
  for (; f.at < dir.entries.size(); ++f.at) {
    Entry& known = dir.entries[f.at];
    if (!f.files && !isDir(known.st) && !hot(known)) {
      if (f.kept != f.at) dir.entries[f.kept] = std::move(known);
      ++f.kept;
      continue;
    }
    if (slice.over()) return false;
    slice.worked = true;
    const char* name = dir.nameOf(known);
    PollStat st;
    int err = fs_.stat(f.fd.get(), name, isDir(known.st), &st);
    if (err == ENOENT) {  // removed after the directory's statx: listed again next time
      removed(known, f.path, name, c);
      continue;
    }
    if (err == 0 && !same(known, st)) {
      removed(known, f.path, name, c);
      known.st = st;
      known.dir = isDir(st) && options_.recursive ? std::make_unique<Dir>() : nullptr;
      added(st, f.path, name, c);
    } else if (err == 0) {
      update(known, st, f.path, name, c);
    }
    if (f.kept != f.at) dir.entries[f.kept] = std::move(known);
    ++f.kept;
  }
  dir.entries.resize(f.kept);
  return true;
}

void PollScanner::visit(int parentFd, const char* name, const PollStat& self, Dir& dir, std::string path, Cycle& c) {
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
    // or not readable: keep what was known. Out of descriptors: said once.
    if ((err == EMFILE || err == ENFILE) && !toldNoDescriptors_) {
      log::warn("poll: '{}/{}' and what is below it are not scanned: {}", root_, path, std::strerror(err));
      toldNoDescriptors_ = true;
    }
    log::debug("poll: cannot open '{}/{}': {}", root_, path, std::strerror(err));
    return;
  }
  Frame f;
  f.dir = &dir;
  f.fd = std::move(fd);
  f.path = std::move(path);
  f.files = files;
  if (list) {
    auto r = std::make_unique<Relisting>();
    // Read after the open, so not before the statx that gave self.mtimeNs.
    r->listedAt = Clock::now();
    r->changed = !dir.listed || self.mtimeNs != dir.listedMtimeNs;
    r->mtimeNs = self.mtimeNs;
    std::vector<uint64_t> inos;
    if (int error = fs_.list(f.fd.get(), &r->names, &inos); error != 0) {
      log::debug("poll: cannot list '{}/{}': {}", root_, f.path, std::strerror(error));
      c.stack.push_back(std::move(f));  // keep what was known; listed again next time
      return;
    }
    ++counters_.dirsListed;
    f.fd = fs_.pathOnly(std::move(f.fd));  // held while the slices go down
    for (size_t at = 0, k = 0; at < r->names.size(); at += std::strlen(r->names.data() + at) + 1, ++k) {
      r->order.emplace_back(static_cast<uint32_t>(at), inos[k]);
    }
    const char* names = r->names.data();
    std::sort(r->order.begin(), r->order.end(),
              [&](const auto& a, const auto& b) { return std::strcmp(names + a.first, names + b.first) < 0; });
    r->next.names.reserve(r->names.size());
    r->next.entries.reserve(r->order.size());
    f.relisting = std::move(r);
  } else {
    ++counters_.dirsSkipped;
    counters_.dirsSwept += files;
    f.restating = true;
  }
  c.stack.push_back(std::move(f));
}

void PollScanner::hurry(Clock::time_point when) {
  interval_.hurry(when);
  if (cycle_) hurried_ = std::min(hurried_, when);
}

Result<std::vector<Event>> PollScanner::scan() {
  Slice slice{Clock::now(), options_.slice};
  if (!cycle_) {
    auto begun = begin(slice.began);
    if (!begun || !begun->empty() || !cycle_) return begun;
    slice.worked = true;
  }
  Cycle& c = *cycle_;
  auto pause = [&] {
    c.worked += Clock::now() - slice.began;
    return std::vector<Event>{};
  };
  while (!c.stack.empty()) {
    Frame& frame = c.stack.back();
    // The directory's own entries first (its listing compared, or its files
    // statx'd), then its subdirectories, one by one.
    if (frame.relisting && !relist(frame, c, slice)) return pause();
    if (frame.restating && !restat(frame, c, slice)) return pause();
    frame.restating = false;
    const std::vector<Entry>& entries = frame.dir->entries;
    while (frame.next < entries.size() && !entries[frame.next].dir) ++frame.next;
    if (frame.next == entries.size()) {
      c.stack.pop_back();  // closes the directory
      continue;
    }
    if (slice.over()) return pause();
    slice.worked = true;
    Entry& e = frame.dir->entries[frame.next++];
    const char* name = frame.dir->nameOf(e);
    // May push onto the stack: frame is not used after it.
    visit(frame.fd.get(), name, e.st, *e.dir, join(frame.path, name), c);
  }
  c.worked += Clock::now() - slice.began;
  return complete(Clock::now());
}

Result<std::vector<Event>> PollScanner::begin(Clock::time_point now) {
  ++counters_.scans;
  auto finish = [&](bool changed) {
    Clock::time_point end = Clock::now();
    interval_.onScan(end, end - now, changed);
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
    Cycle c;
    c.report = true;
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
  cycle_ = std::make_unique<Cycle>();
  Cycle& c = *cycle_;
  c.report = baseline_;
  if (c.report) update(*rootEntry_, st, "", "", c);  // the root's own ATTRIB: dir "", name ""
  rootEntry_->st = st;
  visit(AT_FDCWD, root_.c_str(), st, *rootEntry_->dir, "", c);
  return std::vector<Event>{};
}

std::vector<Event> PollScanner::complete(Clock::time_point now) {
  std::unique_ptr<Cycle> c = std::move(cycle_);
  baseline_ = true;
  std::vector<Event> out = events(*c);
  interval_.onScan(now, c->worked, !out.empty());
  // A change this host made while the scan was under way may be in a
  // directory it had passed.
  if (hurried_ != Clock::time_point::max()) interval_.hurry(std::exchange(hurried_, Clock::time_point::max()));
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
