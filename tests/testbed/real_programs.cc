// RealProgram, ReportTally; see real_programs.h.
#include "real_programs.h"

#include <elf.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <regex>
#include <set>
#include <sstream>
#include <stdexcept>

namespace rnotify::testbed {
namespace {

using std::chrono::seconds;
namespace fs = std::filesystem;

bool installed(const std::string& command) {
  return runCommand({"sh", "-c", "command -v " + command}, Deadline::in(seconds(5))).exitCode == 0;
}

// `path` relative to `root` ("" for root itself); unchanged if outside.
std::string relativeTo(std::string path, const std::string& root) {
  while (path.size() > 1 && path.back() == '/') path.pop_back();
  if (path == root) return "";
  if (path.rfind(root + "/", 0) == 0) return path.substr(root.size() + 1);
  return path;
}

std::vector<std::string> split(const std::string& s, char separator) {
  std::vector<std::string> out;
  std::string part;
  std::istringstream in(s);
  while (std::getline(in, part, separator)) out.push_back(part);
  if (!s.empty() && s.back() == separator) out.emplace_back();
  return out;
}

std::string firstToken(const std::string& kind) { return kind.substr(0, kind.find(',')); }

bool inotifyStyle(RealProgramKind kind) {
  return kind == RealProgramKind::kInotifywait || kind == RealProgramKind::kGoInotify;
}

// watchdog's inotify observer: "<event_type>[,dir]|<src>[|<dest>]", then
// "ready" once the observer runs (its watches are set up in start()).
constexpr const char* kWatchdogScript = R"(
import os, sys, time
from watchdog.observers.inotify import InotifyObserver
from watchdog.events import FileSystemEventHandler
root = sys.argv[1]
recursive = sys.argv[2] == "1"
class Printer(FileSystemEventHandler):
    def on_any_event(self, event):
        line = event.event_type + (",dir" if event.is_directory else "") + "|" + os.path.relpath(event.src_path, root)
        dest = getattr(event, "dest_path", "")
        if dest:
            line += "|" + os.path.relpath(dest, root)
        print(line, flush=True)
observer = InotifyObserver()
observer.schedule(Printer(), root, recursive=recursive)
observer.start()
print("ready", flush=True)
while True:
    time.sleep(3600)
)";

// Node's fs.watch: "<type>|<name>", then "ready" (fs.watch sets its inotify
// watch before it returns; the recursive mode's walk is asynchronous, which
// the probes of watching() cover).
constexpr const char* kNodeScript = R"(
const fs = require('fs');
const dir = process.argv[1];
const recursive = process.argv[2] === '1';
const report = (type, name) => { process.stdout.write(type + '|' + name + '\n'); };
try {
  fs.watch(dir, { recursive }, report);
  process.stdout.write('ready' + (recursive ? ' recursive' : '') + '\n');
} catch (e) {
  if (!recursive) throw e;
  fs.watch(dir, report);
  process.stdout.write('ready (no recursive mode here: ' + e.code + ')\n');
}
)";

std::string goWatchSource() {
  if (const char* env = std::getenv("RNOTIFY_GOWATCH_SOURCE")) return env;
  // <src>/tests/testbed/real_programs.cc -> <src>/tests/programs/gowatch/main.go
  return (fs::path(__FILE__).parent_path().parent_path() / "programs" / "gowatch" / "main.go").string();
}

}  // namespace

const std::vector<RealProgramKind>& allRealPrograms() {
  static const std::vector<RealProgramKind> kAll{RealProgramKind::kInotifywait, RealProgramKind::kGioMonitor,
                                                 RealProgramKind::kWatchdog, RealProgramKind::kNodeFsWatch,
                                                 RealProgramKind::kGoInotify};
  return kAll;
}

const char* realProgramName(RealProgramKind kind) {
  switch (kind) {
    case RealProgramKind::kInotifywait:
      return "inotifywait";
    case RealProgramKind::kGioMonitor:
      return "gio";
    case RealProgramKind::kWatchdog:
      return "watchdog";
    case RealProgramKind::kNodeFsWatch:
      return "node";
    case RealProgramKind::kGoInotify:
      return "go";
  }
  return "?";
}

std::string missingRealProgram(RealProgramKind kind) {
  switch (kind) {
    case RealProgramKind::kInotifywait:
      return installed("inotifywait") ? "" : "inotifywait is not installed (Debian package inotify-tools)";
    case RealProgramKind::kGioMonitor:
      return installed("gio") ? "" : "gio is not installed (Debian package libglib2.0-bin)";
    case RealProgramKind::kWatchdog:
      if (::access("/usr/bin/python3", X_OK) != 0) return "/usr/bin/python3 is not installed (Debian package python3)";
      if (runCommand({"/usr/bin/python3", "-c", "import watchdog.observers.inotify"}, Deadline::in(seconds(20)))
              .exitCode != 0) {
        return "Python's watchdog is not installed (Debian package python3-watchdog)";
      }
      return "";
    case RealProgramKind::kNodeFsWatch:
      return installed("node") ? "" : "node is not installed (Debian package nodejs)";
    case RealProgramKind::kGoInotify:
      if (!installed("go")) return "go is not installed (Debian package golang-go)";
      if (::access(goWatchSource().c_str(), R_OK) != 0) return "the Go watcher's source is missing: " + goWatchSource();
      return "";
  }
  return "unknown program";
}

std::string goWatchBinary() {
  static std::mutex mutex;
  static std::unique_ptr<TempDir> dir;
  static std::string binary;
  std::lock_guard<std::mutex> lock(mutex);
  if (!binary.empty()) return binary;
  auto build = std::make_unique<TempDir>("rnotify-gowatch-");
  std::string out = *build / "gowatch";
  std::vector<std::string> argv{"env",
                                "CGO_ENABLED=0",
                                "GOCACHE=" + build->mkdir("cache"),
                                "GOPATH=" + build->mkdir("gopath"),
                                "GOFLAGS=-mod=mod",
                                "GOPROXY=off",
                                "GOENV=off",  // no go env file: works without $HOME
                                "GO111MODULE=on",
                                "go",
                                "build",
                                "-o",
                                out,
                                goWatchSource()};
  // A cold build of the standard library takes a while on a loaded machine.
  CommandResult r = runCommand(argv, Deadline::in(seconds(120)));
  if (r.exitCode != 0) throw std::runtime_error("cannot build the Go watcher: " + r.describe(argv));
  dir = std::move(build);
  binary = out;
  return binary;
}

bool isStaticExecutable(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  Elf64_Ehdr header{};
  if (!in.read(reinterpret_cast<char*>(&header), sizeof header)) return false;
  if (std::string(reinterpret_cast<const char*>(header.e_ident), 4) != ELFMAG ||
      header.e_ident[EI_CLASS] != ELFCLASS64) {
    return false;
  }
  for (unsigned i = 0; i < header.e_phnum; ++i) {
    Elf64_Phdr program{};
    in.seekg(static_cast<std::streamoff>(header.e_phoff + i * header.e_phentsize));
    if (!in.read(reinterpret_cast<char*>(&program), sizeof program)) return false;
    if (program.p_type == PT_INTERP) return false;
  }
  return true;
}

std::string ProgramEvent::key() const { return kind + "|" + path + (to.empty() ? "" : "|" + to); }

std::string FileChange::describe() const {
  switch (type) {
    case Type::kCreate:
      return "create " + path;
    case Type::kModify:
      return "modify " + path;
    case Type::kRename:
      return "rename " + path + " -> " + to;
    case Type::kDelete:
      return "delete " + path;
    case Type::kMakeDir:
      return "mkdir " + path;
  }
  return "?";
}

RealProgram::RealProgram(RealProgramKind kind, std::string dir, RealProgramOptions options)
    : kind_(kind), dir_(std::move(dir)), options_(std::move(options)) {
  while (dir_.size() > 1 && dir_.back() == '/') dir_.pop_back();
  ProcessOptions o;
  o.env = options_.env;
  o.netns = options_.netns;
  switch (kind_) {
    case RealProgramKind::kInotifywait:
      // Without the read-side events (OPEN, ACCESS, CLOSE_NOWRITE): every
      // listing of the directory would show.
      o.argv = {"inotifywait", "-m",
                "--format",    "%e|%w%f",
                "-e",          "create,delete,modify,close_write,moved_from,moved_to,attrib,delete_self,move_self"};
      if (options_.recursive) o.argv.push_back("-r");
      readyLine_ = "Watches established.";
      readyStream_ = Stream::kStderr;
      break;
    case RealProgramKind::kGioMonitor:
      o.argv = {"gio", "monitor"};  // says nothing when it is ready
      break;
    case RealProgramKind::kWatchdog:
      o.argv = {"/usr/bin/python3", "-u", "-c", kWatchdogScript};
      readyLine_ = "ready";
      break;
    case RealProgramKind::kNodeFsWatch:
      o.argv = {"node", "-e", kNodeScript};
      readyLine_ = "ready";
      break;
    case RealProgramKind::kGoInotify:
      o.argv = {goWatchBinary()};
      readyLine_ = "ready";
      break;
  }
  o.argv.push_back(dir_);
  if (kind_ == RealProgramKind::kWatchdog) o.argv.push_back(options_.recursive ? "1" : "0");
  if (kind_ == RealProgramKind::kNodeFsWatch)
    o.argv.push_back(options_.recursive && options_.nodeRecursive ? "1" : "0");
  process_ = std::make_unique<Process>(std::move(o));
}

bool RealProgram::recursive() const {
  switch (kind_) {
    case RealProgramKind::kInotifywait:
    case RealProgramKind::kWatchdog:
      return options_.recursive;
    case RealProgramKind::kGioMonitor:
      return false;
    case RealProgramKind::kNodeFsWatch: {
      if (!options_.recursive || !options_.nodeRecursive) return false;
      // Its ready line says whether this Node has the recursive mode.
      for (const std::string& line : process_->lines(Stream::kStdout)) {
        if (line.rfind("ready", 0) == 0) return line == "ready recursive";
      }
      return false;
    }
    case RealProgramKind::kGoInotify:
      return true;
  }
  return false;
}

std::optional<ProgramEvent> RealProgram::parse(const std::string& line) const {
  ProgramEvent e;
  e.line = line;
  switch (kind_) {
    case RealProgramKind::kInotifywait:
    case RealProgramKind::kGoInotify: {
      // "FLAGS|path" (inotifywait: %w%f, absolute) or "FLAGS|rel|cookie" (go).
      auto parts = split(line, '|');
      if (parts.size() < 2 || parts[0].empty() ||
          parts[0].find_first_not_of("ABCDEFGHIJKLMNOPQRSTUVWXYZ_,") != std::string::npos) {
        return std::nullopt;
      }
      e.kind = parts[0];
      e.path = kind_ == RealProgramKind::kInotifywait ? relativeTo(parts[1], dir_) : parts[1];
      if (parts.size() >= 3 && !parts[2].empty()) e.cookie = static_cast<uint32_t>(std::stoul(parts[2]));
      return e;
    }
    case RealProgramKind::kGioMonitor: {
      // "<dir>: <path>: created", "...: changed", "...: changes done",
      // "...: attributes changed", "...: deleted", "...: renamed to <path>",
      // "...: moved in", "...: moved out".
      static const std::regex kLine(
          R"(^.*?: (.*): (created|changed|changes done|attributes changed|deleted|pre-unmount|unmounted|moved in|moved out|renamed to (.*))$)");
      std::smatch m;
      if (!std::regex_match(line, m, kLine)) return std::nullopt;
      std::string rest = m[1];
      // The watched directory prefix is "<dir>: ", the path may itself hold ": ".
      e.path = relativeTo(rest, dir_);
      if (m[3].matched) {
        e.kind = "renamed";
        e.to = relativeTo(m[3], dir_);
      } else {
        e.kind = m[2];
      }
      return e;
    }
    case RealProgramKind::kWatchdog:
    case RealProgramKind::kNodeFsWatch: {
      auto parts = split(line, '|');
      if (parts.size() < 2 || parts[0].empty() || parts[0].find(' ') != std::string::npos) return std::nullopt;
      e.kind = parts[0];
      e.path = parts[1] == "." ? "" : parts[1];
      if (parts.size() >= 3) e.to = parts[2];
      return e;
    }
  }
  return std::nullopt;
}

std::vector<ProgramEvent> RealProgram::events(size_t from) const {
  std::vector<ProgramEvent> out;
  for (const std::string& line : process_->lines(Stream::kStdout)) {
    if (auto e = parse(line)) out.push_back(std::move(*e));
  }
  if (from > 0) out.erase(out.begin(), out.begin() + static_cast<std::ptrdiff_t>(std::min(from, out.size())));
  return out;
}

size_t RealProgram::count(const std::string& key, size_t from) const {
  auto all = events(from);
  return static_cast<size_t>(
      std::count_if(all.begin(), all.end(), [&](const ProgramEvent& e) { return e.key() == key; }));
}

bool RealProgram::waitForCount(const std::string& key, size_t n, Clock::duration timeout, size_t from) const {
  return waitUntil(Deadline::in(timeout), [&] { return count(key, from) >= n; });
}

std::string RealProgram::report(size_t from) const {
  std::string out = std::string(name()) + " on " + dir_ + " reported (from record " + std::to_string(from) + "):\n";
  for (const ProgramEvent& e : events(from))
    out += "  " + e.key() + (e.cookie ? " cookie " + std::to_string(e.cookie) : "") + "\n";
  return out + "--- everything " + name() + " wrote:\n" + process_->transcript();
}

std::string RealProgram::createdKey(const std::string& name) const {
  return expectedFor({FileChange::Type::kCreate, name, ""}).once.front();
}

ExpectedReports RealProgram::expectedFor(const FileChange& change) const {
  using Type = FileChange::Type;
  const std::string& f = change.path;
  const std::string& g = change.to;
  switch (kind_) {
    case RealProgramKind::kInotifywait:
    case RealProgramKind::kGoInotify:
      switch (change.type) {
        case Type::kCreate:
          return {{"CREATE|" + f}, {}};
        case Type::kModify:
          return {{}, {"MODIFY|" + f}};
        case Type::kRename:
          return {{"MOVED_FROM|" + f, "MOVED_TO|" + g}, {}};
        case Type::kDelete:
          return {{"DELETE|" + f}, {}};
        case Type::kMakeDir:
          return {{"CREATE,ISDIR|" + f}, {}};
      }
      break;
    case RealProgramKind::kGioMonitor:
      switch (change.type) {
        case Type::kCreate:
          return {{"created|" + f}, {}};
        case Type::kModify:
          return {{}, {"changed|" + f}};
        case Type::kRename:
          return {{"renamed|" + f + "|" + g}, {}};
        case Type::kDelete:
          return {{"deleted|" + f}, {}};
        case Type::kMakeDir:
          return {{"created|" + f}, {}};
      }
      break;
    case RealProgramKind::kWatchdog:
      switch (change.type) {
        case Type::kCreate:
          return {{"created|" + f}, {}};
        case Type::kModify:
          return {{}, {"modified|" + f}};
        case Type::kRename:
          return {{"moved|" + f + "|" + g}, {}};
        case Type::kDelete:
          return {{"deleted|" + f}, {}};
        case Type::kMakeDir:
          return {{"created,dir|" + f}, {}};
      }
      break;
    case RealProgramKind::kNodeFsWatch:
      // "rename" for whatever makes a name appear or disappear.
      switch (change.type) {
        case Type::kCreate:
          return {{"rename|" + f}, {}};
        case Type::kModify:
          return {{}, {"change|" + f}};
        case Type::kRename:
          return {{"rename|" + f, "rename|" + g}, {}};
        case Type::kDelete:
          return {{"rename|" + f}, {}};
        case Type::kMakeDir:
          return {{"rename|" + f}, {}};
      }
      break;
  }
  return {};
}

bool RealProgram::structural(const std::string& kind) const {
  static const std::set<std::string> kInotify{"CREATE", "DELETE", "MOVED_FROM", "MOVED_TO"};
  static const std::set<std::string> kGio{"created", "deleted", "renamed", "moved in", "moved out"};
  static const std::set<std::string> kWatchdog{"created", "deleted", "moved"};
  switch (kind_) {
    case RealProgramKind::kInotifywait:
    case RealProgramKind::kGoInotify:
      return kInotify.count(firstToken(kind)) > 0;
    case RealProgramKind::kGioMonitor:
      return kGio.count(kind) > 0;
    case RealProgramKind::kWatchdog:
      return kWatchdog.count(firstToken(kind)) > 0;
    case RealProgramKind::kNodeFsWatch:
      return kind == "rename";
  }
  return false;
}

::testing::AssertionResult RealProgram::watching(const std::function<void(const std::string& probe)>& makeProbe,
                                                 Clock::duration timeout) {
  Deadline deadline = Deadline::in(timeout);
  if (!readyLine_.empty()) {
    auto ready = process_->waitForLine(
        readyStream_, [&](const std::string& l) { return l.rfind(readyLine_, 0) == 0; }, deadline);
    if (!ready) {
      return ::testing::AssertionFailure() << name() << " never said it was watching (\"" << readyLine_ << "\")\n"
                                           << report();
    }
  }
  size_t from = mark();
  for (int i = 0; !deadline.expired(); ++i) {
    std::string probe = "probe" + std::to_string(i);
    makeProbe(probe);
    auto wait = std::min<Clock::duration>(seconds(1), deadline.remaining());
    if (waitUntil(Deadline::in(wait), [&] { return count(createdKey(probe), from) > 0; })) {
      return ::testing::AssertionSuccess();
    }
  }
  return ::testing::AssertionFailure() << name() << " never reported a probe file as created\n" << report(from);
}

ReportTally::ReportTally(const RealProgram& program) : program_(program), from_(program.mark()) {}

::testing::AssertionResult ReportTally::expect(const FileChange& change, Clock::duration timeout) {
  changes_.push_back(change);
  ExpectedReports expected = program_.expectedFor(change);
  for (const std::string& key : expected.once) ++once_[key];
  atLeastOnce_.insert(atLeastOnce_.end(), expected.atLeastOnce.begin(), expected.atLeastOnce.end());
  bool ok = waitUntil(Deadline::in(timeout), [&] {
    for (const std::string& key : expected.once) {
      if (program_.count(key, from_) < once_[key]) return false;
    }
    for (const std::string& key : expected.atLeastOnce) {
      if (program_.count(key, from_) == 0) return false;
    }
    return true;
  });
  if (ok) return ::testing::AssertionSuccess();
  auto failure = ::testing::AssertionFailure();
  failure << program_.name() << " did not report \"" << change.describe() << "\" in time; expected";
  for (const std::string& key : expected.once) {
    failure << " " << key << " (" << program_.count(key, from_) << " of " << once_[key] << ")";
  }
  for (const std::string& key : expected.atLeastOnce) failure << " " << key << " (at least once)";
  return failure << "\n" << program_.report(from_);
}

::testing::AssertionResult ReportTally::barrier(const std::string& name, Clock::duration timeout) {
  if (program_.waitForCount(program_.createdKey(name), 1, timeout, from_)) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure() << program_.name() << " did not report the barrier file " << name
                                       << " as created\n"
                                       << program_.report(from_);
}

::testing::AssertionResult ReportTally::verify() const {
  std::set<std::string> paths;
  for (const FileChange& c : changes_) {
    paths.insert(c.path);
    if (!c.to.empty()) paths.insert(c.to);
  }
  std::vector<ProgramEvent> events = program_.events(from_);
  std::map<std::string, size_t> seen;
  for (const ProgramEvent& e : events) {
    if (program_.structural(e.kind) && (paths.count(e.path) > 0 || paths.count(e.to) > 0)) ++seen[e.key()];
  }
  std::vector<std::string> problems;
  std::set<std::string> keys;
  for (const auto& [key, n] : once_) keys.insert(key);
  for (const auto& [key, n] : seen) keys.insert(key);
  for (const std::string& key : keys) {
    size_t expected = once_.count(key) > 0 ? once_.at(key) : 0;
    size_t got = seen.count(key) > 0 ? seen.at(key) : 0;
    if (got != expected) {
      problems.push_back(key + ": " + std::to_string(got) + " times, expected " + std::to_string(expected) +
                         (got > expected ? (expected == 0 ? " (made up)" : " (twice)") : " (missing)"));
    }
  }
  for (const std::string& key : atLeastOnce_) {
    if (program_.count(key, from_) == 0) problems.push_back(key + ": never reported");
  }
  // A rename reads as one pair in inotify-style output.
  if (inotifyStyle(program_.kind())) {
    for (const FileChange& c : changes_) {
      if (c.type != FileChange::Type::kRename) continue;
      auto from = std::find_if(events.begin(), events.end(),
                               [&](const ProgramEvent& e) { return e.key() == "MOVED_FROM|" + c.path; });
      if (from == events.end()) continue;  // already counted as missing
      auto to = std::next(from);
      if (to == events.end() || to->key() != "MOVED_TO|" + c.to) {
        problems.push_back("MOVED_FROM|" + c.path + " is not followed at once by MOVED_TO|" + c.to);
      } else if (program_.kind() == RealProgramKind::kGoInotify && (from->cookie == 0 || from->cookie != to->cookie)) {
        problems.push_back("the rename " + c.path + " -> " + c.to + " carries cookies " + std::to_string(from->cookie) +
                           " and " + std::to_string(to->cookie));
      }
    }
  }
  if (problems.empty()) return ::testing::AssertionSuccess();
  auto failure = ::testing::AssertionFailure();
  failure << program_.name() << " reported the changes wrongly:\n";
  for (const std::string& p : problems) failure << "  " << p << "\n";
  failure << "changes made:";
  for (const FileChange& c : changes_) failure << " [" << c.describe() << "]";
  return failure << "\n" << program_.report(from_);
}

}  // namespace rnotify::testbed
