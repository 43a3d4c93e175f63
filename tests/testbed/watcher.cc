// Watcher; see watcher.h.
#include "watcher.h"

#include <cstdlib>
#include <regex>
#include <sstream>

#include "product.h"

namespace rnotify::testbed {
namespace {

constexpr const char* kFormat = "%w|%f|%e";
constexpr const char* kCookieFormat = "%w|%f|%e|%c";

std::vector<std::string> splitFlags(const std::string& s) {
  std::vector<std::string> out;
  std::stringstream ss(s);
  std::string f;
  while (std::getline(ss, f, ',')) {
    if (!f.empty()) out.push_back(f);
  }
  return out;
}

std::string trimSlashes(std::string s) {
  while (!s.empty() && s.front() == '/') s.erase(0, 1);
  while (!s.empty() && s.back() == '/') s.pop_back();
  return s;
}

}  // namespace

bool ExpectedEvent::matches(const WatchedEvent& e) const {
  if (path != "*" && e.path != path) return false;
  for (const auto& f : splitFlags(flags)) {
    bool negated = f[0] == '!';
    bool present = e.flags.count(negated ? f.substr(1) : f) != 0;
    if (present == negated) return false;
  }
  return true;
}

std::string ExpectedEvent::describe() const { return flags + " on '" + path + "'"; }

Watcher::Watcher(WatcherOptions options) : options_(std::move(options)) {
  ProcessOptions p;
  p.argv.push_back(options_.program.empty() ? rnotifywaitPath() : options_.program);
  if (options_.monitor) p.argv.push_back("-m");
  if (options_.format) {
    p.argv.push_back("--format");
    p.argv.push_back(options_.cookie ? kCookieFormat : kFormat);
  }
  p.argv.insert(p.argv.end(), options_.args.begin(), options_.args.end());
  p.argv.push_back(options_.path);
  p.env = options_.env;
  p.env["RNOTIFY_AGENT"] = options_.agent ? *options_.agent : agentCommand();
  if (!p.env.count("RNOTIFY_LOG_LEVEL")) p.env["RNOTIFY_LOG_LEVEL"] = "debug";
  p.netns = options_.netns;
  process_ = std::make_unique<Process>(std::move(p));
}

WatchedEvent Watcher::parse(const std::string& line) const {
  WatchedEvent e;
  e.line = line;
  std::string rest = line;
  // Fields are split from both ends, so that only the name may contain '|'.
  if (options_.cookie) {
    auto bar = rest.rfind('|');
    if (bar == std::string::npos) return e;
    e.cookie = static_cast<uint32_t>(std::strtoul(rest.c_str() + bar + 1, nullptr, 16));
    rest.erase(bar);
  }
  auto first = rest.find('|');
  auto last = rest.rfind('|');
  if (first == std::string::npos || first == last) return e;
  e.dir = rest.substr(0, first);
  e.name = rest.substr(first + 1, last - first - 1);
  for (auto& f : splitFlags(rest.substr(last + 1))) e.flags.insert(f);
  std::string rel = e.dir;
  const std::string& root = options_.path;
  if (rel.rfind(root, 0) == 0 && (rel.size() == root.size() || rel[root.size()] == '/' || root.back() == '/')) {
    rel = rel.substr(root.size());
  }
  rel = trimSlashes(rel);
  e.path = rel.empty() ? e.name : (e.name.empty() ? rel : rel + "/" + e.name);
  return e;
}

std::vector<WatchedEvent> Watcher::events() const {
  std::vector<WatchedEvent> out;
  for (const auto& l : process_->lines(Stream::kStdout)) out.push_back(parse(l));
  return out;
}

std::string Watcher::report(const std::string& what) const {
  std::ostringstream out;
  out << what << "\n--- events after the last matched expectation (from line " << cursor_ << "):\n";
  auto lines = process_->lines(Stream::kStdout);
  for (size_t i = cursor_; i < lines.size(); ++i) out << "  " << lines[i] << "\n";
  if (cursor_ >= lines.size()) out << "  (none)\n";
  out << "--- everything the watcher wrote:\n" << process_->transcript();
  return out.str();
}

::testing::AssertionResult Watcher::established(Clock::duration timeout) {
  auto deadline = Deadline::in(timeout);
  auto found = process_->waitForLine(
      Stream::kStderr, [](const std::string& l) { return l.find("Watches established.") != std::string::npos; },
      deadline);
  if (found) return ::testing::AssertionSuccess();
  bool exited = !process_->running();
  return ::testing::AssertionFailure() << report(std::string("expected \"Watches established.\" on stderr, ") +
                                                 (exited ? "but rnotifywait exited" : "but it did not come in time"));
}

::testing::AssertionResult Watcher::expectSequence(const std::vector<ExpectedEvent>& expected,
                                                   Clock::duration timeout) {
  auto deadline = Deadline::in(timeout);
  size_t pos = cursor_;
  for (size_t i = 0; i < expected.size(); ++i) {
    auto found = process_->waitForLine(
        Stream::kStdout, [&](const std::string& l) { return expected[i].matches(parse(l)); }, deadline, pos);
    if (!found) {
      std::ostringstream what;
      what << "expected these events in order:\n";
      for (size_t k = 0; k < expected.size(); ++k) {
        what << (k < i ? "  [seen]    " : k == i ? "  [MISSING] " : "  [not yet] ") << expected[k].describe() << "\n";
      }
      what << (process_->running() ? "" : "rnotifywait has exited.\n");
      return ::testing::AssertionFailure() << report(what.str());
    }
    pos = *found + 1;
  }
  cursor_ = pos;
  return ::testing::AssertionSuccess();
}

::testing::AssertionResult Watcher::expectAdjacent(const std::vector<ExpectedEvent>& expected,
                                                   Clock::duration timeout) {
  size_t start = cursor_;
  if (auto r = expectSequence(expected, timeout); !r) return r;
  auto lines = process_->lines(Stream::kStdout);
  // expectSequence matched the earliest occurrence of each; they must be the
  // last expected.size() lines before the cursor.
  for (size_t k = 1; k < expected.size(); ++k) {
    size_t i = cursor_ - expected.size() + k;
    if (i <= start || !expected[k - 1].matches(parse(lines[i - 1]))) {
      size_t stop = cursor_;
      cursor_ = start;
      std::string what = "expected " + expected[k].describe() + " right after " + expected[k - 1].describe() +
                         ", but other events came in between (up to line " + std::to_string(stop) + ")";
      return ::testing::AssertionFailure() << report(what);
    }
  }
  return ::testing::AssertionSuccess();
}

::testing::AssertionResult Watcher::expectMove(const ExpectedEvent& from, const ExpectedEvent& to,
                                               Clock::duration timeout) {
  if (auto r = expectAdjacent({from, to}, timeout); !r) return r;
  if (!options_.cookie) return ::testing::AssertionSuccess();
  auto lines = process_->lines(Stream::kStdout);
  WatchedEvent a = parse(lines[cursor_ - 2]), b = parse(lines[cursor_ - 1]);
  if (a.cookie != 0 && a.cookie == b.cookie) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure() << report("expected one non-zero cookie on " + from.describe() + " and " +
                                                 to.describe() + ", got " + std::to_string(a.cookie) + " and " +
                                                 std::to_string(b.cookie));
}

::testing::AssertionResult Watcher::expectNoneBefore(const ExpectedEvent& forbidden, const ExpectedEvent& barrier,
                                                     Clock::duration timeout) {
  auto deadline = Deadline::in(timeout);
  auto found = process_->waitForLine(
      Stream::kStdout, [&](const std::string& l) { return barrier.matches(parse(l)); }, deadline, cursor_);
  if (!found) {
    return ::testing::AssertionFailure() << report("expected the barrier event " + barrier.describe() +
                                                   ", but it did not come");
  }
  auto lines = process_->lines(Stream::kStdout);
  for (size_t i = cursor_; i < *found; ++i) {
    if (forbidden.matches(parse(lines[i]))) {
      return ::testing::AssertionFailure() << report("expected no " + forbidden.describe() + " before " +
                                                     barrier.describe() + ", but saw: " + lines[i]);
    }
  }
  cursor_ = *found + 1;
  return ::testing::AssertionSuccess();
}

::testing::AssertionResult Watcher::waitFor(const std::string& regex, Clock::duration timeout) {
  std::regex re(regex);
  auto found = process_->waitForLine(
      Stream::kStdout, [&](const std::string& l) { return std::regex_search(l, re); }, Deadline::in(timeout), cursor_);
  if (!found) return ::testing::AssertionFailure() << report("expected a line matching /" + regex + "/");
  cursor_ = *found + 1;
  return ::testing::AssertionSuccess();
}

::testing::AssertionResult Watcher::expectExit(int code, Clock::duration timeout) {
  auto status = process_->waitExit(Deadline::in(timeout));
  if (!status)
    return ::testing::AssertionFailure() << report("expected exit status " + std::to_string(code) +
                                                   ", but it is still running");
  if (*status != code) {
    return ::testing::AssertionFailure() << report("expected exit status " + std::to_string(code) + ", got " +
                                                   std::to_string(*status));
  }
  // Let the reader collect the last words before callers look at stderr.
  process_->waitForLine(
      Stream::kStderr, [](const std::string&) { return false; }, Deadline::in(milliseconds(500)));
  return ::testing::AssertionSuccess();
}

}  // namespace rnotify::testbed
