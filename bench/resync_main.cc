// bench_resync: what recovering from a gap costs (issue 5 "nothing lost").
//
//  1. re-read: a client re-lists a watched tree of N entries through rnotifyd
//     (unix socket, proto::Snapshot) and compares it with its view
//     (TreeView::diff), with nothing and with 1 % of the files changed.
//     Floor, in the same run: the same walk (readdir + lstat) in-process,
//     without the protocol.
//  2. replay: a client that was away while M files were created resumes
//     (proto::Attach) and receives the M events from the server's journal;
//     compared with re-reading the tree that holds them.
//  3. the journal's memory per event, for records as rnotifyd encodes them.
//
// Prints a table and writes CSV. Run: build/bench/bench_resync [--entries N]
// (docs/BENCHMARKS.md has the results and the command).
#include <dirent.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iostream>
#include <string>
#include <vector>

#include "poll/tree_view.h"
#include "proto/codec.h"
#include "server/journal.h"
#include "transport/agent_process.h"
#include "transport/connection.h"

namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;
using rnotify::Connection;
using rnotify::proto::TreeEntry;

double msSince(Clock::time_point start) {
  return std::chrono::duration<double, std::milli>(Clock::now() - start).count();
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v.empty() ? 0 : v[v.size() / 2];
}

// N entries: directories of 100 entries each (99 files and the directory).
void makeTree(const std::string& root, size_t entries) {
  fs::create_directories(root);
  size_t dirs = std::max<size_t>(1, entries / 100);
  for (size_t d = 0; d < dirs; ++d) {
    std::string dir = root + "/d" + std::to_string(d);
    ::mkdir(dir.c_str(), 0755);
    for (int f = 0; f < 99; ++f) {
      std::string path = dir + "/file" + std::to_string(f) + ".txt";
      ::close(::open(path.c_str(), O_CREAT | O_WRONLY | O_CLOEXEC, 0644));
    }
  }
}

// The floor: the walk rnotifyd does for a Snapshot, in this process.
size_t walk(int dirFd, const std::string& dir, std::vector<TreeEntry>* out) {
  DIR* d = ::fdopendir(dirFd);
  if (d == nullptr) return 0;
  std::vector<std::string> subdirs;
  while (const dirent* e = ::readdir(d)) {
    if (std::strcmp(e->d_name, ".") == 0 || std::strcmp(e->d_name, "..") == 0) continue;
    struct stat st;
    if (::fstatat(::dirfd(d), e->d_name, &st, AT_SYMLINK_NOFOLLOW) != 0) continue;
    TreeEntry& entry = out->emplace_back();
    entry.dir = dir;
    entry.name = e->d_name;
    entry.stat = rnotify::eventStatOf(st);
    if (S_ISDIR(st.st_mode)) subdirs.emplace_back(e->d_name);
  }
  for (const std::string& name : subdirs) {
    int fd = ::openat(::dirfd(d), name.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (fd >= 0) walk(fd, dir.empty() ? name : dir + "/" + name, out);
  }
  ::closedir(d);
  return out->size();
}

struct Daemon {
  rnotify::AgentProcess process;
  std::string socket;
};

std::unique_ptr<Connection> connect(const std::string& socket) {
  for (int i = 0; i < 500; ++i) {
    auto c = Connection::overSocket("unix:" + socket, 5000);
    if (c) return std::move(*c);
    ::poll(nullptr, 0, 10);
  }
  std::cerr << "cannot connect to rnotifyd at " << socket << "\n";
  std::exit(1);
}

uint32_t watchTree(Connection& c, const std::string& root) {
  rnotify::proto::Watch w;
  w.flags = rnotify::proto::kWatchRecursive | rnotify::proto::kWatchStat;
  w.mask = IN_ALL_EVENTS & ~(IN_ACCESS | IN_OPEN | IN_CLOSE_NOWRITE);
  w.path = root;
  auto reply = c.request(w, 30000);
  if (!reply || reply->status != 0) {
    std::cerr << "watch failed: " << (reply ? reply->message : reply.error().message) << "\n";
    std::exit(1);
  }
  return reply->watchId;
}

// Pumps until `done` or 60 s.
void pumpUntil(Connection& c, const std::function<bool()>& done) {
  auto deadline = Clock::now() + std::chrono::seconds(60);
  while (!done() && Clock::now() < deadline) {
    struct pollfd p = {c.readFd(), POLLIN, 0};
    ::poll(&p, 1, 100);
    if (!c.pump()) {
      std::cerr << "connection failed: " << c.failure().message << "\n";
      std::exit(1);
    }
  }
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"bench_resync: the cost of recovering from a gap: re-reading a tree vs replaying a journal"};
  size_t entries = 100000;
  size_t missed = 10000;
  int repeat = 5;
  std::string csv = "bench/results/resync.csv";
  std::string base = "/tmp";
  std::string rnotifyd = RNOTIFYD_PATH;
  app.add_option("--entries", entries, "Entries in the watched tree")->capture_default_str();
  app.add_option("--missed", missed, "Events missed while away, for the replay")->capture_default_str();
  app.add_option("--repeat", repeat, "Runs of each measurement (the median is reported)")->capture_default_str();
  app.add_option("--csv", csv, "Where to write the results")->capture_default_str();
  app.add_option("--dir", base, "Where to make the tree")->capture_default_str();
  CLI11_PARSE(app, argc, argv);

  char pattern[PATH_MAX];
  std::snprintf(pattern, sizeof pattern, "%s/bench-resync-XXXXXX", base.c_str());
  if (::mkdtemp(pattern) == nullptr) return 1;
  const std::string work = pattern, root = work + "/tree", socket = work + "/s.sock";
  makeTree(root, entries);

  auto spawned = rnotify::AgentProcess::spawn(
      {rnotifyd, "--listen", "unix:" + socket, "--export", work, "--watcher", "inotify", "--log-level", "error"});
  if (!spawned) return 1;
  auto client = connect(socket);
  uint32_t watch = watchTree(*client, root);

  // 1. Re-read.
  std::vector<double> floor, listing, diffQuiet, listingChanged, diffChanged;
  size_t listed = 0, changes = 0;
  for (int r = 0; r < repeat; ++r) {
    std::vector<TreeEntry> local;
    auto t0 = Clock::now();
    walk(::open(root.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC), "", &local);
    floor.push_back(msSince(t0));

    t0 = Clock::now();
    auto now = client->snapshot(watch, 60000);
    listing.push_back(msSince(t0));
    if (!now) return 1;
    client->releaseDeferred();
    listed = now->size();
    rnotify::TreeView view;
    view.reset(*now);
    uint32_t cookie = 1;
    t0 = Clock::now();
    auto none = view.diff(*now, &cookie);
    diffQuiet.push_back(msSince(t0));

    // 1 % of the files change (size), as while a client was away.
    for (size_t i = 0; i < entries / 100; ++i) {
      std::string path = root + "/d" + std::to_string(i % std::max<size_t>(1, entries / 100)) + "/file" +
                         std::to_string((i / std::max<size_t>(1, entries / 100)) % 99) + ".txt";
      std::ofstream(path, std::ios::app) << "x";
    }
    pumpUntil(*client, [] { return true; });
    t0 = Clock::now();
    auto after = client->snapshot(watch, 60000);
    listingChanged.push_back(msSince(t0));
    if (!after) return 1;
    client->releaseDeferred();
    t0 = Clock::now();
    auto diff = view.diff(*after, &cookie);
    diffChanged.push_back(msSince(t0));
    changes = diff.size();
  }

  // 2. Replay of `missed` events vs a re-read of the tree holding them.
  std::vector<double> replay, reread;
  for (int r = 0; r < repeat; ++r) {
    std::string dir = root + "/missed" + std::to_string(r);
    auto c = connect(socket);
    rnotify::proto::Attach attach;
    attach.token[0] = 0xbe7c4 + r;
    attach.token[1] = 1;
    if (!c->attach(attach, 5000)) return 1;
    c->releaseDeferred();
    ::mkdir(dir.c_str(), 0755);
    rnotify::proto::Watch w;
    w.mask = IN_CREATE;
    w.path = dir;
    auto reply = c->request(w, 5000);
    if (!reply || reply->status != 0) return 1;
    uint64_t instance = c->welcome().instanceId;
    c->drop(rnotify::Error{ECONNRESET, "bench: away"});
    c.reset();
    for (size_t i = 0; i < missed; ++i) {
      std::string path = dir + "/m" + std::to_string(i);
      ::close(::open(path.c_str(), O_CREAT | O_WRONLY | O_CLOEXEC, 0644));
    }
    // The server has read them all once a fresh watch's listing shows them.
    auto back = connect(socket);
    attach.instanceId = instance;
    attach.positions = {{reply->watchId, 0}};
    size_t received = 0;
    back->setEventsHandler([&](Connection&, rnotify::proto::Events& events) { received += events.events.size(); });
    auto t0 = Clock::now();
    auto resumed = back->attach(attach, 30000);
    if (!resumed || resumed->status != 0) {
      std::cerr << "resume failed: " << (resumed ? resumed->message : resumed.error().message) << "\n";
      return 1;
    }
    back->releaseDeferred();
    pumpUntil(*back, [&] { return received >= missed; });
    replay.push_back(msSince(t0));
    if (received != missed) std::cerr << "replay: " << received << " of " << missed << " events\n";

    rnotify::proto::Watch again = w;
    again.flags = rnotify::proto::kWatchStat;
    auto id = back->request(again, 5000);
    t0 = Clock::now();
    auto list = back->snapshot(id->watchId, 60000);
    back->releaseDeferred();
    rnotify::TreeView empty;
    uint32_t cookie = 1;
    auto diff = empty.diff(*list, &cookie);
    reread.push_back(msSince(t0));
    fs::remove_all(dir);
  }

  // 3. Journal memory per event.
  rnotify::Journal journal(1u << 20, size_t{1} << 30);
  rnotify::Event ev;
  ev.watch = 1;
  ev.mask = IN_CREATE;
  ev.dir = "src/lib";
  ev.hasStat = true;
  ev.origin = rnotify::Origin::kOther;
  const size_t journaled = 100000;
  std::string record;
  size_t recordBytes = 0;
  for (size_t i = 0; i < journaled; ++i) {
    ev.seq = i + 1;
    ev.name = "file" + std::to_string(i) + ".c";
    record.clear();
    rnotify::proto::appendEvent(record, ev);
    recordBytes += record.size();
    journal.append(1, ev.seq, record);
  }
  const double perEvent = static_cast<double>(journal.memory()) / journal.records();
  const double wire = static_cast<double>(recordBytes) / journaled;

  std::printf("bench_resync: %zu entries listed (%zu directories), %d runs, medians\n\n", listed,
              std::max<size_t>(1, entries / 100), repeat);
  std::printf("%-44s %12s %10s\n", "measurement", "ms", "vs floor");
  auto row = [&](const char* what, double ms, double base) {
    std::printf("%-44s %12.1f %9.2fx\n", what, ms, base > 0 ? ms / base : 0.0);
  };
  const double f = median(floor);
  row("floor: readdir+lstat in-process", f, f);
  row("re-read: Snapshot through rnotifyd", median(listing), f);
  row("diff with the view, nothing changed", median(diffQuiet), f);
  row("re-read after 1% changed: Snapshot", median(listingChanged), f);
  std::printf("%-44s %12.1f %9.2fx  (%zu changes reported)\n", "  ... diff", median(diffChanged),
              median(diffChanged) / f, changes);
  row("re-read + diff, total (1% changed)", median(listingChanged) + median(diffChanged), f);
  std::printf("\n%-44s %12.1f\n", ("replay of " + std::to_string(missed) + " missed events").c_str(), median(replay));
  std::printf("%-44s %12.1f\n", ("re-read of the " + std::to_string(missed) + " entries instead").c_str(),
              median(reread));
  std::printf("\njournal: %zu records, %.1f bytes/event in memory (%.1f on the wire + index)\n", journal.records(),
              perEvent, wire);

  fs::create_directories(fs::path(csv).parent_path().empty() ? "." : fs::path(csv).parent_path());
  std::ofstream out(csv);
  out << "measurement,entries,ms\n";
  out << "floor_walk," << listed << "," << f << "\n";
  out << "snapshot," << listed << "," << median(listing) << "\n";
  out << "diff_quiet," << listed << "," << median(diffQuiet) << "\n";
  out << "snapshot_1pct," << listed << "," << median(listingChanged) << "\n";
  out << "diff_1pct," << listed << "," << median(diffChanged) << "\n";
  out << "replay," << missed << "," << median(replay) << "\n";
  out << "reread_of_missed," << missed << "," << median(reread) << "\n";
  out << "journal_bytes_per_event,," << perEvent << "\n";

  client.reset();
  spawned->closeInput();
  ::kill(spawned->pid(), SIGTERM);
  spawned->reap(5000);
  fs::remove_all(work);
  return 0;
}
