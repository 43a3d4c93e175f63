// Event oracle; see event_oracle.h.
#include "event_oracle.h"

#include <algorithm>
#include <cstdint>
#include <sstream>

namespace rnotify::testbed {

// inotifywait prints CLOSE_WRITE as "CLOSE_WRITE,CLOSE".
bool collapsible(const std::string& kind) {
  static const std::set<std::string> kAllowed = {"MODIFY", "ATTRIB", "CLOSE_WRITE", "CLOSE", "ISDIR"};
  bool any = false;
  size_t start = 0;
  while (start <= kind.size()) {
    size_t comma = std::min(kind.find(',', start), kind.size());
    std::string flag = kind.substr(start, comma - start);
    if (!kAllowed.count(flag)) return false;
    any = any || (flag != "CLOSE" && flag != "ISDIR");
    start = comma + 1;
  }
  return any;
}

namespace {

// One step of an alignment: both have the event, only actual, only expected.
enum class Step : char { kSame = '=', kExtra = '+', kLacking = '-' };

// A shortest edit script between the two sequences (longest common
// subsequence). Common prefix and suffix are taken as they are, so that the
// quadratic table only covers the part where they differ.
std::vector<Step> align(const std::vector<std::string>& expected, const std::vector<std::string>& actual) {
  size_t prefix = 0;
  while (prefix < expected.size() && prefix < actual.size() && expected[prefix] == actual[prefix]) ++prefix;
  size_t suffix = 0;
  while (suffix < expected.size() - prefix && suffix < actual.size() - prefix &&
         expected[expected.size() - 1 - suffix] == actual[actual.size() - 1 - suffix]) {
    ++suffix;
  }
  size_t n = expected.size() - prefix - suffix, m = actual.size() - prefix - suffix;
  // lcs[i][j]: LCS length of expected[prefix+i..] and actual[prefix+j..].
  std::vector<uint32_t> lcs((n + 1) * (m + 1), 0);
  auto at = [&](size_t i, size_t j) -> uint32_t& { return lcs[i * (m + 1) + j]; };
  for (size_t i = n; i-- > 0;) {
    for (size_t j = m; j-- > 0;) {
      at(i, j) =
          expected[prefix + i] == actual[prefix + j] ? at(i + 1, j + 1) + 1 : std::max(at(i + 1, j), at(i, j + 1));
    }
  }
  std::vector<Step> steps(prefix, Step::kSame);
  size_t i = 0, j = 0;
  while (i < n || j < m) {
    if (i < n && j < m && expected[prefix + i] == actual[prefix + j]) {
      steps.push_back(Step::kSame);
      ++i, ++j;
    } else if (j < m && (i == n || at(i, j + 1) >= at(i + 1, j))) {
      steps.push_back(Step::kExtra);
      ++j;
    } else {
      steps.push_back(Step::kLacking);
      ++i;
    }
  }
  steps.insert(steps.end(), suffix, Step::kSame);
  return steps;
}

void addTo(std::map<std::string, size_t>& total, const std::map<std::string, size_t>& part) {
  for (const auto& [kind, n] : part) total[kind] += n;
}

std::string describeKinds(const std::map<std::string, size_t>& byKind) {
  std::string out;
  for (const auto& [kind, n] : byKind) {
    if (n > 0) out += (out.empty() ? "" : ", ") + std::to_string(n) + " " + kind;
  }
  return out.empty() ? "-" : out;
}

}  // namespace

std::string eventKind(const WatchedEvent& event) {
  std::string kind;
  for (const std::string& flag : event.flags) {  // std::set: sorted
    if (flag == "REMOTE") continue;
    kind += (kind.empty() ? "" : ",") + flag;
  }
  return kind;
}

void collapseRepeats(std::vector<std::string>& kinds) {
  std::vector<std::string> out;
  out.reserve(kinds.size());
  for (size_t i = 0; i < kinds.size();) {
    if (!collapsible(kinds[i])) {
      out.push_back(std::move(kinds[i++]));
      continue;
    }
    std::set<std::string> run;  // sorted, each kind once
    while (i < kinds.size() && collapsible(kinds[i])) run.insert(std::move(kinds[i++]));
    out.insert(out.end(), run.begin(), run.end());
  }
  kinds = std::move(out);
}

EventHistory historyOf(const std::vector<WatchedEvent>& events, const std::set<std::string>& ignored) {
  EventHistory history;
  for (const WatchedEvent& e : events) {
    if (ignored.count(e.path)) continue;
    history[e.path].push_back(eventKind(e));
  }
  for (auto& [path, kinds] : history) collapseRepeats(kinds);
  return history;
}

std::map<std::string, std::vector<std::string>> annotatedHistoryOf(const std::vector<WatchedEvent>& events,
                                                                   const std::set<std::string>& ignored) {
  // Per path: structural kinds one by one, runs of collapsible kinds as a
  // sorted set, each with the origins seen ("local+remote").
  std::map<std::string, std::vector<std::pair<std::string, std::string>>> seqs;
  std::map<std::string, std::map<std::string, std::string>> openRun;
  auto closeRun = [&](const std::string& path) {
    for (auto& [kind, origin] : openRun[path]) seqs[path].emplace_back(kind, origin);
    openRun[path].clear();
  };
  for (const WatchedEvent& e : events) {
    if (ignored.count(e.path)) continue;
    std::string kind = eventKind(e), origin = e.flags.count("REMOTE") ? "remote" : "local";
    if (collapsible(kind)) {
      std::string& seen = openRun[e.path][kind];
      if (seen.find(origin) == std::string::npos) seen += (seen.empty() ? "" : "+") + origin;
      continue;
    }
    closeRun(e.path);
    seqs[e.path].emplace_back(kind, origin);
  }
  std::map<std::string, std::vector<std::string>> out;
  for (auto& [path, run] : openRun) closeRun(path);
  for (auto& [path, seq] : seqs) {
    for (auto& [kind, origin] : seq) out[path].push_back(kind + "  " + origin);
  }
  return out;
}

std::map<std::string, size_t> structuralCounts(const std::vector<WatchedEvent>& events,
                                               const std::set<std::string>& ignored) {
  std::map<std::string, size_t> out;
  for (const WatchedEvent& e : events) {
    std::string kind = eventKind(e);
    if (!ignored.count(e.path) && !collapsible(kind)) ++out[kind];
  }
  return out;
}

std::string PathDifference::context(size_t around) const {
  std::vector<Step> steps = align(expected, actual);
  size_t first = 0;
  while (first < steps.size() && steps[first] == Step::kSame) ++first;
  size_t from = first > around ? first - around : 0;
  std::ostringstream out;
  size_t i = 0, j = 0;  // positions in expected and actual
  for (size_t k = 0; k < steps.size(); ++k) {
    bool shown = k >= from && k <= first + 3 * around;
    if (k == from && from > 0) out << "    ... (" << i << " equal events before)\n";
    if (shown) {
      const std::string& kind = steps[k] == Step::kLacking ? expected[i] : actual[j];
      out << "    " << static_cast<char>(steps[k]) << " " << kind << "\n";
    }
    if (steps[k] != Step::kExtra) ++i;
    if (steps[k] != Step::kLacking) ++j;
  }
  if (steps.size() > first + 3 * around + 1) {
    out << "    ... (" << steps.size() - first - 3 * around - 1 << " more steps)\n";
  }
  return out.str();
}

HistoryComparison compareHistories(const EventHistory& expected, const EventHistory& actual) {
  HistoryComparison result;
  std::set<std::string> paths;
  for (const auto& [path, kinds] : expected) paths.insert(path), result.expectedEvents += kinds.size();
  for (const auto& [path, kinds] : actual) paths.insert(path), result.actualEvents += kinds.size();
  static const std::vector<std::string> kNone;
  for (const std::string& path : paths) {
    auto e = expected.find(path);
    auto a = actual.find(path);
    PathDifference d;
    d.path = path;
    d.expected = e == expected.end() ? kNone : e->second;
    d.actual = a == actual.end() ? kNone : a->second;
    if (d.expected == d.actual) continue;
    std::map<std::string, size_t> inExpected, inActual, matched;
    for (const auto& k : d.expected) ++inExpected[k];
    for (const auto& k : d.actual) ++inActual[k];
    std::vector<Step> steps = align(d.expected, d.actual);
    size_t i = 0, j = 0;
    bool diverged = false;
    for (Step s : steps) {
      if (s == Step::kSame) ++matched[d.expected[i]];
      if (s != Step::kSame && !diverged) d.firstDivergence = i, d.firstDivergenceActual = j, diverged = true;
      if (s != Step::kExtra) ++i;
      if (s != Step::kLacking) ++j;
    }
    std::set<std::string> kinds;
    for (const auto& [k, n] : inExpected) kinds.insert(k);
    for (const auto& [k, n] : inActual) kinds.insert(k);
    for (const std::string& k : kinds) {
      size_t ne = inExpected[k], na = inActual[k];
      if (na > ne) d.duplicatesByKind[k] = na - ne, d.duplicates += na - ne;
      if (ne > na) d.missingByKind[k] = ne - na, d.missing += ne - na;
      if (size_t both = std::min(ne, na); both > matched[k]) {
        d.misorderedByKind[k] = both - matched[k];
        d.misordered += both - matched[k];
      }
    }
    result.duplicates += d.duplicates;
    result.missing += d.missing;
    result.misordered += d.misordered;
    addTo(result.duplicatesByKind, d.duplicatesByKind);
    addTo(result.missingByKind, d.missingByKind);
    addTo(result.misorderedByKind, d.misorderedByKind);
    result.differences.push_back(std::move(d));
  }
  return result;
}

std::string HistoryComparison::describe(size_t maxPaths) const {
  std::ostringstream out;
  out << "oracle " << expectedEvents << " events, under test " << actualEvents << " (after collapsing repeats); "
      << duplicates << " duplicates, " << missing << " missing, " << misordered << " misordered, on "
      << differences.size() << " paths\n";
  out << "  duplicates by kind: " << describeKinds(duplicatesByKind) << "\n";
  out << "  missing by kind:    " << describeKinds(missingByKind) << "\n";
  out << "  misordered by kind: " << describeKinds(misorderedByKind) << "\n";
  for (size_t k = 0; k < differences.size() && k < maxPaths; ++k) {
    const PathDifference& d = differences[k];
    out << "  '" << d.path << "': " << d.duplicates << " duplicates, " << d.missing << " missing, " << d.misordered
        << " misordered; first divergence at oracle event " << d.firstDivergence << " of " << d.expected.size()
        << " (+ only under test, - only in the oracle):\n"
        << d.context();
  }
  if (differences.size() > maxPaths) out << "  ... and " << differences.size() - maxPaths << " more paths\n";
  return out.str();
}

}  // namespace rnotify::testbed
